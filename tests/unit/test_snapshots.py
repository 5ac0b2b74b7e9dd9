"""Snapshots of a shard's state (vigil/engine/snapshots.py): what a restore gets back, and
stores of the format before this one."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support import DAY, HOUR, T0, Harness, clock, event, restored, sessions, trouble

from vigil.base.timeutil import to_iso
from vigil.config.settings import DEFAULT_COMPONENTS, DEFAULT_MEASURES, Settings
from vigil.engine.shard import ShardEngine
from vigil.engine.snapshots import SnapshotWriter, load_state
from vigil.engine.state import STATE_FORMAT
from vigil.intake.events import Event
from vigil.intake.simulate import FleetPlan, generate

WEEK = 7 * DAY

# A shard's state after the first part of restore_stream(), saved by Vigil 0158495 in
# its state format c0026639c217 (the state pickled whole, event ids twice).
OLD_FORMAT_STATE = Path(__file__).parent / "data" / "shard-state-c0026639c217.pickle"
# The same state saved by Vigil 2de523a in format ab073bfcfb3f (tenants pickled one by
# one, before they had last_event_at).
PREVIOUS_FORMAT_STATE = Path(__file__).parent / "data" / "shard-state-ab073bfcfb3f.pickle"
# The same state saved by Vigil 069497c in format cb0820d49a8e (event ids kept without
# their tenant).
BARE_IDS_FORMAT_STATE = Path(__file__).parent / "data" / "shard-state-cb0820d49a8e.pickle"
# The same state saved before declared measures, in format 8c33768149e3, and with them
# but whole events queued, in format 0e828a30122e.
BEFORE_MEASURES_STATE = Path(__file__).parent / "data" / "shard-state-8c33768149e3.pickle"
WHOLE_EVENTS_STATE = Path(__file__).parent / "data" / "shard-state-0e828a30122e.pickle"
# And before declared components, in format e8732fe05483; and before five of the default
# components were declared over measures, in format 11a818177577.
BEFORE_COMPONENTS_STATE = Path(__file__).parent / "data" / "shard-state-e8732fe05483.pickle"
BEFORE_FIVE_STATE = Path(__file__).parent / "data" / "shard-state-11a818177577.pickle"
# And before the signals and the other components were declared, in format 5085f44ba9d4.
BEFORE_ALL_STATE = Path(__file__).parent / "data" / "shard-state-5085f44ba9d4.pickle"
# And before tasks had a life, in format 433f71448566.
BEFORE_TASKS_STATE = Path(__file__).parent / "data" / "shard-state-433f71448566.pickle"
# The same state saved in this version's format (event ids keyed by tenant). STATE_FORMAT
# fingerprints the names and types of the state's fields, not what they hold or how a
# snapshot encodes them: a change to those that keeps the format fails the test below,
# as users' stores would fail. Then give the state a new format (see READABLE_FORMATS in
# vigil/engine/shard.py) and save this file in it, keeping the old one if it is still read.
CURRENT_FORMAT_STATE = Path(__file__).parent / "data" / f"shard-state-{STATE_FORMAT}.pickle"
# The states above were saved before the recency component, the activity that absences
# earn points for (activity_7d) and the 30-day login window were declared: measures a
# store starts empty when it lacks them, and the oldest stores kept no exact time of the
# last activity. Their tenants go on as if never stopped under the components and signals
# those versions had.
ABSENCE_COMPONENTS = ("error_pressure", "support_load", "billing")
AS_BEFORE = Settings.model_validate(
    {
        "signals": {"login_drop": {"below": 0.5, "min_previous": 10, "high_below": 0.2}},
        "health": {
            "components": {
                "login_activity": {
                    "measure": "sessions_7d",
                    "weight": 20,
                    "full_at": 20,
                    "reason": "{value:session|sessions} in the last 7 days",
                },
                "login_trend": {"weight": 10, "full_at": 1.0},
                "adoption": {"weight": 15, "full_at": 5},
                "recency": {"weight": 0},
                **{c: {"earned_while": None} for c in ABSENCE_COMPONENTS},
            }
        },
    }
)


def restore_stream() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Three weeks of two tenants (a login drop, an error spike) cut in two, with fixed
    event ids; the second part starts by resending ten events of the first."""
    weeks = [("acme", k, n) for k, n in enumerate([20, 6, 4])] + [("beta", k, 25) for k in range(3)]
    events = [
        e
        for tenant, k, n in weeks
        for e in sessions(tenant, T0 + k * WEEK + HOUR, n, spacing=6 * DAY // n)
    ]
    events += [
        event("beta", "error.raised", T0 + 9 * DAY + n * 1000, {"severity": "high"})
        for n in range(30)
    ]
    events.sort(key=lambda e: e["ts"])
    events.append(clock(T0 + 3 * WEEK + 2 * HOUR))
    events = [{**e, "event_id": f"r{n}"} for n, e in enumerate(events)]
    cut = len(events) // 2
    return events[:cut], events[cut - 10 : cut] + events[cut:]


def resumed(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> Harness:
    """`first` fed to a shard, its state snapshotted and restored, then `second`."""
    h = Harness().feed(first)
    h.engine = ShardEngine(h.settings, h.rules, restored(h.engine))
    return h.feed(second)


def test_a_restored_shard_goes_on_as_if_never_stopped() -> None:
    first, second = restore_stream()
    straight = Harness().feed(first).feed(second)
    h = resumed(first, second)
    assert h.out == straight.out
    assert h.engine.counts["duplicates"] == 10  # ids accepted before the restore
    assert straight.out["signals"] and straight.out["tasks"]


def test_a_restored_shard_rescores_a_silent_tenant_when_its_sessions_leave_the_24_hours() -> None:
    # Which step that is, the shard works out from the tenants after a restore.
    busy = Settings.model_validate(
        {
            "measures": {
                "day_sessions": {
                    "kind": "count",
                    "events": ["user.session"],
                    "window": "24h",
                    "bucket": "1h",
                }
            },
            "health": {
                "components": {
                    "busy": {"measure": "day_sessions", "weight": 50, "full_at": 30, "reason": "x"}
                }
            },
        }
    )
    used = [event("acme", "user.session", T0 + 10 * HOUR + n * 1000) for n in range(30)]
    first = [*used, clock(T0 + 13 * HOUR)]
    second = [clock(T0 + 2 * DAY)]
    straight = Harness(busy).feed(first).feed(second)
    h = Harness(busy).feed(first)
    h.engine = ShardEngine(busy, h.rules, restored(h.engine))
    h.feed(second)
    assert h.out == straight.out
    # At 10:00 the next day the last 24 h still hold 10:00-11:00; at 11:00 they do not.
    assert straight.out["health"][-1]["ts"] == "2026-03-03T11:00:00Z"


def test_a_restored_shard_announces_a_zone_when_a_warm_up_ends() -> None:
    # A tenant red from its first day, restored during its warm-up: its score never
    # moves again, so only the end of the warm-up, worked out after the restore, scores it.
    first = [*trouble("newco", T0 + HOUR), clock(T0 + 3 * DAY)]
    second = [clock(T0 + 9 * DAY)]
    straight = Harness().feed(first).feed(second)
    h = resumed(first, second)
    assert h.out == straight.out
    # (its invoice, failed a week before, is a task of its own)
    [task] = [t for t in straight.out["tasks"] if t["rule"] == "entered-red"]
    assert task["created_at"] == "2026-03-09T01:00:00Z"


@pytest.mark.parametrize("stall_after", ["72h", "48h", "96h"])
def test_a_stall_under_way_across_a_restore_fires_at_the_periods_deadline(
    stall_after: str,
) -> None:
    # The saved deadlines are those of the old period: the shard works them out again
    # from its tenants on restore, or a stall under way would never be signalled.
    first = [
        event("newco", "onboarding.started", T0 + HOUR),
        event("newco", "onboarding.step_completed", T0 + 2 * HOUR, {"step": "sso_live"}),
        clock(T0 + DAY),
    ]
    h = Harness().feed(first)
    changed = Settings.model_validate(
        {"signals": {"onboarding_stalled": {"stalled_after": stall_after}}}
    )
    h.settings = changed
    h.engine = ShardEngine(changed, h.rules, restored(h.engine))
    h.feed([clock(T0 + 6 * DAY)])
    [signal] = h.signals("onboarding_stalled")
    hours = int(stall_after.removesuffix("h"))
    assert signal["window_end"] == to_iso(T0 + 2 * HOUR + hours * HOUR)
    assert signal["evidence"]["hours_without_progress"] == hours


def test_component_settings_changed_across_a_restore_apply_at_the_first_step() -> None:
    # A component is measured again on its own events (and some at midnight): three open
    # tickets and nothing since kept the points of the old zero_at for good.
    tickets = [
        event("acme", "ticket.created", T0 + HOUR + n, {"ticket_id": f"t{n}", "priority": "P3"})
        for n in range(3)
    ]
    h = Harness().feed([event("acme", "user.session", T0), *tickets, clock(T0 + 3 * HOUR)])
    assert h.out["health"][-1]["components"]["support_load"]["value"] == 3
    assert restored(h.engine).tenants["acme"].components["support_load"][1] == (3, 1 - 3 / 6)
    stricter = Settings.model_validate({"health": {"components": {"support_load": {"zero_at": 3}}}})
    h.engine = ShardEngine(stricter, h.rules, restored(h.engine))
    h.feed([clock(T0 + 5 * HOUR)])
    assert restored(h.engine).tenants["acme"].components["support_load"][1] == (3, 0.0)
    last = h.out["health"][-1]
    assert last["ts"] == "2026-03-02T03:00:00Z"  # the first step after the restore
    assert (
        last["components"]["support_load"]["points"]
        < 0.4 * last["components"]["support_load"]["weight"]
    )


def test_component_weights_changed_across_a_restore_apply_at_the_first_step() -> None:
    # No measure moves for a silent tenant with open tickets: it was never scored again,
    # so it kept the score of the old weights.
    tickets = [
        event("acme", "ticket.created", T0 + HOUR + n, {"ticket_id": f"t{n}", "priority": "P1"})
        for n in range(2)
    ]
    h = Harness().feed([event("acme", "user.session", T0), *tickets, clock(T0 + 3 * HOUR)])
    before = h.out["health"][-1]
    heavier = Settings.model_validate({"health": {"components": {"support_load": {"weight": 60}}}})
    h.engine = ShardEngine(heavier, h.rules, restored(h.engine))
    h.feed([clock(T0 + 5 * HOUR)])
    after = h.out["health"][-1]
    assert after["ts"] == "2026-03-02T03:00:00Z" and after["score"] < before["score"]
    assert (
        after["components"]["support_load"]["weight"]
        > before["components"]["support_load"]["weight"]
    )


def test_a_weight_changed_across_a_restore_is_no_score_drop() -> None:
    # The peaks of the drop window were scored under the old weights: against them, the
    # new weights' score looked like a fall of the customer's health.
    tickets = [
        event("acme", "ticket.created", T0 + HOUR + n, {"ticket_id": f"t{n}", "priority": "P1"})
        for n in range(2)
    ]
    first = [*sessions("acme", T0, 90, spacing=2 * HOUR), *tickets, clock(T0 + 8 * DAY)]
    first.sort(key=lambda e: e["ts"])
    h = Harness().feed(first)
    before = h.out["health"][-1]["score"]
    heavier = Settings.model_validate({"health": {"components": {"support_load": {"weight": 80}}}})
    h.settings = heavier
    h.engine = ShardEngine(heavier, h.rules, restored(h.engine))
    h.feed([clock(T0 + 8 * DAY + 3 * HOUR)])
    assert h.out["health"][-1]["score"] <= before * (1 - heavier.health.drop_pct / 100)
    assert [n for n in h.out["notifications"] if n["rule"] == "score-drop"] == []
    assert restored(h.engine).tenants["acme"].recent_scores  # peaks from here on


def test_a_stall_signalled_before_a_restore_is_not_signalled_again() -> None:
    first = [
        event("newco", "onboarding.started", T0 + HOUR),
        clock(T0 + 4 * DAY),
    ]
    h = Harness().feed(first)
    assert len(h.signals("onboarding_stalled")) == 1
    longer = Settings.model_validate({"signals": {"onboarding_stalled": {"stalled_after": "96h"}}})
    h.engine = ShardEngine(longer, h.rules, restored(h.engine))
    h.feed([clock(T0 + 9 * DAY)])
    assert len(h.signals("onboarding_stalled")) == 1  # the same period of no progress


@pytest.mark.parametrize(
    ("path", "saved_format"),
    [
        (OLD_FORMAT_STATE, "c0026639c217"),
        (PREVIOUS_FORMAT_STATE, "ab073bfcfb3f"),
        (BARE_IDS_FORMAT_STATE, "cb0820d49a8e"),
    ],
)
def test_a_state_saved_in_an_earlier_format_is_read(path: Path, saved_format: str) -> None:
    first, second = restore_stream()
    straight = Harness(AS_BEFORE).feed(first).feed(second)
    h = Harness(AS_BEFORE).feed(first)
    old = load_state(path.read_bytes())
    assert old.layout["state_format"] == saved_format
    if saved_format != "cb0820d49a8e":
        # Tenants saved without last_event_at count as heard from at the snapshot.
        assert {t.last_event_at for t in old.tenants.values()} == {old.watermark}
    h.engine = ShardEngine(h.settings, h.rules, old)
    assert restored(h.engine).layout["state_format"] == STATE_FORMAT  # saved anew from here
    h.feed(second)
    # These versions kept no score of a tenant's warm-up as a peak of the drop window:
    # a fall from one is what such a state can miss, and all it can miss.
    assert _but_score_drops(h.out) == _but_score_drops(straight.out)
    drops = {n["notification_id"] for n in straight.out["notifications"] if _drop(n)}
    kept = {n["notification_id"] for n in h.out["notifications"] if _drop(n)}
    assert kept < drops  # some missed (as this stream is made to), none made up
    assert h.engine.counts["duplicates"] == 10  # resends of ids saved bare


@pytest.mark.parametrize(
    ("path", "saved_format"),
    [
        (BEFORE_MEASURES_STATE, "8c33768149e3"),
        (WHOLE_EVENTS_STATE, "0e828a30122e"),
        (BEFORE_COMPONENTS_STATE, "e8732fe05483"),
        (BEFORE_FIVE_STATE, "11a818177577"),
        (BEFORE_ALL_STATE, "5085f44ba9d4"),
    ],
)
def test_a_state_of_the_formats_before_resumes_as_if_never_stopped(
    path: Path, saved_format: str
) -> None:
    """Before declared measures, with whole events queued (the core keeps what it needs
    of them), before declared components, before five of the default components were
    declared over measures, and before the rest and the signals were: what those tenants
    kept for them is taken over."""
    first, second = restore_stream()
    straight = Harness(AS_BEFORE).feed(first).feed(second)
    saved = load_state(path.read_bytes())
    assert saved.layout["state_format"] == saved_format
    whole_events = any(isinstance(queued, Event) for *_, queued in saved.pending)
    assert whole_events == (saved_format in ("8c33768149e3", "0e828a30122e"))
    h = Harness(AS_BEFORE).feed(first)
    h.engine = ShardEngine(h.settings, h.rules, saved)
    again = restored(h.engine)
    # What the tenants kept for the components and signals now declared is theirs.
    assert {frozenset(t.measured) for t in again.tenants.values()} == {frozenset(DEFAULT_MEASURES)}
    assert {frozenset(t.components) for t in again.tenants.values()} == {
        frozenset(DEFAULT_COMPONENTS)
    }
    assert {t.signals_raised == [] for t in again.tenants.values()} == {True}
    h.feed(second)
    assert restored(h.engine).layout["state_format"] == STATE_FORMAT
    assert not any(isinstance(queued, Event) for *_, queued in restored(h.engine).pending)
    assert _but_score_drops(h.out) == _but_score_drops(straight.out)


def test_a_state_saved_before_tasks_had_a_life_resumes_as_if_never_stopped() -> None:
    """Saved under today's settings, with no task open at the cut: nothing to take over."""
    first, second = restore_stream()
    straight = Harness().feed(first).feed(second)
    saved = load_state(BEFORE_TASKS_STATE.read_bytes())
    assert saved.layout["state_format"] == "433f71448566"
    assert saved.tasks == {}
    h = Harness().feed(first)
    h.engine = ShardEngine(h.settings, h.rules, saved)
    h.feed(second)
    assert h.out == straight.out


def _drop(record: dict[str, Any]) -> bool:
    return record.get("rule") == "score-drop"


def _but_score_drops(out: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return {stream: [r for r in records if not _drop(r)] for stream, records in out.items()}


def test_ids_saved_bare_are_looked_up_until_their_last_day_is_forgotten() -> None:
    first, _ = restore_stream()
    h = Harness().feed(first)
    old = load_state(BARE_IDS_FORMAT_STATE.read_bytes())
    last_day = max(old.seen_by_day)
    assert old.bare_ids_until == last_day
    h.engine = ShardEngine(h.settings, h.rules, old)
    resent = dict(first[-1])
    h.feed([resent, clock((last_day + 1) * DAY)])
    assert h.engine.counts["duplicates"] == 1 and restored(h.engine).bare_ids_until == last_day
    # Once the retention (the longest signal window, 30 days, and an hour) has passed that
    # day, no bare id is left.
    h.feed([clock((last_day + 33) * DAY)])
    assert restored(h.engine).bare_ids_until is None
    assert not any(key in restored(h.engine).seen for key in (e["event_id"] for e in first))


def test_a_state_saved_earlier_in_this_format_restores_as_it_was_saved() -> None:
    assert CURRENT_FORMAT_STATE.exists(), (
        f"no saved state of format {STATE_FORMAT}: the state's fields changed; see the "
        "comment at CURRENT_FORMAT_STATE"
    )
    first, second = restore_stream()
    straight = Harness().feed(first).feed(second)
    h = Harness().feed(first)
    saved = load_state(CURRENT_FORMAT_STATE.read_bytes())
    assert saved == restored(h.engine)  # every field, as this version builds it today
    h.engine = ShardEngine(h.settings, h.rules, saved)
    h.feed(second)
    assert h.out == straight.out
    assert h.engine.counts["duplicates"] == 10


def test_every_snapshot_of_a_running_shard_restores_its_whole_state() -> None:
    """Snapshots after the first pickle only the tenants the engine touched since the last
    one: a change it failed to track would restore a stale tenant. A fleet with every
    scenario, snapshotted after every read; each snapshot must restore the live state."""
    lines, _ = generate(FleetPlan(tenants=40, days=22, seed=7))
    h = Harness()
    writer = SnapshotWriter(h.engine)
    stream = list(lines)
    snapshots = 0
    for start in range(0, len(stream), 20):
        h.feed(stream[start : start + 20])
        state = load_state(writer.snapshot())
        # (the stall deadlines are not saved: see the stall tests for their restore)
        assert state == restored(h.engine), f"after line {start + 20}"
        # in the same order too: the engine visits tenants in it, and emits in it
        assert list(state.tenants) == list(restored(h.engine).tenants)
        snapshots += 1
    assert snapshots > 500 and h.out["signals"] and h.out["tasks"]
    assert {s["signal"] for s in h.out["signals"]} >= {
        "login_drop",
        "onboarding_stalled",
        "error_spike",
        "renewal_r90",
        "seat_cap",
        "support_volume",
        "invoice_unpaid",
        "integration_errors",
        "seats_cut",
    }
    assert {t["status"] for t in h.out["tasks"]} == {"open", "escalated", "closed"}


def test_a_snapshot_saves_each_remembered_event_id_once() -> None:
    first, _ = restore_stream()
    h = Harness().feed(first)
    back = restored(h.engine)
    assert back.seen == restored(h.engine).seen and len(back.seen) == len(first)
    assert back.seen_by_day == restored(h.engine).seen_by_day
    restored(h.engine).seen.clear()  # the set is not saved: it is rebuilt from the days
    assert restored(h.engine).seen == back.seen


def test_a_state_comes_back_whole_through_a_snapshot() -> None:
    first, _ = restore_stream()
    h = Harness().feed(first)
    back = restored(h.engine)
    assert back == restored(h.engine)
    # (the engine then marks its tenants to be measured again, see
    # test_component_settings_changed_across_a_restore_apply_at_the_first_step)
    again, live = ShardEngine(h.settings, h.rules, back).figures(), h.engine.figures()
    assert again._replace(zones=Counter(again.zones)) == live._replace(zones=Counter(live.zones))


def dead_letters(h: Harness) -> list[tuple[int, str]]:
    return sorted((d["position"]["line"], d["reason"]) for d in h.out["deadletter"])


def test_a_shard_restored_at_any_point_of_a_fleet_goes_on_as_if_never_stopped() -> None:
    """What a shard derives from its tenants instead of saving (when to score a silent
    tenant again) must come back whole: a fleet with every scenario, cut at five
    points, each restored and run to the end, against one run straight through."""
    lines, _ = generate(FleetPlan(tenants=40, days=22, seed=7))
    stream = list(lines)
    straight = Harness().feed(stream)
    for cut in range(len(stream) // 6, len(stream), len(stream) // 6)[:5]:
        h = resumed(stream[:cut], stream[cut:])
        # The harness writes a batch's decoding dead letters before the engine's late
        # ones, so the cut moves them in the list: compare those by input line.
        assert dead_letters(h) == dead_letters(straight), f"restored after line {cut}"
        for stream_name in ("health", "signals", "tasks", "notifications"):
            assert h.out[stream_name] == straight.out[stream_name], f"{stream_name}, cut {cut}"
    assert straight.out["tasks"] and len(straight.out["health"]) > 1000
