"""The measures, signals and health components declared in the settings, as the
engine's core takes them (native/src/declared.rs, native/src/components.rs)."""

from __future__ import annotations

import functools
import hashlib
from typing import NamedTuple

import orjson

from vigil.base.timeutil import MS_PER_DAY, format_duration
from vigil.base.words import counted
from vigil.config.settings import COUNT_KINDS, DeclaredComponent, MeasureSettings, Settings


class MeasureSpec(NamedTuple):
    """A declared measure as the core reads it (declared::MeasureSpec, by field name)."""

    name: str
    digest: str  # of the declaration: a state saved under another one starts afresh
    kind: str
    events: tuple[str, ...]
    closed_by: tuple[str, ...]
    started_by: tuple[str, ...]
    completed_by: tuple[str, ...]
    field: str | None
    key: str | None
    filter: list[tuple[str, str]]
    window: int
    bucket: int
    calendar: int | None  # the origin of calendar windows
    held_while: tuple[str, ...]
    steps: tuple[str, ...]
    half_life: int  # 0: no decay
    among: tuple[str, ...]  # a distinct's values, its value the share of them used
    of_fleet: int  # a distinct's value the share of what the whole fleet used in this


class ConditionSpec(NamedTuple):
    """A declared signal's condition as the core reads it (declared::ConditionSpec)."""

    measure: int
    versus: str  # DeclaredSignal.compares
    per: int | None
    min_previous: float
    equals: str | None
    above: float | None
    below: float | None
    history: tuple[float, int, int] | None  # (percentile, past windows kept, min_history)
    stalled_after: int | None
    running: int
    requires: list[tuple[int, float]]  # (measure, least)
    min_age: int
    min_sigma: float


class ComponentSpec(NamedTuple):
    """A declared component as the core reads it (components::ComponentSpec)."""

    name: str
    digest: str
    bit: int  # its bit in a tenant's stale: its place among the components
    weight: float
    measure: int | None
    scale: str  # "full_at", "zero_at", "equals" or "mean"
    at: float
    equals: str | None
    per: int | None
    previous_window: bool
    min_previous: float
    weights: list[tuple[str, float]]
    parts: list[tuple[int, float, float, list[tuple[str, str]]]]
    out_of: float
    stalled: tuple[int, float] | None
    when: int | None
    earned_while: int | None
    idle: str  # the reason while earned_while holds it to no points
    whole: bool  # its value counts things: said as a whole number
    reason: list[tuple[str, str]]  # (what, text) pieces: see components::pieces


class Compiled(NamedTuple):
    measures: list[MeasureSpec]
    conditions: list[ConditionSpec]
    signals: list[str]  # the signals' names, in the conditions' order
    components: list[ComponentSpec]  # in the order of health records


def bucket_of(window: int, step: int) -> int:
    """What a rolling window's counts are kept in: days for a window of whole days,
    health steps otherwise. A calendar window's are kept whole."""
    return MS_PER_DAY if window % MS_PER_DAY == 0 else step


def _digest(*parts: object) -> str:
    return hashlib.blake2b(
        orjson.dumps(list(parts), option=orjson.OPT_SORT_KEYS), digest_size=6
    ).hexdigest()


def fleet_feeds(settings: Settings) -> list[tuple[str, str, list[tuple[str, str]], str]]:
    """What the splitter notes for the measures that are a share of what the fleet used
    (`of_fleet`): (event type, attribute, the attribute values it must have, measure)."""
    return [
        (kind, str(measure.field).removeprefix("attrs."), sorted(measure.where.items()), name)
        for name, measure in settings.measures.items()
        if measure.of_fleet
        for kind in measure.events
    ]


