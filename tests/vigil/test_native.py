"""The compiled shard engine (vigil._native) against the interpreted one it replaces in
`vigil run`: the same input gives the same outputs, byte for byte and in the same
order, and the same tallies, on simulated fleets under several settings and on
generated hostile streams."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import orjson
import pytest
from hostile import EXAMPLES, streams
from hypothesis import given
from hypothesis import strategies as st
from support import DAY, HOUR, T0, clock, event

from vigil.flows.health import _splitter
from vigil.ids import shard_key
from vigil.intake import Intake
from vigil.native import AVAILABLE, NativeShardEngine
from vigil.rules.engine import engine_for
from vigil.rules.loader import load_rules
from vigil.settings import Settings, load_settings
from vigil.shard import ShardEngine
from vigil.simulate import FleetPlan, generate
from vigil.snapshots import SnapshotWriter, load_state

RULES = engine_for(load_rules())
BATCH = 300  # lines per source batch
# Settings that move every path of the engine: short windows, so that signals, stalls,
# drops and daily steps come often; tight limits, so that keys are refused, tenants
# forgotten and ids dropped; other weights, scales and zones.
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "short windows": {
        "engine": {"health_step": "30m"},
        "signals": {
            "login_drop": {"window": "1d", "min_baseline": 3},
            "error_spike": {
                "window": "30m",
                "history": "1d",
                "min_history_windows": 4,
                "min_errors": 2,
            },
            "onboarding_stalled": {"stall_after": "12h"},
        },
        "health": {"warmup": "1d", "drop_points": 8, "drop_window": "2d"},
    },
    "tight limits": {
        "input": {"allowed_lateness": "6h"},
        "engine": {
            "shards": 3,
            "max_keys_per_tenant": 6,
            "forget_tenants_after": "15d",
            "dedup_retention": "9h",
        },
        "signals": {"login_drop": {"window": "1d"}, "error_spike": {"history": "1d"}},
        "health": {"components": {"adoption": {"lookback": "2d"}}},
    },
    "other weights": {
        "health": {
            "zones": {"green": 70, "yellow": 55, "orange": 30},
            "components": {
                "login_activity": {"weight": 0, "full_at": 7.5},
                "adoption": {"full_at": 2, "lookback": "3d"},
                "sentiment": {"weight": 30},
                "support_load": {"p1_counts_as": 1.5, "zero_at": 2.5},
                "billing": {"overdue_penalty": 0.3, "failed_penalty": 0.7},
                "onboarding": {"expected_steps": ["invite_team", "connect_app"]},
            },
        },
    },
}


def test_the_compiled_engine_is_built() -> None:
    """`make test` builds it (pip builds native/ with setuptools-rust and cargo); an
    install without a Rust toolchain runs the interpreted engine, and CI must not."""
    assert AVAILABLE, "vigil._native is missing: is cargo on PATH? (see README, Development)"


class Stream:
    """Lines through one intake and the shards as the dataflow splits them; the engines
    can be swapped for ones restored from a snapshot, mid-stream."""

    def __init__(self, engine: type[ShardEngine], settings: Settings) -> None:
        self.settings = settings
        self.intake = Intake("test", "p0", 1, settings.input.allowed_lateness)
        self.split = _splitter(settings.engine.shards)
        keys = [shard_key(n) for n in range(settings.engine.shards)]
        self.shards = {key: engine(settings, RULES) for key in keys}
        self.outputs: list[bytes] = []
        self.line = 0

    def feed(self, lines: list[bytes]) -> Stream:
        for start in range(0, len(lines), BATCH):
            chunk: list[Any] = []
            for raw in lines[start : start + BATCH]:
                self.line += 1
                chunk.append(self.intake.take(raw, {"line": self.line}))
            chunk.append(self.intake.tick())
            for key, items in self.split(chunk):
                self.outputs.extend(orjson.dumps(out) for out in self.shards[key].process(items))
        return self

    def restart(self, engine: type[ShardEngine]) -> None:
        """Snapshot every shard, and go on with engines restored from the snapshots."""
        for key, shard in self.shards.items():
            saved = SnapshotWriter(shard).snapshot()
            self.shards[key] = engine(self.settings, RULES, load_state(saved))

    def tallies(self) -> dict[str, Counter[str]]:
        counts: Counter[str] = Counter()
        types: Counter[str] = Counter()
        zones: Counter[str] = Counter()
        for shard in self.shards.values():
            counts.update(shard.counts)
            types.update(shard.type_counts)
            zones.update({zone: n for zone, n in shard.figures().zones.items() if n})
        return {"counts": counts, "types": types, "zones": zones}


def _assert_same_outputs(mine: list[bytes], theirs: list[bytes]) -> None:
    assert len(mine) == len(theirs)
    for n, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        assert a == b, f"output {n} differs"


def _assert_same(lines: list[bytes], settings: Settings) -> Stream:
    interpreted = Stream(ShardEngine, settings).feed(lines)
    compiled = Stream(NativeShardEngine, settings).feed(lines)
    _assert_same_outputs(compiled.outputs, interpreted.outputs)
    assert compiled.tallies() == interpreted.tallies()
    return interpreted


@pytest.mark.skipif(not AVAILABLE, reason="vigil._native is not built")
@pytest.mark.parametrize("variant", VARIANTS)
def test_a_simulated_fleet_gives_the_interpreted_engines_outputs(variant: str) -> None:
    settings = load_settings(None, env={}, overrides=VARIANTS[variant])
    lines, _ = generate(FleetPlan(tenants=40, days=24, seed=11))
    result = _assert_same(list(lines), settings)
    # The stream must have exercised what the variant is for.
    counts = result.tallies()["counts"]
    streams = Counter(orjson.loads(out)[0] for out in result.outputs)
    assert streams["health"] > 500 and streams["signals"] > 0 and streams["tasks"] > 0
    assert counts["duplicates"] and counts["unknown_types"]
    if variant != "tight limits":  # 6 h of lateness take the simulator's late events
        assert counts["late"]
    if variant == "tight limits":
        assert counts["tenants_forgotten"] and any(k.startswith("keys_refused") for k in counts)
    if variant == "short windows":
        assert {"fact:score_drop", "signal:onboarding_stalled"} <= set(counts)


@pytest.mark.skipif(not AVAILABLE, reason="vigil._native is not built")
@EXAMPLES
@given(streams())
def test_a_stream_of_broken_events_gives_the_interpreted_engines_outputs(
    stream: list[dict[str, Any]],
) -> None:
    lines = [orjson.dumps(event) for event in itertools.chain(stream, [clock(T0 + 30 * DAY)])]
    _assert_same(lines, Settings())


@pytest.mark.skipif(not AVAILABLE, reason="vigil._native is not built")
@pytest.mark.parametrize(
    ("before", "after"),
    [
        (ShardEngine, ShardEngine),
        (NativeShardEngine, NativeShardEngine),
        (NativeShardEngine, ShardEngine),
        (ShardEngine, NativeShardEngine),
    ],
)
def test_a_snapshot_resumes_in_either_engine_as_if_never_stopped(
    before: type[ShardEngine], after: type[ShardEngine]
) -> None:
    """A recovery store written by either engine is read by the other (one format), and
    the run goes on with the outputs of a run that never stopped."""
    settings = load_settings(None, env={}, overrides=VARIANTS["short windows"])
    lines = list(generate(FleetPlan(tenants=40, days=24, seed=5))[0])
    whole = Stream(ShardEngine, settings).feed(lines)
    # Cut between two of the batches the whole run read, as a snapshot falls between
    # batches: other batches would interleave the shards' outputs otherwise.
    for cut in (len(lines) // 3 // BATCH * BATCH, 2 * len(lines) // 3 // BATCH * BATCH):
        resumed = Stream(before, settings).feed(lines[:cut])
        resumed.restart(after)
        resumed.feed(lines[cut:])
        _assert_same_outputs(resumed.outputs, whole.outputs)


@pytest.mark.skipif(not AVAILABLE, reason="vigil._native is not built")
@EXAMPLES
@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=5))
def test_any_name_in_a_reason_comes_out_as_the_interpreted_engine_words_it(
    names: list[str],
) -> None:
    """Reason lines quote names a producer chose (integrations here): quotes, control
    characters and any other text must come out of the compiled engine's wording alike."""
    events = [
        event("t-a", "integration.state", T0 + n * HOUR, {"integration": name, "state": "error"})
        for n, name in enumerate(names)
    ]
    events.append(clock(T0 + 3 * DAY))
    result = _assert_same([orjson.dumps(item) for item in events], Settings())
    assert any(b"not connected: " in out for out in result.outputs)


@pytest.mark.skipif(not AVAILABLE, reason="vigil._native is not built")
def test_the_caches_of_worded_records_stay_within_the_interpreted_engines_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Component entries and reason lines are cached per distinct measure, of which a
    long run meets ever more: emptied when full (health.MEMO_SIZE), as the interpreted
    engine's caches are, with the same outputs."""
    import vigil.health

    settings = load_settings(None, env={}, overrides={"engine": {"shards": 1}})
    lines = list(generate(FleetPlan(tenants=40, days=24, seed=11))[0])
    unbounded = Stream(NativeShardEngine, settings).feed(lines)
    assert min(unbounded.shards["s0000"].core.cached) > 20
    monkeypatch.setattr(vigil.health, "MEMO_SIZE", 20)
    bounded = _assert_same(lines, settings)  # the interpreted one, also bounded now
    compiled = Stream(NativeShardEngine, settings).feed(lines)
    _assert_same_outputs(compiled.outputs, bounded.outputs)
    assert 0 < max(compiled.shards["s0000"].core.cached) <= 20
