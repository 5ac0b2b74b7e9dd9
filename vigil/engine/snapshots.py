"""A shard's state as saved in the recovery store, and back.

Every shard is snapshotted at every epoch (10 s by default), so what a snapshot costs is
paid all the time. Two things keep it down:

- a tenant is pickled again only if the engine changed it since the last snapshot
  (`ShardEngine.touched`, and `dirty`): in a live stream most tenants are idle in any 10 s;
- the event ids held for de-duplication, most of a shard's objects, are saved once, as
  one JSON array a day, and the lookup set is rebuilt on restore.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, cast

import orjson

from vigil.base.jsonbytes import dumps_to_keep
from vigil.engine.shard import ShardEngine
from vigil.engine.state import AS_THEY_ARE, PLAIN_FIELDS, QueuedEvent, ShardState
from vigil.engine.tenant import TenantState
from vigil.intake.events import Event

# Where the classes pickled in stores of older versions live now: their modules moved
# when vigil's modules were grouped into packages.
MOVED: dict[tuple[str, str], type] = {
    ("vigil.shard", "ShardState"): ShardState,
    ("vigil.tenant", "TenantState"): TenantState,
    ("vigil.events", "Event"): Event,
}


class SnapshotWriter:
    def __init__(self, engine: ShardEngine) -> None:
        self.engine = engine
        self.tenants: dict[str, bytes] = {}  # each tenant as it was last pickled
        # Each day's event ids as last encoded, and how many there were: a day's list only
        # grows (by events of that day, within the lateness) until it is dropped whole.
        self.days: dict[int, tuple[int, bytes]] = {}
        engine.touch_all()  # none is pickled yet

    def snapshot(self) -> bytes:
        engine = self.engine
        # The engine's changed tenants: those it touched and those whose events were
        # applied since their last re-scoring; so no per-event bookkeeping.
        for tenant_id in engine.take_changed():
            tenant = engine.saved_tenant(tenant_id)
            if tenant is None:
                self.tenants.pop(tenant_id, None)
            else:
                self.tenants[tenant_id] = pickle.dumps(tenant, protocol=pickle.HIGHEST_PROTOCOL)
        days = engine.seen_day_counts()
        for day in self.days.keys() - days.keys():
            del self.days[day]  # forgotten by the engine
        saved = engine.plain_fields()
        # In the state's order, not the cache's: the engine visits tenants in that order.
        saved["tenants"] = {tenant_id: self.tenants[tenant_id] for tenant_id in engine.tenant_ids()}
        saved["seen_by_day"] = {day: self._encoded(day, count) for day, count in days.items()}
        return pickle.dumps(saved, protocol=pickle.HIGHEST_PROTOCOL)

    def _encoded(self, day: int, count: int) -> bytes:
        known, encoded = self.days.get(day, (-1, b""))
        if known != count:
            encoded = dumps_to_keep(self.engine.seen_day(day))
            self.days[day] = (count, encoded)
        return encoded


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        moved = MOVED.get((module, name))
        return moved if moved is not None else super().find_class(module, name)


def _loads(data: bytes) -> Any:
    return _Unpickler(io.BytesIO(data)).load()


def load_state(snapshot: bytes) -> ShardState:
    saved = _loads(snapshot)
    if isinstance(saved, ShardState):  # format c0026639c217: the state pickled whole
        saved.seen = set(saved.seen)  # it was a dict of event id -> event time
        return _in_this_format(_with_last_events(saved))
    tenants = {tenant_id: _loads(blob) for tenant_id, blob in saved.pop("tenants").items()}
    seen_by_day = {day: orjson.loads(keys) for day, keys in saved.pop("seen_by_day").items()}
    seen = {key for keys in seen_by_day.values() for key in keys}
    # Older formats saved more (error_windows: the core now works out what is due from
    # its tenants' measures).
    kept = {name: value for name, value in saved.items() if name in PLAIN_FIELDS}
    state = ShardState(tenants=tenants, seen_by_day=seen_by_day, seen=seen, **kept)
    return _in_this_format(_with_last_events(state))


def _in_this_format(state: ShardState) -> ShardState:
    """A state of an earlier format, as this one holds it. Those formats kept bare event
    ids for de-duplication (a resend of any tenant's id was a repeat): the ids stay,
    looked up bare until their last day is forgotten (ShardState.bare_ids_until). Their
    queue had no place in life nor key (the core works both out as it restores them),
    and their scores no record of the settings behind them."""
    if state.layout.get("state_format") in AS_THEY_ARE:
        return state
    state.scored_with = ""  # not known (and not set at all in a state pickled whole)
    state.bare_ids_until = max(state.seen_by_day, default=None)
    queued = cast("list[tuple[int, str, Event]]", state.pending)  # (ts, event id, event)
    state.pending = cast(
        "list[tuple[int, str, str, QueuedEvent]]", [(ts, None, None, e) for ts, _, e in queued]
    )
    return state


def _with_last_events(state: ShardState) -> ShardState:
    """Tenants saved before `last_event_at` existed (formats c0026639c217, ab073bfcfb3f)
    count as last heard from when the snapshot was taken: forgotten no earlier than they
    should be, at worst that much later."""
    seen_at = state.watermark
    for tenant in state.tenants.values():
        if not hasattr(tenant, "last_event_at"):
            tenant.last_event_at = seen_at if seen_at is not None else tenant.first_seen
    return state
