"""The human summary printed at the end of a file run, read back from its outputs."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from vigil.base.errors import ConfigError
from vigil.base.zones import ZONES

log = logging.getLogger("vigil.outputs")


@dataclass
class RunSummary:
    events: int = 0
    waiting: int = 0  # accepted, not applied: their step was still open at the end
    duplicates: int = 0
    unknown_types: int = 0
    blank_lines: int = 0  # of a file, skipped
    dead_letters: Counter[str] = field(default_factory=Counter)
    signals: Counter[str] = field(default_factory=Counter)
    tasks: Counter[str] = field(default_factory=Counter)  # opened, by rule
    task_status: Counter[str] = field(default_factory=Counter)  # each task's at the end
    notifications: int = 0
    zones: Counter[str] = field(default_factory=Counter)
    forgotten: int = 0  # tenants dropped after engine.forget_tenants_after with no event
    keys_refused: Counter[str] = field(default_factory=Counter)  # by map, at the key limit
    at_risk: list[dict[str, Any]] = field(default_factory=list)


def read_jsonl(path: Path, containing: bytes = b"") -> Iterator[dict[str, Any]]:
    """The records of an output file; with `containing`, only those whose line holds
    those bytes (the rest are not decoded: an output file can be gigabytes).

    A last line cut short, without its newline, is what a run killed mid-write leaves
    (a resumed run writes it again): it is skipped with a warning. Any other line that
    is not JSON is an error naming the file and the line."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if containing not in line or not line.strip():
                continue
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                if line.endswith(b"\n"):
                    raise ConfigError(f"{path}, line {number}: not a JSON record: {exc}") from exc
                log.warning(
                    "skipped the last line, cut short (a run stopped mid-write?)",
                    extra={"file": str(path), "line": number},
                )


def summarize(out_dir: Path, top: int = 5) -> RunSummary:
    summary = RunSummary()
    latest: dict[str, dict[str, Any]] = {}
    for record in read_jsonl(out_dir / "health.jsonl"):
        # Records of a tenant are written in time order. Only what the summary prints is
        # kept: a long run's file holds every tenant it ever scored.
        latest[record["tenant_id"]] = {
            "tenant_id": record["tenant_id"],
            "score": record["score"],
            "zone": record["zone"],
            "reasons": record["reasons"][:2],
        }
    summary.zones.update(record["zone"] for record in latest.values())
    summary.at_risk = sorted(latest.values(), key=lambda r: (r["score"], r["tenant_id"]))[:top]
    summary.signals.update(r["signal"] for r in read_jsonl(out_dir / "signals.jsonl"))
    # Every change of a task is a record of the same task_id: the latest version says
    # where it stands (a resumed run may write some again).
    latest_of: dict[str, tuple[int, str]] = {}
    for record in read_jsonl(out_dir / "tasks.jsonl"):
        version = record.get("version", 1)
        if record["task_id"] not in latest_of:
            summary.tasks[record["rule"]] += 1
        if version >= latest_of.get(record["task_id"], (0, ""))[0]:
            latest_of[record["task_id"]] = (version, record.get("status", "open"))
    summary.task_status.update(status for _, status in latest_of.values())
    summary.notifications = sum(1 for _ in read_jsonl(out_dir / "notifications.jsonl"))
    summary.dead_letters.update(r["reason"] for r in read_jsonl(out_dir / "deadletter.jsonl"))
    return summary


def format_summary(summary: RunSummary, seconds: float) -> str:
    rate = summary.events / seconds if seconds > 0 else 0.0
    lines = [
        f"events processed  {summary.events:,} in {seconds:.1f} s ({rate:,.0f}/s); "
        f"{summary.duplicates:,} duplicates dropped, {summary.unknown_types:,} of unknown types"
        + (f", {summary.blank_lines:,} blank lines skipped" if summary.blank_lines else ""),
        *_waiting(summary),
        f"dead letters      {sum(summary.dead_letters.values()):,}"
        + _breakdown(summary.dead_letters),
        f"signals           {sum(summary.signals.values()):,}" + _breakdown(summary.signals),
        f"tasks             {sum(summary.tasks.values()):,}"
        + _breakdown(summary.tasks)
        + _standing(summary.task_status),
        f"notifications     {summary.notifications:,}",
        "tenants by zone   "
        + ", ".join(f"{zone} {summary.zones.get(zone, 0):,}" for zone in ZONES),
    ]
    if summary.forgotten:
        lines.append(
            f"tenants forgotten {summary.forgotten:,} (no event for engine.forget_tenants_after)"
        )
    if summary.keys_refused:
        lines.append(
            f"keys not kept     {sum(summary.keys_refused.values()):,}"
            + _breakdown(summary.keys_refused)
            + "; tenants held engine.max_keys_per_tenant of those"
        )
    if summary.at_risk:
        lines.append("most at risk:")
        for record in summary.at_risk:
            why = "; ".join(record["reasons"][:2])
            lines.append(
                f"  {record['tenant_id']:<16} {record['score']:>3} {record['zone']:<6} {why}"
            )
    return "\n".join(lines)


def _waiting(summary: RunSummary) -> list[str]:
    """Said, so that a run that ends before its windows close is not read as finding
    nothing (a long input.allowed_lateness can hold back a whole short file)."""
    if not summary.waiting:
        return []
    events = f"{summary.waiting:,} event{'' if summary.waiting == 1 else 's'}"
    return [
        f"not applied yet   {events}, after the last step the final watermark closed "
        "(a live run applies them as the stream moves on)"
    ]


def _standing(statuses: Counter[str]) -> str:
    if not statuses:
        return ""
    said = ", ".join(f"{statuses[s]:,} {s}" for s in ("open", "escalated", "closed"))
    return f"; at the end {said}"


def _breakdown(counts: Counter[str]) -> str:
    if not counts:
        return ""
    return " (" + ", ".join(f"{name} {n:,}" for name, n in sorted(counts.items())) + ")"
