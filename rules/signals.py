"""The signals: what each can say to the rules, and its record.

The core (native/src/signals.rs, native/src/declared.rs) decides when a window is
closed and whether it signals; these functions say what it found, in the evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
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
}


def signal_kinds(declared: Mapping[str, DeclaredSignal]) -> dict[str, SignalKind]:
    """The built-in signals and those declared in the settings, for the rules."""
    kinds = dict(SIGNAL_KINDS)
    for name, signal in declared.items():
        evidence = DECLARED_EVIDENCE[signal.compares]
        severe = signal.high_above is not None or signal.high_below is not None
        severities = {signal.severity, "high"} if severe else {signal.severity}
        kinds[name] = SignalKind(frozenset(severities), evidence)
    return kinds


def declared_finding(
    signal: DeclaredSignal, measured: Any, other: Any, history: tuple[int, float] | None = None
) -> Finding:
    """A declared signal's finding: `measured` is its measure's value (a number, or the
    latest text), `other` what it was compared with (see DeclaredSignal; for a history,
    the percentile's value, and `history` the past windows' number and total)."""
    evidence: dict[str, Any] = {"measure": signal.measure, "measured": measured}
    if signal.compares == "equals":
        evidence["previous"] = other
        return Finding(1, 0, 1, signal.severity, evidence)
    compared = measured
    if signal.compares == "history":
        windows, total = history or (0, 0.0)
        evidence.update(
            percentile=signal.percentile,
            percentile_value=round(other, 3),
            history_windows=windows,
            history_mean=round(total / windows, 3) if windows else 0.0,
        )
    elif signal.compares == "previous_value":
        compared = measured - other
        evidence.update(previous=other, change=round(compared, 4))
    elif signal.compares:
        compared = measured / other
        named = {"per": signal.per, "per_measured": other} if signal.per else {"previous": other}
        evidence.update(named, ratio=round(compared, 4))
    severe = (signal.high_above is not None and compared >= signal.high_above) or (
        signal.high_below is not None and compared <= signal.high_below
    )
    severity = "high" if severe else signal.severity
    if signal.compares == "history":
        return Finding(round(compared, 4), other, other, severity, evidence)
    over = signal.above is not None and compared > signal.above
    threshold = signal.above if over else signal.below
    assert threshold is not None  # a bound was crossed
    baseline = other if isinstance(other, float) else 0
    return Finding(round(compared, 4), baseline, threshold, severity, evidence)


@dataclass(frozen=True, slots=True)
class Finding:
    """A detected condition, before it is tied to a tenant and a window."""

    value: float
    baseline: float
    threshold: float
    severity: str
    evidence: dict[str, Any]


def describe_login_drop(sessions: int, previous: int, cfg: LoginDropSettings) -> Finding:
    """The core found sessions in a closed window below `drop_ratio` of the window before
    (native/src/signals.rs); this says how far, and how severe."""
    ratio = sessions / previous
    severity = "high" if ratio <= cfg.high_severity_ratio else "medium"
    return Finding(
        value=sessions,
        baseline=previous,
        threshold=previous * cfg.drop_ratio,
        severity=severity,
        evidence={
            "sessions": sessions,
            "sessions_previous_window": previous,
            "drop_pct": round((1 - ratio) * 100, 1),
            "drop_ratio_threshold": cfg.drop_ratio,
            "min_baseline": cfg.min_baseline,
        },
    )


def describe_error_spike(
    errors: int, percentile_value: float, windows: int, past_errors: int, cfg: ErrorSpikeSettings
) -> Finding:
    """The core found errors in a closed window above the percentile of the tenant's
    `windows` past ones (holding `past_errors` in all); this says so, and how severe."""
    threshold = max(percentile_value, cfg.min_errors - 1)
    severity = "high" if errors >= cfg.high_severity_factor * max(threshold, 1) else "medium"
    return Finding(
        value=errors,
        baseline=percentile_value,
        threshold=threshold,
        severity=severity,
        evidence={
            "errors": errors,
            "percentile": cfg.percentile,
            "percentile_value": round(percentile_value, 3),
            "history_windows": windows,
            "history_mean": round(past_errors / windows, 3),
            "min_errors": cfg.min_errors,
        },
    )


def describe_onboarding_stall(
    started: int, last_progress: int, stall_after: int, steps_done: int
) -> Finding:
    """The core establishes the stall (the watermark passed the deadline with no
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
