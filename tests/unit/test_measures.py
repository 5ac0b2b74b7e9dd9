"""Measures and signals declared in the settings, through the engine: the worked example
of docs (seat utilisation over 90%), each kind of measure, the bounds on their state,
restores, and the settings that are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import DAY, HOUR, T0, Harness, clock, event, restored

from vigil.base.errors import ConfigError, RuleError
from vigil.base.timeutil import to_iso
from vigil.config.settings import Settings, load_settings
from vigil.engine.shard import ShardEngine
from vigil.rules.engine import engine_for
from vigil.rules.loader import configured_rules

SEATS: dict[str, Any] = {
    "measures": {
        "active_users": {
            "kind": "distinct",
            "events": ["user.session"],
            "field": "user_id",
            "window": "30d",
        },
        "seats": {"kind": "latest", "events": ["contract.updated"], "field": "attrs.seats"},
    },
    "signals": {"seat_use": {"measure": "active_users", "per": "seats", "above": 0.9}},
}


def declared(overrides: dict[str, Any]) -> Settings:
    return load_settings(None, env={}, overrides=overrides)


def logins(day: int, users: range) -> list[dict[str, Any]]:
    return [
        {**event("acme", "user.session", T0 + day * DAY + n * 60_000), "user_id": f"u{n}"}
        for n in users
    ]


class TestSeatUtilisation:
    def feed(self) -> Harness:
        contract = event("acme", "contract.updated", T0, {"seats": 10})
        return Harness(declared(SEATS)).feed(
            [contract, *logins(0, range(8)), *logins(2, range(10)), clock(T0 + 5 * DAY)]
        )

    def test_a_signal_is_raised_once_when_distinct_users_pass_90_percent_of_seats(
        self,
    ) -> None:
        h = self.feed()
        [raised] = h.signals("seat_use")
        assert raised["ts"] == "2026-03-04T01:00:00Z"  # the step after the tenth user
        assert raised["evidence"] == {
            "measure": "active_users",
            "measured": 10.0,
            "per": "seats",
            "per_measured": 10.0,
            "ratio": 1.0,
            "window": "30d",
        }
        assert (raised["value"], raised["threshold"], raised["severity"]) == (1.0, 0.9, "medium")
        assert h.engine.counts["signal:seat_use"] == 1
        # The pack's seat_cap reads the same: raised as this is.
        assert [s["ts"] for s in h.signals("seat_cap")] == [raised["ts"]]

    def test_it_is_raised_again_only_after_falling_back_below(self) -> None:
        h = self.feed()
        # Day 2's users leave the 30 days at the midnight after day 32; on day 40 they return.
        h.feed([clock(T0 + 34 * DAY), *logins(40, range(10)), clock(T0 + 42 * DAY)])
        assert [s["ts"] for s in h.signals("seat_use")] == [
            "2026-03-04T01:00:00Z",
            "2026-04-11T01:00:00Z",
        ]

    def test_a_restore_goes_on_as_if_never_stopped(self) -> None:
        straight = self.feed().feed([clock(T0 + 9 * DAY)])
        h = self.feed()
        saved = restored(h.engine)
        assert saved.tenants["acme"].signals_raised == ["seat_cap", "seat_use"]
        assert saved.tenants["acme"].measured["seats"][1] == (10.0, None)
        h.engine = ShardEngine(h.settings, h.rules, saved)
        assert h.feed([clock(T0 + 9 * DAY)]).out == straight.out

    def test_a_changed_declaration_starts_its_measure_afresh_on_restore(self) -> None:
        h = self.feed()
        longer = {**SEATS, "measures": {**SEATS["measures"]}}
        longer["measures"]["active_users"] = {**SEATS["measures"]["active_users"], "window": "60d"}
        again = ShardEngine(declared(longer), h.rules, restored(h.engine))
        kept = restored(again).tenants["acme"].measured
        assert kept["active_users"][1] == {} and kept["seats"][1] == (10.0, None)


SEAT_RULE = """
rules:
  - id: seat-use
    when: {fact: signal, signal: seat_use}
    cooldown: 30d
    task:
      playbook: expansion
      title: "{tenant_id} uses {ratio} of its seats"
      description: "{measured} active users for {per_measured} seats"
      owner_role: csm
      priority: medium
      sla: 7d
