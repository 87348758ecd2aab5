"""`moor exec TASK -- CMD`: run a command in a task's container, over Control.Exec.

With ``-i`` stdin is sent, and its end ends the request stream (the controller
turns that into EOF on the command's stdin); without ``-i`` the request stream
stays open until the command ends. With ``-t`` the command gets a terminal: the
local one is put in raw mode and its size follows SIGWINCH.
The command's exit code becomes moor's.
"""

import contextlib
import os
import queue
import shutil
import signal
import sys
import termios
import threading
import tty
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, BinaryIO

import typer

from moorage.cli.common import ControllerOption, CommandError
from moorage.cli.config import connect
from moorage.cli.reporting import reporting

if TYPE_CHECKING:
    from moorage.v1 import control_pb2

_CLOSE = None


def terminal_size() -> "control_pb2.TerminalSize":
    from moorage.v1 import control_pb2

    size = shutil.get_terminal_size()
    return control_pb2.TerminalSize(rows=size.lines, cols=size.columns)


@contextlib.contextmanager
def raw_terminal(enabled: bool) -> Iterator[None]:
    """Put stdin's terminal in raw mode (keys go to the remote terminal as typed), restored after."""
    if not (enabled and sys.stdin.isatty()):
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)  # not TCSAFLUSH: keep what was typed ahead
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@reporting
def exec_(
    task: Annotated[str, typer.Argument(help="The task: id, id prefix or SERVICE.SLOT.")],
    command: Annotated[list[str], typer.Argument(help="The command and its arguments, after --.")],
    interactive: Annotated[bool, typer.Option("--interactive", "-i", help="Send stdin to the command.")] = False,
    terminal: Annotated[bool, typer.Option("--tty", "-t", help="Give the command a terminal.")] = False,
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", metavar="KEY=VALUE", help="Extra environment; repeatable.")
    ] = None,
    controller: ControllerOption = None,
) -> None:
    """Run a command in a running task's container; exits with the command's exit code.

    Example: moor exec hello.1 -- cat /etc/hostname   or   moor exec -it hello.1 -- sh
    """
    from moorage.cli.lookup import find_task
    from moorage.v1 import control_pb2

    if command[:1] == ["--"]:  # everything after TASK arrives as is, the separator too
        command = command[1:]
    if not command:
        raise typer.BadParameter("name the command to run after --", param_hint="COMMAND")
    extra = dict(_pair(item) for item in env or [])
    inputs: queue.Queue[control_pb2.ExecInput | None] = queue.Queue()
    start = control_pb2.ExecStart(command=command, tty=terminal, env=extra)
    if terminal:
        start.size.CopyFrom(terminal_size())

    def requests() -> Iterator[control_pb2.ExecInput]:
        yield control_pb2.ExecInput(start=start)
        while (item := inputs.get()) is not _CLOSE:
            yield item

    with connect(controller) as client:
        start.task_id = find_task(client, task).id
        if interactive:
            threading.Thread(target=_send_stdin, args=(inputs,), daemon=True).start()
        if terminal:
            signal.signal(signal.SIGWINCH, lambda _s, _f: inputs.put(control_pb2.ExecInput(resize=terminal_size())))
        code: int | None = None
        try:
            with raw_terminal(terminal and interactive):
                for output in client.exec(requests()):
                    body = output.WhichOneof("body")
                    if body == "stdout":
                        _write(sys.stdout.buffer, output.stdout)
                    elif body == "stderr":
                        _write(sys.stderr.buffer, output.stderr)
                    elif body == "exit_code":
                        code = output.exit_code
        finally:
            inputs.put(_CLOSE)
    if code is None:
        raise CommandError("the exec stream ended without an exit code")
    raise typer.Exit(code)


def _pair(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--env")
    return key, value


def _send_stdin(inputs: "queue.Queue[control_pb2.ExecInput | None]") -> None:
    from moorage.v1 import control_pb2

    fd = sys.stdin.fileno()
    while data := os.read(fd, 65536):
        inputs.put(control_pb2.ExecInput(stdin=data))
    inputs.put(_CLOSE)


def _write(stream: BinaryIO, data: bytes) -> None:
    stream.write(data)
    stream.flush()

