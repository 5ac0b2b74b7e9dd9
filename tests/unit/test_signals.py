from __future__ import annotations

from vigil.config.settings import DEFAULT_SIGNALS, DeclaredSignal, Settings, SignalSettings
from vigil.rules.facts import SIGNAL, fact_fields, signal_fact
from vigil.rules.signals import SIGNAL_KINDS, Finding, declared_finding, signal_kinds, signal_record

DEFAULTS = SignalSettings()
LOGIN, ERRORS, STALLED = DEFAULTS.login_drop, DEFAULTS.error_spike, DEFAULTS.onboarding_stalled
HOUR = 3_600_000

# Whether a signal fires is the core's (native/src/declared.rs, with its tests); what it
# says is here.


class TestLoginDrop:
    def test_it_says_how_far_sessions_fell(self) -> None:
        finding = declared_finding(LOGIN, 1.0, 40.0)
        assert (finding.value, finding.baseline, finding.threshold) == (0.025, 40, 0.05)
        assert finding.evidence["measured"] == 1 and finding.evidence["previous"] == 40
        assert finding.evidence["change_pct"] == -97.5

    def test_a_week_without_a_session_is_high(self) -> None:
        assert declared_finding(LOGIN, 0.0, 30.0).severity == "high"
        assert declared_finding(LOGIN, 1.0, 30.0).severity == "medium"


class TestErrorSpike:
    def test_it_says_the_percentile_and_the_history(self) -> None:
        finding = declared_finding(ERRORS, 9.0, 2.3, (28, 8.0))
        assert (finding.value, finding.baseline, finding.threshold) == (9, 2.3, 4.0)
        assert finding.evidence["history_windows"] == 28
        assert finding.evidence["history_mean"] == round(8 / 28, 3)
        assert finding.severity == "medium"

    def test_three_times_the_level_it_passed_is_high(self) -> None:
        # the level is the percentile's value, or the bound (4) if higher, at least 1
        assert declared_finding(ERRORS, 12.0, 0.0, (48, 0.0)).severity == "high"
        assert declared_finding(ERRORS, 11.0, 0.0, (48, 0.0)).severity == "medium"
        assert declared_finding(ERRORS, 20.0, 7.0, (48, 50.0)).severity == "medium"
        assert declared_finding(ERRORS, 21.0, 7.0, (48, 50.0)).severity == "high"


class TestOnboardingStalled:
    def test_it_says_when_progress_stopped(self) -> None:
        finding = declared_finding(STALLED, 2.0, None, stalled=(0, HOUR))
        assert finding.value == finding.threshold == 72.0
        assert finding.evidence["last_progress"] == "1970-01-01T01:00:00Z"
        assert finding.evidence["steps_completed"] == 2


def test_signal_id_depends_on_tenant_signal_and_window_only() -> None:
    finding = declared_finding(LOGIN, 0.0, 30.0)
    a = signal_record("acme", "login_drop", 0, 10, finding)
    b = signal_record("acme", "login_drop", 0, 10, declared_finding(LOGIN, 1.0, 40.0))
    c = signal_record("acme", "login_drop", 10, 20, finding)
    assert a["signal_id"] == b["signal_id"] != c["signal_id"]
    assert a["signal_id"] != signal_record("other", "login_drop", 0, 10, finding)["signal_id"]


PACK = {name: Settings().signals.declared[name] for name in DEFAULT_SIGNALS}


def _every_finding() -> dict[str, list[Finding]]:
    """Each default signal's description over a sweep of what the core can find."""
    return {
        "login_drop": [
            declared_finding(LOGIN, float(now), float(before))
            for before in (10, 40)
            for now in range(before // 2)
        ],
        "error_spike": [
            declared_finding(ERRORS, float(count), p, (30, 90.0))
            for p in (0.0, 3.0, 27.5)
            for count in range(max(5, int(p) + 1), 60)
        ],
        "onboarding_stalled": [declared_finding(STALLED, 2.0, None, stalled=(0, HOUR))],
        **{name: _pack_findings(signal) for name, signal in PACK.items()},
    }


def _pack_findings(signal: DeclaredSignal) -> list[Finding]:
    """A lifecycle pack signal's description of values just past its bounds, and past
    its high bound where it has one."""
    if signal.equals is not None:
        return [declared_finding(signal, signal.equals, "active")]
    bound = signal.above if signal.above is not None else signal.below
    assert bound is not None
    past = [bound + 1, bound + 100] if signal.below is None else [bound - 1, bound - 100]
    if signal.above is not None and signal.below is not None:  # a band: inside it
        past = [(signal.above + signal.below) / 2]
    if signal.compares == "previous_value":
        return [declared_finding(signal, 5.0 + x, 5.0) for x in past]
    if signal.compares in ("per", "previous_window"):
        return [declared_finding(signal, x * 40.0, 40.0) for x in past]
    return [declared_finding(signal, x, None) for x in past]


def test_each_signal_gives_the_severities_and_fields_rules_are_checked_against() -> None:
    # `vigil rules check` refuses a rule on a severity or a template field the table says
    # a signal never has, so the table must match what the signals give, both ways.
    findings = _every_finding()
    assert set(findings) == set(SIGNAL_KINDS)
    for name, kind in SIGNAL_KINDS.items():
        assert {f.severity for f in findings[name]} == kind.severities, name
        assert {key for f in findings[name] for key in f.evidence} == kind.evidence, name
        record = signal_record("acme", name, 0, HOUR, findings[name][0])
        fact = signal_fact(record, "smb", 80, "green", "reasons")
        assert set(fact) == fact_fields(SIGNAL, [name]), name


def test_a_declared_signals_kind_says_its_severities_and_evidence() -> None:
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
