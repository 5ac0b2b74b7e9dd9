"""A source that ends its partitions' input once a stop is requested (vigil.base.stopping)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from vigil.base.stopping import StopSignal

X = TypeVar("X")  # what a source partition emits
S = TypeVar("S")  # its resume state


class StoppableSource(FixedPartitionedSource[X, S]):
    """`source` as it is, except that once `stop` is requested each partition's next
    batch is its end: the dataflow then finishes as at the end of a file, so everything
    read is processed, written and (with a recovery store) snapshotted."""

    def __init__(self, source: FixedPartitionedSource[X, S], stop: StopSignal) -> None:
        self.source = source
        self.stop = stop

    def list_parts(self) -> list[str]:
        return self.source.list_parts()

    def build_part(
        self, step_id: str, for_part: str, resume_state: S | None
    ) -> _StoppablePartition[X, S]:
        part = self.source.build_part(step_id, for_part, resume_state)
        return _StoppablePartition(part, self.stop)


class _StoppablePartition(StatefulSourcePartition[X, S]):
    def __init__(self, part: StatefulSourcePartition[X, S], stop: StopSignal) -> None:
        self.part = part
        self.stop = stop

    def next_batch(self) -> Iterable[X]:
        if self.stop.stopping():
            raise StopIteration  # the end of this partition's input, for this run
        return self.part.next_batch()

    def next_awake(self) -> Any:
        return self.part.next_awake()

    def snapshot(self) -> S:
        return self.part.snapshot()

    def close(self) -> None:
        self.part.close()
