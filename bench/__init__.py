"""Benchmarks that print each figure beside an anchor measured in the same run.

Each ``bench/<topic>.py`` module has ``main(argv: list[str]) -> None``;
``python -m bench`` (``make bench``) runs them all, ``python -m bench TOPIC``
one of them. Results are recorded in bench/RESULTS.md with the command that
produced them. Nothing here is asserted by the tests.
"""
