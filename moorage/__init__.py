"""Moorage: a multi-host container orchestrator.

The shared core lives here: the `moor` CLI, the manifest model, logging set-up,
and the code generated from protos/ (``moorage.v1``).
"""

__version__ = "0.1.0"
