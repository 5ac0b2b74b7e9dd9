"""A shard's state as the recovery store keeps it, and what a saved state must match
to be resumed: its format and the settings that shape it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from vigil.config.settings import Settings
from vigil.engine.tenant import TenantState
from vigil.intake.events import Event

# A queued event in a snapshot (see ShardState.pending), or an Event in older formats.
QueuedEvent = tuple[str, str, str | None, dict[str, Any], list[Any]] | Event


@dataclass(slots=True)
class ShardState:
    """Everything a shard must keep across a restart (saved by vigil.engine.snapshots)."""

    tenants: dict[str, TenantState] = field(default_factory=dict)
    # (ts, place in its item's life, dedup key, queued) accepted and not yet applied;
    # sorted when applied. Queued is what applying the event needs: (tenant, type,
    # segment, the attributes the engine reads, what it feeds the declared measures).
    # Stores of older formats kept the whole Event there, and the oldest ones no place
    # in life nor key (None): the core works those out on restore.
    pending: list[tuple[int, str, str, QueuedEvent]] = field(default_factory=list)
    # The dedup keys (see dedup_key) accepted, by the day of their event time (forgotten
    # a day at a time), and the same keys as a set for the lookups: not saved, rebuilt on
    # restore.
    seen_by_day: dict[int, list[str]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    # A store of a Vigil that kept event ids without their tenant holds them bare: until
    # this day's are forgotten, an event's bare id is looked up too (None: none is held).
    bare_ids_until: int | None = None
    # The health components' settings the tenants were scored with (scoring_settings),
    # "" if unknown (a store of an older format).
    scored_with: str = ""
    source_wms: dict[str, int | None] = field(default_factory=dict)
    watermark: int | None = None
    next_step: int | None = None
    dirty: set[str] = field(default_factory=set)
    # The settings that shape this state (see state_layout); a restore checks them.
    layout: dict[str, Any] = field(default_factory=dict)
    # The open tasks, by tenant and rule (vigil.rules.tasks.TaskBook); none in older formats.
    tasks: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # What the fleet used, of the measures that are a share of it: measure ->
    # (its digest, value -> when last used); none in older formats.
    fleet: dict[str, tuple[str, dict[str, int]]] = field(default_factory=dict)
    # What the fleet used as the splitter noted it, not applied yet: (measure, value, time).
    fleet_pending: list[tuple[str, str, int]] = field(default_factory=list)

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        """A state pickled whole (format c0026639c217), by field name: the fields that
        format had and this one does not keep (the stall deadlines and the error windows
        due, which the core now works out from its tenants' measures) are left out."""
        _, saved = state
        self.tasks, self.fleet, self.fleet_pending = {}, {}, []  # fields added since
        for name, value in saved.items():
            if name in ShardState.__dataclass_fields__:
                object.__setattr__(self, name, value)


# Saved as they are; the tenants are pickled one by one, the seen ids a day at a time.
PLAIN_FIELDS = tuple(
    name for name in ShardState.__annotations__ if name not in ("tenants", "seen", "seen_by_day")
)


def state_format(*classes: type) -> str:
    """A fingerprint of the fields of the classes a snapshot pickles. A store written by a
    Vigil whose state had other fields cannot be resumed: with this in the layout it
    says so at start, instead of failing on a missing attribute in the middle of a run."""
    spec = ";".join(
        f"{cls.__name__}.{name}:{kind}"
        for cls in classes
        for name, kind in cls.__annotations__.items()
    )
    return hashlib.sha256(spec.encode()).hexdigest()[:12]


STATE_FORMAT = state_format(ShardState, TenantState, Event)
# Stores written before the format was recorded have this one.
_FORMAT_BEFORE_IT_WAS_RECORDED = "c0026639c217"
# Formats of older versions this one still reads (vigil.engine.snapshots.load_state converts
# them): the state pickled whole; tenants pickled one by one without last_event_at; and
# with it, but event ids kept without their tenant.
# Formats this one reads as they are: before declared measures, tenants without
# `measured` and `signals_raised` (the core starts those empty); before the compact
# queue, whole events queued (the core keeps what it needs of them); before declared
# components, tenants without `components` (the core measures those afresh); before the
# signals and components were declared over measures, tenants with what they kept for
# them (vigil.engine.tenant.TenantState takes it over as it is unpickled); before tasks had
# a life, no open tasks (those made before go on as they were: open, unchanged).
AS_THEY_ARE = frozenset(
    {
        STATE_FORMAT,
        "8c33768149e3",
        "0e828a30122e",
        "e8732fe05483",
        "11a818177577",
        "5085f44ba9d4",
        "433f71448566",
    }
)
READABLE_FORMATS = frozenset(
    {
        *AS_THEY_ARE,
        _FORMAT_BEFORE_IT_WAS_RECORDED,
        "ab073bfcfb3f",
        "cb0820d49a8e",
    }
)


def state_layout(settings: Settings) -> dict[str, Any]:
    """What a saved state depends on: its format, tenant placement and bucket sizes."""
    return {
        "state_format": STATE_FORMAT,
        "engine.shards": settings.engine.shards,
        "engine.health_step": settings.engine.health_step,
        "engine.window_origin": settings.engine.window_origin,
    }


def scoring_settings(settings: Settings) -> str:
    """A digest of what every score depends on: the health components' settings."""
    components = settings.health.components.model_dump(mode="json")
    dumped = orjson.dumps(components, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(dumped, digest_size=6).hexdigest()


def layout_changes(saved: dict[str, Any], layout: dict[str, Any]) -> list[str]:
    """How a store's saved layout differs from this run's, in words; [] if it fits."""
    saved = {"state_format": _FORMAT_BEFORE_IT_WAS_RECORDED, **saved}
    changes = []
    if saved["state_format"] not in READABLE_FORMATS:
        changes.append(
            f"another version of Vigil saved its state (format {saved['state_format']}, "
            f"this one reads {layout['state_format']})"
        )
    changes.extend(
        f"{key} was {saved.get(key)} and is now {value}"
        for key, value in layout.items()
        if key != "state_format" and saved.get(key) != value
    )
    return changes
