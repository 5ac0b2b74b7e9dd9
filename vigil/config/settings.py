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
import threading
import tomllib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
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
SECRETS_DIR = f"{ENV_PREFIX}SECRETS_DIR"  # a folder of files, one per setting


def setting_variables(env: Mapping[str, str]) -> dict[str, str]:
    """The variables of `env` that set a setting: `VIGIL_SECTION__KEY`. One without `__`
    is no setting's (`VIGIL_INPUT` of the Bytewax entry point, Kubernetes'
    `VIGIL_SERVICE_HOST`, VIGIL_SECRETS_DIR), and is left alone."""
    return {k: v for k, v in env.items() if k.startswith(ENV_PREFIX) and "__" in k}


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
def _off(value: Any) -> Any:
    return None if value == "off" else value


OptionalDuration = Annotated[Duration | None, BeforeValidator(_off)]
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
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True
    )


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
    **{
        f"signals.login_drop.{key}": f"login_drop is declared over measures.weekly_sessions: {say}"
        for key, say in (
            ("window", "set measures.weekly_sessions.window"),
            ("drop_ratio", "set below"),
            ("min_baseline", "set min_previous"),
            ("high_severity_ratio", "set high_below"),
        )
    },
    "signals.onboarding_stalled.stall_after": "renamed stalled_after",
    "health.drop_points": (
        "replaced by drop_pct (a score_drop is the score this many percent below its "
        "highest in health.drop_window): drop_pct = 20"
    ),
    **{
        f"signals.error_spike.{key}": f"error_spike is declared over measures.hourly_errors: {say}"
        for key, say in (
            ("window", "set measures.hourly_errors.window"),
            ("min_history_windows", "set min_history"),
            ("min_errors", "set above (one less: above = 4 for at least 5)"),
            ("high_severity_factor", "set high_factor"),
        )
    },
    "health.components.support_load.p1_counts_as": "set weights = { P1 = 3.0 }",
    "health.components.billing.overdue_penalty": "set weights = { overdue = 0.5 }",
    "health.components.billing.failed_penalty": "set weights = { failed = 1.0 }",
    "health.components.onboarding.expected_steps": "set measures.onboarding.steps",
}

MAX_EVENT_BYTES = 1 << 20  # input.max_event_bytes unless configured


class InputSettings(_Section):
    allowed_lateness: Duration = parse_duration("1h")
    """How far behind the newest event time an event may arrive and still count; older ones
    are dead letters (reason "late"). Events wait in memory until the watermark passes them.
    """
    max_future: OptionalDuration = parse_duration("5m")
    """An event dated more than this ahead of the wall clock is a dead letter (reason
    "future"); shorter than allowed_lateness. "off" accepts any date.
    """
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    """Messages read per batch; a watermark tick follows every batch."""
    max_event_bytes: int = Field(default=MAX_EVENT_BYTES, ge=1024, le=1 << 30)
    """A longer message is a `too_large` dead letter, and only this much of it is read."""
    max_depth: int = Field(default=MAX_DEPTH, ge=FLAT_DEPTH, le=200)
    """How deep a message may nest (the event object is level 1, its attrs level 2); deeper
    is a dead letter (reason "too_deep"). 200 stays clear of what JSON writers can nest.
    """
    max_attrs: int = Field(default=MAX_ATTRS, ge=FEW_ATTRS, le=100_000)
    """How many values attrs may hold, counted through nested objects and arrays; more is a
    dead letter (reason "too_many_attrs").
    """

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
    """Tenants are hashed onto this many state shards. Changing it invalidates a recovery store."""
    health_step: Duration = parse_duration("1h")
    """The event-time step: queued events are applied, windows closed and tenants re-scored
    every step. It divides a day, and windows are whole multiples of it; at least 1m.
    """
    window_origin: Instant = parse_rfc3339("1970-01-05T00:00:00Z")
    """Calendar windows start at this instant plus whole windows: the default, a Monday
    00:00 UTC, gives Monday-to-Sunday weeks. It falls on a whole health_step.
    """
    dedup_retention: Duration | None = None
    """How long an event_id is remembered to drop repeats. Unset: the allowed lateness plus
    the longest signal window.
    """
    forget_tenants_after: Duration = parse_duration("90d")
    """A tenant with no event for this long is dropped from state at the next midnight of
    event time; it must outlast every window.
    """
    max_keys_per_tenant: int = Field(default=500, ge=1)
    """The most features, open tickets, unpaid invoices, integrations and onboarding steps a tenant
    keeps, each: a producer that puts ids into those names must not grow the state (and the
    scoring over it) without bound. Keys past it are counted and logged.
    """

    @field_validator("health_step")
    @classmethod
    def _step_of_a_minute_or_more(cls, step: int) -> int:
        # Every shard goes through every step of event time, silent or not: with 1s steps
        # 2,000 events over 5 days took 27 s, with 100ms steps they did not end in 100 s.
        if step < MS_PER_MINUTE:
            msg = "must be at least 1m: every shard goes through every step of event time"
            raise ValueError(msg)
        return step


class AttrSettings(_Section):
    """An attribute of an event type added in the settings: what it must be."""

    check: Literal["str", "name", "number", "int", "date"] = "str"
    """What the attribute must be: str, name (1-128 characters), number, int or date."""
    one_of: tuple[str, ...] = ()
    """A text that must be one of these (then check is "str")."""
    required: bool = False
    """Whether an event of the type without it is a dead letter (reason "missing_field")."""

    @model_validator(mode="after")
    def _choices_are_text(self) -> AttrSettings:
        if self.one_of and self.check != "str":
            raise ValueError('one_of is for text attributes (check = "str")')
        return self

    def as_check(self) -> tuple[bool, Check]:
        return self.required, one_of(*self.one_of) if self.one_of else CHECKS[self.check]


