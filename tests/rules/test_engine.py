from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import CONTRACT

from vigil.base.errors import RuleEvaluationError
from vigil.rules.actions import in_cooldown, render_actions
from vigil.rules.engine import RuleEngine, compile_condition
from vigil.rules.facts import signal_fact
from vigil.rules.loader import load_rules
from vigil.rules.model import When

RULES = """\
rules:
  - id: any-signal
    when: {fact: signal}
    cooldown: 1d
    notification: {severity: fact, channel: c, title: "{signal}", body: "{tenant_id}"}
  - id: enterprise-high-drop
    when: {fact: signal, signal: login_drop, severity: [high, critical], segment: enterprise}
    cooldown: 7d
    task:
      {playbook: p, title: "t {change_pct}", description: d, owner_role: csm, priority: high,
       sla: 24h}
  - id: low-score
    when: {fact: zone_change, score_below: 40}
    cooldown: 1d
    notification: {severity: high, channel: c, title: t, body: b}
  - id: signal-at-low-score
    when: {fact: signal, score_below: 50}
    cooldown: 1d
    notification: {severity: high, channel: c, title: t, body: b}
"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> RuleEngine:
    path = tmp_path_factory.mktemp("rules") / "r.yaml"
    path.write_text(RULES)
    return RuleEngine(load_rules([path]))


def matching(engine: RuleEngine, fact: dict[str, Any]) -> list[str]:
    rules, errors = engine.evaluate(fact)
    assert errors == []
    return [rule.id for rule in rules]


def fact(**fields: Any) -> dict[str, Any]:
    base = {
        "fact": "signal",
        "fact_id": f"f-{sorted(fields.items())}",
        "tenant_id": "acme",
        "segment": "enterprise",
        "score": 70,
        "zone": "yellow",
        "severity": "high",
        "signal": "login_drop",
        "change_pct": -80.0,
    }
    return {**base, **fields}


class TestMatching:
    def test_every_matching_rule_fires_not_only_the_first(self, engine: RuleEngine) -> None:
        assert matching(engine, fact()) == ["any-signal", "enterprise-high-drop"]

    @pytest.mark.parametrize(
        "change", [{"segment": "smb"}, {"severity": "medium"}, {"signal": "error_spike"}]
    )
    def test_each_condition_must_hold(self, engine: RuleEngine, change: dict[str, Any]) -> None:
        assert matching(engine, fact(**change)) == ["any-signal"]

    def test_score_comparison_and_fact_kind(self, engine: RuleEngine) -> None:
        assert matching(engine, fact(fact="zone_change", score=39)) == ["low-score"]
        assert matching(engine, fact(fact="zone_change", score=40)) == []
        assert matching(engine, fact(fact="score_drop")) == []

    def test_a_tenant_not_scored_yet_matches_no_score_condition(self, engine: RuleEngine) -> None:
        assert "signal-at-low-score" in matching(engine, fact(score=49))
        record = {"signal_id": "s1", "tenant_id": "acme", "signal": "login_drop", "evidence": {}}
        unscored = signal_fact(record, "smb", score=None, zone=None, reasons="not scored yet")
        assert unscored["score"] < 0  # what a fact says for "no score"
        assert "signal-at-low-score" not in matching(engine, unscored)

    def test_the_same_fact_twice_matches_twice(self, engine: RuleEngine) -> None:
        # durable_rules refuses a message id it still holds; matched facts are consumed.
        assert matching(engine, fact()) == matching(engine, fact())

    def test_compiled_condition(self) -> None:
        when = When(fact="signal", signal=("login_drop", "error_spike"), score_below=50)
        assert compile_condition(when) == {
            "m": {
                "$and": [
                    {"fact": "signal"},
                    {"$or": [{"signal": "login_drop"}, {"signal": "error_spike"}]},
                    {"$lt": {"score": 50}},
                    {"$gte": {"score": 0}},
                ]
            }
        }


class TestActions:
    def test_ids_are_deterministic_and_fields_complete(self, engine: RuleEngine) -> None:
        rule = engine.rules["enterprise-high-drop"]
        [(stream, task)] = render_actions(rule, fact(), 1_000)
        [(_, again)] = render_actions(rule, fact(), 1_000)
        assert stream == "tasks" and task == again
        assert set(task) == CONTRACT["tasks"]
        assert task["title"] == "t -80" and task["due_at"] == "1970-01-02T00:00:01Z"
        assert task["evidence"]["change_pct"] == -80.0 and task["evidence"]["fact_kind"] == "signal"

    def test_notification_severity_can_follow_the_fact(self, engine: RuleEngine) -> None:
        [(stream, note)] = render_actions(engine.rules["any-signal"], fact(severity="critical"), 0)
        assert stream == "notifications" and note["severity"] == "critical"

    def test_cooldown_is_per_rule_and_in_event_time(self, engine: RuleEngine) -> None:
        rule = engine.rules["any-signal"]  # cooldown 1d
        cooldowns: dict[str, int] = {}
        assert not in_cooldown(cooldowns, rule, 0)
        assert in_cooldown(cooldowns, rule, 86_400_000 - 1)
        assert not in_cooldown(cooldowns, rule, 86_400_000)
        assert not in_cooldown(cooldowns, engine.rules["low-score"], 1)


def test_unused_path_fixture_does_not_leak(tmp_path: Path) -> None:
    assert not any(tmp_path.iterdir())


class TestFailures:
    def test_a_failing_rule_is_reported_and_the_others_still_match(
        self, engine: RuleEngine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        real_post = engine._post

        def post(rule_id: str, message: dict[str, Any]) -> bool:
            if rule_id == "any-signal":
                raise RuleEvaluationError("engine exploded")
            return real_post(rule_id, message)

        monkeypatch.setattr(engine, "_post", post)
        rules, errors = engine.evaluate(fact())
        assert [rule.id for rule in rules] == ["enterprise-high-drop"]
        assert [(error.rule_id, str(error)) for error in errors] == [
            ("any-signal", "engine exploded")
        ]

    def test_a_match_whose_action_did_not_run_is_an_error(
        self, engine: RuleEngine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # durable_rules swallows exceptions raised in actions: a match must be seen to run.
        class Deaf(list[str]):
            def append(self, item: str) -> None:  # the action "runs" but leaves no trace
                return None

        monkeypatch.setattr(engine._host, "matched", Deaf())
        rules, errors = engine.evaluate(fact())
        assert rules == [] and len(errors) == 2
        assert "matched fact" in str(errors[0]) and "its action did not run" in str(errors[0])


ROUTED_RULES = """\
rules:
  - {id: drops, when: {fact: signal, signal: login_drop}, cooldown: 1d, notification: &n
      {severity: high, channel: c, title: t, body: b}}
  - {id: drops-or-spikes, when: {fact: signal, signal: [login_drop, error_spike]},
     cooldown: 1d, notification: *n}
  - {id: red-signals, when: {fact: signal, zone: red}, cooldown: 1d, notification: *n}
  - {id: to-orange, when: {fact: zone_change, zone: orange, from_zone: [green, none]},
     cooldown: 1d, notification: *n}
  - {id: to-red-or-orange, when: {fact: zone_change, zone: [red, orange]}, cooldown: 1d,
     notification: *n}
  - {id: any-change, when: {fact: zone_change, score_below: 101}, cooldown: 1d,
     notification: *n}
  - {id: drops-of-score, when: {fact: score_drop}, cooldown: 1d, notification: *n}
