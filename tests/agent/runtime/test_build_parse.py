"""Containerfile parsing and .dockerignore matching: pure, no I/O."""

from __future__ import annotations

import pytest

from agent.runtime.images.builds import parse
from agent.runtime.images.builds.ignore import ignored, rules
from agent.runtime.images.builds.parser import command, expand, key_values
from agent.runtime.errors import BuildError


def test_instructions_with_continuations_comments_and_forms() -> None:
    text = """
# a comment
ARG BASE=busybox
FROM ${BASE}
RUN echo one \\
    && echo two
CMD ["sh", "-c", "echo hi"]
ENTRYPOINT echo shell form
COPY --chown=1:2 a b /dst/
"""
    found = parse(text, "Containerfile")
    assert [(i.name, i.line) for i in found] == [("ARG", 3), ("FROM", 4), ("RUN", 5), ("CMD", 7), ("ENTRYPOINT", 8),
                                                  ("COPY", 9)]
    assert found[2].text == "echo one && echo two"
    assert command(found[3]) == ("sh", "-c", "echo hi")
    assert command(found[4]) == ("/bin/sh", "-c", "echo shell form")
    assert found[5].flags == {"chown": "1:2"} and found[5].text == "a b /dst/"


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ("FROM x\nFROOM y\n", "Dockerfile:2: FROOM", "unknown instruction"),
        ("RUN true\n", "Dockerfile:1: RUN", "first instruction must be FROM"),
        ("FROM x\nCMD [\"a\", \n", "Dockerfile:2: CMD", "invalid JSON"),
        ("FROM x\nCOPY --from=build a b\n", "Dockerfile:2: COPY", "multi-stage"),
        ("FROM x AS build\n", "Dockerfile:1: FROM", "stage names"),
        ("FROM x\nWORKDIR\n", "Dockerfile:2: WORKDIR", "needs arguments"),
        ("FROM x\nCOPY --mode=1 a b\n", "Dockerfile:2: COPY", "unknown flag --mode"),
        ("ARG A=1\n", "Dockerfile:1: FROM", "no FROM"),
    ],
)
def test_parse_errors_name_file_line_and_instruction(text: str, where: str, reason: str) -> None:
    with pytest.raises(BuildError, match=reason) as err:
        parse(text, "Dockerfile")
    assert err.value.where == where


def test_variables_expand_with_defaults_and_escapes() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert expand("$A ${A} ${B:-dflt} ${A:+set} ${EMPTY:+no} \\$A", env) == "1 1 dflt set  $A"


def test_key_values_and_the_legacy_env_form() -> None:
    (env_inst,) = parse("FROM x\nENV K some value\n")[1:]
    assert key_values(env_inst, {}, legacy=True) == [("K", "some value")]
    (label,) = parse('FROM x\nLABEL a=1 "b"="two words" c=$A\n')[1:]
    assert key_values(label, {"A": "x"}) == [("a", "1"), ("b", "two words"), ("c", "x")]


def test_dockerignore_with_globs_and_exceptions() -> None:
    found = rules("# comment\n*.log\nsecret/\n**/tmp\n!keep.log\nbuild\n!build/out\n")
    assert ignored("a.log", found) and not ignored("keep.log", found)
    assert ignored("secret/key", found) and ignored("x/y/tmp/file", found) and ignored("tmp", found)
    assert ignored("build/obj", found) and not ignored("build/out", found)
    assert not ignored("src/a.log", found)  # * does not cross a slash
    assert not ignored("main.py", found)