class CatalogueSettings(_Section):
    """Event types and segments added to the built-in catalogue, which stays as it is."""

    types: dict[str, dict[str, AttrSettings]] = Field(default_factory=dict)
    """Event type -> its attributes (none: the type carries no attributes Vigil checks)."""
    segments: tuple[str, ...] = ()
    """Segments added to smb, mid_market and enterprise."""

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
    "days",
    "distinct",
    "top_share",
    "latest",
    "open_items",
    "oldest_open",
    "days_since",
    "days_until",
    "states",
    "process",
]
# The kinds that read a field of their events, those counted over a window, and those
# of items opened and closed.
FIELD_KINDS = frozenset(
    {"sum", "distinct", "top_share", "latest", "open_items", "oldest_open", "days_until", "states"}
)
ITEM_KINDS = frozenset({"open_items", "oldest_open", "states"})
# Those that can be counted over calendar windows (the others keep each key's latest
# time only, which cannot say which closed window it fell in).
CALENDAR_KINDS = frozenset({"count", "sum", "top_share"})
WINDOW_KINDS = frozenset({"count", "sum", "days", "distinct", "top_share"})
# Those whose window can weigh recent buckets more (half_life).
DECAY_KINDS = frozenset({"count", "sum", "distinct"})
# The kinds of measure each comparison of a declared signal takes (others take any).
COMPARABLE_KINDS = {
    "previous_window": frozenset({"count", "sum"}),
    "history": frozenset({"count", "sum"}),
    "previous_value": frozenset({"latest"}),
    "equals": frozenset({"latest"}),
    "stalled": frozenset({"process"}),
}
# The kinds whose values count things: whole numbers, never below 0.
COUNT_KINDS = frozenset({"count", "days", "distinct", "open_items", "states", "process"})
# A tenant keeps a bit per declared signal.
MAX_DECLARED_SIGNALS = 64
# The most past windows a signal compared with its history keeps per tenant.
MAX_HISTORY_WINDOWS = 1_000


