"""Tasks have a life (vigil.rules.tasks): every change a new record of the same task_id,
escalated up the ladder when the SLA passes while what opened it holds, closed by its
rule's close_when, all in event time."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from support import DAY, HOUR, T0, Harness, clock, event, restored, sessions, trouble

from vigil.base.timeutil import to_iso
from vigil.config.settings import Settings
from vigil.engine.shard import ShardEngine
from vigil.ops.metrics import Metrics
from vigil.rules.engine import engine_for
from vigil.rules.loader import load_rules
from vigil.rules.model import Rule

INVOICE = {"invoice_id": "i1"}


def invoice(at: int, status: str, tenant: str = "acme") -> dict[str, Any]:
    return event(tenant, "billing.invoice", at, {**INVOICE, "status": status})


def life(h: Harness, rule: str, tenant: str = "acme") -> list[dict[str, Any]]:
    return [t for t in h.out["tasks"] if t["rule"] == rule and t["tenant_id"] == tenant]


def feed(events: list[dict[str, Any]], until: int, h: Harness | None = None) -> Harness:
    h = h or Harness()
    return h.feed([*sorted(events, key=lambda e: e["ts"]), clock(until)])


class TestEscalation:
    def test_up_the_ladder_once_per_step_while_it_holds(self) -> None:
        h = feed([invoice(T0 + HOUR, "overdue")], T0 + 20 * DAY)
        records = life(h, "invoice-unpaid")
        assert [(r["version"], r["status"], r["owner_role"], r["priority"]) for r in records] == [
            (1, "open", "account_executive", "medium"),
            (2, "escalated", "csm_manager", "high"),
            (3, "escalated", "head_of_cs", "critical"),
        ]
        assert len({r["task_id"] for r in records}) == 1
        opened_at = T0 + 7 * DAY + 2 * HOUR  # the step past 7 days unpaid
        assert [r["updated_at"] for r in records] == [
            to_iso(opened_at),
            to_iso(opened_at + 48 * HOUR),  # the rule's SLA
            to_iso(opened_at + 72 * HOUR),  # the csm_manager step's 24 h
        ]
        assert records[2]["due_at"] == to_iso(opened_at + 80 * HOUR)  # head_of_cs: 8 h
        # Everything but the life fields stays as it was made.
        keep = {"title", "description", "playbook", "created_at", "evidence", "rule"}
        assert {k: records[2][k] for k in keep} == {k: records[0][k] for k in keep}

    def test_a_task_that_cleared_before_its_sla_does_not_escalate(self) -> None:
        events = [invoice(T0 + HOUR, "overdue"), invoice(T0 + 8 * DAY, "paid")]
        h = feed(events, T0 + 20 * DAY)
        assert [r["status"] for r in life(h, "invoice-unpaid")] == ["open", "closed"]

    def test_the_ladder_is_a_setting(self) -> None:
        settings = Settings.model_validate(
            {
                "rules": {
                    "ladder": [
                        {"priority": "medium", "owner_role": "csm", "sla": "48h"},
                        {"priority": "critical", "owner_role": "vp", "sla": "1h"},
                    ]
                }
            }
        )
        h = feed([invoice(T0 + HOUR, "overdue")], T0 + 20 * DAY, Harness(settings))
        assert [r["owner_role"] for r in life(h, "invoice-unpaid")] == ["account_executive", "vp"]

    def test_a_ladder_that_does_not_climb_is_refused(self) -> None:
        with pytest.raises(ValueError, match="higher priority than the one before"):
            Settings.model_validate(
                {
                    "rules": {
                        "ladder": [
                            {"priority": "high", "owner_role": "a", "sla": "1h"},
                            {"priority": "medium", "owner_role": "b", "sla": "1h"},
                        ]
                    }
                }
            )


class TestClosing:
    def test_closed_when_what_opened_it_clears_with_its_reason(self) -> None:
        events = [invoice(T0 + HOUR, "overdue"), invoice(T0 + 9 * DAY + 30 * 60_000, "paid")]
        h = feed(events, T0 + 20 * DAY)
        opened, closed = life(h, "invoice-unpaid")
        assert closed["task_id"] == opened["task_id"]
        assert (closed["status"], closed["version"]) == ("closed", 2)
        assert closed["closed_reason"] == "the invoice was paid"
        assert closed["updated_at"] == to_iso(T0 + 9 * DAY + HOUR)  # the step it was applied
        assert opened["closed_reason"] is None

    def test_a_zone_task_closes_after_3_days_back_in_yellow_or_better(self) -> None:
        # Red from its first day (a failed invoice, two P1s), announced when the warm-up
        # ends; then the invoice is paid, the tickets resolved and its users are back.
        start = T0 + HOUR
        fix = T0 + 9 * DAY
        events = [
            *trouble("acme", start),
            *sessions("acme", fix + 5, 100, spacing=HOUR),
            invoice(fix, "paid"),
            event("acme", "ticket.resolved", fix + 1, {"ticket_id": "k1"}),
            event("acme", "ticket.resolved", fix + 2, {"ticket_id": "k2"}),
        ]
        h = feed(events, T0 + 14 * DAY)
        records = life(h, "entered-red")
        assert records[0]["status"] == "open"
        assert records[-1]["status"] == "closed"
        assert records[-1]["closed_reason"] == "health back to yellow or better for 3d"
        healthy_at = next(
            r["ts"]
            for r in h.out["health"]
            if r["ts"] >= to_iso(fix) and r["zone"] in ("green", "yellow")
        )
        assert records[-1]["updated_at"] == to_iso(_ms(healthy_at) + 3 * DAY)

    def test_a_task_on_several_signals_closes_once_none_of_them_holds(self) -> None:
        # 9 then 5: an NPS drop and a detractor, one task; 6: no drop, still a detractor.
        responses = [
            event("acme", "survey.response", T0 + day * DAY, {"kind": "nps", "score": score})
            for day, score in ((1, 9), (2, 5), (4, 6), (8, 8))
        ]
        h = feed(responses, T0 + 7 * DAY)
        # still a detractor: not closed (and escalated as its SLA passed)
        assert [r["status"] for r in life(h, "nps-drop")] == ["open", "escalated", "escalated"]
        h.feed([clock(T0 + 10 * DAY)])
        records = life(h, "nps-drop")
        assert len({r["task_id"] for r in records}) == 1
        assert (records[-1]["status"], records[-1]["version"]) == ("closed", 4)
        assert records[-1]["updated_at"] == to_iso(T0 + 8 * DAY + HOUR)

    def test_a_rule_acts_again_only_once_its_task_closed(self) -> None:
        # Overdue twice: the second time while the first task is open, nothing new.
        events = [
            invoice(T0 + HOUR, "overdue"),
            invoice(T0 + 9 * DAY, "paid"),
            event(
                "acme", "billing.invoice", T0 + 10 * DAY, {"invoice_id": "i2", "status": "overdue"}
            ),
        ]
        h = feed(events, T0 + 30 * DAY)
        ids = [r["task_id"] for r in life(h, "invoice-unpaid") if r["version"] == 1]
        assert len(ids) == 2 and ids[0] != ids[1]

    def test_a_tenant_let_go_for_its_silence_closes_its_tasks(self) -> None:
        settings = Settings.model_validate({"engine": {"forget_tenants_after": "61d"}})
        h = feed([invoice(T0 + HOUR, "overdue")], T0 + 64 * DAY, Harness(settings))
        last = life(h, "invoice-unpaid")[-1]
        assert last["status"] == "closed"
        assert last["closed_reason"] == "the tenant sent nothing for 61d and was let go"
        assert restored(h.engine).tasks == {}

    def test_metrics_count_escalations_and_closes(self) -> None:
        events = [invoice(T0 + HOUR, "overdue"), invoice(T0 + 10 * DAY, "paid")]
        h = feed(events, T0 + 20 * DAY)
        metrics = Metrics()
        metrics.record(h.engine.counts)
        assert (
            metrics.value("vigil_task_changes_total", rule="invoice-unpaid", status="escalated")
            == 1
        )
        assert (
            metrics.value("vigil_task_changes_total", rule="invoice-unpaid", status="closed") == 1
        )


class TestReplay:
    EVENTS: ClassVar[list[dict[str, Any]]] = [
        invoice(T0 + HOUR, "overdue"),
        invoice(T0 + 10 * DAY, "paid"),
        *trouble("beta", T0 + 2 * HOUR),
        event("beta", "sponsor.changed", T0 + 3 * HOUR, {"status": "departed"}),
    ]

    @pytest.mark.parametrize("cut_day", [3, 8, 9, 12])
    def test_a_restore_anywhere_makes_the_same_task_records(self, cut_day: int) -> None:
        events = sorted(self.EVENTS, key=lambda e: e["ts"])
        straight = feed(events, T0 + 20 * DAY)
        first = [e for e in events if e["ts"] < to_iso(T0 + cut_day * DAY)]
        h = feed(first, T0 + cut_day * DAY)
        h.engine = ShardEngine(h.settings, h.rules, restored(h.engine))
        h.feed([e for e in events if e not in first] + [clock(T0 + 20 * DAY)])
        assert h.out["tasks"] == straight.out["tasks"]
        assert {r["status"] for r in straight.out["tasks"]} == {"open", "escalated", "closed"}

    def test_batch_sizes_do_not_change_them(self) -> None:
        events = [*sorted(self.EVENTS, key=lambda e: e["ts"]), clock(T0 + 20 * DAY)]
        one = Harness().feed(events, batch_size=1)
        many = Harness().feed(events, batch_size=500)
        assert one.out["tasks"] == many.out["tasks"]


class TestRuleFiles:
    def rule(self, **close_when: Any) -> dict[str, Any]:
        return {
            "id": "r",
            "when": {"fact": "zone_change"},
            "cooldown": "1d",
            "task": {
                "playbook": "p",
                "title": "t",
                "description": "d",
                "owner_role": "csm",
                "priority": "medium",
                "sla": "1d",
            },
            "close_when": {"reason": "done", **close_when},
        }

    def test_close_when_needs_one_condition(self) -> None:
        with pytest.raises(ValueError, match="one of cleared: true or zone"):
            Rule.model_validate(self.rule())
        with pytest.raises(ValueError, match="one of cleared: true or zone"):
            Rule.model_validate(self.rule(cleared=True, zone="green"))

    def test_cleared_is_for_signal_rules(self) -> None:
        with pytest.raises(ValueError, match="cleared is for rules on signal facts"):
            Rule.model_validate(self.rule(cleared=True))
        assert Rule.model_validate(self.rule(zone=["green"], after="3d")).close_when

    def test_a_reason_may_say_how_long_it_cleared_and_the_opening_facts_fields(
        self, tmp_path: Path
    ) -> None:
        rule = self.rule(zone="green")
        rule["close_when"]["reason"] = "green for {cleared_for} (was {score}, {nothing})"
        import yaml

        path = tmp_path / "r.yaml"
        path.write_text(yaml.safe_dump({"rules": [rule]}))
        with pytest.raises(Exception, match=r"close_when\.reason uses nothing"):
            load_rules([path])

    def test_every_bundled_rule_with_a_task_says_when_it_closes(self) -> None:
        for rule in engine_for(load_rules()).rules.values():
            assert rule.task is None or rule.close_when is not None, rule.id


def _ms(iso: str) -> int:
    from vigil.base.timeutil import parse_rfc3339

    return parse_rfc3339(iso)


class TestTaskBook:
    """The book alone: what it closes and when, fed the findings the policy hands it."""

    def book(self) -> tuple[Any, Rule]:
        from vigil.rules.tasks import TaskBook

        rules = engine_for(load_rules()).rules
        return TaskBook(rules, Settings().rules.ladder), rules["entered-red"]

    def open_red(self, book: Any, rule: Rule) -> None:
        fact = {"tenant_id": "acme", "zone": "red", "fact_id": "f", "score": 10}
        record = {"task_id": "t", "rule": rule.id, "priority": "critical", "version": 1}
        book.opened(rule, fact, record, 0)

    def test_back_to_red_before_3_days_starts_the_count_again(self) -> None:
        book, rule = self.book()
        self.open_red(book, rule)
        book.zone_is("acme", "yellow", 1 * DAY)
        book.zone_is("acme", "orange", 3 * DAY)  # within the 3 days: still holds
        assert book.due(4 * DAY + HOUR) == []
        book.zone_is("acme", "green", 5 * DAY)
        assert book.due(8 * DAY - 1) == []
        [closed] = book.due(8 * DAY)
        assert (closed["status"], closed["version"]) == ("closed", 2)
        assert book.open == {}

    def test_at_the_top_of_the_ladder_it_stays(self) -> None:
        book, rule = self.book()
        self.open_red(book, rule)  # critical: the top step
        assert book.due(30 * DAY) == []
        assert book.is_open("acme", rule.id)
