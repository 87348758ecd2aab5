"""What the container's process runs: command, environment and working directory (pure)."""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ProcessSpec:
    args: tuple[str, ...]
    env: tuple[str, ...]  # "K=V", image order first, then the spec's new keys
    cwd: str


def command(
    spec_entrypoint: Sequence[str] | None,
    spec_args: Sequence[str] | None,
    image_entrypoint: Sequence[str],
    image_cmd: Sequence[str],
) -> tuple[str, ...]:
    """Entrypoint + args, each taken from the spec when given (even empty), else from the image."""
    entrypoint = image_entrypoint if spec_entrypoint is None else spec_entrypoint
    args = image_cmd if spec_args is None else spec_args
    return (*entrypoint, *args)


def environment(
    image_env: Sequence[str], spec_env: Mapping[str, str], hostname: str, home: str = "/root"
) -> tuple[str, ...]:
    """Image env, overridden by the spec's, plus HOSTNAME, a default PATH and the user's HOME when absent."""
    merged: dict[str, str] = {}
    for entry in image_env:
        key, _, value = entry.partition("=")
        merged[key] = value
    merged.update(spec_env)
    merged.setdefault("PATH", DEFAULT_PATH)
    merged.setdefault("HOSTNAME", hostname)
    merged.setdefault("HOME", home)
    return tuple(f"{key}={value}" for key, value in merged.items())


def parse_signal(text: str) -> int:
    """``SIGTERM``, ``TERM``, ``term`` or ``15`` -> 15; ValueError naming the text otherwise."""
    if text.isdigit() and 0 < int(text) < signal.NSIG:
        return int(text)
    name = text.strip().upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ValueError(f"unknown signal {text!r}") from None
