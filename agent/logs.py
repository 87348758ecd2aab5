"""Answering the controller's log queries from the runtime's log files.

A follow query can stay open for as long as its container runs, so each query
reads in a thread of its own rather than in the shared runtime pool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC

import structlog
from google.protobuf.timestamp_pb2 import Timestamp

from agent.runtime.containers.containers import LogRecord, Runtime
from agent.runtime.errors import RuntimeFailure
from moorage.v1 import agent_pb2, types_pb2

log = structlog.get_logger("moorage.agent")

CHUNK_LINES = 200


def entry(record: LogRecord, task_id: str) -> types_pb2.LogEntry:
    stamp = Timestamp()
    stamp.FromDatetime(record.time)
    return types_pb2.LogEntry(time=stamp, stream=record.stream, line=record.line, task_id=task_id)


class LogServer:
    """Streams a container's log records back as LogChunk messages."""

    def __init__(self, runtime: Runtime, send: Callable[[agent_pb2.LogChunk], None]) -> None:
        self._runtime = runtime
        self._send = send
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()

    def handle(self, query: agent_pb2.LogsQuery) -> None:
        if query.cancel:
            with self._lock:
                self._cancelled.add(query.request_id)
            return
        threading.Thread(target=self._serve, args=(query,), name=f"logs-{query.request_id}", daemon=True).start()

    def _is_cancelled(self, request_id: str) -> bool:
        with self._lock:
            return request_id in self._cancelled

    def _serve(self, query: agent_pb2.LogsQuery) -> None:
        batch: list[types_pb2.LogEntry] = []
        error = ""
        try:
            since = query.since.ToDatetime(tzinfo=UTC) if query.HasField("since") else None
            records = self._runtime.read_logs(query.task_id, tail=query.tail, follow=query.follow, since=since)
            for record in records:
                batch.append(entry(record, query.task_id))
                if len(batch) >= CHUNK_LINES or query.follow:
                    self._send(agent_pb2.LogChunk(request_id=query.request_id, entries=batch))
                    batch = []
                if self._is_cancelled(query.request_id):
                    break
        except RuntimeFailure as err:
            error = str(err)
            log.warning("log query failed", task=query.task_id, reason=error)
        self._send(agent_pb2.LogChunk(request_id=query.request_id, entries=batch, eof=True, error=error))
        with self._lock:
            self._cancelled.discard(query.request_id)
