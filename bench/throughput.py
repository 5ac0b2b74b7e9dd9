"""Throughput of `vigil run` against a bare Bytewax flow on the same simulated stream.

    python bench/throughput.py [--events 1000000] [--tenants 10000] [--repeat 1] [--store]

--store adds `vigil run` with a recovery store (a snapshot every 10 s), for what the
snapshots cost in time and memory.

Each variant runs in its own process (so peak memory is its own), on the same file,
one after the other in this run; the figure that matters is the ratio, since the
machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def make_stream(path: Path, events: int, tenants: int, seed: int, days: int | None = None) -> None:
    # Enough days for `events` lines (about 14 a tenant a day), cut at exactly `events`.
    days = days or max(2, events // (tenants * 12) + 1)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "vigil.app.cli",
            "simulate",
            "--tenants",
            str(tenants),
            "--days",
            str(days),
            "--seed",
            str(seed),
            "--limit",
            str(events),
            "--output",
            str(path),
        ],
        check=True,
    )


def run_variant(variant: str, path: Path, out_dir: Path) -> dict[str, float]:
    """Time one variant in this process (called in a child process)."""
    from bytewax.testing import run_main

    stages = {"source_s": 0.0, "engine_s": 0.0}

    if variant == "bare":
        from vigil.flows.bare import build_flow as build_bare

        flow = build_bare(str(path))
        started = time.perf_counter()
        run_main(flow)
    else:
        import vigil.flows.health
        from vigil.app.runner import execute
        from vigil.config.settings import RecoverySettings, Settings
        from vigil.connectors.files import JsonLinesSink, JsonLinesSource
        from vigil.flows.health import STREAMS, build_flow

        if variant == "intake":
            # Vigil's own source, decoding, validation, watermark and routing, with the
            # engine doing nothing: what the shards' work costs is full minus this.
            from vigil.engine.shard import ShardEngine

            class IdleEngine(ShardEngine):
                def process(self, items: object) -> list[Any]:
                    return []

            setattr(vigil.flows.health, "ShardEngine", IdleEngine)  # noqa: B010
        if variant == "full":
            _time_stages(stages)
        settings = Settings()
        if variant == "store":  # as `vigil run --recovery-dir`
            from vigil.app.runner import prepare_recovery_dir
            from vigil.engine.state import state_layout

            settings = Settings(recovery=RecoverySettings(dir=str(out_dir / "store")))
            prepare_recovery_dir(out_dir / "store", layout=state_layout(settings))
        out_dir.mkdir(parents=True, exist_ok=True)
        source = JsonLinesSource.configured(str(path), settings)
        sink = JsonLinesSink(out_dir, STREAMS)
        flow = build_flow(settings, source, sink, snapshots=variant == "store")
        started = time.perf_counter()
        execute(flow, settings.recovery)  # exactly what `vigil run` does
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mib": peak_mib, **stages}


def _time_stages(stages: dict[str, float]) -> None:
    """Add up the wall time spent reading and decoding the source's batches and in the
    shard engines (a clock read per batch, not per event), to split the full run."""
    from vigil.connectors.files import _FilePartition
    from vigil.engine.shard import ShardEngine

    def timed(cls: type, name: str, stage: str) -> None:
        original = getattr(cls, name)

        def wrapper(self: object, *args: object) -> object:
            started = time.perf_counter()
            try:
                return original(self, *args)
            finally:
                stages[stage] += time.perf_counter() - started

        setattr(cls, name, wrapper)

    timed(_FilePartition, "next_batch", "source_s")
    timed(ShardEngine, "process", "engine_s")


def child(variant: str, path: Path, out_dir: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", variant, "--input", str(path), "--out", str(out_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode != 0:
        sys.exit(f"the {variant} run failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--input", type=Path, help="use this stream instead of simulating one")
    parser.add_argument("--store", action="store_true", help="also run with a recovery store")
    parser.add_argument(
        "--child", choices=["bare", "intake", "full", "store"], help=argparse.SUPPRESS
    )
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_variant(args.child, args.input, args.out)))
        return
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        work = Path(tmp)
        stream = args.input or work / "events.jsonl"
        if args.input is None:
            print(
                f"simulating {args.events:,} events over {args.tenants:,} tenants ...", flush=True
            )
            make_stream(stream, args.events, args.tenants, args.seed)
        lines = sum(1 for _ in stream.open("rb"))
        print(f"stream: {stream} ({lines:,} lines, {stream.stat().st_size / 2**20:.0f} MiB)")
        full_ratios: list[float] = []
        for attempt in range(args.repeat):
            bare = child("bare", stream, work / "bare")
            intake = child("intake", stream, work / "intake")
            full = child("full", stream, work / "out")
            rates = {
                name: lines / r["seconds"]
                for name, r in (("bare", bare), ("intake", intake), ("full", full))
            }
            print(f"run {attempt + 1}:")
            for name, label, result in (
                ("bare", "bare flow (parse, key, stateful no-op)", bare),
                ("intake", "vigil intake only (engine idle)", intake),
                ("full", "vigil run (full pipeline)", full),
            ):
                print(
                    f"  {label:<40}{rates[name]:>10,.0f} events/s "
                    f"({result['seconds']:.1f} s, peak {result['peak_mib']:.0f} MiB)"
                )
            if args.store:
                store = child("store", stream, work / "store")
                print(
                    f"  {'vigil run with a recovery store':<40}{lines / store['seconds']:>10,.0f} "
                    f"events/s ({store['seconds']:.1f} s, peak {store['peak_mib']:.0f} MiB): "
                    f"time {store['seconds'] / full['seconds']:.2f} and peak memory "
                    f"{store['peak_mib'] / full['peak_mib']:.2f} of the run without"
                )
            shares = {stage: full[f"{stage}_s"] / full["seconds"] for stage in ("source", "engine")}
            print(
                f"  full run's time: engine {shares['engine']:.0%}, source (read, decode, "
                f"validate) {shares['source']:.0%}, the rest (Bytewax, routing, sink) "
                f"{1 - shares['engine'] - shares['source']:.0%}"
            )
            print(f"  intake / bare: {rates['intake'] / rates['bare']:.2f}")
            full_ratios.append(rates["full"] / rates["bare"])
            print(f"  full / bare:   {full_ratios[-1]:.2f}  (target >= 0.50)")
            engine_us = (1 / rates["full"] - 1 / rates["intake"]) * 1e6
            budget_us = (1 / (0.50 * rates["bare"]) - 1 / rates["intake"]) * 1e6
            print(
                f"  engine work: {engine_us:.1f} µs/event; the target leaves it "
                f"{budget_us:.1f} µs/event"
            )
        if len(full_ratios) > 1:  # one noisy run can move a ratio a lot on a shared machine
            runs = ", ".join(f"{r:.2f}" for r in full_ratios)
            print(
                f"full / bare, median of {len(full_ratios)} runs: "
                f"{median(full_ratios):.2f} ({runs})"
            )


if __name__ == "__main__":
    main()
