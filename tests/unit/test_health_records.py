"""Health records as the engine words them (native/src/score.rs): points, zones and
reasons, for tenants fed through the engine."""

from __future__ import annotations

import re
from typing import Any

import pytest
from support import DAY, HOUR, T0, Harness, clock, event, sessions

from vigil.config.settings import DEFAULT_COMPONENTS


def last_health(events: list[dict[str, Any]], until: int) -> dict[str, Any]:
    h = Harness().feed([*events, clock(until)])
    record: dict[str, Any] = h.out["health"][-1]
    return record


def test_points_add_up_to_the_score_and_missing_weight_is_spread() -> None:
    record = last_health(sessions("acme", T0, 30), T0 + 3 * DAY)
    assert list(record["components"]) == list(DEFAULT_COMPONENTS)
    points = sum(c["points"] for c in record["components"].values())
    assert points == pytest.approx(record["score"], abs=0.5)
    # Only login activity, trend, error pressure and recency can have data here.
    weights = {k: c["weight"] for k, c in record["components"].items() if c["weight"]}
    assert set(weights) <= {"login_activity", "login_trend", "error_pressure", "recency"}
    assert sum(weights.values()) == pytest.approx(100, abs=0.05)
    assert record["components"]["sentiment"] == {"value": None, "weight": 0.0, "points": 0.0}
    assert any(r.startswith("no data for ") for r in record["reasons"])


def test_a_new_accounts_records_say_it_is_warming_up_until_when() -> None:
    young = last_health(sessions("acme", T0, 3), T0 + 2 * DAY)
    assert young["reasons"][-1] == (
        "new account, warming up until 2026-03-09T00:00:00Z: its zone and score drops "
        "are not handed to the rules before then"
    )
    h = Harness().feed([*sessions("acme", T0, 3), clock(T0 + 9 * DAY)])
    grown = [r for r in h.out["health"] if r["ts"] >= "2026-03-09T00:00:00Z"]
    assert grown and not any("warming up" in line for r in grown for line in r["reasons"])


def test_each_problem_costs_points_and_is_explained_and_one_reads_as_one() -> None:
    at = T0 + HOUR
    events = [
        *sessions("acme", T0, 1),
        event("acme", "ticket.created", at, {"ticket_id": "t1", "priority": "P1"}),
        event("acme", "ticket.created", at + 1, {"ticket_id": "t2", "priority": "P3"}),
        event("acme", "billing.invoice", at, {"invoice_id": "i1", "status": "overdue"}),
        event("acme", "billing.invoice", at, {"invoice_id": "i2", "status": "failed"}),
        event("acme", "billing.invoice", at, {"invoice_id": "i3", "status": "paid"}),
        event("acme", "survey.response", at, {"kind": "nps", "score": 3}),
        event("acme", "survey.response", at, {"kind": "csat", "score": 2}),
        event("acme", "sponsor.changed", at, {"status": "departed"}),
        event("acme", "integration.state", at, {"integration": "crm", "state": "error"}),
        event("acme", "integration.state", at, {"integration": "dw", "state": "connected"}),
        event("acme", "feature.used", at, {"feature": "f1"}),
    ]
    record = last_health(events, T0 + 2 * DAY)
    assert record["score"] < 80
    reasons = " | ".join(record["reasons"])
    for needle in (
        "1 session in the last 30 days",
        "1 feature used in the last 30 days",
        "2 open tickets (1 P1)",
        "invoices unpaid: 1 overdue and 1 failed",
        "latest NPS 3/10 and CSAT 2/5",
        "executive sponsor departed",
        "1 of 2 integrations not connected: crm (error)",
    ):
        assert needle in reasons, needle


def test_biggest_loss_comes_first() -> None:
    record = last_health(sessions("acme", T0, 1), T0 + 9 * DAY)
    lost = [int(m.group(1)) for r in record["reasons"] if (m := re.search(r"\(-(\d+) pts\)$", r))]
    assert len(lost) >= 3 and lost == sorted(lost, reverse=True)
    # Nine days silent: no errors earn nothing without activity, and that weighs most.
    assert record["reasons"][0].startswith("no activity in the last 7 days: no points for error")
