"""The agent's side of exec: run a command in a task's container for a relayed Control.Exec call.

Each session gets a thread of its own (it lasts as long as the command), which starts the
command through the runtime and streams its output back as ExecChunk messages, ending with
the exit code (or an error). Input arrives on the agent's session loop and is handed to a
writer thread per session, so a command that does not read cannot block the loop.
"""

from __future__ import annotations

import os
import queue
import select
import threading
from collections.abc import Callable

import structlog

from agent.runtime.containers.containers import Runtime
from agent.runtime.errors import RuntimeFailure
from agent.runtime.containers.execproc import ExecProcess
from moorage.v1 import agent_pb2

log = structlog.get_logger("moorage.agent")

READ_SIZE = 65536
_CLOSE = b""  # on a session's input queue: the client is done sending


class _Session:
    def __init__(self) -> None:
        self.input: queue.Queue[bytes | tuple[int, int]] = queue.Queue()
        self.process: ExecProcess | None = None


class ExecServer:
    def __init__(self, runtime: Runtime, send: Callable[[agent_pb2.ExecChunk], None]) -> None:
        self._runtime = runtime
        self._send = send
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def handle(self, relay: agent_pb2.ExecRelay) -> None:
        kind = relay.WhichOneof("body")
        if kind == "start":
            session = _Session()
            with self._lock:
                self._sessions[relay.request_id] = session
            threading.Thread(target=self._run, args=(relay.request_id, relay.start, session),
                             name=f"exec-{relay.request_id}", daemon=True).start()
            return
        with self._lock:
            found = self._sessions.get(relay.request_id)
        if found is None:
            return  # ended already
        if kind == "stdin":
            found.input.put(relay.stdin)
        elif kind == "resize":
            found.input.put((relay.resize.rows, relay.resize.cols))
        elif kind == "close":
            found.input.put(_CLOSE)

    def _run(self, request_id: str, start: agent_pb2.ExecStartRelay, session: _Session) -> None:
        bound = log.bind(task=start.task_id, exec=request_id)
        try:
            size = (start.rows or 24, start.cols or 80)
            process = self._runtime.exec(start.task_id, list(start.command), env=dict(start.env), tty=start.tty, size=size)
        except (RuntimeFailure, ValueError) as err:
            bound.info("exec refused", reason=str(err))
            self._finish(request_id, agent_pb2.ExecChunk(request_id=request_id, error=str(err)))
            return
        session.process = process
        bound.info("exec started", command=list(start.command), pid=process.pid)
        threading.Thread(target=self._feed, args=(session, process), name=f"exec-in-{request_id}", daemon=True).start()
        self._pump(request_id, process)
        code = process.wait()
        process.close()
        session.input.put(_CLOSE)  # ends the feeder if the client never closed
        bound.info("exec ended", exit_code=code)
        self._finish(request_id, agent_pb2.ExecChunk(request_id=request_id, exit_code=code))

    def _pump(self, request_id: str, process: ExecProcess) -> None:
        streams = {process.stdout: "stdout"}
        if process.stderr is not None:
            streams[process.stderr] = "stderr"
        while streams:
            ready, _, _ = select.select(list(streams), [], [])
            for fd in ready:
                try:
                    data = os.read(fd, READ_SIZE)
                except OSError:  # EIO: a pty whose other side is gone
                    data = b""
                if not data:
                    del streams[fd]
                    continue
                self._send(agent_pb2.ExecChunk(request_id=request_id, **{streams[fd]: data}))

    @staticmethod
    def _feed(session: _Session, process: ExecProcess) -> None:
        """Write the client's input to the command; resize its TTY; close its stdin at the end."""
        while True:
            item = session.input.get()
            if isinstance(item, tuple):
                process.resize(*item)
                continue
            if item == _CLOSE:
                if not process.tty:  # a TTY's master is also its output: the reader closes it
                    try:
                        os.close(process.stdin)
                    except OSError:
                        pass
                return
            try:
                os.write(process.stdin, item)
            except OSError:
                return  # the command is gone

    def _finish(self, request_id: str, last: agent_pb2.ExecChunk) -> None:
        with self._lock:
            self._sessions.pop(request_id, None)
        self._send(last)
