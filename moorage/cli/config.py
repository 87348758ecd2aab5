"""Where `moor` finds its controllers and its credentials.

The config file is ``$MOOR_CONFIG``, else ``~/.config/moorage/config.yaml`` (or under
``$XDG_CONFIG_HOME``); like a kubeconfig it names the controllers and the TLS material::

    controller: [10.0.0.2:7420, 10.0.0.3:7420]   # or "a:7420,b:7420"
    ca: ca.crt                                   # the cluster CA (paths relative to this file)
    cert: admin.crt                              # this user's certificate and key
    key: admin.key
    insecure: false                              # true: plaintext, for an --insecure controller

`moor cluster init` and `moor cluster user-cert` write such a file. The controllers come from
``--controller``, else ``$MOOR_CONTROLLER``, else the file, else 127.0.0.1:7420; several are
tried in order when one is unreachable. ``MOOR_INSECURE=1`` talks plaintext whatever the file says.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moorage.addresses import DEFAULT_CONTROLLER, ENV_CONTROLLER, split_addresses
from moorage.cli.common import EXIT_INVALID, CommandError

if TYPE_CHECKING:
    from moorage.client import ControlClient
    from moorage.tlsconfig import ClientTLS

ENV_CONFIG = "MOOR_CONFIG"
ENV_INSECURE = "MOOR_INSECURE"


def config_path() -> Path:
    if explicit := os.environ.get(ENV_CONFIG):
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "moorage" / "config.yaml"


@dataclass(frozen=True)
class ClientConfig:
    controllers: list[str]
    tls: ClientTLS | None  # None: plaintext
    source: Path | None  # the file the credentials came from
    # Why there are no credentials, when TLS is wanted but none are configured: said on the first
    # call, so that commands which fail before any call (a bad manifest) say what is wrong with it.
    missing_credentials: str = ""


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if os.environ.get(ENV_CONFIG):
            raise CommandError(f"{path} ({ENV_CONFIG}): no such file", EXIT_INVALID) from None
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise _unreadable(path, exc) from None
    import yaml  # here: a command given the flag or $MOOR_CONTROLLER, or without a config file, needs none

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _unreadable(path, exc) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CommandError(f"{path}: the config must be a mapping (controller, ca, cert, key)", EXIT_INVALID)
    return data


def _controllers(path: Path, value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return split_addresses(value)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return [address.strip() for address in value]
    raise CommandError(f"{path}: controller must be HOST:PORT or a list of them", EXIT_INVALID)


def _wants_plaintext(data: dict[str, Any]) -> bool:
    return os.environ.get(ENV_INSECURE) == "1" or data.get("insecure") is True


def _tls(path: Path, data: dict[str, Any]) -> ClientTLS | None:
    from moorage.tlsconfig import ClientTLS

    names = {field: data.get(field) for field in ("ca", "cert", "key")}
    if _wants_plaintext(data) or names["ca"] is None:
        return None
    files: dict[str, Path | None] = {}
    for field, name in names.items():
        if name is not None and not isinstance(name, str):
            raise CommandError(f"{path}: {field} must be a file name", EXIT_INVALID)
        files[field] = (path.parent / name) if name else None
    try:
        return ClientTLS.from_files(files["ca"], files["cert"], files["key"])  # type: ignore[arg-type]
    except OSError as exc:
        raise _unreadable(path, exc) from None


def load(flag: str | None) -> ClientConfig:
    """The controllers (highest-precedence source first) and the credentials to use."""
    path = config_path()
    data = _read(path)
    controllers = next(
        (split_addresses(s) for s in (flag, os.environ.get(ENV_CONTROLLER)) if s and split_addresses(s)),
        None,
    )
    tls = _tls(path, data)
    missing = ""
    if tls is None and not _wants_plaintext(data):
        missing = (
            f"no cluster credentials: {path} names no ca/cert/key (`moor cluster init` writes them; "
            f"{ENV_INSECURE}=1 talks to an --insecure controller)"
        )
    return ClientConfig(
        controllers=controllers or _controllers(path, data.get("controller")) or [DEFAULT_CONTROLLER],
        tls=tls,
        source=path if data else None,
        missing_credentials=missing,
    )


def controller_addresses(flag: str | None) -> list[str]:
    return load(flag).controllers


def write(path: Path, controllers: list[str], ca: bytes, cert: bytes, key: bytes, *, name: str) -> Path:
    """Write a config file and its PEM files beside it (the key 0600); returns the config's path."""
    from moorage.fsutil import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path.parent / "ca.crt", ca, mode=0o644)
    atomic_write(path.parent / f"{name}.crt", cert, mode=0o644)
    atomic_write(path.parent / f"{name}.key", key, mode=0o600)
    lines = [
        "# Written by moor; see `moor --help` for the fields.",
        "controller: [" + ", ".join(controllers) + "]",
        "ca: ca.crt",
        f"cert: {name}.crt",
        f"key: {name}.key",
        "",
    ]
    atomic_write(path, "\n".join(lines).encode(), mode=0o600)
    return path


def _unreadable(path: Path, exc: Exception) -> CommandError:
    return CommandError(f"{path}: cannot read the config: {exc}", EXIT_INVALID)


def connect(controller: str | None) -> ControlClient:
    """A client for the controllers the flag, the environment or the config file name."""
    from moorage.client import ControlClient

    config = load(controller)
    return ControlClient(config.controllers, tls=config.tls, missing_credentials=config.missing_credentials)
