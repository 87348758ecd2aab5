"""Restart policy of a container, applied by its shim: no, on-failure[:N], always (pure).

The shim applies it, not the agent, so a container keeps being restarted while no agent runs
(as Docker's daemon does for its containers, but without a daemon). The delay doubles per
restart from ``delay`` up to ``max_delay``; a run that lasted ``window`` seconds resets it.
"""

from __future__ import annotations

from dataclasses import dataclass

NO, ON_FAILURE, ALWAYS = "no", "on-failure", "always"


@dataclass(frozen=True)
class RestartPolicy:
    condition: str = NO
    max_attempts: int = 0  # on-failure only; 0 = unlimited
    delay: float = 0.1
    max_delay: float = 60.0
    window: float = 10.0

    @classmethod
    def parse(cls, text: str, **timing: float) -> RestartPolicy:
        """``no``, ``always``, ``on-failure`` or ``on-failure:N`` (Docker's --restart syntax)."""
        condition, _, count = text.partition(":")
        if condition not in (NO, ON_FAILURE, ALWAYS) or (count and (condition != ON_FAILURE or not count.isdigit())):
            raise ValueError(f"invalid restart policy {text!r}: want no, always, on-failure or on-failure:N")
        return cls(condition, int(count or 0), **timing)

    def should_restart(self, exit_code: int, attempts: int) -> bool:
        """After an exit with ``exit_code`` and ``attempts`` restarts so far."""
        if self.condition == ALWAYS:
            return True
        if self.condition == ON_FAILURE:
            return exit_code != 0 and (self.max_attempts == 0 or attempts < self.max_attempts)
        return False

    def backoff(self, streak: int) -> float:
        """Seconds to wait before restart number ``streak`` (0-based) of an unbroken series of short runs."""
        return min(self.max_delay, self.delay * (2**streak))
