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