def compiled(settings: Settings) -> Compiled:
    names = list(settings.measures)
    measures = [_measure(name, m, settings) for name, m in settings.measures.items()]
    declared = settings.signals.declared
    conditions: list[ConditionSpec] = []
    for signal in declared.values():
        history = None
        if signal.versus == "history":
            window = settings.measures[signal.measure].window or 1
            history = (signal.percentile, signal.history // window, signal.min_history)
        conditions.append(
            ConditionSpec(
                names.index(signal.measure),
                signal.compares,
                None if signal.per is None else names.index(signal.per),
                signal.min_previous,
                signal.equals,
                signal.above,
                signal.below,
                history,
                signal.stalled_after,
                signal.running,
                [(names.index(m), least) for m, least in sorted(signal.requires.items())],
                signal.min_age,
                signal.min_sigma,
            )
        )
    components = [
        _component(name, component, names, settings, bit)
        for bit, (name, component) in enumerate(settings.health.components.declared.items())
    ]
    return Compiled(measures, conditions, list(declared), components)


def _measure(name: str, measure: MeasureSettings, settings: Settings) -> MeasureSpec:
    window = measure.window or 0
    origin = settings.engine.window_origin if measure.calendar else None
    bucket = measure.bucket or (
        (window if measure.calendar else bucket_of(window, settings.engine.health_step))
        if window
        else 0
    )
    return MeasureSpec(
        name,
        _digest(_declaration(measure), bucket),
        measure.kind,
        measure.events,
        measure.closed_by,
        measure.started_by,
        measure.completed_by,
        measure.field,
        measure.key,
        sorted(measure.where.items()),
        window,
        bucket,
        origin,
        measure.held_while,
        measure.steps,
        measure.half_life or 0,
        measure.share_of,
        measure.of_fleet or 0,
    )


# Fields of a measure's declaration that came after others: left out of its digest when
# not set, so that a state saved before they existed is still its measure's.
_LATER_FIELDS = (
    "key",
    "held_while",
    "started_by",
    "completed_by",
    "steps",
    "half_life",
    "share_of",
    "of_fleet",
)
_LATER_COMPONENT_FIELDS = ("earned_while",)
# How components are measured, when it changed: a value saved under other rules is
# measured afresh after a restore (2: silence holds, stopping scores zero).
_SCORING = ("scoring", 2)


def _declaration(measure: MeasureSettings) -> dict[str, object]:
    return _dumped(measure, _LATER_FIELDS)


def _dumped(
    declaration: MeasureSettings | DeclaredComponent, later: tuple[str, ...]
) -> dict[str, object]:
    fields = type(declaration).model_fields
    unset = {f for f in later if getattr(declaration, f) == fields[f].default}
    return declaration.model_dump(mode="json", exclude=unset)


def _component(
    name: str, component: DeclaredComponent, names: list[str], settings: Settings, bit: int
) -> ComponentSpec:
    if component.mean_of:
        scale, at = "mean", 1.0
    elif component.equals is not None:
        scale, at = "equals", 0.0
    elif component.full_at is not None:
        scale, at = "full_at", component.full_at
    else:
        scale, at = "zero_at", component.zero_at or 0.0  # one scale is given
    measure = settings.measures[component.measure] if component.measure else None
    window = measure.window if measure else None
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

    def pieces(parts: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
        reason: list[tuple[str, str]] = []
        for text, placeholder, spec in parts:
            if text:
                reason.append(("text", text))
            if placeholder in ("value", "held") and spec:
                reason.append(
                    (f"{placeholder}_counted" if placeholder == "held" else "counted", spec)
                )
            elif placeholder in said:
                value = said[placeholder]
                reason.append(("text", f"{value:g}" if isinstance(value, float) else str(value)))
            elif placeholder:
                reason.append((placeholder, spec))
        return reason

    # What the component's values depend on: its declaration and its measures'.
    read = {n: _declaration(settings.measures[n]) for n in component.measures}
    index = names.index
    return ComponentSpec(
        name,
        _digest(_dumped(component, _LATER_COMPONENT_FIELDS), read, *_SCORING),
        bit,
        component.weight,
        None if component.measure is None else index(component.measure),
        scale,
        at,
        component.equals,
        None if component.per is None else index(component.per),
        component.versus == "previous_window",
        component.min_previous,
        list(component.weights.items()),
        [
            (index(part.measure), part.from_, part.to, pieces(part.parts))
            for part in component.mean_of
        ],
        component.out_of,
        None
        if component.stalled_after is None
        else (component.stalled_after, component.stalled_factor),
        None if component.when is None else index(component.when),
        None if component.earned_while is None else index(component.earned_while),
        _idle_words(name, component, settings),
        measure is not None
        and measure.kind in COUNT_KINDS
        and not (measure.share_of or measure.of_fleet)
        and component.per is None
        and component.versus is None,
        pieces(component.parts),
    )


def _idle_words(name: str, component: DeclaredComponent, settings: Settings) -> str:
    """The reason for a component held to no points by its earned_while measure."""
    if component.earned_while is None:
        return ""
    window = settings.measures[component.earned_while].window
    since = (
        f"in the last {counted(window // MS_PER_DAY, 'day')}"
        if window and window % MS_PER_DAY == 0
        else f"({component.earned_while} is 0)"
    )
    return f"no activity {since}: no points for {name.replace('_', ' ')}"


@functools.cache
def default_digests() -> tuple[dict[str, str], dict[str, str]]:
    """The digests of the default measures' and components' declarations, by name."""
    defaults = compiled(Settings())
    measures = {spec.name: spec.digest for spec in defaults.measures}
    components = {spec.name: spec.digest for spec in defaults.components}
    return measures, components
