"""The names of Vigil's output streams: file names in file mode, topic keys in Kafka mode."""

from __future__ import annotations

HEALTH = "health"
SIGNALS = "signals"
TASKS = "tasks"
NOTIFICATIONS = "notifications"
DEADLETTER = "deadletter"

OUTPUTS = (HEALTH, SIGNALS, TASKS, NOTIFICATIONS, DEADLETTER)
# The streams whose records are actions: their write latency is measured.
ACTIONS = frozenset({TASKS, NOTIFICATIONS})
