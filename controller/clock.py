"""Wall-clock timestamps for the messages the controller writes."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp


def now() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp
