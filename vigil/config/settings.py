"""Settings: one validated object built at the entry point and passed down.

Sources, later ones winning: the defaults below, a TOML file (`config/vigil.toml`
documents every key), then environment variables `VIGIL_<SECTION>__<KEY>`.
Durations are written as '90s', '15m', '72h', '7d' and held as milliseconds.
"""

from __future__ import annotations

import math
import os
import re
import string
import tomllib
from collections.abc import Mapping
from datetime import date, datetime, time
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from vigil.base.errors import ConfigError
from vigil.base.logs import kafka_client_logger
from vigil.base.streams import OUTPUTS
from vigil.base.timeutil import (
    MS_PER_DAY,
    MS_PER_MINUTE,
    epoch_ms,
    format_duration,
    parse_duration,
    parse_rfc3339,
    to_iso,
)
from vigil.base.zones import ZONES, zone_of
from vigil.config.kafka_secrets import MASK, is_sensitive, masked
from vigil.intake.events import (
    CHECKS,
    DEFAULT_CATALOGUE,
    FEW_ATTRS,
    FLAT_DEPTH,
    MAX_ATTRS,
    MAX_DEPTH,
    MAX_ID_LENGTH,
    UTF8_BOM,
    Catalogue,
    Check,
    Limits,
    one_of,
)

ENV_PREFIX = "VIGIL_"


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A bare number is ambiguous (7 days? 7 hours?) and was once read as milliseconds.
        msg = f"a duration needs its unit: write {str(value)!r} with ms, s, m, h or d, as '72h'"
        raise ValueError(msg)
    return value


def _instant(value: Any) -> Any:
    if isinstance(value, datetime):  # a TOML date-time, unquoted
        if value.tzinfo is None:
            raise ValueError("a time needs its offset from UTC, as 1970-01-05T00:00:00Z")
        return epoch_ms(value)
    return parse_rfc3339(value) if isinstance(value, str) else value


# Held as milliseconds, written back the way a person writes them.
Duration = Annotated[
    int,
    BeforeValidator(_duration),
    Field(gt=0),
    PlainSerializer(format_duration, return_type=str),
]
# A limit that can be switched off: "off" in the file or the environment.
OptionalDuration = Annotated[Duration | None, BeforeValidator(lambda v: None if v == "off" else v)]
Instant = Annotated[int, BeforeValidator(_instant), PlainSerializer(to_iso, return_type=str)]


def _given(text: str) -> str:
    if not text.strip():
        raise ValueError("empty: give a value, or leave the key out")
    return text


# An address or a folder: `VIGIL_METRICS__HOST=` (empty) would bind every interface, an
# empty bootstrap wait for the connect timeout, an empty dir use the working folder.
Given = Annotated[str, AfterValidator(_given)]
Ratio = Annotated[float, Field(ge=0.0, le=1.0)]
Weight = Annotated[float, Field(ge=0.0)]


class _Section(BaseModel):
    # TOML has inf and nan: a weight of inf stopped a run at its first score, with a
    # traceback, and a full_at of inf scored every tenant 0 for it.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# Keys earlier versions read, and what to do instead of setting them.
REMOVED_KEYS = {
    "engine.compiled": "no longer a setting (the compiled engine is the only engine): remove it",
    "health.components.login_trend.min_baseline": (
        "renamed min_previous (login_trend is declared over measures.sessions_7d)"
    ),
    "health.components.adoption.lookback": (
        "no longer a setting: adoption counts measures.features_30d; set its window "
        '(measures.features_30d.window = "30d") instead'
    ),
}

MAX_EVENT_BYTES = 1 << 20  # input.max_event_bytes unless configured


class InputSettings(_Section):
    allowed_lateness: Duration = parse_duration("1h")
    max_future: OptionalDuration = parse_duration("5m")
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    # A longer message is a `too_large` dead letter, and only this much of it is read.
    max_event_bytes: int = Field(default=MAX_EVENT_BYTES, ge=1024, le=1 << 30)
    # Deeper nesting (the event object is level 1, attrs 2), or more values in attrs
    # (counted through nested objects and arrays), is a dead letter: too_deep,
    # too_many_attrs. 200 levels stay clear of what JSON writers and pickle can nest.
    max_depth: int = Field(default=MAX_DEPTH, ge=FLAT_DEPTH, le=200)
    max_attrs: int = Field(default=MAX_ATTRS, ge=FEW_ATTRS, le=100_000)

    @property
    def limits(self) -> Limits:
        return Limits(self.max_depth, self.max_attrs)

    @model_validator(mode="after")
    def _the_future_stays_within_the_lateness(self) -> InputSettings:
        """An accepted event dated max_future ahead moves its partition's watermark to the
        wall clock + max_future - allowed_lateness: at or past the clock, every on-time
        event after it would be late, for as long as the clock takes to catch up."""
        future, lateness = self.max_future, self.allowed_lateness
        if future is not None and future >= lateness:
            msg = (
                f"input.max_future ({format_duration(future)}) must be shorter than "
                f"input.allowed_lateness ({format_duration(lateness)}): one event dated that "
                "far ahead would make the on-time events after it late; raise the lateness, "
                'or set max_future = "off" for data dated in the future'
            )
            raise ValueError(msg)
        return self


class EngineSettings(_Section):
    shards: int = Field(default=32, ge=1, le=1024)
    health_step: Duration = parse_duration("1h")
    window_origin: Instant = parse_rfc3339("1970-01-05T00:00:00Z")
    dedup_retention: Duration | None = None
    # A tenant with no event for this long is dropped from state; it must outlast every
    # window (Settings._tenants_outlast_their_windows).
    forget_tenants_after: Duration = parse_duration("90d")
    # The most features, open tickets, unpaid invoices, integrations and onboarding steps
    # a tenant keeps, each: a producer that puts ids into those names must not grow the
    # state (and the scoring over it) without bound. Keys past it are counted and logged.
    max_keys_per_tenant: int = Field(default=500, ge=1)

    @field_validator("health_step")
    @classmethod
    def _step_of_a_minute_or_more(cls, step: int) -> int:
        # Every shard goes through every step of event time, silent or not: with 1s steps
        # 2,000 events over 5 days took 27 s, with 100ms steps they did not end in 100 s.
        if step < MS_PER_MINUTE:
            msg = "must be at least 1m: every shard goes through every step of event time"
            raise ValueError(msg)
        return step


class LoginDropSettings(_Section):
    window: Duration = parse_duration("7d")
    # Above 0: no count is below 0 times the window before, so 0 would never signal.
    drop_ratio: float = Field(default=0.5, gt=0.0, le=1.0)
    min_baseline: int = Field(default=10, ge=0)
    high_severity_ratio: Ratio = 0.2


class OnboardingStalledSettings(_Section):
    stall_after: Duration = parse_duration("72h")


class ErrorSpikeSettings(_Section):
    window: Duration = parse_duration("1h")
    history: Duration = parse_duration("7d")
    percentile: float = Field(default=95.0, gt=0.0, le=100.0)
    min_history_windows: int = Field(default=24, ge=1)
    min_errors: int = Field(default=5, ge=1)
    high_severity_factor: float = Field(default=3.0, ge=1.0)

    @model_validator(mode="after")
    def _history_holds_enough_windows(self) -> ErrorSpikeSettings:
        # A window made longer (a day, say) leaves fewer in the history: the signal
        # would wait for history it can never have, without a word.
        held = self.history // self.window
        if held < self.min_history_windows:
            msg = (
                f"signals.error_spike.history ({format_duration(self.history)}) holds "
                f"{held} whole windows of {format_duration(self.window)}, fewer than "
                f"min_history_windows ({self.min_history_windows}): error_spike could "
                "never fire"
            )
            raise ValueError(msg)
        return self


class AttrSettings(_Section):
    """An attribute of an event type added in the settings: what it must be."""

    check: Literal["str", "name", "number", "int", "date"] = "str"
    # A text that must be one of these (then check is "str").
    one_of: tuple[str, ...] = ()
    required: bool = False

    @model_validator(mode="after")
    def _choices_are_text(self) -> AttrSettings:
        if self.one_of and self.check != "str":
            raise ValueError('one_of is for text attributes (check = "str")')
        return self

    def as_check(self) -> tuple[bool, Check]:
        return self.required, one_of(*self.one_of) if self.one_of else CHECKS[self.check]


class CatalogueSettings(_Section):
    """Event types and segments added to the built-in catalogue, which stays as it is."""

    # Event type -> its attributes (none: the type carries no attributes Vigil checks).
    types: dict[str, dict[str, AttrSettings]] = Field(default_factory=dict)
    segments: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _adds_only(self) -> CatalogueSettings:
        for kind in self.types:
            if kind in DEFAULT_CATALOGUE.types:
                raise ValueError(f"types.{kind}: a built-in type, which the contract defines")
            if not 0 < len(kind) <= MAX_ID_LENGTH:
                raise ValueError(f"types: a type name is 1-{MAX_ID_LENGTH} characters")
        for segment in self.segments:
            if not 0 < len(segment) <= MAX_ID_LENGTH:
                raise ValueError(f"segments: a segment is 1-{MAX_ID_LENGTH} characters")
        return self

    @property
    def full(self) -> Catalogue:
        """The built-in catalogue with these additions."""
        added = {
            kind: {name: attr.as_check() for name, attr in attrs.items()}
            for kind, attrs in self.types.items()
        }
        return DEFAULT_CATALOGUE.extended(added, self.segments)


MeasureKind = Literal[
    "count",
    "sum",
    "distinct",
    "top_share",
    "latest",
    "open_items",
    "oldest_open",
    "days_since",
    "days_until",
]
# The kinds that read a field of their events, those counted over a window, and those
# of items opened and closed.
FIELD_KINDS = frozenset(
    {"sum", "distinct", "top_share", "latest", "open_items", "oldest_open", "days_until"}
)
ITEM_KINDS = frozenset({"open_items", "oldest_open"})
# Those that can be counted over calendar windows (the others keep each key's latest
# time only, which cannot say which closed window it fell in).
CALENDAR_KINDS = frozenset({"count", "sum", "top_share"})
WINDOW_KINDS = frozenset({"count", "sum", "distinct", "top_share"})
# The kinds of measure each comparison of a declared signal takes (others take any).
COMPARABLE_KINDS = {
    "previous_window": frozenset({"count", "sum"}),
    "history": frozenset({"count", "sum"}),
    "previous_value": frozenset({"latest"}),
    "equals": frozenset({"latest"}),
}
# A tenant keeps a bit per declared signal.
MAX_DECLARED_SIGNALS = 64
# The most past windows a signal compared with its history keeps per tenant.
MAX_HISTORY_WINDOWS = 1_000


class MeasureSettings(_Section):
    """A measure of each tenant's events, computed by the engine (`[measures.NAME]`)."""

    kind: MeasureKind
    # The event types it counts (for open_items and oldest_open: those that open an item).
    events: tuple[str, ...] = Field(min_length=1)
    # "user_id", or "attrs.NAME": what sum adds, distinct and top_share tell apart,
    # latest keeps, open_items and oldest_open key items by; for days_until, a date.
    field: str | None = None
    # Only events whose attributes have these string values.
    where: dict[str, str] = Field(default_factory=dict)
    # count, sum, distinct and top_share: over the last this long, in whole days (or
    # whole health steps for a window shorter than a day), the current one included.
    window: Duration | None = None
    # count, sum and top_share: calendar windows instead, whole windows from
    # engine.window_origin (Monday-to-Sunday weeks), the last closed one counted. Every
    # tenant is evaluated when one closes, and a signal over it is raised for each window
    # it holds in, not once per crossing.
    calendar: bool = False
    # What the window's counts are kept in: by default whole days for a window of whole
    # days, health steps otherwise; "1h" keeps a 24h window's errors by the hour, so that
    # they leave it hour by hour. A whole number of health steps that divides the window.
    bucket: Duration | None = None
    # open_items and oldest_open: the event types that close an item (by the same field).
    closed_by: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _fits_its_kind(self) -> MeasureSettings:
        if (self.field is None) == (self.kind in FIELD_KINDS):
            needs = "needs a" if self.kind in FIELD_KINDS else "takes no"
            raise ValueError(f"a {self.kind} measure {needs} field")
        if (self.window is None) == (self.kind in WINDOW_KINDS):
            needs = "needs a" if self.kind in WINDOW_KINDS else "takes no"
            raise ValueError(f"a {self.kind} measure {needs} window")
        if self.calendar and self.kind not in CALENDAR_KINDS:
            raise ValueError(f"calendar windows are for {', '.join(sorted(CALENDAR_KINDS))}")
        if self.closed_by and self.kind not in ITEM_KINDS:
            raise ValueError("closed_by is for open_items and oldest_open measures")
        if self.bucket is not None:
            if self.window is None:
                raise ValueError("a bucket is for measures over a window")
            if self.window % self.bucket:
                raise ValueError(
                    f"the bucket ({format_duration(self.bucket)}) must divide the window "
                    f"({format_duration(self.window)})"
                )
        return self


# The measures the default components are declared over (a settings file's
# [measures.NAME] adds to them, or changes one of them).
DEFAULT_MEASURES: dict[str, dict[str, Any]] = {
    "sessions_7d": {"kind": "count", "events": ["user.session"], "window": "7d"},
    "last_session": {"kind": "days_since", "events": ["user.session"]},
    "features_30d": {
        "kind": "distinct",
        "events": ["feature.used"],
        "field": "attrs.feature",
        "window": "30d",
    },
    "last_feature": {"kind": "days_since", "events": ["feature.used"]},
    "pressure_24h": {
        "kind": "count",
        "events": ["error.raised", "job.retry"],
        "window": "24h",
        "bucket": "1h",
    },
    "last_activity": {
        "kind": "days_since",
        "events": ["user.session", "feature.used", "error.raised", "job.retry", "recipe.completed"],
    },
    "sponsor_status": {"kind": "latest", "events": ["sponsor.changed"], "field": "attrs.status"},
}


class DeclaredSignal(_Section):
    """A signal raised when a measure crosses a bound (`[signals.NAME]`, besides the
    built-in ones): once per crossing, again only after it came back. The measure is
    compared as it is, or as its ratio to another measure (`per`), or to the window
    before (`versus = "previous_window"`, counts and sums: the ratio, when the window
    before held at least `min_previous`), or as its change from the value before
    (`versus = "previous_value"`, latest values), or against the tenant's own history
    (`versus = "history"`, counts and sums over calendar windows: above the
    `percentile` of its past windows, zeros included, over `history`, once it has
    `min_history` of them; bounds then apply to the measure itself); or it is a text
    the latest value `equals`. The severity is `severity`, or "high" when the compared
    value is at or beyond `high_above` or `high_below`."""

    measure: str
    per: str | None = None
    versus: Literal["previous_window", "previous_value", "history"] | None = None
    min_previous: float = Field(default=0.0, ge=0.0)
    percentile: float = Field(default=95.0, gt=0.0, le=100.0)
    history: Duration = parse_duration("7d")
    min_history: int = Field(default=24, ge=1)
    equals: str | None = None
    above: float | None = None
    below: float | None = None
    severity: Literal["low", "medium", "high"] = "medium"
    high_above: float | None = None
    high_below: float | None = None

    @model_validator(mode="after")
    def _has_one_test(self) -> DeclaredSignal:
        bounded = self.above is not None or self.below is not None
        if self.equals is not None:
            if bounded or self.per is not None or self.versus is not None:
                raise ValueError("equals takes no above, below, per or versus")
            if self.high_above is not None or self.high_below is not None:
                raise ValueError("equals takes no high_above or high_below")
        elif not bounded and self.versus != "history":
            raise ValueError("a declared signal needs a bound (above, below or both) or equals")
        if self.per is not None and self.versus is not None:
            raise ValueError("a declared signal compares with per or versus, not both")
        return self

    @property
    def compares(self) -> str:
        """What the measure is compared with: "", "per", "equals", or `versus`."""
        if self.equals is not None:
            return "equals"
        return "per" if self.per is not None else self.versus or ""


def _check_component(
    name: str, component: DeclaredComponent, measures: Mapping[str, MeasureSettings]
) -> None:
    """A declared component's measures exist and fit its scale."""
    key = f"health.components.{name}"
    for part in ("measure", "per", "when"):
        named = getattr(component, part)
        if named is not None and named not in measures:
            known = ", ".join(sorted(measures)) or "none declared"
            raise ValueError(f"{key}.{part}: no measure {named!r} (measures: {known})")
    kind = measures[component.measure].kind
    needs = {"equals": ("latest",), "previous_window": ("count", "sum")}
    used = [u for u in ("equals" if component.equals is not None else None, component.versus) if u]
    for comparison in used:
        if kind not in needs[comparison]:
            raise ValueError(
                f"{key}: {comparison} is for {' or '.join(needs[comparison])} measures, and "
                f"{component.measure} is a {kind} measure"
            )


def _check_history(name: str, signal: DeclaredSignal, measure: MeasureSettings) -> None:
    """A history is of whole calendar windows, enough of them, and bounded."""
    if not measure.calendar or measure.window is None:
        raise ValueError(
            f'signals.{name}: versus = "history" compares calendar windows, and '
            f"{signal.measure} is not measured over calendar windows (calendar = true)"
        )
    held = signal.history // measure.window
    if held < signal.min_history:
        raise ValueError(
            f"signals.{name}.history ({format_duration(signal.history)}) holds {held} "
            f"whole windows of {signal.measure} ({format_duration(measure.window)}), fewer "
            f"than min_history ({signal.min_history}): it could never fire"
        )
    if held > MAX_HISTORY_WINDOWS:
        raise ValueError(
            f"signals.{name}.history holds {held} windows of {signal.measure}: at most "
            f"{MAX_HISTORY_WINDOWS} are kept per tenant"
        )


class SignalSettings(_Section):
    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)
    # Any other key declares a signal over the measures.
    __pydantic_extra__: dict[str, DeclaredSignal] = Field(init=False)

    login_drop: LoginDropSettings = LoginDropSettings()
    onboarding_stalled: OnboardingStalledSettings = OnboardingStalledSettings()
    error_spike: ErrorSpikeSettings = ErrorSpikeSettings()

    @property
    def declared(self) -> dict[str, DeclaredSignal]:
        """The signals declared over measures, by name."""
        return dict(self.__pydantic_extra__ or {})


class SupportLoadComponent(_Section):
    weight: Weight = 10.0
    zero_at: float = Field(default=6.0, gt=0.0)
    p1_counts_as: float = Field(default=3.0, ge=1.0)


class SentimentComponent(_Section):
    weight: Weight = 10.0


class BillingComponent(_Section):
    weight: Weight = 10.0
    overdue_penalty: Ratio = 0.5
    failed_penalty: Ratio = 1.0


class IntegrationsComponent(_Section):
    weight: Weight = 5.0


class OnboardingComponent(_Section):
    weight: Weight = 10.0
    expected_steps: tuple[str, ...] = (
        "sso_live",
        "integration_enabled",
        "first_dataset",
        "first_recipe",
        "users_invited",
    )
    stalled_factor: Ratio = 0.5


# What a declared component's reason may say: its value (as it is, as a percentage, or
# as the percentage below 1: "down 30%"), and its declaration.
REASON_FIELDS = frozenset(
    {"value", "pct", "down_pct", "full_at", "zero_at", "equals", "measure", "window"}
)
# A tenant keeps a bit per component (the built-in ones and the declared).
MAX_COMPONENTS = 32


class DeclaredComponent(_Section):
    """A health component over a declared measure (`[health.components.NAME]`, besides
    the built-in ones): its share of `weight` is the measure's value scaled, full points
    at `full_at` (rising), or at 0 and none from `zero_at` (falling), or full points
    when a latest text `equals` a value. The value may be the ratio to another measure
    (`per`) or to the window before (`versus = "previous_window"`, when that held at
    least `min_previous`). It has data while its measure has a value, and, with `when`,
    while that measure has one too. `reason` says what the points lost are for, with
    {value} (or {value:session|sessions}: "1 session", "3 sessions"), {pct} (the value
    as a percentage), {down_pct} (its percentage below 1), {full_at}, {zero_at},
    {equals}, {measure} and {window} (its measure's: "30 days")."""

    measure: str
    weight: Weight
    full_at: float | None = Field(default=None, gt=0.0)
    zero_at: float | None = Field(default=None, gt=0.0)
    equals: str | None = None
    per: str | None = None
    versus: Literal["previous_window"] | None = None
    min_previous: float = Field(default=0.0, ge=0.0)
    when: str | None = None
    reason: str

    @model_validator(mode="after")
    def _one_scale(self) -> DeclaredComponent:
        scales = [s for s in (self.full_at, self.zero_at, self.equals) if s is not None]
        if len(scales) != 1:
            raise ValueError("a declared component has one scale: full_at, zero_at or equals")
        if self.equals is not None and (self.per is not None or self.versus is not None):
            raise ValueError("equals takes no per or versus")
        if self.per is not None and self.versus is not None:
            raise ValueError("a declared component compares with per or versus, not both")
        try:
            pieces = list(string.Formatter().parse(self.reason))
        except ValueError as exc:
            raise ValueError(f"reason: {exc}") from None
        for _, name, spec, conversion in pieces:
            if name is None:
                continue
            if name not in REASON_FIELDS:
                raise ValueError(
                    f"reason: no {{{name}}} to say (it may say "
                    f"{', '.join(f'{{{field}}}' for field in sorted(REASON_FIELDS))})"
                )
            if conversion or (spec and (name != "value" or spec.count("|") != 1)):
                raise ValueError(
                    "reason: a placeholder takes no format but {value:one|many}, as in "
                    "{value:session|sessions}"
                )
        return self

    @property
    def parts(self) -> list[tuple[str, str, str]]:
        """The reason as (text, placeholder, format) pieces, in order."""
        return [
            (literal, name or "", spec or "")
            for literal, name, spec, _ in string.Formatter().parse(self.reason)
        ]


# Five of the default components, declared over the default measures (DEFAULT_MEASURES):
# a table under their name changes what it gives, the rest stays as here.


class LoginActivityComponent(DeclaredComponent):
    measure: str = "sessions_7d"
    weight: Weight = 20.0
    full_at: float | None = Field(default=20.0, gt=0.0)
    when: str | None = "last_session"
    reason: str = "{value:session|sessions} in the last 7 days (full points at {full_at})"


class LoginTrendComponent(DeclaredComponent):
    measure: str = "sessions_7d"
    weight: Weight = 10.0
    versus: Literal["previous_window"] | None = "previous_window"
    min_previous: float = Field(default=5.0, ge=0.0)
    full_at: float | None = Field(default=1.0, gt=0.0)
    reason: str = "sessions down {down_pct}% on the 7 days before"


class AdoptionComponent(DeclaredComponent):
    measure: str = "features_30d"
    weight: Weight = 15.0
    full_at: float | None = Field(default=5.0, gt=0.0)
    when: str | None = "last_feature"
    reason: str = "{value:feature|features} used in the last {window} (full points at {full_at})"


class ErrorPressureComponent(DeclaredComponent):
    measure: str = "pressure_24h"
    weight: Weight = 15.0
    zero_at: float | None = Field(default=50.0, gt=0.0)
    when: str | None = "last_activity"
    reason: str = "{value:error or job retry|errors and job retries} in the last 24 h"


class SponsorComponent(DeclaredComponent):
    measure: str = "sponsor_status"
    weight: Weight = 5.0
    equals: str | None = "active"
    reason: str = "executive sponsor departed"


# The components the engine measures with code of its own, in the order of its core's
# (native/src/tenant.rs); a table with a `measure` declares one over measures instead.
ENGINE_COMPONENTS: dict[str, type[_Section]] = {
    "support_load": SupportLoadComponent,
    "sentiment": SentimentComponent,
    "billing": BillingComponent,
    "integrations": IntegrationsComponent,
    "onboarding": OnboardingComponent,
}
# Every default component, in the order of health records.
DEFAULT_COMPONENTS = (
    "login_activity",
    "login_trend",
    "adoption",
    "error_pressure",
    "support_load",
    "sentiment",
    "billing",
    "integrations",
    "sponsor",
    "onboarding",
)
S = TypeVar("S", bound=_Section)
# How the two forms a built-in component's table can take are told apart; the tags are
# left out of the keys errors name.
BUILT_IN, DECLARED = "built-in component", "declared component"


def _component_form(value: Any) -> str:
    declared = isinstance(value, DeclaredComponent) or (
        isinstance(value, Mapping) and "measure" in value
    )
    return DECLARED if declared else BUILT_IN


# A built-in component's settings, or a declaration over measures in its place.
Either = Annotated[
    Annotated[S, Tag(BUILT_IN)] | Annotated[DeclaredComponent, Tag(DECLARED)],
    Discriminator(_component_form),
]


def built_in(component: S | DeclaredComponent, default: S) -> S:
    """An engine component's settings, or its defaults when it is declared over measures
    instead (the engine's own code for it then runs idle)."""
    return default if isinstance(component, DeclaredComponent) else component