class MeasureSettings(_Section):
    """A measure of each tenant's events, computed by the engine (`[measures.NAME]`)."""

    kind: MeasureKind
    events: tuple[str, ...] = Field(min_length=1)
    """The event types it counts (for open_items and oldest_open: those that open an item)."""
    field: str | None = None
    """"user_id", or "attrs.NAME": what sum adds, distinct and top_share tell apart, latest keeps,
    open_items and oldest_open key items by; for days_until, a date.
    """
    where: dict[str, str] = Field(default_factory=dict)
    """Only events whose attributes have these string values."""
    window: Duration | None = None
    """count, sum, distinct and top_share: over the last this long, in whole days (or whole health
    steps for a window shorter than a day), the current one included.
    """
    calendar: bool = False
    """count, sum and top_share: calendar windows instead, whole windows from engine.window_origin
    (Monday-to-Sunday weeks), the last closed one counted. Every tenant is evaluated when one
    closes, and a signal over it is raised for each window it holds in, not once per crossing.
    """
    bucket: Duration | None = None
    """What the window's counts are kept in: by default whole days for a window of whole days,
    health steps otherwise, and a calendar window whole; "1h" keeps a 24h window's errors by the
    hour, so that they leave it hour by hour. A whole number of health steps that divides the
    window.
    """
    closed_by: tuple[str, ...] = ()
    """open_items and oldest_open: the event types that close an item (by the same field); states:
    those that close a key.
    """
    key: str | None = None
    """states: the field that keys the items ("attrs.ticket_id"); `field` is their value. Also
    oldest_open with held_while: an item is open from the first event that puts it in one of
    those values, until one puts it in another (an invoice, by its id, unpaid from the day it
    went overdue).
    """
    held_while: tuple[str, ...] = ()
    """states (and oldest_open with a key): the values an item is held in ("overdue", "failed");
    another value drops it. Empty: any value (states).
    """
    started_by: tuple[str, ...] = ()
    """process: the event types that start it and complete it (`events` are its progress, `field`
    names its steps), and the steps it counts.
    """
    completed_by: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()
    half_life: Duration | None = None
    """count, sum and distinct over a rolling window: what each bucket holds counts half as much
    for every half_life of its age (in whole buckets), so recent activity weighs more. Unset:
    everything in the window counts the same.
    """
    share_of: tuple[str, ...] = ()
    """distinct: only these values count, and the value is the share of them used (0-1): the
    product's features, for adoption."""
    of_fleet: Duration | None = None
    """distinct of an attribute: the value is the share used of the values the whole fleet used
    in this long ("90d"); every shard learns them from the dataflow's splitter, in event time.
    At most 10,000 values are kept."""

    @model_validator(mode="after")
    def _fits_its_kind(self) -> MeasureSettings:
        states, process = self.kind == "states", self.kind == "process"
        by_value = self.kind == "oldest_open" and self.key is not None
        if by_value and not self.held_while:
            raise ValueError("an oldest_open measure with a key needs held_while")
        if (self.key is None) == states and not by_value:
            raise ValueError(f"a {self.kind} measure {'needs a' if states else 'takes no'} key")
        if self.held_while and not (states or by_value):
            raise ValueError("held_while is for states measures, and oldest_open with a key")
        if by_value and self.closed_by:
            raise ValueError("an oldest_open measure held_while a value is closed by another")
        if (not self.started_by) == process:
            needs = "needs started_by" if process else "takes no started_by"
            raise ValueError(f"a {self.kind} measure {needs}")
        if (self.completed_by or self.steps) and not process:
            raise ValueError("completed_by and steps are for process measures")
        if process and not self.steps:
            raise ValueError("a process measure needs the steps it counts")
        # A process's field (the step) is optional: an event without one is progress.
        if not process and (self.field is None) == (self.kind in FIELD_KINDS):
            needs = "needs a" if self.kind in FIELD_KINDS else "takes no"
            raise ValueError(f"a {self.kind} measure {needs} field")
        if (self.window is None) == (self.kind in WINDOW_KINDS):
            needs = "needs a" if self.kind in WINDOW_KINDS else "takes no"
            raise ValueError(f"a {self.kind} measure {needs} window")
        if self.calendar and self.kind not in CALENDAR_KINDS:
            raise ValueError(f"calendar windows are for {', '.join(sorted(CALENDAR_KINDS))}")
        if self.closed_by and self.kind not in ITEM_KINDS:
            raise ValueError("closed_by is for open_items, oldest_open and states measures")
        if (self.share_of or self.of_fleet is not None) and self.kind != "distinct":
            raise ValueError("share_of and of_fleet are for distinct measures")
        if self.share_of and self.of_fleet is not None:
            raise ValueError("a share is of share_of or of_fleet, not both")
        if self.of_fleet is not None and not self.of_fleet:
            raise ValueError("of_fleet is a duration above 0")
        if self.of_fleet is not None and not str(self.field).startswith("attrs."):
            raise ValueError('of_fleet is of an attribute\'s values (field = "attrs.NAME")')
        if self.kind == "days" and (self.bucket is not None or (self.window or 0) % MS_PER_DAY):
            raise ValueError("a days measure counts whole days: a window of whole days, no bucket")
        if self.half_life is not None and (
            self.kind not in DECAY_KINDS or self.calendar or not self.half_life
        ):
            kinds = ", ".join(sorted(DECAY_KINDS))
            raise ValueError(f"half_life (above 0) is for {kinds} over a rolling window")
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
    "sessions_30d": {"kind": "count", "events": ["user.session"], "window": "30d"},
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
    "activity_7d": {
        "kind": "count",
        "events": ["user.session", "feature.used", "recipe.completed", "onboarding.step_completed"],
        "window": "7d",
    },
    "last_activity": {
        "kind": "days_since",
        "events": ["user.session", "feature.used", "error.raised", "job.retry", "recipe.completed"],
    },
    "sponsor_status": {"kind": "latest", "events": ["sponsor.changed"], "field": "attrs.status"},
    "open_tickets": {
        "kind": "states",
        "events": ["ticket.created"],
        "closed_by": ["ticket.resolved"],
        "key": "attrs.ticket_id",
        "field": "attrs.priority",
    },
    "nps": {
        "kind": "latest",
        "events": ["survey.response"],
        "where": {"kind": "nps"},
        "field": "attrs.score",
    },
    "csat": {
        "kind": "latest",
        "events": ["survey.response"],
        "where": {"kind": "csat"},
        "field": "attrs.score",
    },
    "unpaid_invoices": {
        "kind": "states",
        "events": ["billing.invoice"],
        "key": "attrs.invoice_id",
        "field": "attrs.status",
        "held_while": ["overdue", "failed"],
    },
    "integrations": {
        "kind": "states",
        "events": ["integration.state"],
        "key": "attrs.integration",
        "field": "attrs.state",
    },
    "onboarding": {
        "kind": "process",
        "started_by": ["onboarding.started"],
        "events": ["onboarding.step_completed", "recipe.completed"],
        "field": "attrs.step",
        "completed_by": ["onboarding.completed"],
        "steps": [
            "sso_live",
            "integration_enabled",
            "first_dataset",
            "first_recipe",
            "users_invited",
        ],
    },
    "weekly_sessions": {
        "kind": "count",
        "events": ["user.session"],
        "window": "7d",
        "calendar": True,
    },
    "hourly_errors": {
        "kind": "count",
        "events": ["error.raised"],
        "window": "1h",
        "calendar": True,
    },
    # The lifecycle pack's (DEFAULT_SIGNALS).
    "renewal": {
        "kind": "days_until",
        "events": ["contract.updated", "account.renewed"],
        "field": "attrs.renewal_date",
    },
    # Four whole weeks: windows of 30 days hold 8 to 10 weekend days, which moves a
    # month's sessions by up to 10% with no change in use.
    "sessions_4w": {"kind": "count", "events": ["user.session"], "window": "28d"},
    "seats": {"kind": "latest", "events": ["contract.updated"], "field": "attrs.seats"},
    "arr": {"kind": "latest", "events": ["contract.updated"], "field": "attrs.arr"},
    "users_30d": {
        "kind": "distinct",
        "events": ["user.session"],
        "field": "user_id",
        "window": "30d",
    },
    "top_user_30d": {
        "kind": "top_share",
        "events": ["user.session"],
        "field": "user_id",
        "window": "30d",
    },
    "weekly_tickets": {
        "kind": "count",
        "events": ["ticket.created"],
        "window": "7d",
        "calendar": True,
    },
    "oldest_p1": {
        "kind": "oldest_open",
        "events": ["ticket.created"],
        "where": {"priority": "P1"},
        "field": "attrs.ticket_id",
        "closed_by": ["ticket.resolved"],
    },
    "oldest_unpaid": {
        "kind": "oldest_open",
        "events": ["billing.invoice"],
        "key": "attrs.invoice_id",
        "field": "attrs.status",
        "held_while": ["overdue", "failed"],
    },
    # The share of the product's features used in 30 days: of those the fleet used in 90.
    "feature_share_30d": {
        "kind": "distinct",
        "events": ["feature.used"],
        "field": "attrs.feature",
        "window": "30d",
        "of_fleet": "90d",
    },
    "integration_error_days": {
        "kind": "days",
        "events": ["integration.state"],
        "where": {"state": "error"},
        "window": "7d",
    },
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
    the latest value `equals`; or a process measure made no progress for longer than
    `stalled_after`. The severity is `severity`, or "high" when the compared value is at
    or beyond `high_above` or `high_below` (of a history: at or above `high_factor`
    times the level it passed, at least 1)."""

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
    high_factor: float | None = Field(default=None, ge=1.0)
    stalled_after: Duration | None = None
    running: int = Field(default=1, ge=1, le=52)
    """A measure over calendar windows, compared as it is: the bound must hold in this many
    closed windows in a row (2: two weeks running)."""
    requires: dict[str, float] = Field(default_factory=dict)
    """Other measures and the least each must be for the signal to be raised (at least 3
    users seen: `{ users_30d = 3 }`); a measure with no value holds it back."""
    min_age: Duration = 0
    """Raised only once the tenant was first seen this long ago ("60d")."""
    min_sigma: float = Field(default=0.0, ge=0.0)
    """versus = "previous_window": the change must also be at least this many standard errors
    of counts, |now - before| >= min_sigma x sqrt(now + before) (3: a change noise gives about
    once in 400), so that a small account's ups and downs are no growth or drop."""

    @model_validator(mode="after")
    def _has_one_test(self) -> DeclaredSignal:
        bounded = self.above is not None or self.below is not None
        if self.stalled_after is not None:
            if bounded or self.equals is not None or self.per is not None or self.versus:
                raise ValueError("stalled_after takes no above, below, equals, per or versus")
        elif self.high_factor is not None and self.versus != "history":
            raise ValueError('high_factor is for versus = "history"')
        elif self.equals is not None:
            if bounded or self.per is not None or self.versus is not None:
                raise ValueError("equals takes no above, below, per or versus")
            if self.high_above is not None or self.high_below is not None:
                raise ValueError("equals takes no high_above or high_below")
        elif not bounded and self.versus != "history":
            raise ValueError(
                "a declared signal needs a bound (above, below or both), equals or stalled_after"
            )
        if self.per is not None and self.versus is not None:
            raise ValueError("a declared signal compares with per or versus, not both")
        if self.running > 1 and self.compares:
            raise ValueError("running is for a measure compared as it is (no per or versus)")
        if self.min_sigma and self.versus != "previous_window":
            raise ValueError('min_sigma is for versus = "previous_window"')
        return self

    @property
    def compares(self) -> str:
        """What the measure is compared with: "", "per", "equals", "stalled", or `versus`."""
        if self.stalled_after is not None:
            return "stalled"
        if self.equals is not None:
            return "equals"
        return "per" if self.per is not None else self.versus or ""


