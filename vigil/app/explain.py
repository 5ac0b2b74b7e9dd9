"""`vigil explain`: one tenant's timeline, read back from a run's output files."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from vigil.base.errors import ConfigError
from vigil.config.settings import KafkaSettings
from vigil.ops.summary import read_jsonl

# Order of entries that share a timestamp: the score, then what it led to.
_ORDER = {"health": 0, "signals": 1, "tasks": 2, "notifications": 3}
# What makes a record the same one written again (a restarted run writes what came after
# its last snapshot again): its id, or for health, which has none, its tenant and time.
_SAME = {
    "health": ("tenant_id", "ts"),
    "signals": ("signal_id",),
    "tasks": ("task_id", "version"),  # every change of a task is a record of its own
    "notifications": ("notification_id",),
}


def timeline(
    records: Mapping[str, Iterable[dict[str, Any]]], tenant_id: str, where: str
) -> list[tuple[str, str, dict[str, Any]]]:
    """(ts, stream, record) of every output about `tenant_id`, in time order, from the
    records of each stream (read from `where`, for the error when there are none)."""
    entries = []
    for stream in _ORDER:
        seen: set[tuple[Any, ...]] = set()
        for record in records.get(stream, ()):
            same = tuple(record.get(field) for field in _SAME[stream])
            if record.get("tenant_id") == tenant_id and same not in seen:
                seen.add(same)
                ts = record.get("ts") or record.get("updated_at") or record.get("created_at") or ""
                entries.append((ts, stream, record))
    entries.sort(key=lambda entry: (entry[0], _ORDER[entry[1]]))
    if not entries:
        raise ConfigError(f"no output about tenant {tenant_id!r} in {where}")
    return entries


def from_files(out_dir: Path, tenant_id: str) -> dict[str, Iterator[dict[str, Any]]]:
    """The records of a file run's outputs that may be about `tenant_id`."""
    if not out_dir.is_dir():
        raise ConfigError(f"--output: no such folder: {out_dir}")
    mentions = orjson.dumps(tenant_id)  # lines without the id in quotes are not decoded
    return {stream: read_jsonl(out_dir / f"{stream}.jsonl", mentions) for stream in _ORDER}


def from_topics(kafka: KafkaSettings, tenant_id: str) -> dict[str, Iterator[dict[str, Any]]]:
    """The records of a Kafka run's output topics about `tenant_id`: they are keyed by it."""
    from vigil.connectors.kafka_tools import read_keyed

    topics, key = kafka.topics.outputs(), tenant_id.encode()
    return {
        stream: _decoded(read_keyed(kafka, topics[stream], key), topics[stream])
        for stream in _ORDER
    }


def _decoded(values: Iterable[bytes], topic: str) -> Iterator[dict[str, Any]]:
    """Records of an output topic; a message that is not one (another writer's) is named."""
    for value in values:
        try:
            yield orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"a message on {topic} is not a JSON record: {exc}") from exc


def render(entries: list[tuple[str, str, dict[str, Any]]]) -> str:
    """Every record on a line or three; a health record's reasons are spelled out when
    its zone changed and for the latest one, so the story stays readable."""
    lines: list[str] = []
    last_health = max(
        (i for i, (_, stream, _) in enumerate(entries) if stream == "health"), default=-1
    )
    zone = None
    for index, (ts, stream, record) in enumerate(entries):
        if stream == "health":
            why = record["zone"] != zone or index == last_health
            zone = record["zone"]
            lines.extend(_health(ts, record, why))
        else:
            lines.extend(_RENDER[stream](ts, record))
    return "\n".join(lines)


def _health(ts: str, r: dict[str, Any], with_reasons: bool) -> list[str]:
    parts = [
        f"{name} {c['points']:g}/{c['weight']:g}"
        for name, c in r["components"].items()
        if c["value"] is not None
    ]
    lines = [f"{ts}  health {r['score']} ({r['zone']}): {', '.join(parts)}"]
    if with_reasons:
        lines += [f"{'':22}- {reason}" for reason in r["reasons"]]
    return lines


def _signal(ts: str, r: dict[str, Any]) -> list[str]:
    evidence = ", ".join(f"{k} {v}" for k, v in r["evidence"].items())
    window = f"window {r['window_start']} to {r['window_end']}"
    return [
        f"{ts}  SIGNAL {r['signal']} ({r.get('severity', '?')}): value {r['value']}, baseline "
        f"{r['baseline']}, threshold {r['threshold']}, {window}",
        f"{'':22}evidence: {evidence}",
        f"{'':22}id {r['signal_id']}",
    ]


def _task(ts: str, r: dict[str, Any]) -> list[str]:
    """A task's life, a record per change: opened, escalated up the ladder, closed."""
    status, version = r.get("status", "open"), r.get("version", 1)
    if status == "closed":
        return [f"{ts}  TASK {r['task_id']} (v{version}) CLOSED: {r.get('closed_reason')}"]
    if status == "escalated":
        return [
            f"{ts}  TASK {r['task_id']} (v{version}) ESCALATED to {r['owner_role']} "
            f"({r['priority']}, due {r['due_at']}): its SLA passed and it still holds"
        ]
    return [
        f"{ts}  RULE {r['rule']} -> TASK for {r['owner_role']} "
        f"({r['priority']}, due {r['due_at']}): {r['title']}",
        f"{'':22}{r['description']}",
        f"{'':22}playbook {r['playbook']}, id {r['task_id']}",
    ]


def _notification(ts: str, r: dict[str, Any]) -> list[str]:
    return [
        f"{ts}  RULE {r['rule']} -> NOTIFICATION #{r['channel']} ({r['severity']}): {r['title']}",
        f"{'':22}{r['body']}",
        f"{'':22}id {r['notification_id']}",
    ]


_RENDER = {"signals": _signal, "tasks": _task, "notifications": _notification}
