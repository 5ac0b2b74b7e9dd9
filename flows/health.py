"""Vigil's main dataflow: events -> per-tenant event-time state -> signals, health,
rules -> health, signals, tasks, notifications and dead letters.

    source -> split dead letters -> route to shards (ticks to every shard)
           -> engine (stateful, one ShardEngine per shard) -> sink

The source and sink are parameters, so file and Kafka modes share everything else.
Run it with `vigil run`, or `python -m bytewax.run flows.health:flow` with settings
from VIGIL_CONFIG and VIGIL_* variables.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from rules.engine import RuleEngine, engine_for
from rules.loader import load_rules
from vigil.events import DeadLetter, Event
from vigil.ids import shard_key, shard_of
from vigil.logs import BurstWatch
from vigil.metrics import Metrics
from vigil.settings import Settings, load_settings
from vigil.shard import ShardEngine, ShardState, Tick
from vigil.streams import DEADLETTER, OUTPUTS

STREAMS = list(OUTPUTS)


# What reaches a sink: (stream, (record, wall time its trigger was read)).
SinkItem = tuple[str, tuple[dict[str, Any], float]]


class _ShardLogic(StatefulBatchLogic[Event | Tick, SinkItem, bytes]):
    def __init__(self, engine: ShardEngine, metrics: Metrics) -> None:
        self.engine = engine
        self.metrics = metrics

    def on_batch(self, values: list[Event | Tick]) -> tuple[list[SinkItem], bool]:
        out = self.engine.process(values)
        engine, metrics = self.engine, self.metrics
        metrics.record(engine.counts)
        metrics.record_types(engine.type_counts)
        metrics.record_shard(
            str(id(self)), len(engine.state.tenants), engine.zones, engine.state.watermark
        )
        # The batch's outputs were caused by its newest watermark tick.
        read_at = max((v.read_at for v in values if isinstance(v, Tick)), default=0.0)
        return [(stream, (record, read_at)) for stream, record in out], StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        # Pickled now, so later mutation cannot leak into the snapshot.
        return pickle.dumps(self.engine.state, protocol=pickle.HIGHEST_PROTOCOL)


def _router(shards: int) -> Callable[[list[Event | Tick]], list[tuple[str, Event | Tick]]]:
    keys = [shard_key(n) for n in range(shards)]

    def route(batch: list[Event | Tick]) -> list[tuple[str, Event | Tick]]:
        routed: list[tuple[str, Event | Tick]] = []
        for item in batch:
            if isinstance(item, Event):
                routed.append((keys[shard_of(item.tenant_id, shards)], item))
            else:  # a watermark tick: every shard must see time move
                routed.extend((key, item) for key in keys)
        return routed

    return route


def build_flow(
    settings: Settings,
    source: Source[Any],
    sink: Sink[Any],
    metrics: Metrics | None = None,
    rules: RuleEngine | None = None,
) -> Dataflow:
    metrics = metrics or Metrics()
    rules = rules or engine_for(load_rules(settings.rules.paths))

    def build_shard(resume: bytes | None) -> _ShardLogic:
        state: ShardState | None = None if resume is None else pickle.loads(resume)
        return _ShardLogic(ShardEngine(settings, rules, state), metrics)

    bursts = BurstWatch(logging.getLogger("vigil.input"))

    def dead_letter(item: DeadLetter) -> SinkItem:
        metrics.dead_letters.labels(item.reason).inc()
        bursts.add(item.reason)
        return (DEADLETTER, (item.to_record(), 0.0))

    flow = Dataflow("vigil")
    items = op.input("input", flow, source)
    split = op.branch("split_dead_letters", items, lambda item: not isinstance(item, DeadLetter))
    rejected = op.map("dead_letter_record", split.falses, dead_letter)
    keyed = op.flat_map_batch("route_to_shards", split.trues, _router(settings.engine.shards))
    engine_out = op.stateful_batch("engine", keyed, build_shard)
    results = op.map("drop_shard_key", engine_out, lambda keyed_item: keyed_item[1])
    op.output("write", op.merge("outputs", results, rejected), sink)
    return flow


def _flow_from_environment() -> Dataflow:
    """For `python -m bytewax.run flows.health:flow`: VIGIL_INPUT, VIGIL_OUTPUT_DIR."""
    from connectors.files import JsonLinesSink, JsonLinesSource

    config = os.environ.get("VIGIL_CONFIG")
    settings = load_settings(Path(config) if config else None)
    source = JsonLinesSource.configured(os.environ.get("VIGIL_INPUT", "-"), settings.input)
    out_dir = Path(os.environ.get("VIGIL_OUTPUT_DIR", "vigil-out"))
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = Metrics()
    return build_flow(settings, source, JsonLinesSink(out_dir, STREAMS, metrics), metrics)


def __getattr__(name: str) -> Any:
    # Built on first access, so importing this module reads no environment.
    if name == "flow":
        return _flow_from_environment()
    raise AttributeError(name)
