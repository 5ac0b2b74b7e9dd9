"""Vigil's main dataflow: events -> per-tenant event-time state -> signals, health,
rules -> health, signals, tasks, notifications and dead letters.

    source (one chunk per batch) -> one chunk per shard (the batch's tick goes to every
           shard), and the batch's dead letters straight to the sink
           -> engine (stateful, one ShardEngine per shard) -> sink

The source and sink are parameters, so file and Kafka modes share everything else.
Run it with `vigil run`, or `python -m bytewax.run vigil.flows.health:flow` with settings
from VIGIL_CONFIG and VIGIL_* variables.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from vigil._native import ShardSplitter
from vigil.base.ids import shard_key
from vigil.base.logs import BurstWatch
from vigil.base.streams import DEADLETTER, OUTPUTS, SinkItem
from vigil.config.settings import UNREAD_ENV, Settings, load_settings, unread_env
from vigil.engine.measures import fleet_feeds
from vigil.engine.shard import ShardEngine
from vigil.engine.snapshots import SnapshotWriter, load_state
from vigil.intake.events import DeadLetter, Event
from vigil.intake.reader import Chunk, Tick
from vigil.ops.metrics import Metrics
from vigil.rules.engine import RuleEngine, engine_for
from vigil.rules.loader import configured_rules

STREAMS = list(OUTPUTS)
FLOW_ID, INPUT_STEP = "vigil", "input"
# The input step's id, under which a recovery store keeps the input's positions.
INPUT_STEP_ID = f"{FLOW_ID}.{INPUT_STEP}"


# What the router hands one shard from one source batch: that shard's events in the
# order read, then the batch's watermark tick.
ShardChunk = list[Event | Tick]


class _ShardLogic(StatefulBatchLogic[ShardChunk, SinkItem, bytes]):
    def __init__(self, engine: ShardEngine, metrics: Metrics, snapshots: bool) -> None:
        self.engine = engine
        self.metrics = metrics
        self.snapshots = SnapshotWriter(engine) if snapshots else None
        self.name = str(id(self))  # what the metrics know the shard by

    def on_batch(self, values: list[ShardChunk]) -> tuple[list[SinkItem], bool]:
        engine, metrics = self.engine, self.metrics
        out = []
        read_at = 0.0
        for chunk in values:
            out.extend(engine.process(chunk))
            tick = chunk[-1]
            if isinstance(tick, Tick):  # the outputs were caused by the newest tick
                read_at = max(read_at, tick.read_at)
        metrics.record(engine.counts)
        metrics.record_types(engine.take_type_counts())
        metrics.record_shard(self.name, engine.figures())
        by_stream: dict[str, list[dict[str, Any]]] = {}
        for stream, record in out:
            by_stream.setdefault(stream, []).append(record)
        chunks = [(stream, (records, read_at)) for stream, records in by_stream.items()]
        return chunks, StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        if self.snapshots is None:
            return b""  # no recovery store: bytewax would pickle state nobody keeps
        started = time.perf_counter()
        # Pickled now, so later mutation cannot leak into the snapshot.
        snapshot = self.snapshots.snapshot()
        self.metrics.record_snapshot(time.perf_counter() - started, len(snapshot))
        return snapshot


def _splitter(settings: Settings) -> Callable[[Chunk], list[tuple[str, ShardChunk]]]:
    shards = settings.engine.shards
    keys = [shard_key(n) for n in range(shards)]
    # compiled: it runs for every event; it notes what the fleet used for every shard
    splitter = ShardSplitter(shards, Event, Tick, fleet_feeds(settings))

    def split(chunk: Chunk) -> list[tuple[str, ShardChunk]]:
        """One source batch -> one chunk per shard; every shard gets the tick, as time
        must move for all of them. Dead letters take another path (`_dead_letters`)."""
        per_shard = splitter.split(chunk)
        return [(key, items) for key, items in zip(keys, per_shard, strict=True) if items]

    return split


def _dead_letters(chunk: Chunk) -> list[DeadLetter]:
    return [item for item in chunk if isinstance(item, DeadLetter)]


def build_flow(
    settings: Settings,
    source: Source[Chunk],
    sink: Sink[Any],
    metrics: Metrics | None = None,
    rules: RuleEngine | None = None,
    *,
    snapshots: bool = True,
) -> Dataflow:
    """`snapshots=False` when the run surely has no recovery store (`vigil run` knows;
    `python -m bytewax.run -r` decides outside the flow, so the default keeps them)."""
    metrics = metrics or Metrics(known_types=settings.catalogue.full.types)
    rules = rules or engine_for(configured_rules(settings))

    def build_shard(resume: bytes | None) -> _ShardLogic:
        state = load_state(resume) if resume else None
        engine = ShardEngine(settings, rules, state)
        return _ShardLogic(engine, metrics, snapshots)

    bursts = BurstWatch(logging.getLogger("vigil.input"))

    def dead_letter(item: DeadLetter) -> SinkItem:
        metrics.dead_letters.labels(item.reason).inc()
        bursts.add(item.reason)
        return (DEADLETTER, ([item.to_record()], 0.0))

    flow = Dataflow(FLOW_ID)
    chunks = op.input(INPUT_STEP, flow, source)
    dead_letters = op.flat_map("dead_letters", chunks, _dead_letters)
    rejected = op.map("dead_letter_record", dead_letters, dead_letter)
    keyed = op.flat_map("split_by_shard", chunks, _splitter(settings))
    engine_out = op.stateful_batch("engine", keyed, build_shard)
    results = op.map("drop_shard_key", engine_out, lambda keyed_item: keyed_item[1])
    op.output("write", op.merge("outputs", results, rejected), sink)
    return flow


def _flow_from_environment() -> Dataflow:
    """For `python -m bytewax.run vigil.flows.health:flow`: VIGIL_INPUT, VIGIL_OUTPUT_DIR."""
    from vigil.connectors.files import JsonLinesSink, JsonLinesSource

    config = os.environ.get("VIGIL_CONFIG")
    settings = load_settings(Path(config) if config else None)
    for variable, setting in unread_env(os.environ):
        logging.getLogger("vigil.config.settings").warning(
            "%s: %s (meant %s?)", UNREAD_ENV, variable, setting
        )
    source = JsonLinesSource.configured(os.environ.get("VIGIL_INPUT", "-"), settings)
    out_dir = Path(os.environ.get("VIGIL_OUTPUT_DIR", "vigil-out"))
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = Metrics(known_types=settings.catalogue.full.types)
    return build_flow(settings, source, JsonLinesSink(out_dir, STREAMS, metrics), metrics)


def __getattr__(name: str) -> Any:
    # Built on first access, so importing this module reads no environment.
    if name == "flow":
        return _flow_from_environment()
    raise AttributeError(name)
