"""The output contracts: one TypedDict per record Vigil writes, the shapes consumers
read (docs/reference/events.md). The JSON Schemas in docs/reference/schemas/ are made
from these (`python scripts/reference.py`), and a test checks real outputs against them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import TypeAdapter, WithJsonSchema
from typing_extensions import TypedDict  # pydantic reads its fields on Python 3.11 too

# RFC 3339 in UTC, to the second or the millisecond: 2026-03-02T09:15:00Z.
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
Zone = Literal["green", "yellow", "orange", "red"]
Severity = Literal["info", "low", "medium", "high", "critical"]
DeadLetterReason = Literal[
    "invalid_json",
    "not_an_object",
    "missing_field",
    "invalid_field",
    "invalid_ts",
    "late",
    "future",
    "too_large",
    "too_deep",
    "too_many_attrs",
    "decode_failed",
]


class Component(TypedDict):
    value: int | float | None  # what was measured; None: no data (its weight is spread)
    weight: float  # the points it can earn, given which components have data
    points: float  # the points it earned


class HealthRecord(TypedDict):
    health_id: str
    tenant_id: str
    ts: Timestamp
    score: Annotated[int, WithJsonSchema({"type": "integer", "minimum": 0, "maximum": 100})]
    zone: Zone
    components: dict[str, Component]
    reasons: list[str]


class SignalRecord(TypedDict):
    signal_id: str
    tenant_id: str
    signal: str
    severity: Severity
    ts: Timestamp
    window_start: Timestamp
    window_end: Timestamp
    value: float
    baseline: float
    threshold: float
    evidence: dict[str, Any]


class TaskRecord(TypedDict):
    task_id: str
    tenant_id: str
    rule: str
    playbook: str
    title: str
    description: str
    owner_role: str
    priority: Literal["low", "medium", "high", "critical"]
    due_at: Timestamp
    created_at: Timestamp
    status: Literal["open", "escalated", "closed"]
    version: int
    updated_at: Timestamp
    closed_reason: str | None
    evidence: dict[str, Any]


class NotificationRecord(TypedDict):
    notification_id: str
    tenant_id: str
    rule: str
    severity: Severity
    channel: str
    title: str
    body: str
    ts: Timestamp
    evidence: dict[str, Any]


class DeadLetterRecord(TypedDict):
    deadletter_id: str
    source: str
    # file mode: {file, line}; Kafka mode: {topic, partition, offset}
    position: dict[str, str | int]
    raw: str  # the message's first 16 KiB
    reason: DeadLetterReason
    error: str


RECORDS: dict[str, type] = {
    "health": HealthRecord,
    "signals": SignalRecord,
    "tasks": TaskRecord,
    "notifications": NotificationRecord,
    "deadletter": DeadLetterRecord,
}


def record_schema(stream: str) -> dict[str, Any]:
    """The JSON Schema of a stream's records: every field required, no other field."""
    schema = TypeAdapter(RECORDS[stream]).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"Vigil {stream} record"
    _closed(schema)
    return schema


def _closed(schema: dict[str, Any]) -> None:
    """No property beyond those listed, in the record and in each object it defines
    with properties (evidence stays open: it carries the fact's own fields)."""
    for part in [schema, *schema.get("$defs", {}).values()]:
        if "properties" in part:
            part["additionalProperties"] = False
