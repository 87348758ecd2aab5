"""The JSON Schema of a manifest document, generated from the models (`moor schema`).

Models that also accept a short string form (``"8080:80/udp"``) get it added as
an alternative, so editors accept what `moor apply` accepts.
"""

from __future__ import annotations

from typing import Any

from moorage.manifest.model import Link, Port, Restart, ServiceDocument, Volume

SCHEMA_ID = "https://moorage.dev/schemas/service-manifest.json"

_SHORT_FORMS: dict[str, dict[str, Any]] = {
    Port.__name__: {"type": "string", "pattern": r"^\d+:\d+(/(tcp|udp))?$", "examples": ["8080:80", "53:53/udp"]},
    Volume.__name__: {"type": "string", "examples": ["data:/var/lib/db", "/srv/conf:/etc/app:ro", "/cache"]},
    Link.__name__: {"type": "string", "examples": ["db", "db:database"]},
    Restart.__name__: {"enum": ["any", "always", "on-failure", "none", "no"]},
}


def json_schema() -> dict[str, Any]:
    """A draft 2020-12 schema for one service document."""
    schema = ServiceDocument.model_json_schema()
    for name, short in _SHORT_FORMS.items():
        definition = schema["$defs"][name]
        schema["$defs"][name] = {"anyOf": [short, definition], "description": definition.get("description", "")}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "Moorage service manifest"
    return schema
