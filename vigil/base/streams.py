"""Vigil's output streams: their names (file names in file mode, topic keys in Kafka
mode), and the shapes in which records travel from the engine to the sinks."""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]
# What an engine emits: (stream, record).
Output = tuple[str, Record]
# A shard's records of one stream from one batch, and the wall time their trigger was
# read (for the latency metrics).
Written = tuple[list[Record], float]
# What reaches a sink: (stream, written).
SinkItem = tuple[str, Written]

HEALTH = "health"
SIGNALS = "signals"
TASKS = "tasks"
NOTIFICATIONS = "notifications"
DEADLETTER = "deadletter"

OUTPUTS = (HEALTH, SIGNALS, TASKS, NOTIFICATIONS, DEADLETTER)
# The streams whose records are actions: their write latency is measured.
ACTIONS = frozenset({TASKS, NOTIFICATIONS})
