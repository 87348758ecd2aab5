"""Service manifests: YAML documents → validated ``ServiceManifest`` → ``ServiceSpec``.

``units`` parses durations, sizes and signals; ``fields`` turns them into
pydantic field types; ``model`` holds the models and their mapping onto the API;
``loading`` reads files and reports every problem at once (``errors``);
``schema`` writes the JSON Schema editors use.

Names are imported on first use, so a command that only reports an error or
parses ``--timeout`` does not pay for building the pydantic models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from moorage.manifest.errors import ManifestError, Problem
    from moorage.manifest.loading import NOT_SUPPORTED_YET, Loaded, Origin, check_references, load, load_paths
    from moorage.manifest.model import DEFAULT_STOP_GRACE_PERIOD, ServiceDocument, ServiceManifest, read_env_file
    from moorage.manifest.schema import json_schema
    from moorage.manifest.units import parse_duration

_HOMES = {
    "ManifestError": "errors",
    "Problem": "errors",
    "NOT_SUPPORTED_YET": "loading",
    "Loaded": "loading",
    "Origin": "loading",
    "check_references": "loading",
    "load": "loading",
    "load_paths": "loading",
    "loading": "",
    "DEFAULT_STOP_GRACE_PERIOD": "model",
    "ServiceDocument": "model",
    "ServiceManifest": "model",
    "read_env_file": "model",
    "json_schema": "schema",
    "parse_duration": "units",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    home = _HOMES[name]
    if not home:  # a submodule itself (tests switch loading.NOT_SUPPORTED_YET)
        return importlib.import_module(f"{__name__}.{name}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