"""


def test_a_fact_is_posted_only_to_the_rules_that_could_match_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Routing by signal and zone spares posts, never a match: every fact gives what
    posting it to every rule of its kind gives."""
    path = tmp_path / "r.yaml"
    path.write_text(ROUTED_RULES)
    engine = RuleEngine(load_rules([path]))
    posted: list[str] = []
    real_post = engine._post

    def post(rule_id: str, message: dict[str, Any]) -> bool:
        posted.append(rule_id)
        return real_post(rule_id, message)

    monkeypatch.setattr(engine, "_post", post)
    zones = ["green", "yellow", "orange", "red"]
    facts = [
        fact(signal=signal, zone=zone, fact_id=f"s-{signal}-{zone}")
        for signal in ["login_drop", "error_spike", "onboarding_stalled"]
        for zone in zones
    ]
    facts += [
        fact(fact="zone_change", zone=zone, from_zone=before, fact_id=f"z-{zone}-{before}")
        for zone in zones
        for before in [*zones, "none"]
        if zone != before
    ]
    facts.append(fact(fact="score_drop", fact_id="d-1"))
    for one in facts:
        posted.clear()
        routed = matching(engine, one)
        sent_to = list(posted)
        message = {**one, "sid": "vigil", "id": one["fact_id"] + "-all"}
        everyone = [r for r in engine._by_fact[one["fact"]] if real_post(r, message)]
        assert routed == everyone, one
        assert set(routed) <= set(sent_to)
    # Spared: a spike is not posted to `drops`, a change to green to no zone rule.
    posted.clear()
    matching(engine, fact(signal="error_spike", fact_id="s-x"))
    assert posted == ["drops-or-spikes", "red-signals"]
    posted.clear()
    matching(engine, fact(fact="zone_change", zone="green", from_zone="yellow", fact_id="z-x"))
    assert posted == ["any-change"]
