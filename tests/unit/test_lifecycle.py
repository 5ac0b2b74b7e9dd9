"""The lifecycle pack (vigil.config.settings.DEFAULT_SIGNALS and rules/default/
lifecycle.yaml): each row's edges, just under and just over its bound, a tenant that
never sends what it needs, and a silent one for the rows driven by dates."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
import pytest
from support import DAY, HOUR, T0, Harness, clock, event

from vigil._native import ShardSplitter
from vigil.base.ids import shard_key
from vigil.base.timeutil import to_iso
from vigil.config.settings import Settings
from vigil.engine.shard import ShardEngine
from vigil.flows.health import _splitter
from vigil.intake.events import Event
from vigil.intake.reader import Intake, Tick
from vigil.rules.engine import engine_for
from vigil.rules.loader import load_rules

RULES = engine_for(load_rules())


def shard_keys(settings: Settings) -> list[str]:
    return [shard_key(n) for n in range(settings.engine.shards)]


def run(events: list[dict[str, Any]], until: int) -> Harness:
    h = Harness()
    return h.feed([*sorted(events, key=lambda e: e["ts"]), clock(until)])


def raised(h: Harness, signal: str, tenant: str = "acme") -> list[dict[str, Any]]:
    return [s for s in h.signals(signal) if s["tenant_id"] == tenant]


def opened(h: Harness, rule: str, tenant: str = "acme") -> list[dict[str, Any]]:
    return [
        t
        for t in h.out["tasks"]
        if t["rule"] == rule and t["tenant_id"] == tenant and t["version"] == 1
    ]


def contract(at: int, tenant: str = "acme", **attrs: Any) -> dict[str, Any]:
    return event(tenant, "contract.updated", at, attrs)


def date(ms: int) -> str:
    return to_iso(ms)[:10]


def logins(tenant: str, day: int, users: list[str]) -> list[dict[str, Any]]:
    return [
        event(tenant, "user.session", T0 + day * DAY + HOUR + n * 60_000, user_id=user)
        for n, user in enumerate(users)
    ]


class TestRenewalRunway:
    def test_each_stage_is_raised_as_the_watermark_passes_it(self) -> None:
        renewal = T0 + 130 * DAY
        # A session a month, or the tenant is let go after 90 silent days.
        alive = [event("acme", "user.session", T0 + d * DAY + 3 * HOUR) for d in range(0, 131, 30)]
        h = run([contract(T0 + HOUR, renewal_date=date(renewal)), *alive], T0 + 131 * DAY)
        stages = [(s["signal"], s["ts"]) for s in h.signals() if s["signal"].startswith("renew")]
        # Each at the first step past its mark: 120 days before is 10 days in.
        assert stages == [
            ("renewal_r120", to_iso(renewal - 120 * DAY + HOUR)),
            ("renewal_r90", to_iso(renewal - 90 * DAY + HOUR)),
            ("renewal_r60", to_iso(renewal - 60 * DAY + HOUR)),
            ("renewal_r30", to_iso(renewal - 30 * DAY + HOUR)),
            ("renewal_r14", to_iso(renewal - 14 * DAY + HOUR)),
            ("renewal_r0", to_iso(renewal + HOUR)),
        ]
        # A stage's task closes as the next begins; each carries the score and zone then.
        [r120] = opened(h, "renewal-r120")
        assert r120["evidence"]["zone"] and r120["evidence"]["score"] >= 0
        [closed] = [
            t for t in h.out["tasks"] if t["task_id"] == r120["task_id"] and t["status"] == "closed"
        ]
        assert closed["updated_at"] == to_iso(renewal - 90 * DAY)

    def test_a_silent_tenant_passes_its_stages(self) -> None:
        renewal = T0 + 80 * DAY
        h = run([contract(T0 + HOUR, renewal_date=date(renewal))], T0 + 81 * DAY)
        assert [s["signal"] for s in h.signals()] == [
            "renewal_r90",
            "renewal_r60",
            "renewal_r30",
            "renewal_r14",
            "renewal_r0",
        ]

    def test_a_tenant_first_seen_inside_a_stage_gets_that_stage_alone(self) -> None:
        renewal = T0 + 40 * DAY
        h = run([contract(T0 + HOUR, renewal_date=date(renewal))], T0 + 2 * DAY)
        assert [s["signal"] for s in h.signals()] == ["renewal_r60"]

    def test_just_outside_the_runway_nothing(self) -> None:
        h = run([contract(T0 + HOUR, renewal_date=date(T0 + 122 * DAY))], T0 + DAY)
        assert h.signals() == []

    def test_a_renewal_recorded_closes_the_stage_and_no_later_stage_comes(self) -> None:
        renewal = T0 + 100 * DAY
        later = renewal + 365 * DAY
        events = [
            contract(T0 + HOUR, renewal_date=date(renewal)),
            contract(T0 + 5 * DAY, renewal_date=date(later)),
        ]
        h = run(events, T0 + 60 * DAY)
        assert [s["signal"] for s in h.signals()] == ["renewal_r120"]
        [task] = opened(h, "renewal-r120")
        [closed] = [t for t in h.out["tasks"] if t["status"] == "closed"]
        assert closed["task_id"] == task["task_id"] and closed["version"] == 2
        assert closed["closed_reason"].startswith("the renewal moved past this stage")

    def test_a_contract_without_a_renewal_date_has_no_runway(self) -> None:
        h = run([contract(T0 + HOUR, seats=10)], T0 + 200 * DAY)
        assert [s for s in h.signals() if s["signal"].startswith("renewal")] == []


class TestSeatCap:
    USERS: ClassVar[list[str]] = [f"u{n}" for n in range(10)]

    @pytest.mark.parametrize(("users", "fires"), [(9, False), (10, True)])
    def test_above_90_percent_of_the_seats(self, users: int, fires: bool) -> None:
        events = [contract(T0 + HOUR, seats=10), *logins("acme", 1, self.USERS[:users])]
        h = run(events, T0 + 3 * DAY)
        assert bool(raised(h, "seat_cap")) == fires

    def test_a_tenant_that_never_sent_its_seats_has_no_cap(self) -> None:
        h = run(logins("acme", 1, self.USERS), T0 + 3 * DAY)
        assert raised(h, "seat_cap") == []


class TestSegmentRouting:
    """SMB tenants get an in-app nudge where the others get a CSM task."""

    @pytest.mark.parametrize(
        ("segment", "task", "channel"),
        [("smb", False, "in-app"), ("enterprise", True, None), ("mid_market", True, None)],
    )
    def test_seat_cap_by_segment(self, segment: str, task: bool, channel: str | None) -> None:
        users = [f"u{n}" for n in range(10)]
        events = [
            {**contract(T0 + HOUR, seats=10), "segment": segment},
            *({**e, "segment": segment} for e in logins("acme", 1, users)),
        ]
        h = run(events, T0 + 3 * DAY)
        assert bool(opened(h, "seat-cap")) == task
        channels = [n["channel"] for n in h.out["notifications"] if n["rule"].startswith("seat")]
        assert channels == ([channel] if channel else [])


class TestUsageGrowth:
    def weeks(self, before: int, after: int) -> list[dict[str, Any]]:
        """`before` sessions a day for 28 days, then `after` a day for 30: the tenant
        is 8 weeks old at the midnight after day 56."""
        return [
            event("acme", "user.session", T0 + day * DAY + HOUR + n * 60_000)
            for day in range(58)
            for n in range(before if day < 28 else after)
        ]

    @pytest.mark.parametrize(
        ("before", "after", "fires"),
        [
            (100, 110, False),  # 10% up: not above
            (100, 111, True),  # 11% up on 2,800 sessions: past noise
            (2, 3, False),  # 50% up on 56 sessions: noise (min_sigma)
        ],
    )
    def test_more_than_10_percent_on_the_4_weeks_before(
        self, before: int, after: int, fires: bool
    ) -> None:
        h = run(self.weeks(before, after), T0 + 58 * DAY)
        assert bool(raised(h, "usage_growth")) == fires

    def test_not_before_8_weeks_of_history(self) -> None:
        # 50% up from day 28, plain by day 40; the tenant is 8 weeks old on day 56.
        early = [e for e in self.weeks(20, 30) if e["ts"] < to_iso(T0 + 55 * DAY)]
        h = run(early, T0 + 56 * DAY)
        assert raised(h, "usage_growth") == []


class TestLowAdoption:
    FEATURES: ClassVar[list[str]] = [f"f{n}" for n in range(10)]

    def fleet(self, used: int, days: int = 62) -> Harness:
        """A tenant using all ten features and one using `used` of them, every day."""
        events = []
        for day in range(days):
            for tenant, features in (("all", self.FEATURES), ("acme", self.FEATURES[:used])):
                events += [
                    event(tenant, "feature.used", T0 + day * DAY + HOUR + n, {"feature": f})
                    for n, f in enumerate(features)
                ]
        return run(events, T0 + days * DAY + 2 * HOUR)

    @pytest.mark.parametrize(("used", "fires"), [(4, False), (3, True)])
    def test_fewer_than_40_percent_of_the_features_the_fleet_used(
        self, used: int, fires: bool
    ) -> None:
        h = self.fleet(used)
        assert bool(raised(h, "low_adoption")) == fires
        assert raised(h, "low_adoption", "all") == []

    def test_not_before_60_days(self) -> None:
        assert raised(self.fleet(1, days=59), "low_adoption") == []

    def test_the_features_may_be_a_list_instead(self) -> None:
        # Of the product's 10 features, 3 used and 5 pages outside the list: 30%.
        listed = Settings.model_validate(
            {"measures": {"feature_share_30d": {"of_fleet": None, "share_of": self.FEATURES}}}
        )
        used = [*self.FEATURES[:3], *(f"page-{n}" for n in range(5))]
        events = [
            event("acme", "feature.used", T0 + day * DAY + HOUR + n, {"feature": feature})
            for day in range(62)
            for n, feature in enumerate(used)
        ]
        h = Harness(listed).feed([*events, clock(T0 + 62 * DAY + 2 * HOUR)])
        [found] = raised(h, "low_adoption")
        assert found["value"] == 0.3

    def test_the_features_are_the_whole_fleets_whatever_shard_used_them(self) -> None:
        # "all" and "acme" on different shards, as the dataflow splits them: acme's shard
        # learns the features "all" used from the splitter's notes.
        settings = Settings()
        splitter = ShardSplitter(settings.engine.shards, Event, Tick)
        assert splitter.shard_of("all") != splitter.shard_of("acme")
        engines = {key: ShardEngine(settings, RULES) for key in shard_keys(settings)}
        intake = Intake("test", "p0", 1, settings.input.allowed_lateness)
        split = _splitter(settings)
        signals = []
        for day in range(62):
            chunk: list[Any] = []
            for tenant, features in (("all", self.FEATURES), ("acme", self.FEATURES[:3])):
                for n, feature in enumerate(features):
                    at = T0 + day * DAY + HOUR + n
                    raw = orjson.dumps(event(tenant, "feature.used", at, {"feature": feature}))
                    chunk.append(intake.take(raw, {"line": day}))
            chunk.append(intake.tick())
            for key, items in split(chunk):
                signals += [r for s, r in engines[key].process(items) if s == "signals"]
        found = [s for s in signals if s["signal"] == "low_adoption"]
        assert [s["tenant_id"] for s in found] == ["acme"]
        assert found[0]["value"] == 0.3  # 3 of the 10 features the fleet used


class TestSingleUser:
    @pytest.mark.parametrize(
        ("users", "fires"),
        [
            (["a"] * 8 + ["b", "c"], False),  # 80%: not above
            (["a"] * 17 + ["b", "c", "d"], True),  # 85%
            (["a"] * 18 + ["b", "b"], False),  # 90%, but only 2 users seen
        ],
    )
    def test_one_user_above_80_percent_of_sessions(self, users: list[str], fires: bool) -> None:
        h = run(logins("acme", 1, users), T0 + 3 * DAY)
        assert bool(raised(h, "single_user")) == fires


class TestSupportVolume:
    def tickets(self, week: int, count: int) -> list[dict[str, Any]]:
        return [
            event(
                "acme",
                "ticket.created",
                T0 + week * 7 * DAY + n * HOUR + HOUR,
                {
                    "ticket_id": f"t{week}-{n}",
                    "priority": "P3",
                },
            )
            for n in range(count)
        ]

    @pytest.mark.parametrize(("first", "second", "fires"), [(6, 6, True), (6, 5, False)])
    def test_more_than_5_a_week_two_weeks_running(
        self, first: int, second: int, fires: bool
    ) -> None:
        h = run([*self.tickets(0, first), *self.tickets(1, second)], T0 + 15 * DAY)
        found = raised(h, "support_volume")
        assert bool(found) == fires
        if fires:
            assert found[0]["ts"] == to_iso(T0 + 14 * DAY)  # the second week closed


class TestUnresolvedP1:
    def ticket(self, priority: str) -> dict[str, Any]:
        return event("acme", "ticket.created", T0 + HOUR, {"ticket_id": "k", "priority": priority})

    def test_a_p1_open_more_than_14_days_even_when_the_tenant_is_silent(self) -> None:
        # The watermark at 14 days to the minute: not more than 14 days open yet.
        assert raised(run([self.ticket("P1")], T0 + 14 * DAY + 2 * HOUR), "p1_unresolved") == []
        [found] = raised(run([self.ticket("P1")], T0 + 16 * DAY), "p1_unresolved")
        assert found["ts"] == to_iso(T0 + 14 * DAY + 2 * HOUR)  # the first step past 14 days

    def test_a_p1_resolved_in_time_or_a_p2_never(self) -> None:
        resolved = event("acme", "ticket.resolved", T0 + 13 * DAY, {"ticket_id": "k"})
        assert raised(run([self.ticket("P1"), resolved], T0 + 20 * DAY), "p1_unresolved") == []
        assert raised(run([self.ticket("P2")], T0 + 20 * DAY), "p1_unresolved") == []


class TestSponsor:
    @pytest.mark.parametrize(("status", "fires"), [("departed", True), ("active", False)])
    def test_a_departed_sponsor(self, status: str, fires: bool) -> None:
        h = run([event("acme", "sponsor.changed", T0 + HOUR, {"status": status})], T0 + DAY)
        assert bool(raised(h, "sponsor_departed")) == fires
        assert bool(opened(h, "sponsor-departed")) == fires


class TestUnpaidInvoice:
    def invoice(self, at: int, status: str) -> dict[str, Any]:
        return event("acme", "billing.invoice", at, {"invoice_id": "i1", "status": status})

    def test_unpaid_more_than_7_days_after_it_went_overdue(self) -> None:
        events = [self.invoice(T0 + HOUR, "issued"), self.invoice(T0 + DAY + HOUR, "overdue")]
        assert raised(run(events, T0 + 8 * DAY + HOUR), "invoice_unpaid") == []
        [found] = raised(run(events, T0 + 9 * DAY), "invoice_unpaid")
        assert found["ts"] == to_iso(T0 + 8 * DAY + 2 * HOUR)

    def test_failed_after_overdue_counts_from_the_first_of_them(self) -> None:
        events = [self.invoice(T0 + HOUR, "overdue"), self.invoice(T0 + 5 * DAY, "failed")]
        [found] = raised(run(events, T0 + 9 * DAY), "invoice_unpaid")
        assert found["ts"] == to_iso(T0 + 7 * DAY + 2 * HOUR)

    def test_paid_within_7_days_never(self) -> None:
        events = [self.invoice(T0 + HOUR, "overdue"), self.invoice(T0 + 6 * DAY, "paid")]
        assert raised(run(events, T0 + 20 * DAY), "invoice_unpaid") == []


class TestNps:
    def responses(self, *scores: float) -> list[dict[str, Any]]:
        return [
            event("acme", "survey.response", T0 + (n + 1) * DAY, {"kind": "nps", "score": s})
            for n, s in enumerate(scores)
        ]

    @pytest.mark.parametrize(
        ("scores", "drop", "detractor"),
        [
            ((9, 7), False, False),  # 20 points down: not more than 20
            ((10, 7.5), True, False),  # 25 points down
            ((9, 6), True, True),
            ((6,), False, True),  # a first response can only be a detractor
        ],
    )
    def test_a_drop_of_more_than_20_points_or_a_detractor(
        self, scores: tuple[float, ...], drop: bool, detractor: bool
    ) -> None:
        h = run(self.responses(*scores), T0 + 5 * DAY)
        assert bool(raised(h, "nps_drop")) == drop
        assert bool(raised(h, "nps_detractor")) == detractor
        assert len(opened(h, "nps-drop")) == int(drop or detractor)  # one task for both


class TestIntegrationErrors:
    @pytest.mark.parametrize(("days", "fires"), [(2, False), (3, True)])
    def test_an_integration_in_error_on_3_days_of_7(self, days: int, fires: bool) -> None:
        events = [
            event(
                "acme",
                "integration.state",
                T0 + d * DAY + HOUR,
                {
                    "integration": "crm",
                    "state": "error",
                },
            )
            for d in range(days)
        ]
        events.append(
            event(
                "acme", "integration.state", T0 + 3 * HOUR, {"integration": "crm", "state": "error"}
            )
        )  # a second report on a day counts that day once
        h = run(events, T0 + 5 * DAY)
        assert bool(raised(h, "integration_errors")) == fires


class TestDowngrade:
    @pytest.mark.parametrize(
        ("after", "signal"),
        [
            ({"seats": 10, "arr": 12000.0}, None),
            ({"seats": 9, "arr": 12000.0}, "seats_cut"),
            ({"seats": 10, "arr": 11000.0}, "arr_cut"),
        ],
    )
    def test_fewer_seats_or_a_lower_arr(self, after: dict[str, Any], signal: str | None) -> None:
        events = [contract(T0 + HOUR, seats=10, arr=12000.0), contract(T0 + DAY, **after)]
        h = run(events, T0 + 3 * DAY)
        cuts = [s["signal"] for s in h.signals() if s["signal"] in ("seats_cut", "arr_cut")]
        assert cuts == ([signal] if signal else [])
        if signal:
            [task] = opened(h, "downgrade")
            assert (task["owner_role"], task["priority"]) == ("head_of_cs", "critical")
