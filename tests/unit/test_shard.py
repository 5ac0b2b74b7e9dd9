"""Event-time behaviour of one shard, fed through the real intake (watermark, decoding)."""

from __future__ import annotations

import itertools
import random
from typing import Any

import orjson
import pytest
from support import (
    DAY,
    HOUR,
    T0,
    Harness,
    Partitions,
    clock,
    event,
    half_drop,
    restored,
    sessions,
    trouble,
)

from vigil.base.ids import health_id, stable_id
from vigil.base.timeutil import parse_rfc3339, to_iso
from vigil.config.settings import Settings
from vigil.engine.shard import ShardEngine
from vigil.engine.snapshots import SnapshotWriter, load_state
from vigil.ops.metrics import Metrics

WEEK = 7 * DAY


def weeks(tenant: str, per_week: list[int]) -> list[dict[str, Any]]:
    """`per_week[k]` sessions spread over week k (weeks start on Monday T0)."""
    out: list[dict[str, Any]] = []
    for k, count in enumerate(per_week):
        if count:
            out += sessions(tenant, T0 + k * WEEK + HOUR, count, spacing=(6 * DAY) // count)
    return out


def by_time(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(events, key=lambda e: e["ts"])


class TestLoginDrop:
    def test_fires_when_the_watermark_passes_the_window_end(self) -> None:
        h = Harness(half_drop()).feed(by_time(weeks("acme", [20, 8])))
        h.feed([clock(T0 + 2 * WEEK + HOUR - 1)])  # watermark one ms short of the end
        assert h.signals("login_drop") == []
        h.feed([clock(T0 + 2 * WEEK + HOUR)])
        [signal] = h.signals("login_drop")
        assert signal["window_start"] == to_iso(T0 + WEEK)
        assert signal["window_end"] == to_iso(T0 + 2 * WEEK)
        assert (signal["value"], signal["baseline"], signal["threshold"]) == (0.4, 20, 0.5)
        assert (signal["evidence"]["measured"], signal["evidence"]["previous"]) == (8, 20)

    def test_a_silent_tenant_drops_to_zero_and_still_signals(self) -> None:
        h = Harness(half_drop()).feed(by_time([*weeks("acme", [15]), clock(T0 + 2 * WEEK + HOUR)]))
        [signal] = h.signals("login_drop")
        assert (signal["tenant_id"], signal["value"], signal["severity"]) == ("acme", 0.0, "high")

    def test_exactly_half_and_a_small_baseline_do_not_signal(self) -> None:
        events = weeks("half", [20, 10]) + weeks("small", [9, 0])
        h = Harness(half_drop()).feed([*by_time(events), clock(T0 + 2 * WEEK + HOUR)])
        assert h.signals("login_drop") == []

    def test_a_resent_event_is_counted_once(self) -> None:
        week0 = weeks("acme", [20])
        week1 = weeks("acme", [0, 9])
        resent = [dict(e) for e in week1]  # same event_id, sent again
        h = Harness(half_drop()).feed(
            [*by_time(week0 + week1 + resent), clock(T0 + 2 * WEEK + HOUR)]
        )
        [signal] = h.signals("login_drop")
        assert signal["evidence"]["measured"] == 9
        assert h.engine.counts["duplicates"] == 9

    def test_an_event_id_another_tenant_used_is_not_a_repeat(self) -> None:
        # Producers that number events per tenant reuse ids across tenants; a repeat is
        # the same event resent, so of the same tenant. Before, beta's events with acme's
        # ids were dropped as duplicates wherever the two shared a shard.
        acme, beta = weeks("acme", [20, 20]), weeks("beta", [20, 20])
        for n, (a, b) in enumerate(zip(acme, beta, strict=True)):
            a["event_id"] = b["event_id"] = f"n{n}"
        resent = [dict(e) for e in beta[-5:]]
        h = Harness(half_drop()).feed(
            [*by_time(acme + beta + resent), clock(T0 + 2 * WEEK + 2 * HOUR)]
        )
        assert h.engine.counts["duplicates"] == 5
        last = {r["tenant_id"]: r for r in h.out["health"]}
        for tenant in ("acme", "beta"):  # two weeks of 20, in the last 30 days
            assert last[tenant]["components"]["login_activity"]["value"] == 40


class TestOneInstant:
    """Events of one instant are applied in their item's order of life whatever their
    ids: a producer stamping seconds often gives a ticket's creation and resolution the
    same time."""

    def test_a_ticket_created_and_resolved_in_the_same_second_is_closed(self) -> None:
        at = T0 + HOUR
        events = [
            event("acme", "user.session", T0),
            event("acme", "ticket.created", at, {"ticket_id": "k", "priority": "P1"}, event_id="b"),
            event("acme", "ticket.resolved", at, {"ticket_id": "k"}, event_id="a"),
            clock(T0 + 4 * HOUR),
        ]
        h = Harness(half_drop()).feed(events)
        assert restored(h.engine).tenants["acme"].measured["open_tickets"][1] == {}

    def test_an_id_seen_again_is_a_repeat_whatever_its_place_in_life(self) -> None:
        # The order of one instant must not make two events of one id: a repeat is
        # known by its tenant and id alone.
        at = T0 + HOUR
        events = [
            event("acme", "ticket.created", at, {"ticket_id": "k", "priority": "P1"}, event_id="x"),
            event("acme", "ticket.resolved", at + 1, {"ticket_id": "k"}, event_id="x"),
            clock(T0 + 4 * HOUR),
        ]
        h = Harness(half_drop()).feed(events)
        assert h.engine.counts["duplicates"] == 1
        assert restored(h.engine).tenants["acme"].measured["open_tickets"][1] == {"k": "P1"}

    @pytest.mark.parametrize(
        ("statuses", "unpaid"),
        [(("paid", "overdue"), {}), (("overdue", "issued"), {"inv": "overdue"})],
    )
    def test_an_invoice_ends_in_its_last_status_of_the_same_second(
        self, statuses: tuple[str, str], unpaid: dict[str, str]
    ) -> None:
        # ids in the reverse of the life order: "a" for the later status
        at = T0 + HOUR
        late, early = statuses
        events = [
            event(
                "acme", "billing.invoice", at, {"invoice_id": "inv", "status": late}, event_id="a"
            ),
            event(
                "acme", "billing.invoice", at, {"invoice_id": "inv", "status": early}, event_id="b"
            ),
            clock(T0 + 4 * HOUR),
        ]
        tenant = restored(Harness(half_drop()).feed(events).engine).tenants["acme"]
        assert tenant.measured["unpaid_invoices"][1] == unpaid


class TestLateness:
    def test_out_of_order_within_lateness_gives_the_same_outputs(self) -> None:
        events = by_time(weeks("acme", [20, 6]) + weeks("beta", [30, 30]))
        shuffled = _shuffle_within(events, 30 * 60 * 1000, seed=1)
        assert shuffled != events
        tail = [clock(T0 + 2 * WEEK + 2 * HOUR)]
        in_order = Harness(half_drop()).feed(events + tail)
        out_of_order = Harness(half_drop()).feed(shuffled + tail)
        assert in_order.out == out_of_order.out
        assert len(in_order.signals("login_drop")) == 1

    def test_an_event_older_than_the_watermark_is_a_late_dead_letter(self) -> None:
        h = Harness(half_drop()).feed([event("acme", "user.session", T0 + 3 * HOUR)])
        late = event("acme", "user.session", T0 + 3 * HOUR - HOUR - 1)
        ok = event("acme", "user.session", T0 + 3 * HOUR - HOUR)  # exactly at the watermark
        h.feed([late, ok])
        [letter] = h.out["deadletter"]
        assert letter["reason"] == "late" and late["event_id"] in letter["raw"]
        assert letter["position"] == {"line": 2}
        assert h.engine.counts["late"] == 1

    def test_batching_does_not_change_outputs(self) -> None:
        events = by_time(weeks("acme", [20, 6]) + weeks("beta", [25, 25, 3]))
        events.append(clock(T0 + 3 * WEEK + HOUR))
        runs = [Harness(half_drop()).feed(events, batch_size=size).out for size in (1, 7, 1000)]
        assert runs[0] == runs[1] == runs[2]
        assert len(runs[0]["signals"]) == 2

    def test_how_partitions_interleave_does_not_change_outputs(self) -> None:
        # Three partitions, each read in order; which partition's batch reaches the shard
        # first is up to the network. Each starts with events of no tenant (they move the
        # watermark only) and its tenants start at a different hour, so the shard's first
        # step must come from the data, not from whichever batch arrived first.
        tenants = {"p0": ["acme", "beta"], "p1": ["gamma"], "p2": ["delta", "omega"]}
        streams = {
            name: [
                *(clock(T0 + n * 10 * 60 * 1000) for n in range(4)),
                *by_time(
                    [
                        {**e, "ts": to_iso(parse_rfc3339(e["ts"]) + index * 3 * HOUR)}
                        for t in owned
                        for e in weeks(t, [12, 0, 9])
                    ]
                ),
                clock(T0 + 4 * WEEK),
            ]
            for index, (name, owned) in enumerate(tenants.items())
        }
        runs = [
            _interleaved(streams, seed=seed, batch_size=size)
            for seed, size in ((0, 5), (1, 2), (2, 3), (3, 1000), (4, 7), (5, 4))
        ]
        assert all(run == runs[0] for run in runs[1:])
        assert runs[0]["health"] and runs[0]["signals"]

    def test_with_days_of_lateness_the_clock_starts_from_the_data_across_a_restore(
        self,
    ) -> None:
        # With a long allowed lateness the queue holds days of events before the shard's
        # clock starts: the earliest of them sets it, in whatever order they arrive, and
        # after a restore from a snapshot taken while they were still queued.

        settings = half_drop().model_copy(
            update={"input": Settings.model_validate({"input": {"allowed_lateness": "2d"}}).input}
        )
        earliest = event("gamma", "user.session", T0)  # an hour before all the others
        events = by_time([earliest, *weeks("acme", [20, 6]), *weeks("beta", [30, 30])])
        shuffled = _shuffle_within(events[1:], 20 * HOUR, seed=2)  # up to 20 h late: on time
        shuffled.insert(5, earliest)  # in the second batch of three, not the first
        tail = [clock(T0 + 2 * WEEK + 3 * DAY)]
        in_order = Harness(settings).feed(events + tail, batch_size=3)
        assert Harness(settings).feed(shuffled + tail, batch_size=3).out == in_order.out
        cut = next(i for i, e in enumerate(shuffled) if parse_rfc3339(e["ts"]) > T0 + DAY)
        assert cut > 6
        first = Harness(settings).feed(shuffled[:cut], batch_size=3)
        queueing = restored(first.engine)
        assert queueing.next_step is None and queueing.pending
        snapshot = SnapshotWriter(first.engine).snapshot()
        first.engine = ShardEngine(settings, first.rules, load_state(snapshot))
        first.feed(shuffled[cut:] + tail, batch_size=3)
        assert first.out == in_order.out
        assert in_order.out["health"] and in_order.signals("login_drop")

    def test_an_idle_partition_stops_holding_time_and_its_old_events_come_late(self) -> None:
        shard = Partitions(["busy", "sleepy"])
        shard.read("sleepy", [event("beta", "user.session", T0 + HOUR)])
        shard.read("busy", sessions("acme", T0 + HOUR, 24))
        assert restored(shard.engine).watermark == T0  # held back by the sleepy partition
        shard.read("sleepy", [], idle=True)
        assert restored(shard.engine).watermark == T0 + 23 * HOUR  # only the busy one counts
        out = shard.read("sleepy", [event("beta", "user.session", T0 + 2 * HOUR)])
        [letter] = [record for stream, record in out if stream == "deadletter"]
        assert letter["reason"] == "late"
        assert shard.engine.counts["late"] == 1


def _interleaved(
    streams: dict[str, list[dict[str, Any]]], seed: int, batch_size: int
) -> dict[str, list[bytes]]:
    """Feed each partition's stream in batches through its own intake into one shard,
    picking the next partition at random; outputs per stream, sorted."""
    rng = random.Random(seed)
    shard = Partitions(streams)
    left = {name: list(events) for name, events in streams.items()}
    out: dict[str, list[bytes]] = {}
    while left:
        name = rng.choice(sorted(left))
        batch, left[name] = left[name][:batch_size], left[name][batch_size:]
        if not left[name]:
            del left[name]
        for stream, record in shard.read(name, batch):
            out.setdefault(stream, []).append(orjson.dumps(record, option=orjson.OPT_SORT_KEYS))
    return {stream: sorted(records) for stream, records in out.items()}


def _shuffle_within(events: list[dict[str, Any]], spread: int, seed: int) -> list[dict[str, Any]]:
    """Delay a third of the events by up to `spread`: arrival order != event-time order."""
    rng = random.Random(seed)

    def arrival(e: dict[str, Any]) -> int:
        delay = rng.randrange(spread) if rng.random() < 0.33 else 0
        return parse_rfc3339(e["ts"]) + delay

    return [e for _, e in sorted(((arrival(e), e) for e in events), key=lambda pair: pair[0])]


class TestOnboardingStall:
    def start(self) -> list[dict[str, Any]]:
        return [
            event("newco", "onboarding.started", T0 + HOUR),
            event("newco", "onboarding.step_completed", T0 + 5 * HOUR, {"step": "sso_live"}),
        ]

    def test_a_silent_tenant_stalls_at_the_first_step_past_its_deadline(self) -> None:
        deadline = T0 + 5 * HOUR + 72 * HOUR
        h = Harness().feed([*self.start(), clock(deadline + 2 * HOUR - 1)])  # a ms short
        assert h.signals("onboarding_stalled") == []
        h.feed([clock(deadline + 2 * HOUR)])  # the watermark reaches the step after it
        [signal] = h.signals("onboarding_stalled")
        assert signal["window_start"] == to_iso(T0 + 5 * HOUR)
        assert signal["window_end"] == to_iso(deadline)
        assert signal["evidence"]["steps_completed"] == 1
        h.feed([clock(deadline + 10 * DAY)])
        assert len(h.signals("onboarding_stalled")) == 1  # once per stall

    def test_a_silent_tenant_loses_its_onboarding_points_at_the_step_after_the_stall(
        self,
    ) -> None:
        deadline = T0 + 5 * HOUR + 72 * HOUR  # the stall fires 1 ms after it
        h = Harness().feed([*self.start(), clock(deadline + 3 * HOUR)])
        last = [r for r in h.out["health"] if r["tenant_id"] == "newco"][-1]
        assert last["ts"] == to_iso(deadline + HOUR)  # not at the next midnight
        onboarding = last["components"]["onboarding"]
        assert onboarding["points"] == pytest.approx(onboarding["weight"] / 5 * 0.5, abs=0.01)
        assert "onboarding 1 of 5 steps done, stalled: no progress for 73 h" in last["reasons"][0]

    def test_progress_resets_the_clock_and_completion_stops_it(self) -> None:
        progress = event("newco", "recipe.completed", T0 + 70 * HOUR, {"recipe": "r1"})
        h = Harness().feed([*self.start(), progress, clock(T0 + 5 * HOUR + 72 * HOUR + 2 * HOUR)])
        assert h.signals("onboarding_stalled") == []
        h.feed([clock(T0 + 70 * HOUR + 72 * HOUR + 2 * HOUR)])
        assert len(h.signals("onboarding_stalled")) == 1

        done = Harness().feed(
            [*self.start(), event("newco", "onboarding.completed", T0 + 6 * HOUR)]
        )
        done.feed([clock(T0 + 30 * DAY)])
        assert done.signals("onboarding_stalled") == []

    def test_the_stall_creates_a_task_due_in_48_hours(self) -> None:
        h = Harness().feed([*self.start(), clock(T0 + 5 * DAY)])
        [task] = [t for t in h.out["tasks"] if t["rule"] == "onboarding-stalled"]
        assert task["created_at"] == to_iso(T0 + 77 * HOUR)
        assert task["due_at"] == to_iso(T0 + 77 * HOUR + 48 * HOUR)
        assert task["owner_role"] == "csm" and "newco" in task["title"]


class TestErrorSpike:
    def errors(self, tenant: str, at: int, count: int) -> list[dict[str, Any]]:
        return [
            event(tenant, "error.raised", at + n * 1000, {"severity": "high"}) for n in range(count)
        ]

    def test_spike_after_enough_history(self) -> None:
        background = [event("acme", "user.session", T0 + n * HOUR) for n in range(48)]
        background += self.errors("acme", T0 + 10 * HOUR, 1)
        burst = self.errors("acme", T0 + 40 * HOUR, 12)
        h = Harness().feed([*by_time(background + burst), clock(T0 + 42 * HOUR)])
        [signal] = h.signals("error_spike")
        assert signal["value"] == 12 and signal["window_end"] == to_iso(T0 + 41 * HOUR)
        assert signal["evidence"]["history_windows"] == 40
        assert signal["severity"] == "high"  # 12 >= 3 x the floor threshold of 4

    def test_too_little_history_or_under_the_floor_is_silent(self) -> None:
        young = by_time(
            [event("young", "user.session", T0), *self.errors("young", T0 + 10 * HOUR, 30)]
        )
        floor = by_time(
            [event("floor", "user.session", T0), *self.errors("floor", T0 + 40 * HOUR, 4)]
        )
        h = Harness().feed(young + floor + [clock(T0 + 3 * DAY)])
        assert h.signals("error_spike") == []

    def test_a_window_that_does_not_divide_the_history_reads_whole_windows(self) -> None:
        # 5 h windows over 7 days of history: the history is the 33 whole windows in it.
        # (Counting back 7 days from a window start once landed between windows, so the
        # history read as all zeros and a steady tenant spiked in every window.)
        settings = Settings.model_validate({"measures": {"hourly_errors": {"window": "5h"}}})
        steady = [e for hour in range(9 * 24) for e in self.errors("acme", T0 + hour * HOUR, 2)]
        burst = self.errors("acme", T0 + 9 * DAY + 9 * HOUR, 30)  # a 5 h window starts then
        h = Harness(settings).feed([*steady, *burst, clock(T0 + 10 * DAY)])
        [signal] = h.signals("error_spike")
        assert signal["window_start"] == to_iso(T0 + 9 * DAY + 9 * HOUR)
        assert signal["evidence"]["history_windows"] == 33
        assert signal["evidence"]["percentile_value"] == 10.0  # 2 errors an hour, 5 hours


class TestHealthOverTime:
    def test_a_silent_tenant_loses_points_without_sending_anything(self) -> None:
        h = Harness().feed([*by_time(weeks("acme", [25])), clock(T0 + 6 * WEEK)])
        scores = [r["score"] for r in h.out["health"] if r["tenant_id"] == "acme"]
        assert scores[-1] < scores[0]
        last = [r for r in h.out["health"] if r["tenant_id"] == "acme"][-1]
        assert last["components"]["login_activity"]["value"] == 0
        assert any("0 sessions in the last 30 days" in reason for reason in last["reasons"])

    def test_a_tenant_that_stopped_logging_in_scores_zero_for_its_trend(self) -> None:
        # Two weeks later the 7 days before hold nothing either: still zero, not "no data"
        # (whose weight would go to the other components and raise the score).
        h = Harness().feed([*by_time(weeks("acme", [25])), clock(T0 + 4 * WEEK)])
        last = [r for r in h.out["health"] if r["tenant_id"] == "acme"][-1]
        trend = last["components"]["login_trend"]
        assert trend["value"] == 0.0 and trend["weight"] > 0 and trend["points"] == 0.0
        assert any(r.startswith("sessions down 100% on the 7 days before") for r in last["reasons"])

    def test_errors_leaving_the_24_hours_raise_no_silent_tenants_score(self) -> None:
        errors = [event("acme", "error.raised", T0 + 10 * HOUR + n * 1000) for n in range(30)]
        h = Harness().feed([event("acme", "user.session", T0), *errors, clock(T0 + 2 * DAY)])
        records = [r for r in h.out["health"] if r["tenant_id"] == "acme"]
        scores = [r["score"] for r in records if r["ts"] > to_iso(T0 + 11 * HOUR)]
        assert scores == sorted(scores, reverse=True)
        assert records[-1]["components"]["error_pressure"]["value"] == 30  # as last heard

    def test_a_tenant_heard_again_is_measured_afresh_at_once(self) -> None:
        errors = [event("acme", "error.raised", T0 + 10 * HOUR + n * 1000) for n in range(30)]
        back = event("acme", "user.session", T0 + DAY + 11 * HOUR + 1)
        h = Harness().feed([event("acme", "user.session", T0), *errors, back, clock(T0 + 2 * DAY)])
        records = [r for r in h.out["health"] if r["tenant_id"] == "acme"]
        # At 11:00 the next day the last 24 h no longer hold 10:00-11:00; it came back then.
        [back_at] = [r for r in records if r["ts"] == to_iso(T0 + DAY + 12 * HOUR)]
        assert back_at["components"]["error_pressure"]["value"] == 0

    def test_records_only_when_the_rounded_score_or_zone_changes(self) -> None:
        h = Harness().feed([*by_time(weeks("steady", [30, 30, 30])), clock(T0 + 3 * WEEK)])
        records = [r for r in h.out["health"] if r["tenant_id"] == "steady"]
        pairs = [(r["score"], r["zone"]) for r in records]
        assert all(a != b for a, b in itertools.pairwise(pairs))


class TestWarmup:
    def test_a_tenant_red_all_through_its_warmup_is_announced_when_it_ends(self) -> None:
        warm = T0 + HOUR + 7 * DAY  # its first event, plus health.warmup
        h = Harness().feed([*trouble("newco", T0 + HOUR), clock(warm)])  # watermark < warm
        assert [r["zone"] for r in h.out["health"]] == ["red"]
        assert h.out["tasks"] == []  # a new account is not flagged for its first week
        h.feed([clock(warm + 2 * HOUR)])
        # Its score never moved again, and it is still red (its invoice, failed a week
        # before, is a task of its own).
        [task] = [t for t in h.out["tasks"] if t["rule"] == "entered-red"]
        assert task["created_at"] == to_iso(warm)
        assert task["evidence"]["from_zone"] == "none" and task["evidence"]["score"] == 0
        assert len(h.out["health"]) == 1
        # Its one record says it is warming up; the task, made as that ends, does not.
        assert h.out["health"][0]["reasons"][-1].startswith("new account, warming up until")
        assert task["evidence"]["reasons"] and "warming" not in task["evidence"]["reasons"]
        assert "warming" not in task["description"]

    def test_a_tenant_red_only_during_its_warmup_gets_no_task(self) -> None:
        # Red on day 1, the tickets resolved on day 3: green when the warm-up ends.
        resolved = [
            event("newco", "ticket.resolved", T0 + 3 * DAY + n, {"ticket_id": f"k{n}"})
            for n in (1, 2)
        ]
        paid = event(
            "newco", "billing.invoice", T0 + 3 * DAY, {"invoice_id": "i1", "status": "paid"}
        )
        used = sessions("newco", T0 + 2 * HOUR, 9, DAY)  # active: its absences earn points
        stream = sorted(
            [*trouble("newco", T0 + HOUR), paid, *resolved, *used], key=lambda e: e["ts"]
        )
        h = Harness().feed([*stream, clock(T0 + 9 * DAY)])
        assert [r["zone"] for r in h.out["health"]][-1] == "green"
        assert h.engine.counts["fact:zone_change"] == 1  # green, when the warm-up ended
        assert h.out["tasks"] == [] and h.out["notifications"] == []


def sharp_fall(tenant: str, days: int = 14) -> list[dict[str, Any]]:
    """`days` healthy days (a session an hour, two of six features a day), then in one
    morning three P1 tickets, a failed invoice and a departed sponsor, and four more days
    of sessions."""
    healthy = sessions(tenant, T0 + HOUR, days * 24 - 1, spacing=HOUR)
    healthy += [
        event(
            tenant,
            "feature.used",
            T0 + d * DAY + (2 + n) * HOUR,
            {"feature": f"f{(2 * d + n) % 6}"},
        )
        for d in range(days)
        for n in range(2)
    ]
    bad = T0 + days * DAY + HOUR
    trouble = [
        event(tenant, "ticket.created", bad + n * HOUR, {"ticket_id": f"t{n}", "priority": "P1"})
        for n in range(3)
    ]
    trouble += [
        event(tenant, "billing.invoice", bad, {"invoice_id": "i1", "status": "failed"}),
        event(tenant, "sponsor.changed", bad + HOUR, {"status": "departed"}),
    ]
    after = sessions(tenant, bad + 3 * HOUR, 4 * 24, spacing=HOUR)
    return [*by_time(healthy + trouble + after), clock(bad + 6 * DAY)]


def test_a_health_record_is_named_by_its_tenant_time_score_and_zone() -> None:
    h = Harness().feed(sharp_fall("acme"))
    ids = [r["health_id"] for r in h.out["health"]]
    assert len(set(ids)) == len(ids) > 10
    for record in h.out["health"]:
        assert next(iter(record)) == "health_id"
        parts = (record["tenant_id"], record["ts"], record["score"], record["zone"])
        assert record["health_id"] == health_id(*parts) == stable_id("health", *parts)


class TestScoreDrop:
    def test_a_sharp_fall_within_a_week_notifies_once(self) -> None:
        h = Harness().feed(sharp_fall("acme"))
        [drop] = [n for n in h.out["notifications"] if n["rule"] == "score-drop"]
        fact = drop["evidence"]
        assert fact["peak_score"] == max(r["score"] for r in h.out["health"]) == 100
        assert fact["drop_pct"] >= Settings().health.drop_pct
        assert fact["score"] == fact["peak_score"] - fact["drop_points"]
        assert fact["drop_pct"] == round(fact["drop_points"] / fact["peak_score"] * 100, 1)
        assert drop["title"] == f"acme: health down {fact['drop_points']} points to {fact['score']}"

    def test_a_fall_from_a_score_flat_for_longer_than_the_window_notifies(self) -> None:
        # A score is recorded when it changes: flat at 100 from its fifth day, its last
        # record is older than the 7-day window when it falls on the fourteenth.
        h = Harness().feed(sharp_fall("acme", days=13))
        fall = T0 + 13 * DAY + HOUR
        steady = [r for r in h.out["health"] if parse_rfc3339(r["ts"]) < fall]
        assert parse_rfc3339(steady[-1]["ts"]) < fall - 7 * DAY and steady[-1]["score"] == 100
        [drop] = [n for n in h.out["notifications"] if n["rule"] == "score-drop"]
        assert drop["evidence"]["peak_score"] == 100

    def test_the_score_history_keeps_only_what_can_still_be_a_peak(self) -> None:
        h = Harness().feed(sharp_fall("acme"))  # its score wobbles for days after the fall
        assert len(h.out["health"]) > 10
        recent = restored(h.engine).tenants["acme"].recent_scores
        assert all(earlier[1] > later[1] for earlier, later in itertools.pairwise(recent))


class TestBoundedMemory:
    def test_event_ids_are_forgotten_after_the_retention(self) -> None:
        settings = Settings.model_validate({"engine": {"dedup_retention": "2d"}})
        h = Harness(settings)
        for day in range(10):
            h.feed(sessions("acme", T0 + day * DAY, 24))
        assert h.engine.counts["duplicates"] == 0
        assert len(restored(h.engine).seen) <= 24 * 4  # about retention + a day, not all 240

    def test_features_outside_the_adoption_lookback_are_forgotten(self) -> None:
        # A new feature name every day for 60 days (say, names with an id in them).
        used = [
            event("acme", "feature.used", T0 + day * DAY + HOUR, {"feature": f"report-{day}"})
            for day in range(60)
        ]
        h = Harness().feed([*used, clock(T0 + 60 * DAY + 2 * HOUR)])
        tenant = restored(h.engine).tenants["acme"]
        _, features = tenant.measured["features_30d"]
        assert sorted(features) == sorted(f"report-{day}" for day in range(30, 60))
        # Measured at the last midnight: the features of the 30-day window, all still there.
        assert tenant.components["adoption"][1] == (30, 1.0)

    def test_keys_past_the_limit_are_counted_each_and_logged_twice_a_day(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Ten new feature names an hour for two days from each of two tenants (a producer
        # bug is rarely one tenant's), against a limit of 20.
        used = [
            event(tenant, "feature.used", T0 + hour * HOUR + n, {"feature": f"page-{hour}-{n}"})
            for hour in range(48)
            for tenant in ("acme", "beta")
            for n in range(10)
        ]
        settings = Settings.model_validate({"engine": {"max_keys_per_tenant": 20}})
        with caplog.at_level("WARNING", logger="vigil.engine"):
            h = Harness(settings).feed([*used, clock(T0 + 48 * HOUR + 2 * HOUR)])
        assert h.engine.counts["keys_refused:measures.features_30d"] == 2 * (480 - 20)
        said = [(r.getMessage(), vars(r)) for r in caplog.records]
        examples = [facts for text, facts in said if "new ones are not kept" in text]
        # (the share of the features keeps its own keys: refused alike)
        assert [(f["map"], f["limit"], f["refused"]) for f in examples] == [
            ("measures.features_30d", 20, "page-2-0"),
            ("measures.feature_share_30d", 20, "page-2-0"),
            ("measures.features_30d", 20, "page-24-0"),  # the next day's first
            ("measures.feature_share_30d", 20, "page-24-0"),
        ]
        daily = [facts for text, facts in said if "in the day before" in text]
        assert [(f["map"], f["tenants"], f["first"], f["until"]) for f in daily] == [
            ("measures.feature_share_30d", 2, ["acme", "beta"], to_iso(T0 + DAY)),
            ("measures.features_30d", 2, ["acme", "beta"], to_iso(T0 + DAY)),
            ("measures.feature_share_30d", 2, ["acme", "beta"], to_iso(T0 + 2 * DAY)),
            ("measures.features_30d", 2, ["acme", "beta"], to_iso(T0 + 2 * DAY)),
        ]
        # The limit is above every score's saturation point: adoption still has full points.
        tenant = restored(h.engine).tenants["acme"]
        assert len(tenant.measured["features_30d"][1]) == 20
        assert tenant.components["adoption"][1] == (20, 1.0)
        metrics = Metrics()
        metrics.record(h.engine.counts)
        refused = metrics.value("vigil_tenant_keys_refused_total", map="measures.features_30d")
        assert refused == 920

    def test_features_used_only_long_ago_still_score_zero_not_no_data(self) -> None:
        used = [
            event("acme", "feature.used", T0 + HOUR, {"feature": name}) for name in "abc"
        ] + sessions("acme", T0 + 2 * HOUR, 40 * 24, spacing=HOUR)
        h = Harness().feed([*used, clock(T0 + 40 * DAY + 2 * HOUR)])
        held = restored(h.engine).tenants["acme"].measured
        assert held["features_30d"][1] == {} and held["last_feature"][1] == T0 + HOUR
        assert h.out["health"][-1]["components"]["adoption"]["value"] == 0


class TestCooldown:
    def test_a_second_spike_inside_the_cooldown_makes_a_signal_but_no_task(self) -> None:
        errors = TestErrorSpike().errors
        background = [event("acme", "user.session", T0 + n * HOUR) for n in range(60)]
        spikes = errors("acme", T0 + 40 * HOUR, 12) + errors("acme", T0 + 50 * HOUR, 40)
        h = Harness().feed([*by_time(background + spikes), clock(T0 + 3 * DAY)])
        assert len(h.signals("error_spike")) == 2
        tasks = [t for t in h.out["tasks"] if t["rule"] == "error-spike"]
        assert len(tasks) == 1  # the rule's cooldown is 1 day
        assert h.engine.counts["suppressed:error-spike"] == 1


class TestRestore:
    def test_a_store_written_with_other_settings_is_refused(self) -> None:
        import pytest

        from vigil.base.errors import ConfigError

        h = Harness().feed(by_time(weeks("acme", [20])))
        other = Settings.model_validate({"engine": {"shards": 16}})
        with pytest.raises(
            ConfigError, match=r"\(engine\.shards was 32 and is now 16\); use a new store"
        ):
            ShardEngine(other, h.rules, restored(h.engine))

    def test_a_state_saved_by_a_version_with_other_fields_is_refused(self) -> None:
        import pytest

        from vigil.base.errors import ConfigError

        h = Harness().feed(by_time(weeks("acme", [20])))
        saved = restored(h.engine)
        saved.layout["state_format"] = "0123456789ab"
        with pytest.raises(ConfigError, match=r"another version of Vigil saved its state"):
            ShardEngine(h.settings, h.rules, saved)

    def test_a_state_saved_before_the_format_was_recorded_is_taken(self) -> None:
        h = Harness().feed(by_time(weeks("acme", [20])))
        saved = restored(h.engine)
        del saved.layout["state_format"]
        assert restored(ShardEngine(h.settings, h.rules, saved)).tenants

    def test_the_format_follows_the_fields(self) -> None:
        from dataclasses import dataclass

        from vigil.engine.state import state_format

        @dataclass
        class Before:
            score: int

        @dataclass
        class After:
            score: int
            zone: str

        After.__name__ = "Before"
        assert state_format(Before) != state_format(After)
        assert state_format(Before) == state_format(Before)


class TestRuleErrors:
    def test_a_rule_error_is_counted_and_the_other_rules_still_act(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from vigil.base.errors import RuleEvaluationError

        h = Harness()
        real_evaluate = h.rules.evaluate

        def evaluate(fact: dict[str, Any]) -> Any:
            rules, errors = real_evaluate(fact)
            if fact["fact"] == "signal":  # the notification-only path fails, the task survives
                failure = RuleEvaluationError("boom")
                failure.rule_id = "broken-rule"
                errors = [*errors, failure]
            return rules, errors

        monkeypatch.setattr(h.rules, "evaluate", evaluate)
        h.feed([*by_time(weeks("acme", [20])), clock(T0 + 2 * WEEK + HOUR)])
        assert h.engine.counts["rule_error:broken-rule"] == 1
        assert [t["rule"] for t in h.out["tasks"] if t["rule"] == "login-drop"] == ["login-drop"]


class TestForgettingSilentTenants:
    """A tenant with no event for engine.forget_tenants_after leaves the state."""

    SETTINGS = Settings.model_validate({"engine": {"forget_tenants_after": "61d"}})

    def feed(self, days: int) -> Harness:
        # "gone" sends sessions on its first two days only; "kept" one session a day.
        h = Harness(self.SETTINGS)
        events = sessions("gone", T0 + HOUR, 10, spacing=4 * HOUR)
        events += [event("kept", "user.session", T0 + d * DAY + 2 * HOUR) for d in range(days)]
        events.sort(key=lambda e: e["ts"])
        return h.feed([*events, clock(T0 + days * DAY + 2 * HOUR)])

    def test_a_tenant_silent_longer_than_the_setting_is_forgotten_at_midnight(self) -> None:
        last_event = T0 + HOUR + 9 * 4 * HOUR  # day 1, 13:00
        # Forgotten at the first midnight more than 61 days after its last event: day 63.
        before = self.feed(days=62)
        assert set(restored(before.engine).tenants) == {"gone", "kept"}
        assert restored(before.engine).tenants["gone"].last_event_at == last_event
        after = self.feed(days=63)
        assert set(restored(after.engine).tenants) == {"kept"}
        metrics = Metrics()
        metrics.record(after.engine.counts)
        assert metrics.value("vigil_tenants_forgotten_total") == 1
        assert sum(after.engine.figures().zones.values()) == 1  # its zone is not counted
        # Nothing else changed: the outputs up to then are the same.
        assert after.out["health"][: len(before.out["health"])] == before.out["health"]

    def test_a_forgotten_tenant_that_comes_back_starts_over(self) -> None:
        h = self.feed(days=63)
        back = T0 + 63 * DAY + 3 * HOUR
        h.feed([event("gone", "user.session", back), clock(back + 2 * HOUR)])
        tenant = restored(h.engine).tenants["gone"]
        assert (tenant.first_seen, tenant.last_event_at) == (back, back)
        assert tenant.measured["sessions_7d"][1] == [(back // DAY * DAY, 1.0)]

    def test_a_snapshot_after_forgetting_restores_without_the_tenant(self) -> None:
        h = self.feed(days=62)
        writer = SnapshotWriter(h.engine)
        assert "gone" in load_state(writer.snapshot()).tenants
        h.feed([clock(T0 + 63 * DAY + 2 * HOUR)])
        restored = load_state(writer.snapshot())
        assert set(restored.tenants) == {"kept"}
        assert writer.tenants.keys() == {"kept"}  # its saved copy is dropped too


def test_the_core_refuses_event_types_whose_fields_it_would_misread() -> None:
    from typing import NamedTuple

    from vigil._native import Decoder, ShardCore
    from vigil.engine.measures import compiled
    from vigil.intake.events import Event
    from vigil.intake.reader import Tick

    class Moved(NamedTuple):  # event_id and type swapped
        type: str
        event_id: str

    settings = Settings()
    declared = compiled(settings)
    with pytest.raises(TypeError, match="the compiled core reads"):
        ShardCore(settings, Moved, Tick, to_iso, frozenset(), 1, declared)
    with pytest.raises(
        TypeError, match="Moved has the fields type, event_id; the compiled core reads source, wm"
    ):
        ShardCore(settings, Event, Moved, to_iso, frozenset(), 1, declared)
    with pytest.raises(TypeError, match="the compiled core reads"):
        Decoder(Moved, [], 1, 1, (0, 1), {}, orjson.loads, 0)
    assert ShardCore(settings, Event, Tick, to_iso, frozenset(), 1, declared)
