"""The measures, signals and health components declared in the settings, as the
engine's core takes them (native/src/declared.rs, native/src/components.rs)."""

from __future__ import annotations

import functools
import hashlib
from typing import NamedTuple

import orjson

from vigil.base.timeutil import MS_PER_DAY, format_duration
from vigil.base.words import counted
from vigil.config.settings import (
    ENGINE_COMPONENTS,
    ComponentSettings,
    DeclaredComponent,
    MeasureSettings,
    Settings,
)

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


# (name, digest, its bit in a tenant's stale, weight, measure index, (scale, its number,
# its text), (per measure index, against the window before, min_previous), when measure
# index, whether the value is a count (said as a whole number), the reason as (what,
# text) pieces: "text", or the value as "value", "counted" ("singular|plural"), "pct" or
# "down_pct")
ComponentTuple = tuple[
    str,
    str,
    int,
    float,
    int,
    tuple[str, float, str | None],
    tuple[int | None, bool, float],
    int | None,
    bool,
    list[tuple[str, str]],
]


class Compiled(NamedTuple):
    measures: list[MeasureTuple]
    conditions: list[ConditionTuple]
    signals: list[str]  # the declared signals' names, in the conditions' order
    # The components declared over measures, and every component in the order of health
    # records: (name, whether declared, its place among the declared or the built-in).
    components: list[ComponentTuple]
    order: list[tuple[str, bool, int]]
    # What the engine's own code for the built-in components reads.
    built_in: ComponentSettings


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
        bucket = measure.bucket or (
            bucket_of(window, settings.engine.health_step, origin or 0) if window else 0
        )
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
    chosen = settings.health.components
    instead = list(chosen.declared)
    components = [
        _component(name, component, names, settings, _bit(name, instead))
        for name, component in chosen.declared.items()
    ]
    order = [
        (name, True, instead.index(name))
        if name in instead
        else (name, False, list(ENGINE_COMPONENTS).index(name))
        for name in chosen.order
    ]
    return Compiled(
        measures, conditions, list(declared), components, order, chosen.built_in_parts()
    )


def _bit(name: str, declared: list[str]) -> int:
    """A component's bit in a tenant's `stale`: an engine component's, when declared in
    its place; else one after the engine components'."""
    if name in ENGINE_COMPONENTS:
        return list(ENGINE_COMPONENTS).index(name)
    others = [n for n in declared if n not in ENGINE_COMPONENTS]
    return len(ENGINE_COMPONENTS) + others.index(name)


def _counts(kind: str) -> bool:
    """Whether a measure's values are whole numbers of things."""
    return kind in ("count", "distinct", "open_items")


def _component(
    name: str, component: DeclaredComponent, names: list[str], settings: Settings, bit: int
) -> ComponentTuple:
    if component.equals is not None:
        scale, at = "equals", 0.0
    elif component.full_at is not None:
        scale, at = "full_at", component.full_at
    else:
        scale, at = "zero_at", component.zero_at or 0.0  # one scale is given
    window = settings.measures[component.measure].window
    said = {
        "full_at": component.full_at,
        "zero_at": component.zero_at,
        "equals": component.equals,
        "measure": component.measure,
        "window": (
            counted(window // MS_PER_DAY, "day")
            if window and window % MS_PER_DAY == 0
            else format_duration(window or 0)
        ),
    }
    reason: list[tuple[str, str]] = []
    for text, placeholder, spec in component.parts:
        if text:
            reason.append(("text", text))
        if placeholder == "value":
            reason.append(("counted", spec) if spec else ("value", ""))
        elif placeholder in ("pct", "down_pct"):
            reason.append((placeholder, ""))
        elif placeholder:
            value = said[placeholder]
            reason.append(("text", f"{value:g}" if isinstance(value, float) else str(value)))
    # What the component's values depend on: its declaration and its measures'.
    measures = {
        n: settings.measures[n] for n in (component.measure, component.per, component.when) if n
    }
    declaration = [
        component.model_dump(mode="json"),
        {n: m.model_dump(mode="json") for n, m in measures.items()},
    ]
    digest = hashlib.blake2b(
        orjson.dumps(declaration, option=orjson.OPT_SORT_KEYS), digest_size=6
    ).hexdigest()
    index = names.index
    return (
        name,
        digest,
        bit,
        component.weight,
        index(component.measure),
        (scale, at, component.equals),
        (
            None if component.per is None else index(component.per),
            component.versus == "previous_window",
            component.min_previous,
        ),
        None if component.when is None else index(component.when),
        _counts(settings.measures[component.measure].kind)
        and component.per is None
        and component.versus is None,
        reason,
    )


@functools.cache
def default_digests() -> tuple[dict[str, str], dict[str, str]]:
    """The digests of the default measures' and components' declarations, by name."""
    defaults = compiled(Settings())
    measures = {name: digest for name, digest, *_ in defaults.measures}
    components = {name: digest for name, digest, *_ in defaults.components}
    return measures, components
