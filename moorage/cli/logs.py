"""`moor logs SERVICE|TASK`: a service's tasks interleaved by time, or one task's lines.

Every line is prefixed with the task's container name (``service.slot.task-id``).
With ``--follow`` on a service, tasks that start later (replacements, scale-ups)
are followed too (logstreams.py does the work).
"""

from datetime import UTC, datetime
from typing import Annotated

import typer

from moorage.cli.common import ControllerOption
from moorage.cli.config import connect
from moorage.cli.reporting import reporting


@reporting
def logs(
    target: Annotated[str, typer.Argument(help="A service name, or a task (id, id prefix or SERVICE.SLOT).")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines, also of new tasks.")] = False,
    tail: Annotated[int, typer.Option("--tail", min=0, help="Last N lines per task; 0 = all.")] = 0,
    since: Annotated[
        str | None, typer.Option("--since", metavar="TIME", help="Only lines since a duration ago (10m) or a time.")
    ] = None,
    timestamps: Annotated[bool, typer.Option("--timestamps", "-t", help="Prefix each line with its time.")] = False,
    controller: ControllerOption = None,
) -> None:
    """Print what a service's tasks (also those that exited) or one task wrote.

    Lines the container wrote to stderr go to stderr.

    Example: moor logs hello -f --tail 10 --since 5m
    """
    from moorage.cli.logstreams import parse_since, print_logs

    since_stamp = parse_since(since, datetime.now(UTC)) if since else None
    with connect(controller) as client:
        print_logs(client, target, follow=follow, tail=tail, since=since_stamp, timestamps=timestamps)
