"""Folding events into a tenant's measures (native/src/measures.rs), seen through the
engine: the events are applied once the watermark passes their step, and the tenant is
read back as the recovery store keeps it."""

from __future__ import annotations

from typing import Any

from support import DAY, HOUR, T0, Harness, clock, event, restored

from vigil.config.settings import Settings
from vigil.engine.tenant import TenantState


def applied(events: list[dict[str, Any]], settings: Settings | None = None) -> Harness:
    return Harness(settings).feed([*events, clock(T0 + 2 * DAY)])


def tenant(h: Harness) -> TenantState:
    return restored(h.engine).tenants["acme"]


def held(h: Harness, measure: str) -> Any:
    """A measure's state as a snapshot keeps it."""
    return tenant(h).measured[measure][1]


def onboarding(h: Harness) -> tuple[int | None, bool, int | None, list[str]]:
    """(started, completed, last progress, steps)"""
    started, completed, last_progress, steps, _ = held(h, "onboarding")
    return started, completed, last_progress, steps


def test_a_resent_onboarding_start_does_not_restart_the_clock() -> None:
    h = applied(
        [
            event("acme", "onboarding.started", T0),
            event("acme", "onboarding.started", T0 + 5 * HOUR),
        ]
    )
    started, _, last_progress, _ = onboarding(h)
    assert (started, last_progress) == (T0, T0)


def test_steps_outside_an_open_onboarding_are_kept_but_move_no_clock() -> None:
    before = applied([event("acme", "onboarding.step_completed", T0, {"step": "sso_live"})])
    assert onboarding(before) == (None, False, None, ["sso_live"])
    after = applied(
        [
            event("acme", "onboarding.started", T0 + HOUR),
            event("acme", "onboarding.completed", T0 + 2 * HOUR),
            event("acme", "recipe.completed", T0 + 3 * HOUR, {"recipe": "r1"}),
        ]
    )
    assert onboarding(after)[2] == T0 + HOUR


def test_nps_and_csat_are_kept_apart_as_the_latest_of_each() -> None:
    surveys = [("nps", 9), ("csat", 2), ("nps", 4)]
    h = applied(
        [
            event("acme", "survey.response", T0 + n * HOUR, {"kind": kind, "score": score})
            for n, (kind, score) in enumerate(surveys)
        ]
    )
    assert (held(h, "nps"), held(h, "csat")) == ((4.0, 9.0), (2.0, None))
    assert tenant(h).last_event_at == T0 + 2 * HOUR


class TestKeyLimit:
    """A producer that puts ids into names (a feature per page URL, a ticket per retry)
    must not grow a tenant without bound: past engine.max_keys_per_tenant, new keys are
    refused and counted; the keys already held still change."""

    N = 6  # the least the default scoring settings allow (support_load.zero_at)
    LIMIT = Settings.model_validate({"engine": {"max_keys_per_tenant": N}})

    def fill(self, kind: str, attrs: dict[str, Any], key: str, count: int) -> list[Any]:
        return [event("acme", kind, T0 + n * HOUR, {**attrs, key: f"k{n}"}) for n in range(count)]

    def test_features_past_the_limit_are_refused_and_those_held_still_move(self) -> None:
        events = self.fill("feature.used", {}, "feature", self.N + 2)
        events.append(event("acme", "feature.used", T0 + 9 * HOUR, {"feature": "k0"}))
        h = applied(events, self.LIMIT)
        assert h.engine.counts["keys_refused:measures.features_30d"] == 2
        _, features = tenant(h).measured["features_30d"]
        assert sorted(features) == [f"k{n}" for n in range(self.N)]
        assert features["k0"] == T0 + 9 * HOUR

    def test_a_resolved_ticket_frees_its_place(self) -> None:
        events = self.fill("ticket.created", {"priority": "P3"}, "ticket_id", self.N + 1)
        events.append(event("acme", "ticket.resolved", T0 + 9 * HOUR, {"ticket_id": "k0"}))
        late = {"ticket_id": "k9", "priority": "P1"}
        events.append(event("acme", "ticket.created", T0 + 10 * HOUR, late))
        h = applied(events, self.LIMIT)
        assert h.engine.counts["keys_refused:measures.open_tickets"] == 1
        tickets = held(h, "open_tickets")
        assert len(tickets) == self.N and tickets["k9"] == "P1"

    def test_invoices_and_integrations_are_limited_too(self) -> None:
        unpaid = self.fill("billing.invoice", {"status": "overdue"}, "invoice_id", self.N + 1)
        links = self.fill("integration.state", {"state": "error"}, "integration", self.N + 1)
        invoiced, linked = applied(unpaid, self.LIMIT), applied(links, self.LIMIT)
        assert len(held(invoiced, "unpaid_invoices")) == len(held(linked, "integrations")) == self.N
        assert invoiced.engine.counts["keys_refused:measures.unpaid_invoices"] == 1
        assert linked.engine.counts["keys_refused:measures.integrations"] == 1

    def test_a_refused_step_is_still_onboarding_progress(self) -> None:
        steps = self.fill("onboarding.step_completed", {}, "step", self.N + 1)
        h = applied([event("acme", "onboarding.started", T0 - 1), *steps], self.LIMIT)
        assert h.engine.counts["keys_refused:measures.onboarding"] == 1
        _, _, last_progress, steps = onboarding(h)
        assert len(steps) == self.N
        assert last_progress == T0 + self.N * HOUR  # the stall clock restarted
