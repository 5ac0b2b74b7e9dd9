"""The engine's outputs on fixed inputs, pinned: simulated fleets under settings that
move every path of the engine give the outputs (byte for byte, in order) and tallies
recorded in data/golden.json. A change that moves any output fails here, naming what
moved; if the change is meant, record the new outputs with

    VIGIL_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_golden.py

and say in CHANGELOG.md what changed for the people reading the outputs."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from hostile import EXAMPLES, streams
from hypothesis import given
from hypothesis import strategies as st
from support import DAY, T0, clock, event

from vigil.base.ids import shard_key
from vigil.config.settings import DEFAULT_SIGNALS, Settings, load_settings
from vigil.engine.shard import ShardEngine
from vigil.engine.snapshots import SnapshotWriter, load_state
from vigil.flows.health import _splitter
from vigil.intake.reader import Intake
from vigil.intake.simulate import FleetPlan, generate
from vigil.rules.engine import engine_for
from vigil.rules.loader import load_rules

GOLDEN = Path(__file__).parent / "data" / "golden.json"
RULES = engine_for(load_rules())
BATCH = 300  # lines per source batch
# Settings that move every path of the engine: short windows, so that signals, stalls,
# drops and daily steps come often; tight limits, so that keys are refused, tenants
# forgotten and ids dropped; other weights, scales and zones.
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "short windows": {
        "engine": {"health_step": "30m"},
        "measures": {"weekly_sessions": {"window": "1d"}, "hourly_errors": {"window": "30m"}},
        "signals": {
            "login_drop": {"min_previous": 3},
            "error_spike": {"history": "1d", "min_history": 4, "above": 1},
            "onboarding_stalled": {"stalled_after": "12h"},
        },
        "health": {
            "warmup": "1d",
            "drop_pct": 12,
            "drop_window": "2d",
            "components": {"onboarding": {"stalled_after": "12h"}},
        },
    },
    "tight limits": {
        "input": {"allowed_lateness": "6h"},
        "engine": {
            "shards": 3,
            "max_keys_per_tenant": 6,
            "forget_tenants_after": "15d",
            "dedup_retention": "9h",
        },
        "signals": {"error_spike": {"history": "1d"}},
        "measures": {
            "features_30d": {"window": "2d"},
            "sessions_30d": {"window": "7d"},
            "weekly_sessions": {"window": "1d"},
            # the pack's, under forget_tenants_after too
            "sessions_4w": {"window": "7d"},
            "users_30d": {"window": "7d"},
            "top_user_30d": {"window": "7d"},
            "feature_share_30d": {"window": "7d"},
        },
    },
    "other weights": {
        "measures": {
            "features_30d": {"window": "3d"},
            "onboarding": {"steps": ["invite_team", "connect_app"]},
        },
        "health": {
            "zones": {"green": 70, "yellow": 55, "orange": 30},
            "components": {
                "login_activity": {"weight": 0, "full_at": 7.5},
                "adoption": {"full_at": 2},
                "sentiment": {"weight": 30},
                "support_load": {"weights": {"P1": 1.5}, "zero_at": 2.5},
                "billing": {"weights": {"overdue": 0.3, "failed": 0.7}},
                "onboarding": {"full_at": 2},
            },
        },
    },
    "declared measures": {
        "measures": {
            "active_users": {
                "kind": "distinct",
                "events": ["user.session"],
                "field": "user_id",
                "window": "7d",
            },
            "seats": {"kind": "latest", "events": ["contract.updated"], "field": "attrs.seats"},
            "ticket_ids": {
                "kind": "open_items",
                "events": ["ticket.created"],
                "closed_by": ["ticket.resolved"],
                "field": "attrs.ticket_id",
            },
            "p1s": {
                "kind": "count",
                "events": ["ticket.created"],
                "where": {"priority": "P1"},
                "window": "7d",
            },
            "top_user": {
                "kind": "top_share",
                "events": ["user.session"],
                "field": "user_id",
                "window": "7d",
            },
            "quiet": {"kind": "days_since", "events": ["user.session"]},
            "oldest_ticket": {
                "kind": "oldest_open",
                "events": ["ticket.created"],
                "closed_by": ["ticket.resolved"],
                "field": "attrs.ticket_id",
            },
            "sessions": {"kind": "count", "events": ["user.session"], "window": "3d"},
            "sessions_week": {
                "kind": "count",
                "events": ["user.session"],
                "window": "7d",
                "calendar": True,
            },
            "nps": {
                "kind": "latest",
                "events": ["survey.response"],
                "field": "attrs.score",
                "where": {"kind": "nps"},
            },
            "sponsor": {"kind": "latest", "events": ["sponsor.changed"], "field": "attrs.status"},
            "paid": {
                "kind": "sum",
                "events": ["billing.invoice"],
                "field": "attrs.amount",
                "where": {"status": "paid"},
                "window": "30d",
            },
            "errors_hour": {
                "kind": "count",
                "events": ["error.raised", "job.retry"],
                "window": "1h",
                "calendar": True,
            },
            "errors_day": {
                "kind": "count",
                "events": ["error.raised"],
                "window": "24h",
                "bucket": "1h",
            },
        },
        "signals": {
            "seat_use": {"measure": "active_users", "per": "seats", "above": 0.3},
            "ticket_pile": {"measure": "ticket_ids", "above": 1},
            "p1_week": {"measure": "p1s", "above": 0},
            "one_user": {"measure": "top_user", "above": 0.5},
            "gone_quiet": {"measure": "quiet", "above": 3, "severity": "high"},
            "unpaid_month": {"measure": "paid", "below": 1},
            "sessions_fell": {
                "measure": "sessions",
                "versus": "previous_window",
                "below": 0.5,
                "min_previous": 5,
            },
            "nps_fell": {"measure": "nps", "versus": "previous_value", "below": -1},
            "sponsor_left": {"measure": "sponsor", "equals": "departed", "severity": "high"},
            "ticket_aging": {"measure": "oldest_ticket", "above": 2},
            "sessions_halved": {
                "measure": "sessions_week",
                "versus": "previous_window",
                "below": 0.5,
                "min_previous": 10,
                "high_below": 0.2,
            },
            "errors_spiked": {
                "measure": "errors_hour",
                "versus": "history",
                "percentile": 90,
                "history": "2d",
                "min_history": 6,
                "above": 1,
                "high_above": 4,
            },
        },
        "health": {
            "components": {
                "quiet_days": {
                    "measure": "quiet",
                    "weight": 15,
                    "zero_at": 7,
                    "reason": "{value} days since the last session (none from {zero_at})",
                },
                "seat_use": {
                    "measure": "active_users",
                    "per": "seats",
                    "weight": 5,
                    "full_at": 0.5,
                    "reason": "{value} of the seats used in 7 days",
                },
                "backed": {
                    "measure": "sponsor",
                    "equals": "active",
                    "weight": 5,
                    "reason": "no active sponsor",
                },
                "calm": {
                    "measure": "errors_day",
                    "weight": 10,
                    "zero_at": 20,
                    "when": "quiet",
                    "reason": "{value:error|errors} in 24 h (none from {zero_at})",
                },
                "trend": {
                    "measure": "sessions",
                    "versus": "previous_window",
                    "min_previous": 5,
                    "weight": 5,
                    "full_at": 1,
                    "when": "quiet",
                    "reason": "sessions at {value} of the 3 days before",
                },
            }
        },
    },
}


class Stream:
    """Lines through one intake and the shards as the dataflow splits them; the shards
    can be swapped for ones restored from a snapshot, mid-stream."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        lateness, catalogue = settings.input.allowed_lateness, settings.catalogue.full
        self.intake = Intake("test", "p0", 1, lateness, catalogue=catalogue)
        self.split = _splitter(settings)
        keys = [shard_key(n) for n in range(settings.engine.shards)]
        self.shards = {key: ShardEngine(settings, RULES) for key in keys}
        self.outputs: list[bytes] = []
        # Each shard's outputs by stream: what keeps its order however the input is cut
        # into batches (a late event's dead letter comes out as it arrives, a health
        # record at the step that the batch's tick reaches).
        self.by_shard: dict[tuple[str, str], list[bytes]] = defaultdict(list)
        self.line = 0

    def feed(self, lines: list[bytes]) -> Stream:
        for start in range(0, len(lines), BATCH):
            chunk: list[Any] = []
            for raw in lines[start : start + BATCH]:
                self.line += 1
                chunk.append(self.intake.take(raw, {"line": self.line}))
            chunk.append(self.intake.tick())
            for key, items in self.split(chunk):
                for stream, record in self.shards[key].process(items):
                    output = orjson.dumps((stream, record))
                    self.outputs.append(output)
                    self.by_shard[key, stream].append(output)
        return self

    def restart(self) -> None:
        """Snapshot every shard, and go on with shards restored from the snapshots."""
        for key, shard in self.shards.items():
            saved = SnapshotWriter(shard).snapshot()
            self.shards[key] = ShardEngine(self.settings, RULES, load_state(saved))

    def tallies(self) -> dict[str, dict[str, int]]:
        counts: Counter[str] = Counter()
        types: Counter[str] = Counter()
        zones: Counter[str] = Counter()
        for shard in self.shards.values():
            counts.update(shard.counts)
            types.update(shard.take_type_counts())
            zones.update({zone: n for zone, n in shard.figures().zones.items() if n})
        return {"counts": dict(counts), "types": dict(types), "zones": dict(zones)}

    def summary(self) -> dict[str, Any]:
        """What golden.json keeps of a run: a digest of every output in order, the outputs
        by stream and the tallies, so a failure says which of them moved."""
        digest = hashlib.sha256(b"\n".join(self.outputs)).hexdigest()
        by_stream = Counter(orjson.loads(out)[0] for out in self.outputs)
        return {"digest": digest, "outputs": dict(sorted(by_stream.items()))} | {
            name: dict(sorted(tally.items())) for name, tally in self.tallies().items()
        }


