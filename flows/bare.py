"""The benchmark's baseline: the least a Bytewax flow over the same file can do.

    read lines -> parse JSON -> key by tenant -> stateful no-op -> output

`bench/throughput.py` times it beside the full Vigil flow on the same input.
"""

from __future__ import annotations

from typing import Any

import bytewax.operators as op
import orjson
from bytewax.connectors.files import FileSource
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulLogic
from bytewax.outputs import DynamicSink, StatelessSinkPartition


class _NoOp(StatefulLogic[dict[str, Any], Any, None]):
    def on_item(self, value: dict[str, Any]) -> tuple[list[Any], bool]:
        return [], StatefulLogic.RETAIN

    def snapshot(self) -> None:
        return None


class _Discard(StatelessSinkPartition[Any]):
    def write_batch(self, items: list[Any]) -> None:
        return None


class DiscardSink(DynamicSink[Any]):
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Discard:
        return _Discard()


def _parse(line: str) -> dict[str, Any] | None:
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None  # the simulated stream has a few malformed lines on purpose
    return event if isinstance(event, dict) else None


def build_flow(path: str, batch_size: int = 1000) -> Dataflow:
    flow = Dataflow("bare")
    lines = op.input("input", flow, FileSource(path, batch_size=batch_size))
    parsed = op.filter_map("parse", lines, _parse)
    keyed = op.key_on("key", parsed, lambda event: str(event.get("tenant_id", "")))
    done = op.stateful("noop", keyed, lambda _resume: _NoOp())
    op.output("output", done, DiscardSink())
    return flow