"""


def test_a_rule_acts_on_a_declared_signal_with_its_evidence(tmp_path: Path) -> None:
    (tmp_path / "seats.yaml").write_text(SEAT_RULE)
    settings = declared({**SEATS, "rules": {"paths": [str(tmp_path)]}})
    rules = engine_for(configured_rules(settings))
    contract = event("acme", "contract.updated", T0, {"seats": 10})
    h = Harness(settings, rules).feed([contract, *logins(0, range(10)), clock(T0 + DAY)])
    [task] = [t for t in h.out["tasks"] if t["rule"] == "seat-use"]
    assert task["title"] == "acme uses 1 of its seats"  # numbers as templates print them
    assert task["description"] == "10 active users for 10 seats"


def test_a_rule_naming_a_signal_nobody_declared_is_refused(tmp_path: Path) -> None:
    (tmp_path / "seats.yaml").write_text(SEAT_RULE)
    with pytest.raises(RuleError, match="unknown signal 'seat_use'"):
        configured_rules(declared({"rules": {"paths": [str(tmp_path)]}}))


def test_a_default_measure_is_changed_by_its_table_or_declared_afresh_of_another_kind() -> None:
    wider = load_settings(
        None, env={}, overrides={"measures": {"open_tickets": {"held_while": ["P1"]}}}
    )
    assert wider.measures["open_tickets"].kind == "states"  # the default's keys, and this one
    assert wider.measures["open_tickets"].held_while == ("P1",)
    afresh = {
        "kind": "open_items",
        "events": ["ticket.created"],
        "closed_by": ["ticket.resolved"],
        "field": "attrs.ticket_id",
    }
    with pytest.raises(ConfigError) as refused:
        load_settings(None, env={}, overrides={"measures": {"open_tickets": afresh}})
    # no default key (the states' `key`) is merged into it: what refuses it is the
    # component that weighs its keys by state
    assert "health.components.support_load: weights is for states measures" in str(refused.value)


class TestKinds:
    def raised(self, measure: dict[str, Any], signal: dict[str, Any], events: list[Any]) -> Any:
        settings = declared(
            {"measures": {"m": measure}, "signals": {"s": {"measure": "m", **signal}}}
        )
        return Harness(settings).feed(events).signals("s")

    def test_a_count_of_filtered_events(self) -> None:
        p1s = [
            event("acme", "ticket.created", T0 + n, {"ticket_id": f"k{n}", "priority": p})
            for n, p in enumerate(["P1", "P3", "P1", "P1"])
        ]
        count = {"kind": "count", "events": ["ticket.created"], "where": {"priority": "P1"}}
        [raised] = self.raised({**count, "window": "7d"}, {"above": 2}, [*p1s, clock(T0 + DAY)])
        assert raised["evidence"]["measured"] == 3.0

    def test_open_items_close_by_their_key(self) -> None:
        opened = [
            event("acme", "ticket.created", T0 + n, {"ticket_id": f"k{n}", "priority": "P2"})
            for n in range(3)
        ]
        resolved = event("acme", "ticket.resolved", T0 + 3, {"ticket_id": "k0"})
        measure = {
            "kind": "open_items",
            "events": ["ticket.created"],
            "closed_by": ["ticket.resolved"],
            "field": "attrs.ticket_id",
        }
        assert self.raised(measure, {"above": 2}, [*opened, resolved, clock(T0 + DAY)]) == []
        [raised] = self.raised(measure, {"above": 2}, [*opened, clock(T0 + DAY)])
        assert raised["ts"] == "2026-03-02T01:00:00Z"

    def test_an_unresolved_p1_older_than_its_bound(self) -> None:
        p1 = {"ticket_id": "k1", "priority": "P1"}
        opened = T0 + 10 * HOUR + 30 * 60_000
        events = [
            event("acme", "ticket.created", opened, p1),
            event("acme", "ticket.created", opened + 1, {"ticket_id": "k2", "priority": "P3"}),
            clock(T0 + 20 * DAY),
        ]
        oldest = {
            "kind": "oldest_open",
            "events": ["ticket.created"],
            "where": {"priority": "P1"},
            "closed_by": ["ticket.resolved"],
            "field": "attrs.ticket_id",
        }
        [raised] = self.raised(oldest, {"above": 14}, events)
        # The first step past 14 days, not the next midnight nor the next event.
        assert raised["ts"] == "2026-03-16T11:00:00Z"
        assert raised["evidence"]["measured"] == pytest.approx(14 + 0.5 / 24)
        resolved = event("acme", "ticket.resolved", T0 + 10 * DAY, {"ticket_id": "k1"})
        assert self.raised(oldest, {"above": 14}, [*events[:2], resolved, events[2]]) == []

    def test_states_hold_each_keys_latest_value_until_it_closes(self) -> None:
        states = {
            "kind": "states",
            "events": ["integration.state"],
            "key": "attrs.integration",
            "field": "attrs.state",
            "held_while": ["error", "disconnected"],
        }
        broken = [
            event("acme", "integration.state", T0 + n, {"integration": f"i{n}", "state": "error"})
            for n in range(3)
        ]
        fixed = event(
            "acme", "integration.state", T0 + 9, {"integration": "i0", "state": "connected"}
        )
        [raised] = self.raised(states, {"above": 2}, [*broken, clock(T0 + DAY)])
        assert raised["evidence"]["measured"] == 3
        assert self.raised(states, {"above": 2}, [*broken, fixed, clock(T0 + DAY)]) == []

    def test_a_process_that_makes_no_progress_stalls_once_per_stretch(self) -> None:
        trial = {
            "kind": "process",
            "started_by": ["onboarding.started"],
            "events": ["recipe.completed"],
            "completed_by": ["onboarding.completed"],
            "steps": ["r1"],
            "field": "attrs.recipe",
        }
        started = event("acme", "onboarding.started", T0 + HOUR)
        recipe = event("acme", "recipe.completed", T0 + 30 * HOUR, {"recipe": "r1"})
        stalled = {"stalled_after": "24h"}
        first, second = self.raised(trial, stalled, [started, recipe, clock(T0 + 4 * DAY)])
        assert first["window_end"] == to_iso(T0 + 25 * HOUR)  # the first stretch's deadline
        assert second["window_end"] == to_iso(T0 + 54 * HOUR)
        assert second["evidence"]["steps_completed"] == 1
        done = event("acme", "onboarding.completed", T0 + 2 * HOUR)
        assert self.raised(trial, stalled, [started, done, clock(T0 + 4 * DAY)]) == []

    def test_an_hourly_window_below_its_bound_raises_for_a_silent_tenant_each_hour(self) -> None:
        # A tenant with no event in a closing hour, nor in the hour before, is looked at
        # only because this signal holds at zero: every tenant is evaluated then.
        hourly = {"kind": "count", "events": ["user.session"], "window": "1h", "calendar": True}
        raised = self.raised(hourly, {"below": 1}, [*logins(0, range(1)), clock(T0 + 6 * HOUR)])
        assert [r["window_end"] for r in raised] == [
            to_iso(T0 + hour * HOUR) for hour in (2, 3, 4, 5)
        ]

    def test_one_users_share_of_sessions(self) -> None:
        sessions = logins(0, range(1)) * 1 + logins(0, range(3))
        sessions = [{**s, "event_id": f"e{n}"} for n, s in enumerate(sessions)]
        sessions += [{**sessions[0], "event_id": f"x{n}", "ts": T0 + HOUR + n} for n in range(8)]
        share = {"kind": "top_share", "events": ["user.session"], "field": "user_id"}
        [raised] = self.raised(
            {**share, "window": "30d"}, {"above": 0.8}, [*sessions, clock(T0 + DAY)]
        )
        assert raised["evidence"]["measured"] == pytest.approx(10 / 12, abs=1e-4)

    def test_days_since_the_latest_event(self) -> None:
        since = {"kind": "days_since", "events": ["user.session"]}
        events = [*logins(0, range(1)), clock(T0 + 20 * DAY)]
        [raised] = self.raised(since, {"above": 14}, events)
        assert raised["ts"] == "2026-03-16T01:00:00Z"  # the first step past 14 days

    def test_days_until_the_date_an_event_carries(self) -> None:
        renewal = {
            "kind": "days_until",
            "events": ["contract.updated"],
            "field": "attrs.renewal_date",
        }
        contract = event("acme", "contract.updated", T0, {"renewal_date": "2026-04-01"})
        [raised] = self.raised(renewal, {"below": 14}, [contract, clock(T0 + 20 * DAY)])
        assert raised["ts"] == "2026-03-18T01:00:00Z"  # the first step within 14 days
        assert raised["evidence"]["measured"] == pytest.approx(14 - 1 / 24)

    def test_a_sum_of_a_number(self) -> None:
        paid = [
            event(
                "acme",
                "billing.invoice",
                T0 + n,
                {"invoice_id": f"i{n}", "status": "paid", "amount": 60},
            )
            for n in range(2)
        ]
        total = {
            "kind": "sum",
            "events": ["billing.invoice"],
            "field": "attrs.amount",
            "window": "30d",
        }
        [raised] = self.raised(total, {"above": 100}, [*paid, clock(T0 + DAY)])
        assert raised["evidence"]["measured"] == 120.0

    def test_a_window_against_the_window_before(self) -> None:
        growth = {"kind": "count", "events": ["user.session"], "window": "7d"}
        signal = {"versus": "previous_window", "above": 1.5, "min_previous": 3}
        weeks = [*logins(0, range(4)), *logins(7, range(8)), clock(T0 + 15 * DAY)]
        [raised] = self.raised(growth, signal, weeks)
        assert raised["ts"] == "2026-03-09T01:00:00Z"  # day 7's logins, against day 0's
        assert raised["evidence"] == {
            "measure": "m",
            "measured": 8,
            "previous": 4,
            "ratio": 2.0,
            "change_pct": 100.0,
            "window": "7d",
        }
        small = {**signal, "min_previous": 5}  # the week before held too few to compare
        assert self.raised(growth, small, weeks) == []

    def test_a_window_against_its_own_history(self) -> None:
        hourly = {"kind": "count", "events": ["error.raised"], "window": "1h", "calendar": True}
        signal = {"versus": "history", "history": "6h", "min_history": 3, "percentile": 50}
        errors = [
            event("acme", "error.raised", T0 + hour * HOUR + n * 60_000)
            for hour, count in enumerate([2, 1, 2, 1, 6])
            for n in range(count)
        ]
        [raised] = self.raised(hourly, signal, [*errors, clock(T0 + 6 * HOUR)])
        assert raised["ts"] == to_iso(T0 + 5 * HOUR)  # the fifth hour closed; none before
        assert raised["severity"] == "medium"
        assert raised["evidence"] == {
            "measure": "m",
            "measured": 6.0,
            "percentile": 50.0,
            "percentile_value": 1.5,
            "history_windows": 4,
            "history_mean": 1.5,
            "window": "1h",
        }
        assert self.raised(hourly, {**signal, "above": 6}, [*errors, clock(T0 + 6 * HOUR)]) == []
        severe = self.raised(hourly, {**signal, "high_above": 6}, [*errors, clock(T0 + 6 * HOUR)])
        assert [s["severity"] for s in severe] == ["high"]

    def test_a_value_against_the_one_before(self) -> None:
        nps = {"kind": "latest", "events": ["survey.response"], "field": "attrs.score"}
        answers = [
            event("acme", "survey.response", T0 + n * DAY, {"kind": "nps", "score": score})
            for n, score in enumerate([9, 8, 4])
        ]
        [raised] = self.raised(
            nps, {"versus": "previous_value", "below": -2}, [*answers, clock(T0 + 4 * DAY)]
        )
        assert raised["evidence"]["change"] == -4.0 and raised["evidence"]["previous"] == 8.0

    def test_a_latest_text_equal_to_a_value(self) -> None:
        sponsor = {"kind": "latest", "events": ["sponsor.changed"], "field": "attrs.status"}
        changes = [
            event("acme", "sponsor.changed", T0 + n * DAY, {"status": status})
            for n, status in enumerate(["active", "departed"])
        ]
        [raised] = self.raised(sponsor, {"equals": "departed"}, [*changes, clock(T0 + 3 * DAY)])
        assert raised["evidence"] == {
            "measure": "m",
            "measured": "departed",
            "previous": "active",
            "window": "1h",
        }

    def test_new_keys_past_the_limit_are_counted_not_kept(self) -> None:
        settings = declared({**SEATS, "engine": {"max_keys_per_tenant": 6}})
        h = Harness(settings).feed([*logins(0, range(8)), clock(T0 + DAY)])
        assert h.engine.counts["keys_refused:measures.active_users"] == 2
        assert len(restored(h.engine).tenants["acme"].measured["active_users"][1]) == 6


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        (
            {"measures": {"m": {"kind": "count", "events": ["user.login"], "window": "7d"}}},
            "measures.m: no event type 'user.login' in the catalogue",
        ),
        (
            {
                "measures": {
                    "m": {
                        "kind": "distinct",
                        "events": ["user.session"],
                        "field": "attrs.seats",
                        "window": "7d",
                    }
                }
            },
            "measures.m: no field 'attrs.seats' on user.session",
        ),
        (
            {"measures": {"m": {"kind": "distinct", "events": ["user.session"], "window": "7d"}}},
            "a distinct measure needs a field",
        ),
        (
            {
                "measures": {
                    "m": {
                        "kind": "latest",
                        "events": ["contract.updated"],
                        "field": "attrs.seats",
                        "window": "7d",
                    }
                }
            },
            "a latest measure takes no window",
        ),
        (
            {"measures": {"m": {"kind": "count", "events": ["user.session"], "window": "90m"}}},
            "measures.m.window (90m) must be a whole number of engine.health_step (1h)",
        ),
        (
            {"measures": {"m": {"kind": "count", "events": ["user.session"], "window": "120d"}}},
            "measures.m.window",
        ),
        (
            {"signals": {"s": {"measure": "nothing", "above": 1}}},
            "signals.s.measure: no measure 'nothing'",
        ),
        ({**SEATS, "signals": {"s": {"measure": "seats"}}}, "needs a bound"),
        (
            {
                "measures": {
                    "m": {
                        "kind": "distinct",
                        "events": ["user.session"],
                        "field": "user_id",
                        "window": "7d",
                        "calendar": True,
                    }
                }
            },
            "calendar windows are for count, sum, top_share",
        ),
        (
            {
                "measures": {
                    "m": {
                        "kind": "days_until",
                        "events": ["contract.updated"],
                        "field": "attrs.arr",
                    }
                }
            },
            "measures.m: days_until needs a date field, and attrs.arr of contract.updated is "
            "not one",
        ),
        (
            {
                **SEATS,
                "signals": {
                    "s": {"measure": "active_users", "versus": "previous_window", "above": 2}
                },
            },
            "signals.s: previous_window compares count or sum measures, and active_users is a "
            "distinct measure",
        ),
        (
            {**SEATS, "signals": {"s": {"measure": "seats", "equals": "x", "above": 1}}},
            "equals takes no",
        ),
        (
            {**SEATS, "signals": {"s": {"measure": "active_users", "versus": "history"}}},
            "history compares count or sum measures",
        ),
        (
            {
                "measures": {"m": {"kind": "count", "events": ["error.raised"], "window": "1h"}},
                "signals": {"s": {"measure": "m", "versus": "history"}},
            },
            'signals.s: versus = "history" compares calendar windows',
        ),
        (
            {
                "measures": {
                    "m": {
                        "kind": "count",
                        "events": ["error.raised"],
                        "window": "1d",
                        "calendar": True,
                    }
                },
                "signals": {"s": {"measure": "m", "versus": "history", "history": "7d"}},
            },
            "signals.s.history (7d) holds 7 whole windows of m (1d), fewer than min_history (24)",
        ),
        # The lifecycle pack's options, each refused where it cannot mean anything.
        (
            {"signals": {"s": {"measure": "sessions_7d", "above": 5, "running": 2}}},
            "signals.s.running: windows in a row are of a count or sum over calendar windows",
        ),
        (
            {
                "signals": {
                    "s": {"measure": "weekly_tickets", "per": "seats", "above": 1, "running": 2}
                }
            },
            "running is for a measure compared as it is",
        ),
        (
            {"signals": {"s": {"measure": "nps", "below": 7, "min_sigma": 3}}},
            'min_sigma is for versus = "previous_window"',
        ),
        (
            {"signals": {"s": {"measure": "nps", "below": 7, "requires": {"nothing": 3}}}},
            "signals.s.requires: no measure 'nothing'",
        ),
        (
            {"measures": {"m": {"kind": "days", "events": ["error.raised"], "window": "36h"}}},
            "a days measure counts whole days",
        ),
        (
            {
                "measures": {
                    "m": {
                        "kind": "oldest_open",
                        "events": ["billing.invoice"],
                        "key": "attrs.invoice_id",
                        "field": "attrs.status",
                    }
                }
            },
            "an oldest_open measure with a key needs held_while",
        ),
        (
            {
                "measures": {
                    "m": {
                        "kind": "distinct",
                        "events": ["user.session"],
                        "field": "user_id",
                        "window": "7d",
                        "of_fleet": "90d",
                    }
                }
            },
            "of_fleet is of an attribute's values",
        ),
        (
            {
                "measures": {
                    "m": {
                        "kind": "distinct",
                        "events": ["feature.used"],
                        "field": "attrs.feature",
                        "window": "7d",
                        "of_fleet": "90d",
                        "share_of": ["a"],
                    }
                }
            },
            "a share is of share_of or of_fleet, not both",
        ),
        (
            {
                "measures": {
                    "m": {
                        "kind": "count",
                        "events": ["user.session"],
                        "window": "7d",
                        "share_of": ["a"],
                    }
                }
            },
            "share_of and of_fleet are for distinct measures",
        ),
        ({"health": {"drop_points": 20}}, "replaced by drop_pct"),
    ],
)
def test_a_declaration_naming_what_does_not_exist_is_refused_with_its_key(
    overrides: dict[str, Any], said: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        declared(overrides)
    assert said in str(refused.value)


class TestDecay:
    """A half_life weighs a rolling window's buckets by their age in whole buckets."""

    def measured(self, measure: dict[str, Any], events: list[dict[str, Any]]) -> float:
        component = {"measure": "recent", "weight": 500, "full_at": 20, "reason": "{value}"}
        h = Harness(
            declared({"measures": {"recent": measure}, "health": {"components": {"x": component}}})
        )
        h.feed([*events, clock(T0 + 2 * DAY + 2 * HOUR)])
        value: float = h.out["health"][-1]["components"]["x"]["value"]
        return value

    def test_a_count_halves_per_half_life_of_age(self) -> None:
        count = {"kind": "count", "events": ["user.session"], "window": "7d", "half_life": "1d"}
        days = [*logins(0, range(8)), *logins(1, range(4)), *logins(2, range(2))]
        # On day 2: 2 today, 4 a day old (2), 8 two days old (2).
        assert self.measured(count, days) == 6.0
        assert self.measured({**count, "half_life": None}, days) == 14

    def test_a_distinct_key_counts_by_when_it_was_last_seen(self) -> None:
        users = {
            "kind": "distinct",
            "events": ["user.session"],
            "field": "user_id",
            "window": "30d",
            "half_life": "2d",
        }
        # u0-u3 last seen two days ago (half each), u4-u5 today (whole).
        assert self.measured(users, [*logins(0, range(4)), *logins(2, range(4, 6))]) == 4.0

    @pytest.mark.parametrize(
        "measure",
        [
            {"kind": "latest", "events": ["user.session"], "field": "user_id", "half_life": "1d"},
            {
                "kind": "count",
                "events": ["user.session"],
                "window": "7d",
                "calendar": True,
                "half_life": "1d",
            },
            {"kind": "count", "events": ["user.session"], "window": "7d", "half_life": "0s"},
        ],
    )
    def test_a_half_life_is_for_rolling_counts_sums_and_distincts(
        self, measure: dict[str, Any]
    ) -> None:
        with pytest.raises(ConfigError, match="half_life"):
            declared({"measures": {"recent": measure}})