def _fleet(seed: int) -> list[bytes]:
    return list(generate(FleetPlan(tenants=40, days=24, seed=seed))[0])


def _golden() -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(GOLDEN.read_bytes())
    return data


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_simulated_fleet_gives_the_recorded_outputs(variant: str) -> None:
    settings = load_settings(None, env={}, overrides=VARIANTS[variant])
    got = Stream(settings).feed(_fleet(seed=11)).summary()
    if os.environ.get("VIGIL_UPDATE_GOLDEN"):
        recorded = _golden() if GOLDEN.exists() else {}
        recorded[variant] = got
        GOLDEN.write_bytes(orjson.dumps(recorded, option=orjson.OPT_INDENT_2) + b"\n")
        pytest.fail(f"recorded the outputs of {variant!r} in {GOLDEN.name}: run again without it")
    expected = _golden()[variant]
    for part in ("outputs", "counts", "types", "zones", "digest"):
        assert got[part] == expected[part], f"{part} moved"
    # The stream must exercise what the variant is for.
    counts = got["counts"]
    assert got["outputs"]["health"] > 500 and got["outputs"]["signals"] > 0
    assert got["outputs"]["tasks"] > 0
    assert counts["duplicates"] and counts["unknown_types"]
    if variant != "tight limits":  # 6 h of lateness take the simulator's late events
        assert counts["late"]
    if variant == "tight limits":
        assert counts["tenants_forgotten"] and any(k.startswith("keys_refused") for k in counts)
    if variant == "short windows":
        assert {"fact:score_drop", "signal:onboarding_stalled"} <= set(counts)
    if variant == "defaults":  # the lifecycle pack, and tasks that escalate and close
        pack = {f"signal:{name}" for name in DEFAULT_SIGNALS if f"signal:{name}" in counts}
        assert len(pack) >= 10, pack
        assert {key.rsplit(":", 1)[1] for key in counts if key.startswith("task:")} == {
            "escalated",
            "closed",
        }
    for name in VARIANTS[variant].get("signals", {}):
        if name not in ("login_drop", "error_spike", "onboarding_stalled"):
            assert counts[f"signal:{name}"], f"{name} never raised"


