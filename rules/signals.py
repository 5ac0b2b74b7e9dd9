"""The signals: what each can say to the rules, and its record.

The core (native/src/declared.rs) decides when a signal's measure crosses its bound;
these functions say what it found, in the evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vigil.base.ids import stable_id
from vigil.base.timeutil import MS_PER_HOUR, format_duration, to_iso
from vigil.config.settings import DeclaredSignal, SignalSettings


@dataclass(frozen=True)
class SignalKind:
    """What a signal's records can hold, for the rules that match them: the severities
    it can have and the evidence fields it fills, besides the window every signal has
    (a test raises each default signal against this)."""

    severities: frozenset[str]
    evidence: frozenset[str]


# What a signal carries as evidence, by what it compares its measure with: the
# measure's name and value, and what it was compared with.
DECLARED_EVIDENCE = {
    "": frozenset({"measure", "measured"}),
    "per": frozenset({"measure", "measured", "per", "per_measured", "ratio"}),
    "previous_window": frozenset({"measure", "measured", "previous", "ratio", "change_pct"}),
    "previous_value": frozenset({"measure", "measured", "previous", "change"}),
    "history": frozenset(
        {
            "measure",
            "measured",
            "percentile",
            "percentile_value",
            "history_windows",
            "history_mean",
        }
    ),
    "equals": frozenset({"measure", "measured", "previous"}),
    "stalled": frozenset(
        {"measure", "started", "last_progress", "hours_without_progress", "steps_completed"}
    ),
}


def signal_kinds(declared: Mapping[str, DeclaredSignal]) -> dict[str, SignalKind]:
    """The signals of the settings (`SignalSettings.declared`), for the rules."""
    kinds = {}
    for name, signal in declared.items():
        evidence = DECLARED_EVIDENCE[signal.compares]
        severe = any(
            bound is not None
            for bound in (signal.high_above, signal.high_below, signal.high_factor)
        )
        severities = {signal.severity, "high"} if severe else {signal.severity}
        kinds[name] = SignalKind(frozenset(severities), evidence)
    return kinds


# The default signals', for rules checked without settings.
SIGNAL_KINDS = signal_kinds(SignalSettings().declared)


def _said(value: Any) -> Any:
    """A number as a record says it: a whole one (a count) without its ".0"."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def declared_finding(
    signal: DeclaredSignal,
    measured: Any,
    other: Any,
    history: tuple[int, float] | None = None,
    stalled: tuple[int, int] | None = None,
) -> Finding:
    """A signal's finding: `measured` is its measure's value (a number, or the latest
    text), `other` what it was compared with (see DeclaredSignal; for a history, the
    percentile's value, and `history` the past windows' number and total; for a stalled
    process, `stalled` is when it started and last progressed)."""
    measured, other = _said(measured), _said(other)
    if signal.compares == "stalled":
        assert stalled is not None and signal.stalled_after is not None
        started, last_progress = stalled
        hours = signal.stalled_after / MS_PER_HOUR
        evidence: dict[str, Any] = {
            "measure": signal.measure,
            "started": to_iso(started),
            "last_progress": to_iso(last_progress),
            "hours_without_progress": hours,
            "steps_completed": measured,
        }
        return Finding(hours, 0, hours, signal.severity, evidence)
    evidence = {"measure": signal.measure, "measured": measured}
    if signal.compares == "equals":
        evidence["previous"] = other
        return Finding(1, 0, 1, signal.severity, evidence)
    compared = measured
    if signal.compares == "history":
        windows, total = history or (0, 0.0)
        level = max(other, signal.above) if signal.above is not None else other
        severe_at = signal.high_factor * max(level, 1) if signal.high_factor else None
        evidence.update(
            percentile=signal.percentile,
            percentile_value=round(other, 3),
            history_windows=windows,
            history_mean=round(total / windows, 3) if windows else 0.0,
        )
    elif signal.compares == "previous_value":
        compared = measured - other
        evidence.update(previous=other, change=round(compared, 4))
    elif signal.compares == "per":
        compared = measured / other
        evidence.update(per=signal.per, per_measured=other, ratio=round(compared, 4))
    elif signal.compares:
        compared = measured / other
        evidence.update(
            previous=other, ratio=round(compared, 4), change_pct=round((compared - 1) * 100, 1)
        )
    severe = (signal.high_above is not None and compared >= signal.high_above) or (
        signal.high_below is not None and compared <= signal.high_below
    )
    if signal.compares == "history":
        severe = severe or (severe_at is not None and compared >= severe_at)
        severity = "high" if severe else signal.severity
        return Finding(compared, other, level, severity, evidence)
    severity = "high" if severe else signal.severity
    # Of a band (above and below: a renewal stage), the bound it entered by.
    over = signal.above is not None and compared > signal.above
    under = signal.below is not None and compared < signal.below
    threshold = signal.below if under or not over else signal.above
    assert threshold is not None  # a bound was crossed
    baseline = other if isinstance(other, int | float) else 0
    return Finding(round(compared, 4), baseline, threshold, severity, evidence)


@dataclass(frozen=True, slots=True)
class Finding:
    """A detected condition, before it is tied to a tenant and a window."""

    value: float
    baseline: float
    threshold: float
    severity: str
    evidence: dict[str, Any]


def signal_record(
    tenant_id: str, signal: str, window_start: int, window_end: int, finding: Finding
) -> dict[str, Any]:
    """The `signals` output record of EVENTS.md; the id depends only on tenant, signal
    and window, so a replay or restart emits the same id."""
    return {
        "signal_id": stable_id("sig", tenant_id, signal, window_start, window_end),
        "tenant_id": tenant_id,
        "signal": signal,
        "severity": finding.severity,
        "ts": to_iso(window_end),
        "window_start": to_iso(window_start),
        "window_end": to_iso(window_end),
        "value": finding.value,
        "baseline": finding.baseline,
        "threshold": finding.threshold,
        "evidence": {**finding.evidence, "window": format_duration(window_end - window_start)},
    }
