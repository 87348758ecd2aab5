"""Image builds from a Containerfile: parser.py (pure), ignore.py (.dockerignore, pure), builder.py."""

from agent.runtime.images.builds.builder import Builder, Reporter
from agent.runtime.images.builds.parser import Instruction, parse

__all__ = ["Builder", "Instruction", "Reporter", "parse"]