@pytest.mark.parametrize(("variant", "seed"), [("short windows", 5), ("defaults", 7)])
def test_a_snapshot_resumes_as_if_never_stopped(variant: str, seed: int) -> None:
    """Restored from a snapshot between two batches, the shards go on with the outputs of
    a run that never stopped: no component is measured at an instant the running shards
    had no reason to measure it at (silence holds what was measured, so when matters)."""
    settings = load_settings(None, env={}, overrides=VARIANTS[variant])
    lines = _fleet(seed=seed)
    whole = Stream(settings).feed(lines)
    # Cut between two of the batches the whole run read, as a snapshot falls between
    # batches: other batches would interleave the shards' outputs otherwise.
    batches = len(lines) // BATCH
    for cut in [n * batches // 4 * BATCH for n in range(1, 4)]:
        resumed = Stream(settings).feed(lines[:cut])
        resumed.restart()
        resumed.feed(lines[cut:])
        assert resumed.outputs == whole.outputs, f"cut at line {cut}"


DECLARED = load_settings(None, env={}, overrides=VARIANTS["declared measures"])


@pytest.mark.parametrize("settings", [Settings(), DECLARED], ids=["defaults", "declared"])
@EXAMPLES
@given(stream=streams())
def test_a_stream_of_broken_events_resumes_as_if_never_stopped(
    settings: Settings, stream: list[dict[str, Any]]
) -> None:
    """Each shard's outputs to each stream, in order: cut between batches the whole run
    did not make, the outputs interleave otherwise. With declared measures too, which
    read the attributes such streams send in every shape."""
    lines = [orjson.dumps(item) for item in itertools.chain(stream, [clock(T0 + 30 * DAY)])]
    whole = Stream(settings).feed(lines)
    cut = len(lines) // 2
    resumed = Stream(settings).feed(lines[:cut])
    resumed.restart()
    assert resumed.feed(lines[cut:]).by_shard == whole.by_shard


@EXAMPLES
@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=5, unique=True))
def test_any_name_in_a_reason_comes_out_as_it_was_sent(names: list[str]) -> None:
    """Reason lines quote names a producer chose (integrations here): quotes, control
        characters and any other text come out as sent, sorted, with their state. (Sent within
    one step, so the tenant's first score sees them all.)"""
    events = [
        event("t-a", "integration.state", T0 + n, {"integration": name, "state": "error"})
        for n, name in enumerate(names)
    ]
    events.append(clock(T0 + 3 * DAY))
    outputs = Stream(Settings()).feed([orjson.dumps(item) for item in events]).outputs
    reasons = [
        line
        for stream, record in map(orjson.loads, outputs)
        if stream == "health"
        for line in record["reasons"]
        if " not connected: " in line
    ]
    held = sorted(names)
    listed = ", ".join(f"{name} (error)" for name in held[:3])
    more = f" and {len(held) - 3} more" if len(held) > 3 else ""
    assert f"not connected: {listed}{more} (-" in reasons[-1]  # then the points lost


def test_the_caches_of_worded_records_are_bounded_without_changing_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Component entries and reason lines are cached per distinct measure, and tenants'
    reasons shared per distinct text, of which a long run meets ever more: emptied when
    full (vigil.engine.shard.MEMO_SIZE), with the same outputs."""
    import vigil.engine.shard

    settings = load_settings(None, env={}, overrides={"engine": {"shards": 1}})
    lines = _fleet(seed=11)
    unbounded = Stream(settings).feed(lines)
    assert min(unbounded.shards["s0000"].core.cached) > 20
    monkeypatch.setattr(vigil.engine.shard, "MEMO_SIZE", 20)
    bounded = Stream(settings).feed(lines)
    assert bounded.outputs == unbounded.outputs
    assert 0 < max(bounded.shards["s0000"].core.cached) <= 20
