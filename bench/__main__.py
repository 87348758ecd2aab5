"""Run every benchmark module (or the ones named on the command line)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


# Run only when named: the OCI validation suite needs Go and takes its own target (make conformance).
ON_REQUEST = {"conformance"}


def topics() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_"))


def main() -> None:
    wanted = sys.argv[1:] or [t for t in topics() if t not in ON_REQUEST]
    unknown = [t for t in wanted if t not in topics()]
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; known: {topics()}")
    for topic in wanted:
        print(f"\n## bench/{topic}.py", flush=True)
        importlib.import_module(f"bench.{topic}").main([])


if __name__ == "__main__":
    main()
