"""The signal detectors: pure functions from closed-window counts to findings.

The shard decides *when* a window is closed (the watermark passed its end); these
functions decide *whether* it signals, and say why in the evidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vigil.base.ids import stable_id
from vigil.base.timeutil import MS_PER_HOUR, format_duration, to_iso
from vigil.config.settings import DeclaredSignal, ErrorSpikeSettings, LoginDropSettings

LOGIN_DROP = "login_drop"
ONBOARDING_STALLED = "onboarding_stalled"
ERROR_SPIKE = "error_spike"


@dataclass(frozen=True)
class SignalKind:
    """What a signal's records can hold, for the rules that match them: the severities
    its detector gives and the evidence fields it fills, besides the window every signal
    has (a test runs each detector against this)."""

    severities: frozenset[str]
    evidence: frozenset[str]


SIGNAL_KINDS = {
    LOGIN_DROP: SignalKind(
        frozenset({"medium", "high"}),
        frozenset(
            {
                "sessions",
                "sessions_previous_window",
                "drop_pct",
                "drop_ratio_threshold",
                "min_baseline",
            }
        ),
    ),
    ONBOARDING_STALLED: SignalKind(
        frozenset({"medium"}),
        frozenset(
            {"onboarding_started", "last_progress", "hours_without_progress", "steps_completed"}
        ),
    ),
    ERROR_SPIKE: SignalKind(
        frozenset({"medium", "high"}),
        frozenset(
            {
                "errors",
                "percentile",
                "percentile_value",
                "history_windows",
                "history_mean",
                "min_errors",
            }
        ),
    ),
}


# What a signal declared over measures (`[signals.NAME]` with a measure) carries as
# evidence, by what it compares the measure with: the measure's name and value, and
# what it was compared with.
DECLARED_EVIDENCE = {
    "": frozenset({"measure", "measured"}),
    "per": frozenset({"measure", "measured", "per", "per_measured", "ratio"}),
    "previous_window": frozenset({"measure", "measured", "previous", "ratio"}),
    "previous_value": frozenset({"measure", "measured", "previous", "change"}),
    "equals": frozenset({"measure", "measured", "previous"}),
}


def signal_kinds(declared: Mapping[str, DeclaredSignal]) -> dict[str, SignalKind]:
    """The built-in signals and those declared in the settings, for the rules."""
    kinds = dict(SIGNAL_KINDS)
    for name, signal in declared.items():
        evidence = DECLARED_EVIDENCE[signal.compares]
        kinds[name] = SignalKind(frozenset({signal.severity}), evidence)
    return kinds


def declared_finding(signal: DeclaredSignal, measured: Any, other: Any) -> Finding:
    """A declared signal's finding: `measured` is its measure's value (a number, or the
    latest text), `other` what it was compared with (see DeclaredSignal)."""
    evidence: dict[str, Any] = {"measure": signal.measure, "measured": measured}
    if signal.compares == "equals":
        evidence["previous"] = other
        return Finding(1, 0, 1, signal.severity, evidence)
    compared = measured
    if signal.compares == "previous_value":
        compared = measured - other
        evidence.update(previous=other, change=round(compared, 4))
    elif signal.compares:
        compared = measured / other
        named = {"per": signal.per, "per_measured": other} if signal.per else {"previous": other}
        evidence.update(named, ratio=round(compared, 4))
    over = signal.above is not None and compared > signal.above
    threshold = signal.above if over else signal.below
    assert threshold is not None  # a bound was crossed
    baseline = other if isinstance(other, float) else 0
    return Finding(round(compared, 4), baseline, threshold, signal.severity, evidence)


@dataclass(frozen=True, slots=True)
class Finding:
    """A detected condition, before it is tied to a tenant and a window."""

    value: float
    baseline: float
    threshold: float
    severity: str
    evidence: dict[str, Any]


def detect_login_drop(current: int, previous: int, cfg: LoginDropSettings) -> Finding | None:
    """Sessions in the latest closed window below `drop_ratio` of the window before,
    when the window before had at least `min_baseline` sessions."""
    if previous < cfg.min_baseline or previous == 0:
        return None
    threshold = previous * cfg.drop_ratio
    if current >= threshold:
        return None
    ratio = current / previous
    severity = "high" if ratio <= cfg.high_severity_ratio else "medium"
    return Finding(
        value=current,
        baseline=previous,
        threshold=threshold,
        severity=severity,
        evidence={
            "sessions": current,
            "sessions_previous_window": previous,
            "drop_pct": round((1 - ratio) * 100, 1),
            "drop_ratio_threshold": cfg.drop_ratio,
            "min_baseline": cfg.min_baseline,
        },
    )


def detect_error_spike(
    count: int, history: Sequence[int], cfg: ErrorSpikeSettings
) -> Finding | None:
    """Errors in the latest closed window above the p-th percentile of the tenant's own
    past windows (zeros included), with enough history and an absolute floor."""
    if count < cfg.min_errors or len(history) < cfg.min_history_windows:
        return None
    p = percentile(sorted(history), cfg.percentile)
    if count <= p:
        return None
    threshold = max(p, cfg.min_errors - 1)
    severity = "high" if count >= cfg.high_severity_factor * max(threshold, 1) else "medium"
    return Finding(
        value=count,
        baseline=p,
        threshold=threshold,
        severity=severity,
        evidence={
            "errors": count,
            "percentile": cfg.percentile,
            "percentile_value": round(p, 3),
            "history_windows": len(history),
            "history_mean": round(sum(history) / len(history), 3),
            "min_errors": cfg.min_errors,
        },
    )


def describe_onboarding_stall(
    started: int, last_progress: int, stall_after: int, steps_done: int
) -> Finding:
    """The shard establishes the stall (the watermark passed the deadline with no
    progress before it); this describes it."""
    hours = stall_after / MS_PER_HOUR
    return Finding(
        value=hours,
        baseline=0,
        threshold=hours,
        severity="medium",
        evidence={
            "onboarding_started": to_iso(started),
            "last_progress": to_iso(last_progress),
            "hours_without_progress": hours,
            "steps_completed": steps_done,
        },
    )


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); `ordered` sorted."""
    if not ordered:
        raise ValueError("percentile of no values")
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


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
