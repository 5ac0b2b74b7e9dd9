"""The shard engine alone: decode a stream first, then time only ShardEngine.process.

    python bench/engine.py [--input FILE | --events 200000 --tenants 2000] [--repeat 3]
                           [--snapshot] [--lateness 7d] [--config FILE]

No Bytewax, no source, no sink: the events are decoded and split into per-shard chunks
by the dataflow's own splitter, before the clock starts. It
prints the engine's cost per event (best of the repeats, in CPU time) and a digest of
every output, so a change meant to be faster can be checked to give the same outputs.

`--snapshot` also times the snapshots a run with a recovery store takes: the first, of
every tenant, then the next after ten more source batches, which pickles only the
tenants they touched; and a restore.

`--config` times the engine under a settings file (declared measures, signals and
components, say) and under the defaults, in turns, and prints the ratio of the two:
what those declarations cost. bench/declared.toml holds a few a CS team might add.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from throughput import make_stream  # noqa: E402

from vigil.app.runner import tune_gc  # noqa: E402
from vigil.base.ids import shard_key  # noqa: E402
from vigil.config.settings import Settings, load_settings  # noqa: E402
from vigil.engine.shard import Output, ShardEngine  # noqa: E402
from vigil.engine.snapshots import SnapshotWriter, load_state  # noqa: E402
from vigil.flows.health import ShardChunk, _splitter  # noqa: E402
from vigil.intake.events import Event  # noqa: E402
from vigil.intake.reader import Chunk, Intake  # noqa: E402
from vigil.rules.engine import engine_for  # noqa: E402
from vigil.rules.loader import configured_rules  # noqa: E402

# One source batch as the engines receive it: (shard key, that shard's events and tick).
ShardBatches = list[tuple[str, ShardChunk]]


def decode_stream(path: Path, settings: Settings) -> tuple[list[ShardBatches], int]:
    """The stream decoded and split by the dataflow's own splitter, and its event count."""
    lateness, catalogue = settings.input.allowed_lateness, settings.catalogue.full
    intake = Intake(str(path), "p0", 1, lateness, catalogue=catalogue)
    split, size = _splitter(settings), settings.input.batch_size
    lines = path.read_bytes().splitlines()
    batches: list[ShardBatches] = []
    events = 0
    for start in range(0, len(lines), size):
        chunk: Chunk = [
            intake.take(raw, {"file": str(path), "line": number})
            for number, raw in enumerate(lines[start : start + size], start + 1)
        ]
        events += sum(isinstance(item, Event) for item in chunk)
        chunk.append(intake.tick())
        batches.append(split(chunk))
    return batches, events


def run_engines(
    batches: list[ShardBatches], settings: Settings
) -> tuple[float, list[Output], list[ShardEngine]]:
    rules = engine_for(configured_rules(settings))
    engines = {key: ShardEngine(settings, rules) for key in _shard_keys(settings)}
    out: list[Output] = []
    started = time.process_time()
    for per_shard in batches:
        for key, items in per_shard:
            out.extend(engines[key].process(items))
    return time.process_time() - started, out, list(engines.values())


def time_snapshots(batches: list[ShardBatches], settings: Settings, repeat: int) -> None:
    """Snapshots as a `vigil run` with a recovery store takes them at each epoch: the first
    of a run (every tenant pickled) at the end of all but the last ten source batches,
    then the next one after those (only the tenants they touched), one more with nothing
    touched (the part every snapshot pays), and a restore; wall time, best of `repeat`."""
    first, after_one_batch, unchanged, restore = [], [], [], []
    held_back = 10
    for _ in range(repeat):
        _, _, engines = run_engines(batches[:-held_back], settings)
        writers = [SnapshotWriter(e) for e in engines]
        started = time.perf_counter()
        saved = [writer.snapshot() for writer in writers]
        first.append(time.perf_counter() - started)
        shards = dict(zip(_shard_keys(settings), engines, strict=True))
        for per_shard in batches[-held_back:]:
            for key, items in per_shard:
                shards[key].process(items)
        started = time.perf_counter()
        for writer in writers:
            writer.snapshot()
        after_one_batch.append(time.perf_counter() - started)
        started = time.perf_counter()
        for writer in writers:
            writer.snapshot()
        unchanged.append(time.perf_counter() - started)
        started = time.perf_counter()
        for blob in saved:
            load_state(blob)
        restore.append(time.perf_counter() - started)
    tenants = sum(e.figures().tenants for e in engines)
    ids = sum(sum(e.seen_day_counts().values()) for e in engines)
    size = sum(len(blob) for blob in saved) / 2**20
    print(
        f"snapshot ({tenants:,} tenants, {ids:,} event ids held): every tenant "
        f"{min(first):.3f} s, {size:.1f} MiB; after {held_back} more source batches "
        f"{min(after_one_batch):.3f} s; then with nothing "
        f"touched {min(unchanged):.3f} s; restore {min(restore):.3f} s"
    )


def _shard_keys(settings: Settings) -> list[str]:
    return [shard_key(n) for n in range(settings.engine.shards)]


def digest(outputs: list[Output]) -> str:
    """Order-free: shards may emit in any order, the set of records is what counts."""
    lines = sorted(
        stream.encode() + orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
        for stream, record in outputs
    )
    return hashlib.sha256(b"\n".join(lines)).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", type=Path, help="use this stream instead of simulating one")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--tenants", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--snapshot", action="store_true", help="also time a snapshot of the final state"
    )
    parser.add_argument("--lateness", help="input.allowed_lateness, e.g. 7d (default 1h)")
    parser.add_argument("--config", type=Path, help="also time the engine under these settings")
    args = parser.parse_args()
    late = {"input": {"allowed_lateness": args.lateness}} if args.lateness else {}
    settings = Settings.model_validate(late)
    chosen = load_settings(args.config, env={}, overrides=late) if args.config else None
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        stream = args.input or Path(tmp) / "events.jsonl"
        if args.input is None:
            make_stream(stream, args.events, args.tenants, seed=42)
        batches, events = decode_stream(stream, settings)
    tune_gc()  # the collector set up as `vigil run` sets it (the decoded input is long-lived)
    timings = []
    for _ in range(args.repeat):
        seconds, outputs, _ = run_engines(batches, settings)
        timings.append(seconds)
    print(f"{events:,} events, {len(outputs):,} outputs, digest {digest(outputs)}")
    runs = ", ".join(f"{t / events * 1e6:.2f}" for t in timings)
    print(
        f"engine: {min(timings) / events * 1e6:.2f} µs/event CPU, best of {len(timings)} ({runs})"
    )
    if args.snapshot:
        time_snapshots(batches, settings, args.repeat)
    if chosen is not None:
        compare(batches, events, chosen, settings, args.config.name, args.repeat)


def compare(
    batches: list[ShardBatches],
    events: int,
    chosen: Settings,
    defaults: Settings,
    name: str,
    repeat: int,
) -> None:
    """The engine under `chosen` and under the defaults, in turns (so that the machine's
    noise falls on both), best of `repeat` each."""
    timings: dict[str, list[float]] = {name: [], "defaults": []}
    for _ in range(repeat):
        for label, settings in ((name, chosen), ("defaults", defaults)):
            timings[label].append(run_engines(batches, settings)[0])
    best = {label: min(seconds) / events * 1e6 for label, seconds in timings.items()}
    print(
        f"{name}: {best[name]:.2f} µs/event, defaults {best['defaults']:.2f}; "
        f"{name} / defaults: {best[name] / best['defaults']:.2f}"
    )


if __name__ == "__main__":
    main()
