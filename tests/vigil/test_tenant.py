"""Folding single events into a tenant's state (vigil/tenant.py)."""

from __future__ import annotations

from typing import Any

import orjson
from support import HOUR, T0, event

from vigil.events import Event
from vigil.intake import Intake
from vigil.settings import Settings
from vigil.tenant import Buckets, Effect, TenantState

BUCKETS = Buckets.from_settings(Settings())


def decoded(kind: str, ts: int, attrs: dict[str, Any] | None = None) -> Event:
    item = Intake("test", "p", 1, HOUR).take(orjson.dumps(event("acme", kind, ts, attrs)), {})
    assert isinstance(item, Event), item
    return item


def test_a_resent_onboarding_start_does_not_restart_the_clock() -> None:
    tenant = TenantState("acme", T0)
    assert tenant.apply(decoded("onboarding.started", T0), BUCKETS) == Effect.ONBOARDING_CLOCK
    again = decoded("onboarding.started", T0 + 5 * HOUR)
    assert tenant.apply(again, BUCKETS) == Effect.NONE
    assert (tenant.onboarding_started, tenant.last_progress) == (T0, T0)


def test_steps_outside_an_open_onboarding_are_kept_but_move_no_clock() -> None:
    tenant = TenantState("acme", T0)
    step = decoded("onboarding.step_completed", T0, {"step": "sso_live"})
    assert tenant.apply(step, BUCKETS) == Effect.NONE  # before any start
    assert tenant.onboarding_steps == {"sso_live"} and tenant.last_progress is None
    tenant.apply(decoded("onboarding.started", T0 + HOUR), BUCKETS)
    tenant.apply(decoded("onboarding.completed", T0 + 2 * HOUR), BUCKETS)
    recipe = decoded("recipe.completed", T0 + 3 * HOUR, {"recipe": "r1"})
    assert tenant.apply(recipe, BUCKETS) == Effect.NONE  # after completion
    assert tenant.last_progress == T0 + HOUR and tenant.product_activity


def test_nps_and_csat_are_kept_apart_as_the_latest_of_each() -> None:
    tenant = TenantState("acme", T0)
    for n, (kind, score) in enumerate([("nps", 9), ("csat", 2), ("nps", 4)]):
        survey = decoded("survey.response", T0 + n * HOUR, {"kind": kind, "score": score})
        tenant.apply(survey, BUCKETS)
    assert (tenant.nps, tenant.csat) == (4.0, 2.0)
    assert tenant.last_event_at == T0 + 2 * HOUR


class TestKeyLimit:
    """A producer that puts ids into names (a feature per page URL, a ticket per retry)
    must not grow a tenant without bound: past engine.max_keys_per_tenant, new keys are
    refused; the keys already held still change."""

    N = 6  # the least the default scoring settings allow (support_load.zero_at)
    LIMIT = Buckets.from_settings(Settings(engine={"max_keys_per_tenant": N}))

    def fill(self, kind: str, attrs: dict[str, Any], key: str, count: int) -> list[int]:
        self.tenant = TenantState("acme", T0)
        effects = []
        for n in range(count):
            item = decoded(kind, T0 + n * HOUR, {**attrs, key: f"k{n}"})
            effects.append(self.tenant.apply(item, self.LIMIT))
        return effects

    def test_features_past_the_limit_are_refused_and_those_held_still_move(self) -> None:
        effects = self.fill("feature.used", {}, "feature", self.N + 2)
        assert effects == [Effect.NONE] * self.N + [Effect.KEY_REFUSED] * 2
        assert sorted(self.tenant.features) == [f"k{n}" for n in range(self.N)]
        again = decoded("feature.used", T0 + 9 * HOUR, {"feature": "k0"})
        assert self.tenant.apply(again, self.LIMIT) == Effect.NONE
        assert self.tenant.features["k0"] == T0 + 9 * HOUR
        assert self.tenant.product_activity  # a refused key is activity all the same

    def test_a_resolved_ticket_frees_its_place(self) -> None:
        effects = self.fill("ticket.created", {"priority": "P3"}, "ticket_id", self.N + 1)
        assert effects[-1] == Effect.KEY_REFUSED and len(self.tenant.open_tickets) == self.N
        resolve = decoded("ticket.resolved", T0 + 9 * HOUR, {"ticket_id": "k0"})
        self.tenant.apply(resolve, self.LIMIT)
        late = decoded("ticket.created", T0 + 10 * HOUR, {"ticket_id": "k9", "priority": "P1"})
        assert self.tenant.apply(late, self.LIMIT) == Effect.NONE
        assert self.tenant.open_tickets["k9"] == "P1"

    def test_invoices_and_integrations_are_limited_too(self) -> None:
        unpaid = self.fill("billing.invoice", {"status": "overdue"}, "invoice_id", self.N + 1)
        assert unpaid[-1] == Effect.KEY_REFUSED and len(self.tenant.unpaid_invoices) == self.N
        links = self.fill("integration.state", {"state": "error"}, "integration", self.N + 1)
        assert links[-1] == Effect.KEY_REFUSED and len(self.tenant.integrations) == self.N

    def test_a_refused_step_is_still_onboarding_progress(self) -> None:
        self.tenant = TenantState("acme", T0)
        self.tenant.apply(decoded("onboarding.started", T0), self.LIMIT)
        for n in range(self.N + 1):
            step = decoded("onboarding.step_completed", T0 + n * HOUR, {"step": f"s{n}"})
            effect = self.tenant.apply(step, self.LIMIT)
        assert effect == Effect.ONBOARDING_CLOCK | Effect.KEY_REFUSED
        assert len(self.tenant.onboarding_steps) == self.N
        assert self.tenant.last_progress == T0 + self.N * HOUR  # the stall clock restarted