def _check_component(
    name: str, component: DeclaredComponent, measures: Mapping[str, MeasureSettings]
) -> None:
    """A declared component's measures exist and fit what it does with them."""
    key = f"health.components.{name}"
    named = [
        ("measure", component.measure),
        ("per", component.per),
        ("when", component.when),
        ("earned_while", component.earned_while),
        *((f"mean_of.{i}.measure", part.measure) for i, part in enumerate(component.mean_of)),
    ]
    for part, measure in named:
        if measure is not None and measure not in measures:
            known = ", ".join(sorted(measures)) or "none declared"
            raise ValueError(f"{key}.{part}: no measure {measure!r} (measures: {known})")
    if component.measure is None:
        return
    kind = measures[component.measure].kind
    needs = {
        "equals": ("latest", "states"),
        "previous_window": ("count", "sum"),
        "weights": ("states",),
        "stalled_after": ("process",),
    }
    used = [
        ("equals", component.equals is not None),
        (component.versus or "", component.versus is not None),
        ("weights", bool(component.weights)),
        ("stalled_after", component.stalled_after is not None),
    ]
    for what, is_used in used:
        if is_used and kind not in needs[what]:
            raise ValueError(
                f"{key}: {what} is for {' or '.join(needs[what])} measures, and "
                f"{component.measure} is a {kind} measure"
            )
    said = {placeholder for _, placeholder, _ in component.parts}
    only = {
        "held": "states",
        "count": "states",
        "states": "states",
        "others": "states",
        "keys": "states",
        "stalled": "process",
    }
    for placeholder in sorted(said & set(only)):
        if kind != only[placeholder]:
            raise ValueError(
                f"{key}.reason: {{{placeholder}}} says what a {only[placeholder]} measure "
                f"holds, and {component.measure} is a {kind} measure"
            )
    if "parts" in said:
        raise ValueError(f"{key}.reason: {{parts}} is for mean_of components")


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


# The default signals, declared over the default measures (DEFAULT_MEASURES): a table
# under their name changes what it gives, the rest stays as here.


class LoginDropSignal(DeclaredSignal):
    """Sessions in the latest closed week below 5% of the week before (when that held at
    least 2): a near stop, the drop that foretold churn on the development data (see
    docs/calibration.md); "high" when the week had none."""

    measure: str = "weekly_sessions"
    versus: Literal["previous_window", "previous_value", "history"] | None = "previous_window"
    below: float | None = 0.05
    min_previous: float = Field(default=2.0, ge=0.0)
    high_below: float | None = 0.0


class OnboardingStalledSignal(DeclaredSignal):
    """Onboarding started, not completed, and no step or recipe for more than 72 h."""

    measure: str = "onboarding"
    stalled_after: Duration | None = parse_duration("72h")


class ErrorSpikeSignal(DeclaredSignal):
    """Errors in the latest closed hour above the 95th percentile of the tenant's hours
    in the last 7 days (once it has 24 of them), and at least 5; "high" at 3 times that."""

    measure: str = "hourly_errors"
    versus: Literal["previous_window", "previous_value", "history"] | None = "history"
    above: float | None = 4.0
    high_factor: float | None = Field(default=3.0, ge=1.0)


# The lifecycle pack: the signals CS playbooks act on, over the default measures; a
# [signals.NAME] table of one of their names changes what it says, as for the others.
# The renewal runway is one signal per stage, each holding from its mark to the next, so
# a tenant first seen 40 days before its renewal gets the R-60 stage alone, and a stage's
# task closes when the next one begins or the renewal is recorded (a later date).
RENEWAL_MARKS = (120, 90, 60, 30, 14, 0)
DEFAULT_SIGNALS: dict[str, dict[str, Any]] = {
    **{
        f"renewal_r{mark}": (
            {"measure": "renewal", "below": float(mark), "above": float(after)}
            if after is not None
            else {"measure": "renewal", "below": float(mark)}
        )
        for mark, after in zip(RENEWAL_MARKS, (*RENEWAL_MARKS[1:], None), strict=True)
    },
    "seat_cap": {"measure": "users_30d", "per": "seats", "above": 0.9},
    "usage_growth": {
        "measure": "sessions_4w",
        "versus": "previous_window",
        "above": 1.1,
        "min_previous": 20.0,
        "min_sigma": 3.0,
        "min_age": "56d",
    },
    "low_adoption": {"measure": "feature_share_30d", "below": 0.4, "min_age": "60d"},
    "single_user": {"measure": "top_user_30d", "above": 0.8, "requires": {"users_30d": 3.0}},
    "support_volume": {"measure": "weekly_tickets", "above": 5.0, "running": 2},
    "p1_unresolved": {"measure": "oldest_p1", "above": 14.0, "severity": "high"},
    "sponsor_departed": {"measure": "sponsor_status", "equals": "departed", "severity": "high"},
    "invoice_unpaid": {"measure": "oldest_unpaid", "above": 7.0},
    "nps_drop": {"measure": "nps", "versus": "previous_value", "below": -2.0},
    "nps_detractor": {"measure": "nps", "below": 7.0},
    "integration_errors": {"measure": "integration_error_days", "above": 2.0},
    "seats_cut": {"measure": "seats", "versus": "previous_value", "below": 0.0},
    "arr_cut": {"measure": "arr", "versus": "previous_value", "below": 0.0},
}


class _Declarations(_Section):
    """A section whose keys besides its fields each declare one more (a signal, a
    component) over the measures."""

    model_config = ConfigDict(extra="allow")  # merged with _Section's


