"""Silence never raises a score: over generated streams, a tenant whose events after an
instant are removed scores no higher after that instant than it did at it."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import DAY, HOUR, T0, Harness, clock, event

from vigil.base.timeutil import to_iso

# What a tenant may send, each with attributes that pass the catalogue.
KINDS: list[tuple[str, st.SearchStrategy[dict[str, Any]]]] = [
    ("user.session", st.just({})),
    ("feature.used", st.sampled_from(["a", "b", "c", "d", "e", "f"]).map(lambda f: {"feature": f})),
    ("error.raised", st.just({"severity": "high"})),
    ("job.retry", st.just({"job": "sync"})),
    (
        "ticket.created",
        st.tuples(st.integers(0, 5), st.sampled_from(["P1", "P2", "P3"])).map(
            lambda t: {"ticket_id": f"k{t[0]}", "priority": t[1]}
        ),
    ),
    ("ticket.resolved", st.integers(0, 5).map(lambda n: {"ticket_id": f"k{n}"})),
    (
        "billing.invoice",
        st.tuples(st.integers(0, 2), st.sampled_from(["paid", "overdue", "failed"])).map(
            lambda t: {"invoice_id": f"i{t[0]}", "status": t[1]}
        ),
    ),
    (
        "integration.state",
        st.tuples(st.sampled_from(["crm", "erp"]), st.sampled_from(["connected", "error"])).map(
            lambda t: {"integration": t[0], "state": t[1]}
        ),
    ),
    ("survey.response", st.integers(0, 10).map(lambda n: {"kind": "nps", "score": n})),
    ("sponsor.changed", st.sampled_from(["active", "departed"]).map(lambda s: {"status": s})),
    ("onboarding.started", st.just({})),
    (
        "onboarding.step_completed",
        st.sampled_from(["sso_live", "first_dataset"]).map(lambda s: {"step": s}),
    ),
]


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Up to 120 events of one tenant over its first 20 days, in time order."""
    events = []
    for _ in range(draw(st.integers(1, 120))):
        kind, attrs = draw(st.sampled_from(KINDS))
        at = T0 + draw(st.integers(0, 20 * DAY - 1))
        events.append((at, kind, draw(attrs)))
    events.sort(key=lambda e: e[0])
    return [event("acme", kind, at, attrs) for at, kind, attrs in events]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), cut_hours=st.integers(1, 20 * 24))
def test_removing_a_tenants_events_after_an_instant_never_raises_its_score(
    history: list[dict[str, Any]], cut_hours: int
) -> None:
    cut = T0 + cut_hours * HOUR  # a step: events before it are applied at it
    kept = [e for e in history if e["ts"] < to_iso(cut)]
    h = Harness().feed([*kept, clock(cut + 30 * DAY)])
    records = h.out["health"]
    at_cut = [r["score"] for r in records if r["ts"] <= to_iso(cut)]
    after = [r["score"] for r in records if r["ts"] > to_iso(cut)]
    if not at_cut:
        assert not kept or not after  # never scored before the cut: nothing to rise from
        return
    assert all(score <= at_cut[-1] for score in after), (at_cut[-1], after)
