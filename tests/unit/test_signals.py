from __future__ import annotations

import pytest

from vigil.config.settings import ErrorSpikeSettings, LoginDropSettings
from vigil.rules.facts import SIGNAL, fact_fields, signal_fact
from vigil.rules.signals import (
    ERROR_SPIKE,
    LOGIN_DROP,
    ONBOARDING_STALLED,
    SIGNAL_KINDS,
    Finding,
    describe_onboarding_stall,
    detect_error_spike,
    detect_login_drop,
    percentile,
    signal_record,
)

LOGIN = LoginDropSettings()
ERRORS = ErrorSpikeSettings()


class TestLoginDrop:
    def test_below_half_of_the_previous_window_signals(self) -> None:
        finding = detect_login_drop(9, 20, LOGIN)
        assert finding is not None
        assert (finding.value, finding.baseline, finding.threshold) == (9, 20, 10.0)
        assert finding.evidence["drop_pct"] == 55.0

    def test_exactly_half_is_not_a_drop(self) -> None:
        assert detect_login_drop(10, 20, LOGIN) is None

    def test_baseline_below_minimum_means_nothing(self) -> None:
        assert detect_login_drop(0, 9, LOGIN) is None
        assert detect_login_drop(0, 10, LOGIN) is not None

    def test_zero_sessions_is_a_drop_of_high_severity(self) -> None:
        finding = detect_login_drop(0, 30, LOGIN)
        assert (
            finding is not None
            and finding.severity == "high"
            and finding.evidence["drop_pct"] == 100.0
        )

    def test_moderate_drop_is_medium(self) -> None:
        finding = detect_login_drop(12, 30, LOGIN)
        assert finding is not None and finding.severity == "medium"


class TestErrorSpike:
    history = [0] * 20 + [1, 2, 1, 0, 3, 0, 1, 0]  # 28 windows

    def test_above_p95_and_floor_signals(self) -> None:
        finding = detect_error_spike(9, self.history, ERRORS)
        assert finding is not None
        assert finding.baseline == pytest.approx(percentile(sorted(self.history), 95))
        assert finding.evidence["history_windows"] == 28

    def test_too_little_history_is_silent(self) -> None:
        assert detect_error_spike(50, [0] * 23, ERRORS) is None
        assert detect_error_spike(50, [0] * 24, ERRORS) is not None

    def test_under_the_absolute_floor_is_silent(self) -> None:
        # 4 errors is far above a p95 of 0 but below the floor of 5.
        assert detect_error_spike(4, [0] * 48, ERRORS) is None
        assert detect_error_spike(5, [0] * 48, ERRORS) is not None

    def test_not_above_p95_is_silent(self) -> None:
        noisy = [10] * 30
        assert detect_error_spike(10, noisy, ERRORS) is None
        assert detect_error_spike(11, noisy, ERRORS) is not None


class TestPercentile:
    def test_linear_interpolation_like_numpy(self) -> None:
        assert percentile([1, 2, 3, 4], 50) == 2.5
        assert percentile(list(range(101)), 95) == 95
        assert percentile([7], 95) == 7

    def test_no_values_is_an_error(self) -> None:
        with pytest.raises(ValueError):
            percentile([], 95)


def test_signal_id_depends_on_tenant_signal_and_window_only() -> None:
    finding = detect_login_drop(0, 30, LOGIN)
    assert finding is not None
    a = signal_record("acme", "login_drop", 0, 10, finding)
    b = signal_record("acme", "login_drop", 0, 10, detect_login_drop(1, 40, LOGIN))  # type: ignore[arg-type]
    c = signal_record("acme", "login_drop", 10, 20, finding)
    assert a["signal_id"] == b["signal_id"] != c["signal_id"]
    assert a["signal_id"] != signal_record("other", "login_drop", 0, 10, finding)["signal_id"]


def _every_finding() -> dict[str, list[Finding]]:
    """Each detector over a sweep of its inputs, firing or not."""
    found: dict[str, list[Finding | None]] = {
        LOGIN_DROP: [
            detect_login_drop(now, before, LOGIN) for before in (10, 40) for now in range(40)
        ],
        ERROR_SPIKE: [
            detect_error_spike(count, history, ERRORS)
            for history in ([0] * 48, [3] * 30, list(range(30)))
            for count in range(60)
        ],
        ONBOARDING_STALLED: [describe_onboarding_stall(0, 3_600_000, 72 * 3_600_000, 2)],
    }
    return {name: [f for f in findings if f is not None] for name, findings in found.items()}


def test_each_signal_gives_the_severities_and_fields_rules_are_checked_against() -> None:
    # `vigil rules check` refuses a rule on a severity or a template field the table says
    # a signal never has, so the table must match what the detectors give, both ways.
    findings = _every_finding()
    assert set(findings) == set(SIGNAL_KINDS)
    for name, kind in SIGNAL_KINDS.items():
        assert {f.severity for f in findings[name]} == kind.severities, name
        assert {key for f in findings[name] for key in f.evidence} == kind.evidence, name
        record = signal_record("acme", name, 0, 3_600_000, findings[name][0])
        fact = signal_fact(record, "smb", 80, "green", "reasons")
        assert set(fact) == fact_fields(SIGNAL, [name]), name
