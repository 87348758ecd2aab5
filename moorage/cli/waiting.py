"""`--wait`: what "done" means for apply and delete, and the polling loop around it.

The status functions are pure (specs and tasks in, verdict out) so they are tested
without a controller; ``poll`` is the only part that sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from moorage.cli.common import CommandError
from moorage.cli.render import task_state
from moorage.v1 import types_pb2

POLL_INTERVAL = 0.25

_RUNNING = types_pb2.TASK_STATE_RUNNING
_FAILED = frozenset({types_pb2.TASK_STATE_FAILED, types_pb2.TASK_STATE_REJECTED})
_TERMINAL = _FAILED | {types_pb2.TASK_STATE_COMPLETE, types_pb2.TASK_STATE_SHUTDOWN}


@dataclass(frozen=True)
class Check:
    """One look at the cluster: finished?, a one-line summary, and fatal failures."""

    done: bool
    summary: str
    failures: tuple[str, ...] = ()
    # (service, "running/desired", what it waits on) for the live view.
    rows: tuple[tuple[str, str, str], ...] = ()


def rollout_check(specs: Sequence[types_pb2.ServiceSpec], tasks: Sequence[types_pb2.Task]) -> Check:
    """Done when every replica slot of every applied spec has a running task of that spec.

    Tasks of an older spec do not count (an update is not done while only the old
    version runs). A task of the applied spec that the controller still wants
    running but that failed or was rejected is a failure.
    """
    progress: list[str] = []
    failures: list[str] = []
    waiting: list[str] = []
    rows: list[tuple[str, str, str]] = []
    done = True
    for spec in specs:
        wanted = [t for t in tasks if t.service == spec.name and t.spec == spec and t.desired_state == _RUNNING]
        running = {t.slot for t in wanted if t.observed_state == _RUNNING}
        first_reason = ""
        for t in wanted:
            line = f"{t.service}.{t.slot} {task_state(t.observed_state)}: {t.message or 'no message'}"
            if t.observed_state in _FAILED:
                failures.append(line)
            elif t.observed_state != _RUNNING:
                first_reason = first_reason or line
                if t.message:
                    waiting.append(line)
        done = done and len(running) >= spec.replicas
        progress.append(f"{spec.name} {len(running)}/{spec.replicas}")
        rows.append((spec.name, f"{len(running)}/{spec.replicas}", first_reason))
    # The first reason a task gives for not running answers "why is it slow?".
    summary = "running: " + ", ".join(progress) + (f"; {waiting[0]}" if waiting else "")
    return Check(done, summary, tuple(failures), tuple(rows))


def drain_check(service: str, tasks: Sequence[types_pb2.Task]) -> Check:
    """Done when ``service`` has no task left that is not finished."""
    live = [t for t in tasks if t.service == service and t.observed_state not in _TERMINAL]
    return Check(not live, f"{service}: {len(live)} task(s) still stopping")


def progress_view(check: Check, left: float) -> Group:
    """What `--wait` shows while it waits: one row per service, and the time left."""
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for column in ("SERVICE", "RUNNING", "WAITING ON"):
        table.add_column(column)
    for service, count, reason in check.rows:
        table.add_row(Text(service), Text(count), Text(reason or "-"))
    spinner = Spinner("dots", text=Text(f"{check.summary} ({left:.0f}s left)"))
    return Group(spinner, table) if check.rows else Group(spinner)


def poll(check: Callable[[], Check], timeout: float, console: Console) -> None:
    """Call ``check`` until it is done; raise ``CommandError`` on failures or at the deadline.

    On a terminal the progress is drawn live; elsewhere only the outcome is printed.
    """
    deadline = time.monotonic() + timeout
    with Live(console=console, transient=True, refresh_per_second=8) as live:
        while True:
            result = check()
            if result.failures:
                raise CommandError("; ".join(result.failures))
            if result.done:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise CommandError(f"timed out after {timeout:g}s waiting ({result.summary})")
            live.update(progress_view(result, left))
            time.sleep(min(POLL_INTERVAL, left))
