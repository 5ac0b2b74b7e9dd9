"""The shard engines alone: decode a stream first, then time only ShardEngine.process.

    python bench/engine.py [--input FILE | --events 200000 --tenants 2000] [--repeat 3]

No Bytewax, no source, no sink: the events are decoded and split into per-shard batches
with their watermark ticks exactly as the dataflow does, before the clock starts. It
prints the engine's cost per event (best of the repeats, in CPU time) and a digest of
every output, so a change meant to be faster can be checked to give the same outputs.
"""

from __future__ import annotations

import argparse
import gc
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

from rules.engine import engine_for  # noqa: E402
from rules.loader import load_rules  # noqa: E402
from vigil.events import Event  # noqa: E402
from vigil.ids import shard_of  # noqa: E402
from vigil.intake import Intake  # noqa: E402
from vigil.settings import Settings  # noqa: E402
from vigil.shard import Output, ShardEngine, Tick  # noqa: E402

ShardBatches = list[list[Event | Tick]]  # one source batch, split by shard


def decode_stream(path: Path, settings: Settings) -> tuple[list[ShardBatches], int]:
    """The stream as the engines receive it, and how many events it holds."""
    intake = Intake(str(path), "p0", 1, settings.input.allowed_lateness)
    shards, size = settings.engine.shards, settings.input.batch_size
    batches: list[ShardBatches] = []
    lines = path.read_bytes().splitlines()
    events = 0
    for start in range(0, len(lines), size):
        per_shard: ShardBatches = [[] for _ in range(shards)]
        for number, raw in enumerate(lines[start : start + size], start + 1):
            item = intake.take(raw, {"file": str(path), "line": number})
            if isinstance(item, Event):
                per_shard[shard_of(item.tenant_id, shards)].append(item)
                events += 1
        tick = intake.tick()
        for items in per_shard:
            items.append(tick)
        batches.append(per_shard)
    return batches, events


def run_engines(batches: list[ShardBatches], settings: Settings) -> tuple[float, list[Output]]:
    rules = engine_for(load_rules(settings.rules.paths))
    engines = [ShardEngine(settings, rules) for _ in range(settings.engine.shards)]
    out: list[Output] = []
    started = time.process_time()
    for per_shard in batches:
        for engine, items in zip(engines, per_shard, strict=True):
            out.extend(engine.process(items))
    return time.process_time() - started, out


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
    args = parser.parse_args()
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        stream = args.input or Path(tmp) / "events.jsonl"
        if args.input is None:
            make_stream(stream, args.events, args.tenants, seed=42)
        batches, events = decode_stream(stream, settings)
    gc.collect()
    gc.freeze()  # as `vigil run` does (vigil/runner.py): the decoded input is long-lived
    timings = []
    for _ in range(args.repeat):
        seconds, outputs = run_engines(batches, settings)
        timings.append(seconds)
    print(f"{events:,} events, {len(outputs):,} outputs, digest {digest(outputs)}")
    runs = ", ".join(f"{t / events * 1e6:.2f}" for t in timings)
    print(
        f"engine: {min(timings) / events * 1e6:.2f} µs/event CPU, best of {len(timings)} ({runs})"
    )


if __name__ == "__main__":
    main()