class ComponentSettings(_Section):
    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)
    # Any other key declares a component over a declared measure.
    __pydantic_extra__: dict[str, DeclaredComponent] = Field(init=False)

    # In the order of health records (DEFAULT_COMPONENTS). One the engine measures with
    # code of its own is declared over measures instead when its table has a `measure`.
    login_activity: LoginActivityComponent = LoginActivityComponent()
    login_trend: LoginTrendComponent = LoginTrendComponent()
    adoption: AdoptionComponent = AdoptionComponent()
    error_pressure: ErrorPressureComponent = ErrorPressureComponent()
    support_load: Either[SupportLoadComponent] = SupportLoadComponent()
    sentiment: Either[SentimentComponent] = SentimentComponent()
    billing: Either[BillingComponent] = BillingComponent()
    integrations: Either[IntegrationsComponent] = IntegrationsComponent()
    sponsor: SponsorComponent = SponsorComponent()
    onboarding: Either[OnboardingComponent] = OnboardingComponent()

    @property
    def declared(self) -> dict[str, DeclaredComponent]:
        """The components declared over measures, by name, in the order of health records:
        built-in ones declared instead, then the others in the order given."""
        named = {name: getattr(self, name) for name in DEFAULT_COMPONENTS}
        instead = {n: c for n, c in named.items() if isinstance(c, DeclaredComponent)}
        return {**instead, **(self.__pydantic_extra__ or {})}

    @property
    def order(self) -> list[str]:
        """Every component's name, in the order of health records."""
        return [*DEFAULT_COMPONENTS, *(self.__pydantic_extra__ or {})]

    def built_in_parts(self) -> ComponentSettings:
        """These settings with the defaults in place of the built-in components declared
        over measures: what the engine's own code for them reads."""
        update = {
            name: cls()
            for name, cls in ENGINE_COMPONENTS.items()
            if isinstance(getattr(self, name), DeclaredComponent)
        }
        return self.model_copy(update=update)

    @model_validator(mode="after")
    def _something_weighs(self) -> ComponentSettings:
        weights = [getattr(self, name).weight for name in DEFAULT_COMPONENTS]
        weights += [component.weight for component in (self.__pydantic_extra__ or {}).values()]
        if len(weights) > MAX_COMPONENTS:
            raise ValueError(f"at most {MAX_COMPONENTS} health components in all")
        if not any(weights):
            msg = (
                "every component's weight is 0, so no tenant could be scored: no health "
                "record would be written and no rule on zones or score drops would fire"
            )
            raise ValueError(msg)
        if not math.isfinite(sum(weights)):  # each is finite, but 1e308 twice is not
            msg = f"the weights add up to {sum(weights)}: give them as shares, e.g. of 100"
            raise ValueError(msg)
        return self


class ZoneSettings(_Section):
    green: float = Field(default=80.0, ge=0.0, le=100.0)
    yellow: float = Field(default=60.0, ge=0.0, le=100.0)
    orange: float = Field(default=40.0, ge=0.0, le=100.0)

    @model_validator(mode="after")
    def _descending(self) -> ZoneSettings:
        if not self.green > self.yellow > self.orange:
            msg = f"zone cut-offs must fall: green > yellow > orange, got {self}"
            raise ValueError(msg)
        # A zone that no whole score falls in would silently never fire the rules on it
        # (entered-red, say). The four zones are the output contract; acting on fewer is
        # the rules' business.
        held = {zone_of(score, self) for score in range(101)}
        if empty := [zone for zone in ZONES if zone not in held]:
            msg = (
                f"zone cut-offs leave no whole score in {' or '.join(empty)}; scores are whole "
                f"numbers 0-100, got {self}. To act on fewer zones, change the rules instead"
            )
            raise ValueError(msg)
        return self


class HealthSettings(_Section):
    zones: ZoneSettings = ZoneSettings()
    warmup: Duration = parse_duration("7d")
    drop_points: float = Field(default=20.0, gt=0.0, le=100.0)  # scores are 0-100
    drop_window: Duration = parse_duration("7d")
    components: ComponentSettings = ComponentSettings()


class RulesSettings(_Section):
    # Empty means the rule files bundled with Vigil (rules/default/).
    paths: tuple[Given, ...] = ()


def topic_name(name: str) -> str:
    """`name` if Kafka takes it as a topic's: the broker's "Invalid topic" says no more,
    and an empty name failed inside the client."""
    if not re.fullmatch(r"[a-zA-Z0-9._-]{1,249}", name) or name in {".", ".."}:
        msg = (
            "a Kafka topic name is 1-249 characters of letters, digits, '.', '_' and '-' "
            "(and not . or ..)"
        )
        raise ValueError(msg)
    return name


TopicName = Annotated[str, AfterValidator(topic_name)]

# A bootstrap broker as librdkafka reads one: [protocol://]host[:port], the host an IPv6
# address in brackets.
_BROKER = re.compile(
    r"(?:(?:plaintext|ssl|sasl_plaintext|sasl_ssl)://)?(\[[0-9a-f:.]+\]|[^\s/:,\[\]]+)(?::(\d+))?",
    re.IGNORECASE,
)


def bootstrap_servers(text: str) -> str:
    """`text` if it lists brokers librdkafka can read: it takes a port past 65535 modulo
    65536 (127.0.0.1:99999 tried port 34463) and waits out the connect timeout on the rest."""
    brokers = [broker.strip() for broker in text.split(",") if broker.strip()]
    for broker in brokers or [text]:  # an empty item, as a trailing comma, is skipped
        found = _BROKER.fullmatch(broker)
        if found is None:
            msg = f"{broker!r} is not a broker's host:port (e.g. kafka-1:9092 or [::1]:9092)"
            raise ValueError(msg)
        if found.group(2) is not None and not 0 < int(found.group(2)) < 65536:
            raise ValueError(f"{broker!r}: a port is 1-65535")
    return text


Bootstrap = Annotated[Given, AfterValidator(bootstrap_servers)]


class KafkaTopics(_Section):
    input: TopicName = "cs.telemetry"
    health: TopicName = "cs.health"
    signals: TopicName = "cs.signals"
    tasks: TopicName = "cs.tasks"
    notifications: TopicName = "cs.notifications"
    deadletter: TopicName = "cs.deadletter"

    def outputs(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in OUTPUTS}

    @model_validator(mode="after")
    def _distinct(self) -> KafkaTopics:
        # An output on the input topic feeds Vigil its own records, each a dead letter
        # (the dead letters' own topic there makes a loop); two outputs on one topic mix
        # records that their consumers read as one kind.
        names = {"input": self.input, **self.outputs()}
        for topic in sorted(set(names.values())):
            sharing = [key for key, name in names.items() if name == topic]
            if len(sharing) > 1:
                named = f"{', '.join(sharing[:-1])} and {sharing[-1]}"
                msg = f"{named} name the same topic {topic!r}: each needs its own"
                raise ValueError(msg)
        return self


