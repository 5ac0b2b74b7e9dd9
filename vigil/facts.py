"""Derived facts: what the dataflow hands to the rules engine (never raw events).

A fact is a flat dict, so rule conditions and templates address its fields by name.
"""

from __future__ import annotations

from typing import Any

from vigil.ids import stable_id
from vigil.timeutil import to_iso

SIGNAL = "signal"
ZONE_CHANGE = "zone_change"
SCORE_DROP = "score_drop"
FACT_KINDS = (SIGNAL, ZONE_CHANGE, SCORE_DROP)

ZONE_SEVERITY = {"green": "low", "yellow": "medium", "orange": "high", "red": "critical"}

COMMON_FIELDS = frozenset(
    {"fact", "fact_id", "tenant_id", "segment", "ts", "score", "zone", "severity", "reasons"}
)
SIGNAL_EVIDENCE_FIELDS = frozenset(
    {
        "sessions",
        "sessions_previous_window",
        "drop_pct",
        "drop_ratio_threshold",
        "min_baseline",
        "errors",
        "percentile",
        "percentile_value",
        "history_windows",
        "history_mean",
        "min_errors",
        "onboarding_started",
        "last_progress",
        "hours_without_progress",
        "steps_completed",
        "window",
    }
)
FIELDS_BY_KIND: dict[str, frozenset[str]] = {
    SIGNAL: COMMON_FIELDS
    | SIGNAL_EVIDENCE_FIELDS
    | {"signal", "signal_id", "value", "baseline", "threshold", "window_start", "window_end"},
    ZONE_CHANGE: COMMON_FIELDS | {"from_zone"},
    SCORE_DROP: COMMON_FIELDS | {"peak_score", "drop_points"},
}


def _context(
    tenant_id: str, segment: str | None, score: int | None, zone: str | None
) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "segment": segment or "unknown",
        "score": -1 if score is None else score,
        "zone": zone or "unknown",
    }


def signal_fact(
    signal: dict[str, Any], segment: str | None, score: int | None, zone: str | None, reasons: str
) -> dict[str, Any]:
    fact = {**signal["evidence"], **{k: v for k, v in signal.items() if k != "evidence"}}
    fact.update(_context(signal["tenant_id"], segment, score, zone))
    fact.update(fact=SIGNAL, fact_id=signal["signal_id"], reasons=reasons)
    return fact


def zone_change_fact(
    tenant_id: str,
    segment: str | None,
    now: int,
    score: int,
    zone: str,
    from_zone: str | None,
    reasons: str,
) -> dict[str, Any]:
    return {
        **_context(tenant_id, segment, score, zone),
        "fact": ZONE_CHANGE,
        "fact_id": stable_id("zone", tenant_id, zone, now),
        "ts": to_iso(now),
        "severity": ZONE_SEVERITY[zone],
        "from_zone": from_zone or "none",
        "reasons": reasons,
    }


def score_drop_fact(
    tenant_id: str,
    segment: str | None,
    now: int,
    score: int,
    zone: str,
    peak: float,
    reasons: str,
) -> dict[str, Any]:
    return {
        **_context(tenant_id, segment, score, zone),
        "fact": SCORE_DROP,
        "fact_id": stable_id("drop", tenant_id, now),
        "ts": to_iso(now),
        "severity": "medium",
        "peak_score": round(peak),
        "drop_points": round(peak - score),
        "reasons": reasons,
    }
