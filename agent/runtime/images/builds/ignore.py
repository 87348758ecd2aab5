"""``.dockerignore`` matching, pure: Go filepath.Match globs plus ``**``, ``!`` exceptions, last match wins."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    exclude: bool  # False for a "!" exception


def _regex(glob: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            if glob.startswith("/", i):
                i += 1
                out.append("(?:/)?")
            continue
        out.append({"*": "[^/]*", "?": "[^/]"}.get(c, re.escape(c)))
        i += 1
    return re.compile("".join(out) + "$")


def rules(text: str) -> list[Rule]:
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        cleaned = posixpath.normpath(line.lstrip("!").strip()).lstrip("/")
        found.append(Rule(_regex(cleaned), exclude))
    return found


def ignored(path: str, found: list[Rule]) -> bool:
    """Whether the context-relative ``path`` is left out: the last rule matching it or a parent decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for rule in found:
        if any(rule.pattern.match(p) for p in prefixes):
            verdict = rule.exclude
    return verdict
