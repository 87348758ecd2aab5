"""Containerfile / Dockerfile parsing, pure: text in, instructions out, errors that name file, line and instruction.

Supported: FROM (an image or ``scratch``), RUN, COPY, ADD, ENV, ARG, WORKDIR, USER,
ENTRYPOINT, CMD, EXPOSE, VOLUME, LABEL, HEALTHCHECK, STOPSIGNAL; comments, blank lines and
``\\`` line continuations. One build stage: ``FROM ... AS`` names and ``--from`` are refused
with a clear error, as are heredocs.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.runtime.errors import BuildError

KNOWN = frozenset({"FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "ENTRYPOINT", "CMD", "EXPOSE",
                   "VOLUME", "LABEL", "HEALTHCHECK", "STOPSIGNAL"})
_FLAG = re.compile(r"^--([a-z-]+)=(.*)$")
_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<op>[-+])(?P<word>[^}]*))?\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class Instruction:
    name: str  # upper case
    text: str  # the arguments as written (continuations joined), flags removed
    line: int
    source: str  # file name for messages
    exec_form: tuple[str, ...] | None = None  # JSON array form, when used
    flags: Mapping[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}: {self.name}"

    def error(self, reason: str) -> BuildError:
        return BuildError(self.where, reason)

    def __str__(self) -> str:
        flags = "".join(f"--{k}={v} " for k, v in sorted(self.flags.items()))
        return f"{self.name} {flags}{self.text}".strip()


def parse(text: str, source: str = "Containerfile") -> list[Instruction]:
    """All instructions of ``text``; BuildError at the first bad one."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comments inside a continued instruction are dropped, as Docker does
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(stripped)
        instructions.append(_instruction(" ".join(p.strip() for p in pending if p.strip()), start, source))
        pending = []
    if pending:
        instructions.append(_instruction(" ".join(pending), start, source))
    _check_order(instructions, source)
    return instructions


def _instruction(line: str, number: int, source: str) -> Instruction:
    word, _, rest = line.partition(" ")
    name = word.upper()
    where = f"{source}:{number}: {name}"
    if name not in KNOWN:
        raise BuildError(where, f"unknown instruction (supported: {', '.join(sorted(KNOWN))})")
    rest = rest.strip()
    flags: dict[str, str] = {}
    while name in ("COPY", "ADD", "HEALTHCHECK", "RUN", "FROM") and rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        match = _FLAG.match(flag)
        if not match:
            raise BuildError(where, f"malformed flag {flag!r}: want --name=value")
        flags[match.group(1)] = match.group(2)
        rest = rest.strip()
    if "<<" in rest and name in ("RUN", "COPY"):
        raise BuildError(where, "heredocs are not supported")
    if not rest and name not in ("CMD", "ENTRYPOINT"):
        raise BuildError(where, "needs arguments")
    exec_form = None
    if rest.startswith("[") and name in ("RUN", "CMD", "ENTRYPOINT", "VOLUME", "COPY", "ADD", "SHELL"):
        try:
            parsed = json.loads(rest)
        except ValueError as e:
            raise BuildError(where, f"invalid JSON array: {e}") from e
        if not isinstance(parsed, list) or not all(isinstance(p, str) for p in parsed):
            raise BuildError(where, "the JSON form must be an array of strings")
        exec_form = tuple(parsed)
    allowed = {"COPY": {"chown", "chmod"}, "ADD": {"chown", "chmod"}, "RUN": set(), "FROM": {"platform"},
               "HEALTHCHECK": {"interval", "timeout", "start-period", "retries", "start-interval"}}.get(name, set())
    for flag in flags:
        if flag == "from" and name in ("COPY", "ADD"):
            raise BuildError(where, "--from (multi-stage builds) is not supported")
        if flag not in allowed:
            raise BuildError(where, f"unknown flag --{flag}")
    return Instruction(name, rest, number, source, exec_form, flags)


def _check_order(instructions: list[Instruction], source: str) -> None:
    seen_from = False
    for inst in instructions:
        if inst.name == "FROM":
            if seen_from:
                raise inst.error("only one build stage is supported (a second FROM)")
            if " as " in f" {inst.text.lower()} ":
                raise inst.error("stage names (FROM ... AS name) are not supported")
            seen_from = True
        elif inst.name != "ARG" and not seen_from:
            raise inst.error("the first instruction must be FROM (ARG may precede it)")
    if not seen_from:
        raise BuildError(f"{source}:1: FROM", "no FROM instruction")


def expand(text: str, env: Mapping[str, str]) -> str:
    """``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR:+alternative}``; ``\\$`` is a literal dollar."""

    def one(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("plain")
        value = env.get(name, "")
        op = match.group("op")
        if op == "-":
            return value or match.group("word")
        if op == "+":
            return match.group("word") if value else ""
        return value

    parts = text.split("\\$")
    return "$".join(_VAR.sub(one, part) for part in parts)


def key_values(inst: Instruction, env: Mapping[str, str], legacy: bool = False) -> list[tuple[str, str]]:
    """``K=V K2="a b"`` pairs (ENV, LABEL, ARG); ``legacy`` allows ENV's old ``K value`` form."""
    try:
        words = shlex.split(inst.text)
    except ValueError as e:
        raise inst.error(f"cannot split {inst.text!r}: {e}") from e
    if legacy and words and "=" not in words[0]:
        return [(words[0], expand(inst.text.partition(" ")[2].strip(), env))]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not key or (not sep and inst.name != "ARG"):
            raise inst.error(f"{word!r} is not KEY=VALUE")
        pairs.append((key, expand(value, env) if sep else ""))
    return pairs


def words(inst: Instruction, env: Mapping[str, str]) -> list[str]:
    """Arguments split like a shell would (COPY, EXPOSE, VOLUME...), variables expanded."""
    if inst.exec_form is not None:
        return [expand(w, env) for w in inst.exec_form]
    try:
        return [expand(w, env) for w in shlex.split(inst.text)]
    except ValueError as e:
        raise inst.error(f"cannot split {inst.text!r}: {e}") from e


def command(inst: Instruction) -> tuple[str, ...]:
    """RUN/CMD/ENTRYPOINT: the exec form as is, the shell form under ``/bin/sh -c``."""
    if inst.exec_form is not None:
        return inst.exec_form
    return ("/bin/sh", "-c", inst.text) if inst.text else ()


_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def duration(inst: Instruction, text: str) -> int:
    """Go-style durations as HEALTHCHECK takes them (``30s``, ``1m30s``, ``500ms``) in nanoseconds."""
    total, found = 0, False
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", text):
        total += int(float(number) * _UNITS[unit])
        found = True
    if not found or re.sub(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", "", text):
        raise inst.error(f"{text!r} is not a duration such as 30s or 1m30s")
    return total
