"""The measures and signals declared in the settings, as the engine's core takes them
(native/src/declared.rs)."""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import orjson

from vigil.base.timeutil import MS_PER_DAY
from vigil.config.settings import MeasureSettings, Settings

# (name, digest, kind, event types, closing types, field, filter, window, bucket, origin
# of calendar windows)
MeasureTuple = tuple[
    str,
    str,
    str,
    tuple[str, ...],
    tuple[str, ...],
    str | None,
    list[tuple[str, str]],
    int,
    int,
    int | None,
]
# (measure index, comparison, per measure index, min_previous, equals, above, below,
# high_above, high_below, (percentile, past windows kept, min_history) for a history)
ConditionTuple = tuple[
    int,
    str,
    int | None,
    float,
    str | None,
    float | None,
    float | None,
    float | None,
    float | None,
    tuple[float, int, int] | None,
]


class Compiled(NamedTuple):
    measures: list[MeasureTuple]
    conditions: list[ConditionTuple]
    signals: list[str]  # the declared signals' names, in the conditions' order


def bucket_of(window: int, step: int, origin: int = 0) -> int:
    """What a window's counts are kept in: days for a window of whole days (from a
    midnight, for calendar windows), health steps otherwise."""
    return MS_PER_DAY if window % MS_PER_DAY == 0 and origin % MS_PER_DAY == 0 else step


def _digest(measure: MeasureSettings, bucket: int) -> str:
    spec = orjson.dumps([measure.model_dump(mode="json"), bucket], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(spec, digest_size=6).hexdigest()


def compiled(settings: Settings) -> Compiled:
    names = list(settings.measures)
    measures: list[MeasureTuple] = []
    for name, measure in settings.measures.items():
        window = measure.window or 0
        origin = settings.engine.window_origin if measure.calendar else None
        bucket = bucket_of(window, settings.engine.health_step, origin or 0) if window else 0
        measures.append(
            (
                name,
                _digest(measure, bucket),
                measure.kind,
                measure.events,
                measure.closed_by,
                measure.field,
                sorted(measure.where.items()),
                window,
                bucket,
                origin,
            )
        )
    declared = settings.signals.declared
    conditions: list[ConditionTuple] = []
    for signal in declared.values():
        history = None
        if signal.versus == "history":
            window = settings.measures[signal.measure].window or 1
            history = (signal.percentile, signal.history // window, signal.min_history)
        conditions.append(
            (
                names.index(signal.measure),
                signal.compares,
                None if signal.per is None else names.index(signal.per),
                signal.min_previous,
                signal.equals,
                signal.above,
                signal.below,
                signal.high_above,
                signal.high_below,
                history,
            )
        )
    return Compiled(measures, conditions, list(declared))
