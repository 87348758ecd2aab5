"""Where the controllers are: the default address, the environment variable, lists of them.

Kept apart from ``moorage.client`` (which loads grpc and the generated API) so that
`moor` can name them in its help without loading either.
"""

from __future__ import annotations

import os

DEFAULT_CONTROLLER = "127.0.0.1:7420"
ENV_CONTROLLER = "MOOR_CONTROLLER"


def split_addresses(value: str) -> list[str]:
    """``"a:1, b:2"`` → ``["a:1", "b:2"]``."""
    return [part.strip() for part in value.split(",") if part.strip()]


def controller_address(flag: str | None = None) -> str:
    """The ``--controller`` flag, else ``$MOOR_CONTROLLER``, else 127.0.0.1:7420."""
    return flag or os.environ.get(ENV_CONTROLLER) or DEFAULT_CONTROLLER
