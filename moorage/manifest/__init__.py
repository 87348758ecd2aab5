"""Service manifests: YAML documents → validated ``ServiceManifest`` → ``ServiceSpec``.

``fields`` parses scalar values, ``model`` holds the pydantic models and their
mapping onto the API, ``loading`` reads files and reports every problem at once,
``schema`` writes the JSON Schema editors use.
"""

from moorage.manifest.fields import parse_duration
from moorage.manifest.loading import (
    NOT_SUPPORTED_YET,
    Loaded,
    ManifestError,
    Origin,
    Problem,
    check_references,
    load,
    load_paths,
)
from moorage.manifest.model import DEFAULT_STOP_GRACE_PERIOD, ServiceDocument, ServiceManifest, read_env_file
from moorage.manifest.schema import json_schema

__all__ = [
    "DEFAULT_STOP_GRACE_PERIOD",
    "NOT_SUPPORTED_YET",
    "Loaded",
    "ManifestError",
    "Origin",
    "Problem",
    "ServiceDocument",
    "ServiceManifest",
    "check_references",
    "json_schema",
    "load",
    "load_paths",
    "parse_duration",
    "read_env_file",
]
