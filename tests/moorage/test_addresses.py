"""Where `moor` finds the controller."""

from __future__ import annotations

import pytest

from moorage.addresses import DEFAULT_CONTROLLER, ENV_CONTROLLER, controller_address


def test_flag_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_CONTROLLER, "10.0.0.1:7420")
    assert controller_address("10.0.0.2:7420") == "10.0.0.2:7420"
    assert controller_address(None) == "10.0.0.1:7420"


def test_default_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_CONTROLLER, raising=False)
    assert controller_address(None) == DEFAULT_CONTROLLER == "127.0.0.1:7420"
