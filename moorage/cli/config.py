"""Where `moor` finds its controllers: the flag, else $MOOR_CONTROLLER, else the config file.

``~/.config/moorage/config.yaml`` (or ``$XDG_CONFIG_HOME/moorage/config.yaml``)::

    controller: 10.0.0.2:7420          # or a list, or "a:7420,b:7420"

Several controllers are tried in order when one is unreachable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from moorage.addresses import DEFAULT_CONTROLLER, ENV_CONTROLLER, split_addresses
from moorage.cli.common import EXIT_INVALID, CommandError

if TYPE_CHECKING:
    from moorage.client import ControlClient


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "moorage" / "config.yaml"


def controller_addresses(flag: str | None) -> list[str]:
    """The controllers to talk to, highest-precedence source first."""
    for source in (flag, os.environ.get(ENV_CONTROLLER)):
        if source and split_addresses(source):
            return split_addresses(source)
    return _from_config(config_path()) or [DEFAULT_CONTROLLER]


def _from_config(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise _unreadable(path, exc) from None
    import yaml  # here: a command given the flag or $MOOR_CONTROLLER, or without a config file, needs none

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _unreadable(path, exc) from None
    if data is None:
        return []
    value = data.get("controller") if isinstance(data, dict) else None
    if isinstance(value, str):
        return split_addresses(value)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return [address.strip() for address in value]
    if isinstance(data, dict) and value is None:
        return []
    raise CommandError(f"{path}: controller must be HOST:PORT or a list of them", EXIT_INVALID)


def _unreadable(path: Path, exc: Exception) -> CommandError:
    return CommandError(f"{path}: cannot read the config: {exc}", EXIT_INVALID)


def connect(controller: str | None) -> ControlClient:
    """A client for the controllers the flag, the environment or the config file name."""
    from moorage.client import ControlClient

    return ControlClient(controller_addresses(controller))