_NO_LOSS = "its producers are idempotent with acks=all, so that no output is lost or doubled"
_OFFSETS = "input offsets live in the recovery store, and a lost one is counted, not skipped"
# librdkafka settings Vigil's clients set themselves, and why.
VIGIL_SETS = {
    "bootstrap.servers": "give kafka.bootstrap or --kafka",
    "metadata.broker.list": "give kafka.bootstrap or --kafka",
    "enable.idempotence": _NO_LOSS,
    "acks": _NO_LOSS,
    "request.required.acks": _NO_LOSS,
    "enable.auto.commit": _OFFSETS,
    "auto.offset.reset": _OFFSETS,
    "enable.partition.eof": "set kafka.tail",
}


class KafkaSettings(_Section):
    bootstrap: Bootstrap | None = None
    topics: KafkaTopics = KafkaTopics()
    # Give up when the broker does not answer within this (start-up, metadata).
    connect_timeout: Duration = parse_duration("30s")
    # How long a batch of output may wait for Kafka's acknowledgement before the run fails.
    delivery_timeout: Duration = parse_duration("120s")
    # In tail mode, a partition with no message for this long stops holding the watermark.
    idle_after: Duration = parse_duration("10s")
    # False: stop at the end of every partition (a backfill) instead of waiting for more.
    tail: bool = True
    # Any librdkafka setting, e.g. "security.protocol" = "SASL_SSL", "sasl.password" = "...".
    config: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("config")
    @classmethod
    def _not_vigils_own(cls, config: dict[str, Any]) -> dict[str, Any]:
        # Vigil's clients set these after the user's, so a value here did nothing unsaid.
        for key in config:
            if key in VIGIL_SETS:
                raise ValueError(f"{key}: Vigil sets it itself ({VIGIL_SETS[key]})")
        return config

    @field_serializer("config")
    def _mask(self, config: dict[str, Any]) -> dict[str, Any]:
        return self.masked_config()  # a dump of the settings never shows a secret

    def client_config(self) -> dict[str, Any]:
        """For a confluent-kafka client. librdkafka's own log lines (a broker away, an
        offset reset) go through Vigil's logs, in their format, instead of raw to stderr."""
        if self.bootstrap is None:
            raise ConfigError("no Kafka bootstrap address: pass --kafka or set kafka.bootstrap")
        return {**self.config, "bootstrap.servers": self.bootstrap, "logger": kafka_client_logger()}

    def masked_config(self) -> dict[str, Any]:
        """The librdkafka settings with every secret replaced, for logs and output."""
        return masked(self.config)


class RecoverySettings(_Section):
    # Folder of bytewax's recovery store; unset: no recovery (state starts empty).
    dir: Given | None = None
    # How often state and input offsets are snapshotted (bytewax's epoch interval).
    snapshot_interval: Duration = parse_duration("10s")
    # How long superseded snapshots are kept, for copying the store off the machine.
    backup_interval: Duration | None = None


class MetricsSettings(_Section):
    # Where /metrics, /healthz and /readyz are served. Loopback unless you say otherwise;
    # process N of a multi-process run uses port + N. Port 0: no endpoint.
    host: Given = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class LogSettings(_Section):
    # In any case, as operators write them (VIGIL_LOG__LEVEL=debug, format = "JSON").
    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)] = "INFO"
    format: Annotated[Literal["plain", "json"], BeforeValidator(_lower)] = "plain"


