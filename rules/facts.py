"""Derived facts: what the dataflow hands to the rules engine (never raw events).

A fact is a flat dict, so rule conditions and templates address its fields by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from vigil.base.ids import stable_id
from vigil.base.timeutil import to_iso
from vigil.rules.signals import SIGNAL_KINDS, SignalKind

SIGNAL = "signal"
ZONE_CHANGE = "zone_change"
SCORE_DROP = "score_drop"
FACT_KINDS = (SIGNAL, ZONE_CHANGE, SCORE_DROP)

ZONE_SEVERITY = {"green": "low", "yellow": "medium", "orange": "high", "red": "critical"}

COMMON_FIELDS = frozenset(
    {"fact", "fact_id", "tenant_id", "segment", "ts", "score", "zone", "severity", "reasons"}
)
# A signal record's own fields, and `window`, which every signal's evidence has.
SIGNAL_RECORD_FIELDS = frozenset(
    {
        "signal",
        "signal_id",
        "value",
        "baseline",
        "threshold",
        "window_start",
        "window_end",
        "window",
    }
)
_OWN_FIELDS = {
    ZONE_CHANGE: frozenset({"from_zone"}),
    SCORE_DROP: frozenset({"peak_score", "drop_points", "drop_pct"}),
}
_SEVERITIES = {ZONE_CHANGE: frozenset(ZONE_SEVERITY.values()), SCORE_DROP: frozenset({"medium"})}


def fact_fields(
    kind: str,
    signals: Iterable[str] | None = None,
    kinds: Mapping[str, SignalKind] = SIGNAL_KINDS,
) -> frozenset[str]:
    """The fields every fact of `kind` carries; for signal facts, every fact of `signals`
    (of any of `kinds` when None), since each signal fills its own evidence."""
    if kind != SIGNAL:
        return COMMON_FIELDS | _OWN_FIELDS[kind]
    evidence = [kinds[name].evidence for name in signals or kinds]
    return COMMON_FIELDS | SIGNAL_RECORD_FIELDS | frozenset.intersection(*evidence)


def fact_severities(
    kind: str,
    signals: Iterable[str] | None = None,
    kinds: Mapping[str, SignalKind] = SIGNAL_KINDS,
) -> frozenset[str]:
    """The severities a fact of `kind` (of `signals`, any of `kinds` when None) can have."""
    if kind != SIGNAL:
        return _SEVERITIES[kind]
    return frozenset().union(*(kinds[name].severities for name in signals or kinds))


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
    peak_score = round(peak)  # the fall as the rounded scores show it
    return {
        **_context(tenant_id, segment, score, zone),
        "fact": SCORE_DROP,
        "fact_id": stable_id("drop", tenant_id, now),
        "ts": to_iso(now),
        "severity": "medium",
        "peak_score": peak_score,
        "drop_points": peak_score - score,
        "drop_pct": round((peak_score - score) / max(peak_score, 1) * 100, 1),
        "reasons": reasons,
    }
