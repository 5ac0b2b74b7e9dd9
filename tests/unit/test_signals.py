from __future__ import annotations

from vigil.config.settings import ErrorSpikeSettings, LoginDropSettings
from vigil.rules.facts import SIGNAL, fact_fields, signal_fact
from vigil.rules.signals import (
    ERROR_SPIKE,
    LOGIN_DROP,
    ONBOARDING_STALLED,
    SIGNAL_KINDS,
    Finding,
    describe_error_spike,
    describe_login_drop,
    describe_onboarding_stall,
    signal_record,
)

LOGIN = LoginDropSettings()
ERRORS = ErrorSpikeSettings()


# Whether a signal fires is the core's (native/src/signals.rs, with its tests); what it
# says is here.


class TestLoginDrop:
    def test_it_says_how_far_sessions_fell(self) -> None:
        finding = describe_login_drop(9, 20, LOGIN)
        assert (finding.value, finding.baseline, finding.threshold) == (9, 20, 10.0)
        assert finding.evidence["drop_pct"] == 55.0

    def test_zero_sessions_is_a_drop_of_high_severity(self) -> None:
        finding = describe_login_drop(0, 30, LOGIN)
        assert finding.severity == "high" and finding.evidence["drop_pct"] == 100.0

    def test_moderate_drop_is_medium(self) -> None:
        assert describe_login_drop(12, 30, LOGIN).severity == "medium"


class TestErrorSpike:
    def test_it_says_the_percentile_and_the_history(self) -> None:
        finding = describe_error_spike(9, 2.3, 28, 8, ERRORS)
        assert (finding.value, finding.baseline, finding.threshold) == (9, 2.3, 4)
        assert finding.evidence["history_windows"] == 28
        assert finding.evidence["history_mean"] == round(8 / 28, 3)
        assert finding.severity == "medium"

    def test_three_times_the_threshold_is_high(self) -> None:
        assert describe_error_spike(12, 0.0, 48, 0, ERRORS).severity == "high"
        assert describe_error_spike(11, 0.0, 48, 0, ERRORS).severity == "medium"


def test_signal_id_depends_on_tenant_signal_and_window_only() -> None:
    finding = describe_login_drop(0, 30, LOGIN)
    a = signal_record("acme", "login_drop", 0, 10, finding)
    b = signal_record("acme", "login_drop", 0, 10, describe_login_drop(1, 40, LOGIN))
    c = signal_record("acme", "login_drop", 10, 20, finding)
    assert a["signal_id"] == b["signal_id"] != c["signal_id"]
    assert a["signal_id"] != signal_record("other", "login_drop", 0, 10, finding)["signal_id"]


def _every_finding() -> dict[str, list[Finding]]:
    """Each signal's description over a sweep of what the core can find."""
    return {
        LOGIN_DROP: [
            describe_login_drop(now, before, LOGIN)
            for before in (10, 40)
            for now in range(before // 2)
        ],
        ERROR_SPIKE: [
            describe_error_spike(count, p, 30, 30 * 3, ERRORS)
            for p in (0.0, 3.0, 27.5)
            for count in range(max(ERRORS.min_errors, int(p) + 1), 60)
        ],
        ONBOARDING_STALLED: [describe_onboarding_stall(0, 3_600_000, 72 * 3_600_000, 2)],
    }


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


def test_a_declared_signals_kind_says_its_severities_and_evidence() -> None:
    from vigil.config.settings import DeclaredSignal
    from vigil.rules.signals import signal_kinds

    spike = DeclaredSignal(measure="errors_hour", versus="history", high_above=20)
    kind = signal_kinds({"errors_spiked": spike})["errors_spiked"]
    assert kind.severities == {"medium", "high"}
    assert kind.evidence == {
        "measure",
        "measured",
        "percentile",
        "percentile_value",
        "history_windows",
        "history_mean",
    }
    assert signal_kinds({"s": DeclaredSignal(measure="m", above=1)})["s"].severities == {"medium"}
