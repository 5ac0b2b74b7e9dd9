from __future__ import annotations

import pytest
from support import DAY, T0

from vigil.health import COMPONENTS, Health, Scorer, health_record
from vigil.settings import (
    ComponentSettings,
    HealthSettings,
    LoginActivityComponent,
    Settings,
    ZoneSettings,
)
from vigil.tenant import ALL_STALE, COMPONENT_NAMES, TenantState
from vigil.zones import zone_of

CFG = HealthSettings()
STALL = Settings().signals.onboarding_stalled.stall_after
NOW = T0 + 20 * DAY


def assess(state: TenantState, now: int, cfg: HealthSettings, stall_after: int) -> Health | None:
    """Score every component afresh, as the engine does once a day."""
    state.stale = ALL_STALE
    return Scorer(cfg, stall_after).assess(state, now)


def reasons_of(state: TenantState) -> str:
    """The tenant's health reasons now, joined: what a CSM reads."""
    health = assess(state, NOW, CFG, STALL)
    assert health is not None
    return " | ".join(health_record(state, health, CFG, STALL)["reasons"])


def healthy() -> TenantState:
    state = TenantState("acme", T0)
    state.sessions_seen = state.product_activity = True
    for back in range(14):
        state.sessions_by_day[(NOW - 1) // DAY - back] = 5
    state.features = {f"f{n}": NOW - DAY for n in range(6)}
    return state


class TestZones:
    @pytest.mark.parametrize(
        ("score", "zone"),
        [
            (100, "green"),
            (80, "green"),
            (79.5, "green"),
            (79.4, "yellow"),
            (60, "yellow"),
            (59, "orange"),
            (40, "orange"),
            (39, "red"),
            (0, "red"),
        ],
    )
    def test_cut_offs_apply_to_the_rounded_score(self, score: float, zone: str) -> None:
        assert zone_of(score, ZoneSettings()) == zone


class TestScore:
    def test_points_add_up_to_the_score_and_missing_weight_is_spread(self) -> None:
        state = healthy()
        health = assess(state, NOW, CFG, STALL)
        assert health is not None
        record = health_record(state, health, CFG, STALL)
        points = sum(c["points"] for c in record["components"].values())
        assert points == pytest.approx(health.score, abs=0.05)
        assert record["score"] == 100 and record["zone"] == "green"
        # login activity 20, trend 10, adoption 15, error pressure 15 have data: 60 in all.
        assert record["components"]["login_activity"]["weight"] == pytest.approx(
            100 * 20 / 60, abs=0.01
        )
        assert record["components"]["sentiment"] == {"value": None, "weight": 0.0, "points": 0.0}
        assert any(r.startswith("no data for support load, sentiment") for r in record["reasons"])

    def test_a_new_accounts_records_say_it_is_warming_up_until_when(self) -> None:
        # A first-day score is low for little data: said, with when the rules take over.
        state = healthy()
        state.first_seen = NOW - 2 * DAY
        young = assess(state, NOW, CFG, STALL)
        assert young is not None
        said = health_record(state, young, CFG, STALL)["reasons"]
        assert said[-1] == (
            "new account, warming up until 2026-03-27T00:00:00Z: its zone and score drops "
            "are not handed to the rules before then"
        )
        state.first_seen = NOW - CFG.warmup  # warmed up now
        grown = assess(state, NOW, CFG, STALL)
        assert grown is not None
        said = health_record(state, grown, CFG, STALL)["reasons"]
        assert not any("warming up" in reason for reason in said)

    def test_each_problem_costs_points_and_is_explained(self) -> None:
        state = healthy()
        state.tickets_seen = state.invoices_seen = True
        state.open_tickets = {"t1": "P1", "t2": "P3"}
        state.unpaid_invoices = {"i1": "overdue"}
        state.nps = 3.0
        state.sponsor = "departed"
        state.integrations = {"crm": "error", "warehouse": "connected"}
        health = assess(state, NOW, CFG, STALL)
        assert health is not None and health.rounded < 80
        reasons = " | ".join(health_record(state, health, CFG, STALL)["reasons"])
        for needle in (
            "2 open tickets, 1 of them P1",
            "invoices unpaid: 1 overdue",
            "latest NPS 3/10",
            "executive sponsor departed",
            "1 of 2 integrations not connected: crm (error)",
        ):
            assert needle in reasons

    def test_a_count_of_one_reads_as_one(self) -> None:
        state = healthy()
        state.tickets_seen = True
        state.open_tickets = {"t1": "P2"}
        state.sessions_by_day.clear()
        state.sessions_by_day[(NOW - 1) // DAY] = 1
        state.features = {"f1": NOW - DAY}
        state.integrations = {"crm": "error"}
        reasons = reasons_of(state)
        for needle in (
            "1 session in the last 7 days",
            "1 feature used in the last 30 days",
            "1 open ticket (-",
            "1 of 1 integration not connected: crm (error)",
        ):
            assert needle in reasons, needle
        for tickets, needle in (
            ({"t1": "P1"}, "1 open ticket, a P1 (-"),
            ({"t1": "P3", "t2": "P2"}, "2 open tickets, none of them P1"),
        ):
            state.open_tickets = tickets
            assert needle in reasons_of(state)

    def test_more_broken_integrations_than_are_named_are_said(self) -> None:
        state = healthy()
        state.integrations = {name: "error" for name in ("a", "b", "c", "d", "e")}
        state.integrations["f"] = "connected"
        reasons = reasons_of(state)
        assert "5 of 6 integrations not connected: a (error), b (error), c (error) and 2 more" in (
            reasons
        )

    def test_biggest_loss_comes_first(self) -> None:
        state = healthy()
        state.sessions_by_day.clear()  # no sessions in 14 days: -20ish on activity
        state.nps = 8.0
        health = assess(state, NOW, CFG, STALL)
        assert health is not None
        reasons = health_record(state, health, CFG, STALL)["reasons"]
        assert reasons[0].startswith("0 sessions in the last 7 days")

    def test_onboarding_counts_only_while_open_and_stalls_halve_it(self) -> None:
        state = healthy()
        state.onboarding_started = state.last_progress = NOW - 10 * DAY
        state.onboarding_steps = {"sso_live", "first_dataset"}
        stalled = assess(state, NOW, CFG, STALL)
        assert stalled is not None
        record = health_record(state, stalled, CFG, STALL)
        onboarding = record["components"]["onboarding"]
        assert onboarding["points"] == pytest.approx(onboarding["weight"] * 2 / 5 * 0.5, abs=0.01)
        assert any(
            "onboarding 2 of 5 steps done, stalled: no progress for 240 h" in r
            for r in record["reasons"]
        )
        state.onboarding_completed = True
        done = assess(state, NOW, CFG, STALL)
        assert done is not None
        assert health_record(state, done, CFG, STALL)["components"]["onboarding"]["value"] is None

    def test_remembered_reason_lines_follow_each_scorers_settings(self) -> None:
        """A scorer words a line once and reuses it; one with other settings words anew."""
        said = []
        for full_at in (20.0, 40.0):
            parts = ComponentSettings(login_activity=LoginActivityComponent(full_at=full_at))
            cfg = HealthSettings(components=parts)
            scorer = Scorer(cfg, STALL)
            for _ in range(2):  # the second line comes from the scorer's memo
                state = healthy()
                state.sessions_by_day.clear()
                health = assess(state, NOW, cfg, STALL)
                assert health is not None
                said.append(health_record(state, health, cfg, STALL, scorer.lines)["reasons"][0])
        assert said[0] == said[1] and "(full points at 20)" in said[0]
        assert said[2] == said[3] and "(full points at 40)" in said[2]

    def test_no_data_at_all_gives_no_score(self) -> None:
        assert assess(TenantState("empty", T0), NOW, CFG, STALL) is None


def test_components_are_named_like_their_settings() -> None:
    assert [name for name, _, _ in COMPONENTS] == list(ComponentSettings.model_fields)
    assert tuple(name for name, _, _ in COMPONENTS) == COMPONENT_NAMES