class SignalSettings(_Declarations):
    __pydantic_extra__: dict[str, DeclaredSignal] = Field(init=False)

    login_drop: LoginDropSignal = LoginDropSignal()
    onboarding_stalled: OnboardingStalledSignal = OnboardingStalledSignal()
    error_spike: ErrorSpikeSignal = ErrorSpikeSignal()

    @model_validator(mode="before")
    @classmethod
    def _with_the_pack(cls, given: Any) -> Any:
        """The lifecycle pack's signals (DEFAULT_SIGNALS), changed by a table of their name
        (`[signals.seat_cap] above = 0.95`); the others given add to them."""
        if not isinstance(given, Mapping):
            return given
        merged: dict[str, Any] = {name: dict(signal) for name, signal in DEFAULT_SIGNALS.items()}
        for name, signal in given.items():
            if name in merged and isinstance(signal, Mapping):
                merged[name] = {**merged[name], **signal}
            else:
                merged[name] = signal
        return merged

    @property
    def declared(self) -> dict[str, DeclaredSignal]:
        """Every signal, by name: the default ones, then the others in the order given."""
        return {
            "login_drop": self.login_drop,
            "onboarding_stalled": self.onboarding_stalled,
            "error_spike": self.error_spike,
            **(self.__pydantic_extra__ or {}),
        }


# What a declared component's reason may say: its value (as it is, as a percentage, or
# as the percentage below 1: "down 30%"), its declaration, and of a states measure its
# keys, of a mean its parts, of a process whether it stalled.
REASON_FIELDS = frozenset(
    {
        "value",
        "pct",
        "down_pct",
        "full_at",
        "zero_at",
        "equals",
        "measure",
        "window",
        "held",
        "count",
        "states",
        "others",
        "keys",
        "parts",
        "stalled",
    }
)
# The placeholders that take a format: {value:one|many}, {held:one|many}, {count:STATE}.
_FORMATTED = {"value": "one|many", "held": "one|many", "count": "STATE"}
# A tenant keeps a bit per component.
MAX_COMPONENTS = 32


def _reason_parts(text: str, fields: frozenset[str]) -> list[tuple[str, str, str]]:
    """A reason as (text, placeholder, format) pieces, each placeholder one of `fields`."""
    try:
        pieces = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"reason: {exc}") from None
    for _, name, spec, conversion in pieces:
        if name is None:
            continue
        if name not in fields:
            raise ValueError(
                f"reason: no {{{name}}} to say (it may say "
                f"{', '.join(f'{{{field}}}' for field in sorted(fields))})"
            )
        wrong_format = spec and (
            name not in _FORMATTED or (name != "count" and spec.count("|") != 1)
        )
        if conversion or wrong_format or (name == "count" and not spec):
            raise ValueError(
                "reason: a placeholder takes no format but {value:one|many}, "
                "{held:one|many} and {count:STATE}, as in {value:session|sessions}"
            )
    return [(literal, name or "", spec or "") for literal, name, spec, _ in pieces]


