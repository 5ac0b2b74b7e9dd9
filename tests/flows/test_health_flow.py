"""The whole dataflow under bytewax's test runners: 1 worker vs 2, dead letters, replay."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from bytewax.testing import TestingSink, cluster_main, run_main

from vigil.config.settings import Settings
from vigil.connectors.files import JsonLinesSource
from vigil.flows.health import build_flow
from vigil.intake.simulate import FleetPlan, generate
from vigil.ops.metrics import Metrics

Item = tuple[str, dict[str, Any]]  # (stream, record)


@pytest.fixture(scope="module")
def fleet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lines, _ = generate(FleetPlan(tenants=40, days=22, seed=11))
    path = tmp_path_factory.mktemp("fleet") / "events.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def run_flow(
    path: Path, workers: int = 1, batch_size: int = 500, settings: Settings | None = None
) -> tuple[list[Item], Metrics]:
    settings = settings or Settings()
    out: list[tuple[str, tuple[list[dict[str, Any]], float]]] = []  # (stream, (records, read_at))
    metrics = Metrics()
    flow = build_flow(
        settings,
        JsonLinesSource(str(path), settings.input.allowed_lateness, batch_size),
        TestingSink(out),
        metrics,
    )
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return [(stream, record) for stream, (records, _) in out for record in records], metrics


def as_set(items: list[Item]) -> Counter[bytes]:
    return Counter(
        stream.encode() + orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
        for stream, record in items
    )


def test_two_workers_give_the_same_outputs_as_one(fleet_file: Path) -> None:
    one, _ = run_flow(fleet_file)
    two, _ = run_flow(fleet_file, workers=2)
    assert as_set(one) == as_set(two)
    streams = Counter(stream for stream, _ in one)
    assert streams["signals"] >= 3 and streams["tasks"] >= 3 and streams["health"] > 100


def test_a_replay_repeats_every_output_and_id(fleet_file: Path) -> None:
    first, _ = run_flow(fleet_file)
    again, _ = run_flow(fleet_file, batch_size=37)  # a different batching, too
    assert as_set(first) == as_set(again)


def test_bad_lines_become_dead_letters_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    good = {
        "event_id": "a",
        "type": "user.session",
        "tenant_id": "t1",
        "ts": "2026-03-02T10:00:00Z",
    }
    path.write_bytes(
        b"\n".join(
            [
                orjson.dumps(good),
                b"{oops",
                b"",
                b'"just a string"',
                orjson.dumps({**good, "event_id": "b"}),
            ]
        )
        + b"\n"
    )
    out, metrics = run_flow(path)
    letters = [record for stream, record in out if stream == "deadletter"]
    assert [(d["position"]["line"], d["reason"]) for d in letters] == [
        (2, "invalid_json"),
        (4, "not_an_object"),
    ]
    assert all(d["source"] == str(path) and d["position"]["file"] == str(path) for d in letters)
    assert metrics.value("vigil_dead_letters_total", reason="invalid_json") == 1
    assert metrics.value("vigil_events_total", type="user.session") == 2


def test_bytewax_run_entry_point_gives_the_same_outputs(fleet_file: Path, tmp_path: Path) -> None:
    """`python -m bytewax.run vigil.flows.health:flow`, configured from the environment."""
    import os
    import subprocess
    import sys

    from support import ROOT, run_vigil

    env = {**os.environ, "VIGIL_INPUT": str(fleet_file), "VIGIL_OUTPUT_DIR": str(tmp_path / "bw")}
    env["VIGIL_INPUT_ALLOWED_LATENESS"] = "1h"  # misspelt (one underscore): said, not read
    done = subprocess.run(
        [sys.executable, "-m", "bytewax.run", "vigil.flows.health:flow"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (
        "environment variable not read: a setting's parts are joined by two underscores: "
        "VIGIL_INPUT_ALLOWED_LATENESS (meant VIGIL_INPUT__ALLOWED_LATENESS?)"
    ) in done.stderr
    cli = run_vigil(
        "run",
        "--input",
        str(fleet_file),
        "--output",
        str(tmp_path / "cli"),
        "--quiet",
        env={**os.environ, "VIGIL_METRICS__PORT": "0"},
    )
    assert cli.returncode == 0, cli.stderr
    for stream in ("health", "signals", "tasks", "notifications", "deadletter"):
        assert (tmp_path / "bw" / f"{stream}.jsonl").read_bytes() == (
            tmp_path / "cli" / f"{stream}.jsonl"
        ).read_bytes()


def test_snapshots_for_a_recovery_store_are_timed_and_counted(
    fleet_file: Path, tmp_path: Path
) -> None:
    from datetime import timedelta

    from bytewax.recovery import RecoveryConfig, init_db_dir
    from support import T0, Harness, sessions

    from vigil.flows.health import _ShardLogic

    def snapshot_figures(metrics: Metrics) -> tuple[float | None, float | None]:
        read = metrics.registry.get_sample_value
        return read("vigil_snapshot_seconds_count"), read("vigil_snapshot_bytes_total")

    # Each snapshot of a shard is one observation, and its length is counted.
    shard, metrics = Harness(), Metrics()
    logic = _ShardLogic(shard.engine, metrics, snapshots=True)
    sizes = [len(logic.snapshot())]
    shard.feed(sessions("acme", T0, 20))
    sizes += [len(logic.snapshot()), len(logic.snapshot())]
    assert snapshot_figures(metrics) == (3, sum(sizes)) and sizes[1] > sizes[0]
    # Without a recovery store there is nothing to encode, and nothing is counted.
    idle = Metrics()
    assert _ShardLogic(shard.engine, idle, snapshots=False).snapshot() == b""
    assert snapshot_figures(idle) == (0, 0)
    settings = shard.settings

    # A whole run with a store, snapshotting at every epoch.
    store = tmp_path / "store"
    store.mkdir()
    init_db_dir(store, 1)
    metrics = Metrics()
    source = JsonLinesSource(str(fleet_file), settings.input.allowed_lateness, 500)
    flow = build_flow(settings, source, TestingSink([]), metrics)
    run_main(flow, epoch_interval=timedelta(0), recovery_config=RecoveryConfig(str(store)))
    count, size = snapshot_figures(metrics)
    assert count is not None and count >= settings.engine.shards and size and size > count * 10


def test_a_tenant_is_placed_on_the_shard_crc32_of_its_id_says() -> None:
    """The placement a recovery store depends on: zlib's CRC-32 of the id, modulo the
    shards, whatever machine or version computes it."""
    import zlib

    from vigil._native import ShardSplitter
    from vigil.flows.health import _splitter
    from vigil.intake.events import Event
    from vigil.intake.reader import Tick

    splitter = ShardSplitter(32, Event, Tick)
    ids = ["tenant-00042", "acme", "élan", "租户", "x" * 128, ""]
    assert [splitter.shard_of(t) for t in ids] == [zlib.crc32(t.encode()) % 32 for t in ids]
    events = [
        Event(f"e{n}", "user.session", tenant, 0, None, {}, None, 0, "s", {})
        for n, tenant in enumerate(ids)
    ]
    tick = Tick("p0", 0, 1)
    split = dict(_splitter(Settings())([*events, "not an event", tick]))
    for event in events:
        assert event in split[f"s{zlib.crc32(event.tenant_id.encode()) % 32:04d}"]
    assert all(items[-1] is tick for items in split.values())  # every shard gets the tick