class Settings(_Section):
    input: InputSettings = InputSettings()
    catalogue: CatalogueSettings = CatalogueSettings()
    engine: EngineSettings = EngineSettings()
    measures: dict[str, MeasureSettings] = Field(
        default_factory=lambda: {n: MeasureSettings(**m) for n, m in DEFAULT_MEASURES.items()}
    )
    signals: SignalSettings = SignalSettings()
    health: HealthSettings = HealthSettings()
    rules: RulesSettings = RulesSettings()

    @field_validator("measures", mode="before")
    @classmethod
    def _with_the_defaults(cls, given: Any) -> Any:
        """The measures given add to the default ones (DEFAULT_MEASURES), or change what
        they say of them (`[measures.features_30d] window = "60d"`)."""
        if not isinstance(given, Mapping):
            return given
        merged: dict[str, Any] = dict(DEFAULT_MEASURES)
        for name, measure in given.items():
            default = DEFAULT_MEASURES.get(name)
            if default is not None and isinstance(measure, Mapping):
                merged[name] = {**default, **measure}
            else:
                merged[name] = measure
        return merged

    kafka: KafkaSettings = KafkaSettings()
    recovery: RecoverySettings = RecoverySettings()
    metrics: MetricsSettings = MetricsSettings()
    log: LogSettings = LogSettings()

    @model_validator(mode="after")
    def _measures_name_what_exists(self) -> Settings:
        """Every event type, field and measure a declaration names exists, or it is
        refused at start with its key."""
        catalogue = self.catalogue.full
        for name, measure in self.measures.items():
            key = f"measures.{name}"
            for kind in (*measure.events, *measure.closed_by):
                if kind not in catalogue.types:
                    raise ValueError(f"{key}: no event type {kind!r} in the catalogue")
            # The filter is of the measure's own events; the field, of the closing ones too.
            read = [(f"attrs.{a}", measure.events) for a in measure.where]
            if measure.field is not None and measure.field != "user_id":
                read.append((measure.field, (*measure.events, *measure.closed_by)))
            for attr, kinds in read:
                lacking = [
                    kind
                    for kind in kinds
                    if attr.removeprefix("attrs.") not in catalogue.attr_names(kind)
                ]
                if not attr.startswith("attrs.") or lacking:
                    raise ValueError(
                        f"{key}: no field {attr!r} on {', '.join(lacking) or 'events'} "
                        "(a field is user_id or attrs.NAME of the catalogue)"
                    )
            if measure.kind == "days_until":
                undated = [
                    kind
                    for kind in measure.events
                    if not catalogue.is_date(kind, str(measure.field).removeprefix("attrs."))
                ]
                if undated:
                    raise ValueError(
                        f"{key}: days_until needs a date field, and {measure.field} of "
                        f"{', '.join(undated)} is not one"
                    )
        declared = self.signals.declared
        if len(declared) > MAX_DECLARED_SIGNALS:
            raise ValueError(f"signals: at most {MAX_DECLARED_SIGNALS} declared signals")
        for name, signal in declared.items():
            for part, named in (("measure", signal.measure), ("per", signal.per)):
                if named is not None and named not in self.measures:
                    known = ", ".join(sorted(self.measures)) or "none declared"
                    raise ValueError(
                        f"signals.{name}.{part}: no measure {named!r} (measures: {known})"
                    )
            comparable = COMPARABLE_KINDS.get(signal.compares)
            measure = self.measures[signal.measure]
            if comparable is not None and measure.kind not in comparable:
                raise ValueError(
                    f"signals.{name}: {signal.compares} compares "
                    f"{' or '.join(sorted(comparable))} measures, and {signal.measure} is a "
                    f"{measure.kind} measure"
                )
            if signal.versus == "history":
                _check_history(name, signal, measure)
        for name, component in self.health.components.declared.items():
            _check_component(name, component, self.measures)
        return self

    @model_validator(mode="after")
    def _windows_fit_the_step(self) -> Settings:
        step = self.engine.health_step
        windows = {
            "signals.login_drop.window": self.signals.login_drop.window,
            "signals.error_spike.window": self.signals.error_spike.window,
            "signals.error_spike.history": self.signals.error_spike.history,
            **{
                f"measures.{name}.window": measure.window
                for name, measure in self.measures.items()
                if measure.window is not None
            },
            **{
                f"measures.{name}.bucket": measure.bucket
                for name, measure in self.measures.items()
                if measure.bucket is not None
            },
        }
        for key, size in windows.items():
            if size % step:
                msg = (
                    f"{key} ({format_duration(size)}) must be a whole number of "
                    f"engine.health_step ({format_duration(step)})"
                )
                raise ValueError(msg)
        if MS_PER_DAY % step:
            msg = f"engine.health_step ({format_duration(step)}) must divide a day"
            raise ValueError(msg)
        for name, measure in self.measures.items():
            if measure.calendar and measure.bucket and self.engine.window_origin % measure.bucket:
                msg = (
                    f"measures.{name}.bucket ({format_duration(measure.bucket)}) must divide "
                    "the calendar windows from engine.window_origin: it does not fall on one"
                )
                raise ValueError(msg)
        # Windows end on the origin's grid, and are checked at the steps, which fall on
        # the epoch's (daily work runs at midnight UTC): off the steps, none would close.
        if self.engine.window_origin % step:
            msg = (
                f"engine.window_origin ({to_iso(self.engine.window_origin)}) must fall on a "
                f"whole engine.health_step ({format_duration(step)}) of UTC, or no window "
                "would ever close; a shorter step that it falls on will do"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _tenants_outlast_their_windows(self) -> Settings:
        """A tenant may be forgotten only once nothing it sent can count any more: no
        window, baseline, lookback or deadline may reach further back than that."""
        reaches = {
            "2 x signals.login_drop.window": 2 * self.signals.login_drop.window,
            "signals.error_spike.history + window": self.signals.error_spike.history
            + self.signals.error_spike.window,
            "signals.onboarding_stalled.stall_after": self.signals.onboarding_stalled.stall_after,
            "health.drop_window": self.health.drop_window,
            "health.warmup": self.health.warmup,
            **self._measures_reach(),
        }
        key, longest = max(reaches.items(), key=lambda item: item[1])
        forget = self.engine.forget_tenants_after
        if forget <= longest:
            msg = (
                f"engine.forget_tenants_after ({format_duration(forget)}) must be longer than "
                f"{key} ({format_duration(longest)}), or a tenant could be forgotten while "
                "its events still count"
            )
            raise ValueError(msg)
        return self

    def _measures_reach(self) -> dict[str, int]:
        """How far back each declared measure reaches: its window, two of them where it is
        compared with the window before, and a history compared with, on top."""
        compared: list[DeclaredSignal | DeclaredComponent] = [
            *self.signals.declared.values(),
            *self.health.components.declared.values(),
        ]
        before = {c.measure for c in compared if c.versus == "previous_window"}
        history = {
            s.measure: s.history for s in self.signals.declared.values() if s.versus == "history"
        }
        return {
            f"measures.{name}.window"
            + (" x 2" if name in before else "")
            + (" and its history" if name in history else ""): measure.window
            * (2 if name in before else 1)
            + history.get(name, 0)
            for name, measure in self.measures.items()
            if measure.window is not None
        }

    @model_validator(mode="after")
    def _key_limit_keeps_scores(self) -> Settings:
        """A tenant at engine.max_keys_per_tenant must still score as it would without
        the limit: every component the limit cuts must reach its end first."""
        parts = self.health.components
        billing = built_in(parts.billing, BillingComponent())
        penalties = [p for p in (billing.overdue_penalty, billing.failed_penalty) if p]
        support_load = built_in(parts.support_load, SupportLoadComponent())
        onboarding = built_in(parts.onboarding, OnboardingComponent())
        keyed = {n for n, m in self.measures.items() if m.kind in ("distinct", "open_items")}
        needs = {
            **{
                f"health.components.{name}.{'full_at' if c.full_at else 'zero_at'}": math.ceil(
                    c.full_at or c.zero_at or 0
                )
                for name, c in parts.declared.items()
                if c.measure in keyed and c.per is None and c.versus is None
            },
            "health.components.support_load.zero_at": math.ceil(support_load.zero_at),
            "the health.components.onboarding.expected_steps": len(onboarding.expected_steps),
            "unpaid invoices for no billing points": math.ceil(1 / min(penalties, default=1)),
        }
        key, most = max(needs.items(), key=lambda item: item[1])
        limit = self.engine.max_keys_per_tenant
        if limit < most:
            msg = (
                f"engine.max_keys_per_tenant ({limit}) must be at least {most}, "
                f"{key}, or the limit could change a score"
            )
            raise ValueError(msg)
        return self

    @property
    def dedup_retention(self) -> int:
        """How long an event id is remembered: lateness plus the longest window."""
        if self.engine.dedup_retention is not None:
            return self.engine.dedup_retention
        longest = max(self.signals.login_drop.window, self.signals.error_spike.window)
        return self.input.allowed_lateness + longest


def load_settings(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings from a TOML file, `VIGIL_` environment overrides and then
    command-line `overrides` (a nested dict, like the file's tables)."""
    raw: dict[str, Any] = {}
    where = "defaults"
    if path is not None:
        where = str(path)
        raw = _read_toml(path)
    cli = overrides
    overrides = env_overrides(os.environ if env is None else env)
    if overrides:
        where = f"{where} + environment"
    _merge(raw, overrides)
    if cli:
        where = f"{where} + command line"
        _merge(raw, cli)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        msg = f"{where}: {describe_validation_error(exc)}"
        raise ConfigError(msg) from exc


# Settings and rule files are a few KB: past this, the path names another file (an
# events file, /dev/zero), which is refused rather than read whole into memory.
MAX_CONFIG_FILE_BYTES = 1 << 20


def read_config_file(path: Path) -> bytes:
    """A settings or rule file's bytes, from any file that can be read, a pipe too
    (`--config <(envsubst < vigil.toml)`); OSError past MAX_CONFIG_FILE_BYTES."""
    with path.open("rb") as handle:
        data = handle.read(MAX_CONFIG_FILE_BYTES + 1)
    if len(data) > MAX_CONFIG_FILE_BYTES:
        msg = f"over {MAX_CONFIG_FILE_BYTES:,} bytes, where a settings or rule file has a few KB"
        raise OSError(msg)
    # Notepad and Windows PowerShell's UTF-8 start a file with a byte order mark, which
    # tomllib calls an "Invalid statement (at line 1, column 1)".
    return data.removeprefix(UTF8_BOM)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(read_config_file(path).decode("utf-8"))
    except FileNotFoundError as exc:
        msg = f"settings file not found: {path}"
        raise ConfigError(msg) from exc
    except (OSError, tomllib.TOMLDecodeError) as exc:
        msg = f"cannot read settings file {path}: {exc}"
        raise ConfigError(msg) from exc
    except UnicodeDecodeError as exc:
        msg = f"cannot read settings file {path}: not UTF-8 text (byte {exc.start})"
        raise ConfigError(msg) from exc


def env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """`VIGIL_HEALTH__ZONES__GREEN=85` becomes {"health": {"zones": {"green": 85}}}."""
    tree: dict[str, Any] = {}
    for name, text in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        if keys[:2] == ["kafka", "config"] and len(keys) == 3:
            keys[2] = keys[2].replace(
                "_", "."
            )  # librdkafka keys: VIGIL_KAFKA__CONFIG__SASL_PASSWORD
        node = tree
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = text if _takes_text(keys) else _env_value(text)
    return tree


def _takes_text(keys: list[str]) -> bool:
    """Whether the setting at `keys` is text: a topic, a folder, an address, a librdkafka
    value. Its variable is taken as written, not as a TOML literal, which would make a
    topic named 2026 a number and a password 0x1F the number 31."""
    section: type[BaseModel] = Settings
    for depth, key in enumerate(keys):
        field = section.model_fields.get(key)
        if field is None:
            return False  # not a setting: the validation says so
        if section is KafkaSettings and key == "config":
            return depth == len(keys) - 2  # kafka.config.<librdkafka key>
        inner = _section_of(field.annotation)
        if inner is None:
            return depth == len(keys) - 1 and _is_text(field.annotation)
        section = inner
    return False


def _section_of(annotation: Any) -> type[BaseModel] | None:
    """The section a field holds, if it holds one: of an engine component's, its own
    settings' (the first of the forms it may take)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is Annotated:
        return _section_of(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        return next(filter(None, map(_section_of, get_args(annotation))), None)
    return None


def _is_text(annotation: Any) -> bool:
    """str, or an optional or annotated str (`Given | None`)."""
    if annotation is str:
        return True
    if get_origin(annotation) is Annotated:
        return _is_text(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        return all(_is_text(arg) for arg in get_args(annotation) if arg is not type(None))
    return False


# VIGIL_METRICS_PORT for VIGIL_METRICS__PORT would leave the default in force unsaid.
UNREAD_ENV = "environment variable not read: a setting's parts are joined by two underscores"


def unread_env(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """(variable, the setting's own variable) for each `VIGIL_` variable that names a
    setting with single underscores between its parts, `VIGIL_METRICS_PORT` for
    `VIGIL_METRICS__PORT`: it is not read, and the run would go on with the default
    without a word. Other names without `__` are not settings and are left alone
    (`VIGIL_INPUT` of the Bytewax entry point, Kubernetes' `VIGIL_SERVICE_HOST`)."""
    found = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or "__" in name:
            continue
        path = _setting_path(name[len(ENV_PREFIX) :].lower().split("_"), Settings)
        if path is not None:
            found.append((name, ENV_PREFIX + "__".join(part.upper() for part in path)))
    return found


def _setting_path(words: list[str], section: type[BaseModel]) -> list[str] | None:
    """The keys of the setting that `words`, joined again by single underscores, spell
    from `section` down, if they spell one."""
    for cut in range(1, len(words) + 1):
        key, rest = "_".join(words[:cut]), words[cut:]
        field = section.model_fields.get(key)
        if field is None:
            continue
        inner = _section_of(field.annotation)
        if inner is not None:
            below = _setting_path(rest, inner) if rest else None
            if below is not None:
                return [key, *below]
        elif section is KafkaSettings and key == "config":
            if rest:  # any librdkafka key: VIGIL_KAFKA__CONFIG__SASL_PASSWORD
                return [key, "_".join(rest)]
        elif not rest:
            return [key]
    return None


def _env_value(text: str) -> Any:
    # A TOML literal when it is one (numbers, booleans, arrays), else the plain string.
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    # A time is read from its text by the settings themselves (RFC 3339, offset required).
    return text if isinstance(value, date | time) else value


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: the dotted key, the value given, what was expected."""
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"] if part not in (BUILT_IN, DECLARED))
        message = error["msg"].removeprefix("Value error, ")
        if not key:  # a check across settings: its message names them (not the whole input)
            lines.append(message)
        elif error["type"] == "extra_forbidden":
            lines.append(f"{key}: {REMOVED_KEYS.get(key, 'unknown key')}")
        elif error["type"] == "missing":
            lines.append(f"{key}: missing")
        else:
            lines.append(f"{key} = {_shown(key, error['input'])}: {message}")
    return "; ".join(lines)


def _shown(key: str, value: Any) -> str:
    """The value given, as an error line quotes it; under kafka.config, never a secret: a
    librdkafka secret's value is masked, and so is anything nested there (librdkafka's
    settings are flat, so a nested value is a mistyped key, as VIGIL_KAFKA__CONFIG__SASL__
    PASSWORD, whose name cannot say whether it holds a secret)."""
    if key == "kafka.config":  # not a table: text that may well hold them all
        if not isinstance(value, Mapping):
            return MASK
        return repr({k: MASK if isinstance(v, Mapping) else v for k, v in masked(value).items()})
    if key.startswith("kafka.config."):
        name = key.removeprefix("kafka.config.")
        if isinstance(value, Mapping) or is_sensitive(name):
            return MASK
    return repr(value)