class MeanPart(_Section):
    """One measure of a component that is the mean of several: its value from `from`
    (no points) to `to` (full points), and how the reason says it ("NPS {value}/10")."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    measure: str
    from_: float = Field(alias="from")
    to: float
    says: str

    @model_validator(mode="after")
    def _spans(self) -> MeanPart:
        if self.to == self.from_:
            raise ValueError("from and to must differ")
        _reason_parts(self.says, frozenset({"value"}))
        return self

    @property
    def parts(self) -> list[tuple[str, str, str]]:
        """How the reason says it, as (text, placeholder, format) pieces."""
        return _reason_parts(self.says, frozenset({"value"}))


class DeclaredComponent(_Section):
    """A health component over a declared measure (`[health.components.NAME]`): its share
    of `weight` is the measure's value scaled, full points at `full_at` (rising), or at
    0 and none from `zero_at` (falling), or full points when a latest text `equals` a
    value (of a states measure: the share of its keys in that state). The value may be
    the ratio to another measure (`per`) or to the window before (`versus =
    "previous_window"`, when that held at least `min_previous`). Of a states measure,
    the keys held count one each, or as `weights` say by state ({ P1 = 3.0 }). Of a
    process, the share is multiplied by `stalled_factor` once it made no progress for
    longer than `stalled_after`. Or the component is the mean of several measures
    (`mean_of`), each scaled from its `from` to its `to`, said out of `out_of`.
    It has data while its measure has a value, and, with `when`, while that measure has
    one too. `reason` says what the points lost are for, with {value} (or
    {value:session|sessions}: "1 session", "3 sessions"), {pct} (the value as a
    percentage), {down_pct} (its percentage below 1), {full_at}, {zero_at}, {equals},
    {measure} and {window} (its measure's: "30 days"); of states, {held} (or
    {held:ticket|tickets}), {count:STATE}, {states} ("1 overdue and 2 failed"), {others}
    (the keys not in the `equals` state) and {keys} ("crm (error), erp (disconnected)");
    of a mean, {parts}; of a process, {stalled} (", stalled: no progress for 80 h")."""

    measure: str | None = None
    weight: Weight
    full_at: float | None = Field(default=None, gt=0.0)
    zero_at: float | None = Field(default=None, gt=0.0)
    equals: str | None = None
    per: str | None = None
    versus: Literal["previous_window"] | None = None
    min_previous: float = Field(default=0.0, ge=0.0)
    weights: dict[str, Weight] = Field(default_factory=dict)
    mean_of: tuple[MeanPart, ...] = ()
    out_of: float = Field(default=1.0, gt=0.0)
    stalled_after: Duration | None = None
    stalled_factor: Ratio = 1.0
    when: str | None = None
    earned_while: str | None = None
    """A measure (of the tenant's activity): the component earns points only while it is above 0,
    and none otherwise (with data still). For points earned by an absence (no errors, no open
    tickets), which a tenant that stopped using the product would otherwise keep.
    """
    reason: str

    @model_validator(mode="after")
    def _one_scale(self) -> DeclaredComponent:
        if self.mean_of:
            if self.measure is not None or self.full_at or self.zero_at or self.equals:
                raise ValueError("a mean_of component takes no measure and no scale")
        else:
            if self.measure is None:
                raise ValueError("a declared component needs a measure (or mean_of)")
            scales = [s for s in (self.full_at, self.zero_at, self.equals) if s is not None]
            if len(scales) != 1:
                raise ValueError("a declared component has one scale: full_at, zero_at or equals")
        if self.equals is not None and (self.per is not None or self.versus is not None):
            raise ValueError("equals takes no per or versus")
        if self.per is not None and self.versus is not None:
            raise ValueError("a declared component compares with per or versus, not both")
        if self.stalled_factor != 1.0 and self.stalled_after is None:
            raise ValueError("stalled_factor needs stalled_after")
        _reason_parts(self.reason, REASON_FIELDS)
        return self

    @property
    def parts(self) -> list[tuple[str, str, str]]:
        """The reason as (text, placeholder, format) pieces, in order."""
        return _reason_parts(self.reason, REASON_FIELDS)

    @property
    def measures(self) -> list[str]:
        """The measures it reads."""
        named = [
            self.measure,
            self.per,
            self.when,
            self.earned_while,
            *(part.measure for part in self.mean_of),
        ]
        return [name for name in named if name is not None]


# The default components, declared over the default measures (DEFAULT_MEASURES): a table
# under their name changes what it gives, the rest stays as here.


# The weights and scales of login activity, login trend, adoption and recency were
# fitted on the development data (docs/calibration.md); the others, which it cannot
# measure, keep the weights they had.


class LoginActivityComponent(DeclaredComponent):
    measure: str | None = "sessions_30d"
    weight: Weight = 14.0
    full_at: float | None = Field(default=100.0, gt=0.0)
    when: str | None = "last_session"
    reason: str = "{value:session|sessions} in the last {window} (full points at {full_at})"


class LoginTrendComponent(DeclaredComponent):
    measure: str | None = "sessions_7d"
    weight: Weight = 6.0
    versus: Literal["previous_window"] | None = "previous_window"
    min_previous: float = Field(default=5.0, ge=0.0)
    full_at: float | None = Field(default=0.4, gt=0.0)
    when: str | None = "last_session"
    reason: str = "sessions down {down_pct}% on the 7 days before"


class AdoptionComponent(DeclaredComponent):
    measure: str | None = "features_30d"
    weight: Weight = 21.0
    full_at: float | None = Field(default=6.0, gt=0.0)
    when: str | None = "last_feature"
    reason: str = "{value:feature|features} used in the last {window} (full points at {full_at})"


class ErrorPressureComponent(DeclaredComponent):
    measure: str | None = "pressure_24h"
    weight: Weight = 15.0
    zero_at: float | None = Field(default=50.0, gt=0.0)
    when: str | None = "last_activity"
    earned_while: str | None = "activity_7d"
    reason: str = "{value:error or job retry|errors and job retries} in the last 24 h"


class SupportLoadComponent(DeclaredComponent):
    measure: str | None = "open_tickets"
    weight: Weight = 10.0
    zero_at: float | None = Field(default=6.0, gt=0.0)
    weights: dict[str, Weight] = Field(default_factory=lambda: {"P1": 3.0})
    earned_while: str | None = "activity_7d"
    reason: str = "{held:open ticket|open tickets} ({count:P1} P1)"


class SentimentComponent(DeclaredComponent):
    weight: Weight = 10.0
    mean_of: tuple[MeanPart, ...] = (
        MeanPart.model_validate({"measure": "nps", "from": 0, "to": 10, "says": "NPS {value}/10"}),
        MeanPart.model_validate({"measure": "csat", "from": 1, "to": 5, "says": "CSAT {value}/5"}),
    )
    out_of: float = Field(default=10.0, gt=0.0)
    reason: str = "latest {parts}"


class BillingComponent(DeclaredComponent):
    measure: str | None = "unpaid_invoices"
    weight: Weight = 10.0
    zero_at: float | None = Field(default=1.0, gt=0.0)
    weights: dict[str, Weight] = Field(default_factory=lambda: {"overdue": 0.5, "failed": 1.0})
    earned_while: str | None = "activity_7d"
    reason: str = "invoices unpaid: {states}"


class IntegrationsComponent(DeclaredComponent):
    measure: str | None = "integrations"
    weight: Weight = 5.0
    equals: str | None = "connected"
    reason: str = "{others} of {held:integration|integrations} not connected: {keys}"


class SponsorComponent(DeclaredComponent):
    measure: str | None = "sponsor_status"
    weight: Weight = 5.0
    equals: str | None = "active"
    reason: str = "executive sponsor departed"


class OnboardingComponent(DeclaredComponent):
    measure: str | None = "onboarding"
    weight: Weight = 10.0
    full_at: float | None = Field(default=5.0, gt=0.0)
    stalled_after: Duration | None = parse_duration("72h")
    stalled_factor: Ratio = 0.5
    reason: str = "onboarding {value} of {full_at} steps done{stalled}"


class RecencyComponent(DeclaredComponent):
    measure: str | None = "last_activity"
    weight: Weight = 14.0
    zero_at: float | None = Field(default=14.0, gt=0.0)
    reason: str = "{value} days since the last activity (none from {zero_at})"


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
    "recency",
)


class ComponentSettings(_Declarations):
    __pydantic_extra__: dict[str, DeclaredComponent] = Field(init=False)

    # In the order of health records (DEFAULT_COMPONENTS).
    login_activity: LoginActivityComponent = LoginActivityComponent()
    login_trend: LoginTrendComponent = LoginTrendComponent()
    adoption: AdoptionComponent = AdoptionComponent()
    error_pressure: ErrorPressureComponent = ErrorPressureComponent()
    support_load: SupportLoadComponent = SupportLoadComponent()
    sentiment: SentimentComponent = SentimentComponent()
    billing: BillingComponent = BillingComponent()
    integrations: IntegrationsComponent = IntegrationsComponent()
    sponsor: SponsorComponent = SponsorComponent()
    onboarding: OnboardingComponent = OnboardingComponent()
    recency: RecencyComponent = RecencyComponent()

    @property
    def declared(self) -> dict[str, DeclaredComponent]:
        """Every component, by name, in the order of health records: the default ones,
        then the others in the order given."""
        named = {name: getattr(self, name) for name in DEFAULT_COMPONENTS}
        return {**named, **(self.__pydantic_extra__ or {})}

    @model_validator(mode="after")
    def _something_weighs(self) -> ComponentSettings:
        weights = [component.weight for component in self.declared.values()]
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
    """The least whole score of each zone; below orange is red."""

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
    """A new tenant's zone and score drops are handed to the rules only after this long."""
    drop_pct: float = Field(default=20.0, gt=0.0, le=100.0)
    """A score this many percent below its highest over drop_window (which holds its value
    drop_window ago) is a score_drop fact: the health drop week over week."""
    drop_window: Duration = parse_duration("7d")
    """How far back a score_drop looks for the highest score."""
    components: ComponentSettings = ComponentSettings()


PRIORITIES = ("low", "medium", "high", "critical")
Priority = Literal["low", "medium", "high", "critical"]


class LadderStep(_Section):
    priority: Priority
    owner_role: str = Field(min_length=1, max_length=64)
    sla: Duration


DEFAULT_LADDER = tuple(
    LadderStep.model_validate({"priority": priority, "owner_role": owner, "sla": sla})
    for priority, owner, sla in (
        ("medium", "csm", "48h"),
        ("high", "csm_manager", "24h"),
        ("critical", "head_of_cs", "8h"),
    )
)


class RulesSettings(_Section):
    ladder: tuple[LadderStep, ...] = DEFAULT_LADDER
    """The intervention ladder: a task whose SLA passes while what opened it still holds
    is escalated to the next step above its priority (a new record of the same task, with
    that step's owner_role, priority and a due time its sla ahead), once per step; from
    the top step it stays as it is. Lowest priority first."""
    paths: tuple[Given, ...] = ()
    """Rule files, or folders of them, loaded besides the bundled rules (rules/default/)."""
    replace_bundled: bool = False
    """Load only `paths`, not the bundled rules. Off by default: a team that adds a file of
    its own keeps the default plays (a stalled onboarding's task, say) and those a later
    Vigil adds; a rule of its own cannot take a bundled rule's id.
    """

    @field_validator("ladder")
    @classmethod
    def _climbs(cls, ladder: tuple[LadderStep, ...]) -> tuple[LadderStep, ...]:
        ranks = [PRIORITIES.index(step.priority) for step in ladder]
        if ranks != sorted(set(ranks)):
            raise ValueError("each step of the ladder has a higher priority than the one before")
        return ladder


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
    """The topic Vigil reads (input) and the topic of each output."""

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


class TopicCreation(_Section):
    """How `vigil topics create` makes the input and output topics, and whether `vigil run`
    makes the missing ones before it starts."""

    partitions: int = Field(default=3, ge=1, le=10_000)
    """Partitions of each topic. The input's bound how many processes share the reading."""
    replication: int = Field(default=-1, ge=-1, le=32)
    """Copies of each partition; -1: the broker's default.replication.factor."""
    at_start: bool = False
    """`vigil run` creates the topics that are missing before it reads."""

    @field_validator("replication")
    @classmethod
    def _not_zero(cls, replication: int) -> int:
        if replication == 0:
            raise ValueError(
                "a topic needs at least one copy: 1 or more, or -1 for the broker's default"
            )
        return replication


class KafkaSettings(_Section):
    bootstrap: Bootstrap | None = None
    """The brokers, host:port, comma-separated (--kafka gives them too)."""
    topics: KafkaTopics = KafkaTopics()
    create: TopicCreation = TopicCreation()
    connect_timeout: Duration = parse_duration("30s")
    """Give up when the broker does not answer within this (start-up, metadata)."""
    delivery_timeout: Duration = parse_duration("120s")
    """How long a batch of output may wait for Kafka's acknowledgement before the run fails."""
    idle_after: Duration = parse_duration("10s")
    """In tail mode, a partition with no message for this long stops holding the watermark."""
    tail: bool = True
    """False: stop at the end of every partition (a backfill) instead of waiting for more."""
    config: dict[str, str | int | float | bool] = Field(default_factory=dict)
    """Any librdkafka setting, e.g. "security.protocol" = "SASL_SSL", "sasl.password" = "..."."""

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
    dir: Given | None = None
    """Folder of bytewax's recovery store; unset: no recovery (state starts empty)."""
    snapshot_interval: Duration = parse_duration("10s")
    """How often state and input offsets are snapshotted (bytewax's epoch interval)."""
    backup_interval: Duration | None = None
    """How long superseded snapshots are kept, for copying the store off the machine."""


METRICS_PORT = 9464  # a Kafka-mode run's metrics.port unless set


class MetricsSettings(_Section):
    host: Given = "127.0.0.1"
    """Where /metrics, /healthz and /readyz are served: loopback unless you say otherwise."""
    port: int | None = Field(default=None, ge=0, le=65535)
    """The port; process N of a multi-process run uses port + N. Unset: 9464 in Kafka mode,
    and in file mode a free port the system picks (the `starting` line says which), so
    that replays side by side do not clash. 0: no endpoint.
    """


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class LogSettings(_Section):
    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)] = "INFO"
    """DEBUG, INFO, WARNING or ERROR, in any case (VIGIL_LOG__LEVEL=debug)."""
    format: Annotated[Literal["plain", "json"], BeforeValidator(_lower)] = "plain"
    """plain (for people) or json (one object a line, for log shippers)."""


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
            # A table of another kind declares a measure of that name afresh.
            if (
                default is not None
                and isinstance(measure, Mapping)
                and measure.get("kind", default["kind"]) == default["kind"]
            ):
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
            every = (
                *measure.events,
                *measure.closed_by,
                *measure.started_by,
                *measure.completed_by,
            )
            for kind in every:
                if kind not in catalogue.types:
                    raise ValueError(f"{key}: no event type {kind!r} in the catalogue")
            # The filter and the value are of the measure's own events; what keys an item,
            # of the closing ones too (for open items, that is the field).
            keyed_by = measure.key or (measure.field if measure.kind in ITEM_KINDS else None)
            read = [(f"attrs.{a}", measure.events) for a in measure.where]
            if measure.field is not None and measure.field != keyed_by:
                read.append((measure.field, measure.events))
            if keyed_by is not None:
                read.append((keyed_by, (*measure.events, *measure.closed_by)))
            for attr, kinds in read:
                if attr == "user_id":
                    continue
                lacking = [
                    kind
                    for kind in kinds
                    if attr.removeprefix("attrs.") not in catalogue.attr_names(kind)
                ]
                if measure.kind == "process" and len(lacking) < len(kinds):
                    lacking = []  # a step is named by some of its events, not every one
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
            if signal.running > 1 and not (measure.calendar and measure.kind in ("count", "sum")):
                raise ValueError(
                    f"signals.{name}.running: windows in a row are of a count or sum over "
                    f"calendar windows, and {signal.measure} is not one"
                )
            for named in signal.requires:
                if named not in self.measures:
                    known = ", ".join(sorted(self.measures))
                    raise ValueError(
                        f"signals.{name}.requires: no measure {named!r} (measures: {known})"
                    )
            counts = measure.kind in COUNT_KINDS and signal.compares in ("per", "previous_window")
            counts = counts and not (measure.share_of or measure.of_fleet)
            if counts and signal.below is not None and signal.below <= 0:
                raise ValueError(
                    f"signals.{name}.below = {signal.below:g}: {signal.measure} is a count, and "
                    f"its ratio to {'the window before' if signal.versus else signal.per} is "
                    f"never below 0: {name} could never fire"
                )
        for name, component in self.health.components.declared.items():
            _check_component(name, component, self.measures)
        return self

    @model_validator(mode="after")
    def _windows_fit_the_step(self) -> Settings:
        step = self.engine.health_step
        windows = {
            **{
                f"signals.{name}.history": signal.history
                for name, signal in self.signals.declared.items()
                if signal.versus == "history"
            },
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
        stalls = [
            (f"signals.{name}.stalled_after", signal.stalled_after)
            for name, signal in self.signals.declared.items()
        ] + [
            (f"health.components.{name}.stalled_after", component.stalled_after)
            for name, component in self.health.components.declared.items()
        ]
        reaches = {
            **{key: after for key, after in stalls if after is not None},
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
        keyed = ("distinct", "open_items", "states", "process")
        needs = {"1 key": 1}
        for name, c in self.health.components.declared.items():
            measure = self.measures.get(c.measure or "")
            if measure is None or measure.kind not in keyed or c.per or c.versus:
                continue
            end = c.full_at or c.zero_at
            if end is None:
                continue
            # The keys it takes to get there, each counting its least weight.
            least = min([1.0, *c.weights.values()]) if c.weights else 1.0
            keys = math.ceil(end / least) if least > 0 else 0
            needs[f"health.components.{name}.{'full_at' if c.full_at else 'zero_at'}"] = keys
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
        longest = max(
            (self.measures[s.measure].window or 0 for s in self.signals.declared.values()),
            default=0,
        )
        return self.input.allowed_lateness + longest


def load_settings(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings from a TOML file, `VIGIL_` environment overrides (and secret
    files) and then command-line `overrides` (a nested dict, like the file's tables)."""
    variables = setting_variables(os.environ if env is None else env)
    where = str(path) if path is not None else "defaults"
    if variables:
        where = f"{where} + environment"
    if overrides:
        where = f"{where} + command line"
    unknown = sorted(
        name
        for name in variables
        if name[len(ENV_PREFIX) :].split("__")[0].lower() not in Settings.model_fields
    )
    if unknown:
        raise ConfigError(f"{where}: {unknown[0]}: not a setting (no such section)")
    file_values = _read_toml(path) if path is not None else {}
    try:
        loaded = _FromSources(
            _file=file_values,
            _env=variables,
            _secrets=(os.environ if env is None else env).get(SECRETS_DIR),
            **(overrides or {}),
        )
    except ValidationError as exc:
        msg = f"{where}: {describe_validation_error(exc)}"
        raise ConfigError(msg) from exc
    except SettingsError as exc:  # a variable or a secret file that cannot be read
        raise ConfigError(f"{where}: {exc}") from exc
    # Settings as any other code makes them (checked already: nothing is validated again).
    fields = {name: getattr(loaded, name) for name in Settings.model_fields}
    return Settings.model_construct(loaded.model_fields_set, **fields)


class _FromSources(BaseSettings, Settings):
    """The settings as a run reads them, by pydantic-settings: the command line's
    overrides over the environment (`VIGIL_SECTION__KEY`, two underscores between parts;
    a setting may also be a file of that name in `VIGIL_SECRETS_DIR`) over the settings
    file. A list or a table from the environment is JSON; a number or a boolean as in the
    file; a text setting (a topic, a password) is taken as written."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
    )

    def __init__(
        self,
        _file: Mapping[str, Any],
        _env: Mapping[str, str],
        _secrets: str | None,
        **given: Any,
    ) -> None:
        _SOURCES.file, _SOURCES.env, _SOURCES.secrets = _file, _env, _secrets
        try:
            super().__init__(**given)
        finally:
            _SOURCES.file, _SOURCES.env, _SOURCES.secrets = {}, {}, None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        secrets = _SOURCES.secrets
        sources: list[PydanticBaseSettingsSource] = [init_settings, _Environment(settings_cls)]
        if secrets:
            sources.append(
                _Secrets(
                    file_secret_settings,
                    secrets_dir=secrets,
                    secrets_dir_missing="error",
                    secrets_prefix=ENV_PREFIX,
                    secrets_nested_delimiter="__",
                    case_sensitive=False,
                )
            )
        sources.append(InitSettingsSource(settings_cls, init_kwargs=dict(_SOURCES.file)))
        return tuple(sources)


class _Sources(threading.local):
    """What the settings being built are read from (pydantic-settings asks the class for
    its sources, not the instance)."""

    file: Mapping[str, Any] = {}
    env: Mapping[str, str] = {}  # the setting variables (setting_variables)
    secrets: str | None = None  # VIGIL_SECRETS_DIR


_SOURCES = _Sources()


def _dotted_kafka_keys(values: dict[str, Any]) -> dict[str, Any]:
    """A librdkafka key's underscores, from a variable's or a file's name, are its dots
    (`VIGIL_KAFKA__CONFIG__SASL_PASSWORD` sets `sasl.password`)."""
    kafka = values.get("kafka")
    if isinstance(kafka, dict) and isinstance(kafka.get("config"), dict):
        kafka["config"] = {key.replace("_", "."): v for key, v in kafka["config"].items()}
    return values


class _Environment(EnvSettingsSource):
    """The setting variables given to load_settings (setting_variables)."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in _SOURCES.env.items()}

    def __call__(self) -> dict[str, Any]:
        return _dotted_kafka_keys(super().__call__())


class _Secrets(NestedSecretsSettingsSource):
    """The files of VIGIL_SECRETS_DIR, one per setting, named as its variable (as
    Kubernetes mounts a secret's keys)."""

    def __call__(self) -> dict[str, Any]:
        return _dotted_kafka_keys(super().__call__())


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


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: the dotted key, the value given, what was expected."""
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
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
