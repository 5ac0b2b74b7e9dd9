"""One engine shard: the event-time core of Vigil, free of any dataflow code.

A shard owns the tenants hashed onto it. It receives their events and the stream's
watermark ticks, and moves its own clock through event time in fixed steps:

- an accepted event waits in a queue until the watermark passes the next step; the
  queue is drained in event-time order (at one instant: an item's creation before its
  end, then by tenant and event_id), so the state at every step is the same whatever
  the arrival order, batch size or worker count;
- at each step it closes the windows that end there (even for silent tenants),
  fires onboarding deadlines that fell before it, re-scores the tenants that changed
  (every tenant once a day, so silence costs points), and posts the derived facts
  to the rules engine;
- an event older than the watermark it arrived under is late: a dead letter.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from vigil import signals as sig
from vigil.actions import in_cooldown, render_actions
from vigil.errors import ConfigError
from vigil.events import KNOWN_TYPES, DeadLetter, Event, event_json
from vigil.facts import score_drop_fact, signal_fact, zone_change_fact
from vigil.health import Health, Scorer, health_record, pressure_counts_until, warming_up
from vigil.intake import Tick
from vigil.metrics import ShardFigures
from vigil.rules.engine import RuleEngine
from vigil.settings import SESSION_DAYS_KEPT, Settings
from vigil.streams import DEADLETTER, HEALTH, SIGNALS, Output
from vigil.tenant import (
    ALL_STALE,
    BIT,
    CLOCK_MOVED,
    DAY_BASED,
    KEYED_MAPS,
    Buckets,
    Effect,
    TenantState,
    life_order,
    prune,
)
from vigil.timeutil import MS_PER_DAY, MS_PER_HOUR, floor_to, to_iso
from vigil.zones import zone_of

log = logging.getLogger("vigil.engine")


@dataclass(slots=True)
class ShardState:
    """Everything a shard must keep across a restart (saved by vigil.snapshots)."""

    tenants: dict[str, TenantState] = field(default_factory=dict)
    # (ts, place in its item's life, dedup key, event) accepted and not yet applied;
    # sorted when applied (see life_order and dedup_key).
    pending: list[tuple[int, str, str, Event]] = field(default_factory=list)
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
    # (deadline + 1, tenant) of open onboardings, a heap: not saved, worked out again from
    # the tenants on restore (see _stall_deadlines).
    stalls: list[tuple[int, str]] = field(default_factory=list)
    error_windows: dict[int, set[str]] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    # The settings that shape this state (see state_layout); a restore checks them.
    layout: dict[str, Any] = field(default_factory=dict)


# Saved as they are; the tenants are pickled one by one, the seen ids a day at a time,
# and the stall deadlines not at all (a restored shard works them out from its tenants).
PLAIN_FIELDS = tuple(
    name
    for name in ShardState.__annotations__
    if name not in ("tenants", "seen", "seen_by_day", "stalls")
)


def dedup_key(event: Event) -> str:
    """What makes an event a repeat: its id within its tenant. A repeat is the same
    event resent, so of the same tenant: an id another tenant used is not one (producers
    that number events per tenant reuse ids across tenants). The tenant's length comes
    first, so that no two (tenant, id) pairs share a key."""
    tenant_id = event.tenant_id
    return f"{len(tenant_id)}:{tenant_id}{event.event_id}"


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
# Formats of older versions this one still reads (vigil.snapshots.load_state converts
# them): the state pickled whole; tenants pickled one by one without last_event_at; and
# with it, but event ids kept without their tenant.
READABLE_FORMATS = frozenset(
    {STATE_FORMAT, _FORMAT_BEFORE_IT_WAS_RECORDED, "ab073bfcfb3f", "cb0820d49a8e"}
)


def state_layout(settings: Settings) -> dict[str, Any]:
    """What a saved state depends on: its format, tenant placement and bucket sizes."""
    return {
        "state_format": STATE_FORMAT,
        "engine.shards": settings.engine.shards,
        "engine.health_step": settings.engine.health_step,
        "engine.window_origin": settings.engine.window_origin,
        "signals.login_drop.window": settings.signals.login_drop.window,
        "signals.error_spike.window": settings.signals.error_spike.window,
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


class ShardEngine:
    def __init__(
        self, settings: Settings, rules: RuleEngine, state: ShardState | None = None
    ) -> None:
        self.settings = settings
        self.rules = rules
        layout = state_layout(settings)
        changed = layout_changes(state.layout, layout) if state is not None else []
        if changed:
            msg = f"the recovery store does not fit ({'; '.join(changed)}); use a new store"
            raise ConfigError(msg)
        self.state = state or ShardState(layout=layout, scored_with=scoring_settings(settings))
        self.state.layout = layout  # a state read from an older format is saved in this one
        self.buckets = Buckets.from_settings(settings)
        self.step = settings.engine.health_step
        self.counts: Counter[str] = Counter()
        self._stall_after = settings.signals.onboarding_stalled.stall_after
        self.scorer = Scorer(settings.health, self._stall_after)
        self.type_counts: Counter[str] = Counter()
        # Tenants per zone, kept as scores change (rebuilt here after a restore).
        self.zones: Counter[str] = Counter(t.zone for t in self.state.tenants.values() if t.zone)
        # Until the clock starts, the earliest event time queued, and how much of the queue
        # that covers: the queue only grows until then (see _earliest_pending).
        self._earliest: int | None = None
        self._scanned = 0
        # Tenants changed since the last snapshot, with `state.dirty` (events applied, not
        # re-scored yet): only those are pickled again (see vigil.snapshots). Whatever
        # else changes a tenant must add it here.
        self.touched: set[str] = set()
        # The tenants refused a key since midnight, by map (see _refused_key).
        self._refused_today: dict[str, set[str]] = {}
        # Steps at which tenants must be scored though they sent nothing: when some of
        # their errors or job retries leave the error pressure, and when their warm-up
        # ends (a zone they are in is announced then). Derived from the tenants, so not
        # saved: rebuilt after a restore.
        self._rescore_at: dict[int, set[str]] = {}
        # Score every tenant due at the next step even if no measure moved (see _resume).
        self._reweigh = False
        if state is not None:
            self._resume()

    def _resume(self) -> None:
        """Work out again, for a restored state, what is derived from its tenants or
        depends on settings that may have changed since it was saved."""
        st = self.state
        for tenant in st.tenants.values():
            self._rescore_after(tenant.first_seen + self.settings.health.warmup, tenant.tenant_id)
            for hour in tenant.pressure_by_hour:
                self._rescore_after(pressure_counts_until(hour), tenant.tenant_id)
            # Saved measures are those of the settings and the version the store ran with
            # (the health components' scales may have changed since; a store of a Vigil
            # without the steps above holds error pressure and onboarding as of its last
            # scoring). So every tenant is measured again at the first step, but for the
            # day-based components, which every tenant has measured at midnight (sooner
            # would move a look-back by part of a day), and scored even if no measure
            # moved, as the weights may have. Unchanged, the score comes out the same,
            # and nothing is written.
            if st.next_step is not None:
                tenant.stale |= ALL_STALE & ~DAY_BASED
                self._rescore_after(st.next_step, tenant.tenant_id)
        self._reweigh = True
        scored_with = scoring_settings(self.settings)
        if st.scored_with not in ("", scored_with):
            # The peaks of the drop window are scores of the old settings: a new score
            # below them is the model's change, not the customer's fall.
            for tenant in st.tenants.values():
                tenant.recent_scores = []
        st.scored_with = scored_with
        # Saved deadlines are those of the stall period the store ran with: worked out
        # again, a changed signals.onboarding_stalled.stall_after applies to the
        # onboardings under way (_fire_stalls skips a deadline of another period).
        st.stalls = self._stall_deadlines()

    # -- what a snapshot saves (vigil.snapshots) ---------------------------------------

    def touch_all(self) -> None:
        self.touched.update(self.state.tenants)

    def take_changed(self) -> set[str]:
        """The tenants changed since the last call: touched, and those whose events were
        applied since their last re-scoring (`dirty`)."""
        changed = self.touched | self.state.dirty
        self.touched.clear()
        return changed

    def tenant_ids(self) -> Iterable[str]:
        return self.state.tenants.keys()

    def saved_tenant(self, tenant_id: str) -> TenantState | None:
        return self.state.tenants.get(tenant_id)

    def plain_fields(self) -> dict[str, Any]:
        return {name: getattr(self.state, name) for name in PLAIN_FIELDS}

    def seen_day_counts(self) -> dict[int, int]:
        return {day: len(ids) for day, ids in self.state.seen_by_day.items()}

    def seen_day(self, day: int) -> list[str]:
        return self.state.seen_by_day[day]

    def figures(self) -> ShardFigures:
        """What the shard reports to the metrics after each batch."""
        st = self.state
        return ShardFigures(len(st.tenants), self.zones, st.watermark, len(st.pending))

    # -- input ------------------------------------------------------------------------

    def process(self, items: Iterable[Event | Tick]) -> list[Output]:
        out: list[Output] = []
        for item in items:
            if isinstance(item, Event):
                self._accept(item, out)
            else:
                self._tick(item, out)
        return out

    def _accept(self, event: Event, out: list[Output]) -> None:
        st = self.state
        kind, ts = event.type, event.ts
        key = dedup_key(event)
        if key in st.seen or (st.bare_ids_until is not None and event.event_id in st.seen):
            self.counts["duplicates"] += 1
            return
        # ts < the shard's own watermark only happens after a restart from a snapshot.
        if ts < event.wm or (st.watermark is not None and ts < st.watermark):
            self.counts["late"] += 1
            out.append((DEADLETTER, _late_letter(event)))
            return
        st.seen.add(key)
        day = ts // MS_PER_DAY
        keys = st.seen_by_day.get(day)
        if keys is None:
            keys = st.seen_by_day[day] = []
        keys.append(key)
        self.type_counts[kind] += 1
        if kind not in KNOWN_TYPES:
            self.counts["unknown_types"] += 1
            return
        # Sorted when applied (see _apply_before): arrival is nearly in event-time order,
        # so that sort is a cheap pass, where a heap would pay log n on every event.
        st.pending.append((ts, life_order(event), key, event))

    def _tick(self, tick: Tick, out: list[Output]) -> None:
        st = self.state
        st.source_wms[tick.source] = tick.wm
        if len(st.source_wms) < tick.sources:
            return  # not every partition has spoken: the stream's watermark is unknown
        active = [wm for wm in st.source_wms.values() if wm is not None]
        if not active:
            return
        watermark = min(active)
        if st.watermark is None or watermark > st.watermark:
            st.watermark = watermark
            self._advance(watermark, out)

    # -- event time -------------------------------------------------------------------

    def _advance(self, watermark: int, out: list[Output]) -> None:
        st = self.state
        if st.next_step is None:
            # The clock starts at the hour of the shard's first event. Only once that event
            # is behind the watermark is it surely the first (no earlier one can still come
            # from a slower partition), so the start does not depend on arrival order.
            earliest = self._earliest_pending()
            if earliest is None or earliest >= watermark:
                return
            st.next_step = floor_to(earliest, self.step) + self.step
        while True:
            stall_at = st.stalls[0][0] if st.stalls else None
            now = st.next_step if stall_at is None else min(st.next_step, stall_at)
            if now > watermark:
                return
            self._apply_before(now)
            if now == stall_at:
                self._fire_stalls(now, out)
            if now == st.next_step:
                self._step(now, out)
                st.next_step += self.step

    def _earliest_pending(self) -> int | None:
        """The earliest event time queued, for a clock not started yet. Each tick looks
        only at what was queued since the last one: with a long allowed lateness the
        queue holds days of events before the clock starts."""
        pending = self.state.pending
        if len(pending) > self._scanned:
            fresh = min(item[0] for item in pending[self._scanned :])
            self._earliest = fresh if self._earliest is None else min(self._earliest, fresh)
            self._scanned = len(pending)
        return self._earliest

    def _apply_before(self, now: int) -> None:
        st = self.state
        pending = st.pending
        if not pending:
            return
        # (ts, place in life, dedup key): the events of one instant in their item's order
        # of life (a ticket created before it is resolved), then by tenant and id. Keys
        # are unique here, so events never compare.
        pending.sort()
        due = bisect.bisect_left(pending, (now,))  # (now,) sorts before any (now, ...)
        if not due:
            return
        applying = pending[:due]
        del pending[:due]
        tenants, dirty, buckets = st.tenants, st.dirty, self.buckets
        for *_, event in applying:
            tenant = tenants.get(event.tenant_id)
            if tenant is None:
                tenant = tenants[event.tenant_id] = TenantState(event.tenant_id, event.ts)
                self._rescore_after(event.ts + self.settings.health.warmup, event.tenant_id)
            effect = tenant.apply(event, buckets)
            dirty.add(event.tenant_id)
            if not effect:
                continue
            if effect & Effect.ERRORS:
                window = self.settings.signals.error_spike.window
                end = floor_to(event.ts, window, self.buckets.origin) + window
                st.error_windows.setdefault(end, set()).add(event.tenant_id)
            if effect & Effect.ONBOARDING_CLOCK and tenant.last_progress is not None:
                # Fires one millisecond after the deadline: "more than" stall_after.
                deadline = tenant.last_progress + self._stall_after
                heapq.heappush(st.stalls, (deadline + 1, event.tenant_id))
            if effect & Effect.PRESSURE:
                self._rescore_after(
                    pressure_counts_until(event.ts // MS_PER_HOUR), tenant.tenant_id
                )
            if effect & Effect.KEY_REFUSED:
                self._refused_key(event)

    def _rescore_after(self, instant: int, tenant_id: str) -> None:
        """Score the tenant at the first step at or after `instant`, if still to come."""
        step = floor_to(instant - 1, self.step) + self.step
        if self.state.next_step is None or step >= self.state.next_step:
            self._rescore_at.setdefault(step, set()).add(tenant_id)

    def _refused_key(self, event: Event) -> None:
        """Counted every time. Logged with the first refusal of the day per map, as an
        example, and in one line a day per map (see _report_refusals): a producer that
        puts ids into names usually does it for every tenant, on every event."""
        kind, key_attr = KEYED_MAPS[event.type]
        self.counts[f"keys_refused:{kind}"] += 1
        tenants = self._refused_today.setdefault(kind, set())
        if not tenants:
            log.warning(
                "a tenant has as many keys as engine.max_keys_per_tenant: new ones are not kept",
                extra={
                    "tenant": event.tenant_id,
                    "map": kind,
                    "limit": self.buckets.max_keys,
                    "refused": event.attrs[key_attr],
                    "at": to_iso(event.ts),
                },
            )
        tenants.add(event.tenant_id)

    def _report_refusals(self, now: int) -> None:
        for kind, tenants in sorted(self._refused_today.items()):
            log.warning(
                "tenants refused keys at engine.max_keys_per_tenant in the day before",
                extra={
                    "map": kind,
                    "tenants": len(tenants),
                    "first": sorted(tenants)[:5],
                    "until": to_iso(now),
                },
            )
        self._refused_today.clear()

    def _stall_deadlines(self) -> list[tuple[int, str]]:
        """When each open onboarding stalls, as a heap, from the tenants: those whose
        current stretch without progress was signalled already are left out."""
        stalls = []
        for tenant in self.state.tenants.values():
            progress, signalled = tenant.last_progress, tenant.stall_signalled_at
            if not tenant.onboarding_open or progress is None:
                continue
            if signalled is not None and signalled > progress:
                continue  # signalled at its deadline, which came after this progress
            stalls.append((progress + self._stall_after + 1, tenant.tenant_id))
        heapq.heapify(stalls)
        return stalls

    def _fire_stalls(self, now: int, out: list[Output]) -> None:
        st = self.state
        while st.stalls and st.stalls[0][0] == now:
            _, tenant_id = heapq.heappop(st.stalls)
            tenant = st.tenants.get(tenant_id)
            if tenant is None or tenant.last_progress is None or not tenant.onboarding_open:
                continue  # forgotten, or onboarding no longer open
            deadline = tenant.last_progress + self._stall_after
            if deadline + 1 != now or tenant.stall_signalled_at == deadline:
                continue  # superseded by later progress, or already signalled
            tenant.stall_signalled_at = deadline  # touched by _post
            tenant.stale |= BIT["onboarding"]  # a stall halves its points
            st.dirty.add(tenant_id)
            assert tenant.onboarding_started is not None
            finding = sig.describe_onboarding_stall(
                tenant.onboarding_started,
                tenant.last_progress,
                self._stall_after,
                len(tenant.onboarding_steps),
            )
            record = sig.signal_record(
                tenant_id, sig.ONBOARDING_STALLED, tenant.last_progress, deadline, finding
            )
            self._emit_signal(tenant, record, deadline, out)

    def _step(self, now: int, out: list[Output]) -> None:
        st = self.state
        found: list[tuple[TenantState, dict[str, Any]]] = []
        for tenant_id in sorted(st.error_windows.pop(now, ())):
            # It drops the tenant's old windows: with a step shorter than the window, the
            # tenant may have had no event since the last snapshot.
            self._check_error_spike(st.tenants[tenant_id], now, found)
            self.touched.add(tenant_id)
        login_window = self.buckets.login_window
        if (now - self.buckets.origin) % login_window == 0:
            for tenant in st.tenants.values():
                self._check_login_drop(tenant, now, found)
        if now % MS_PER_DAY == 0:
            self._daily(now)
        for tenant_id in self._rescore_at.pop(now, ()):
            due = st.tenants.get(tenant_id)
            if due is not None:  # not forgotten since
                due.stale |= CLOCK_MOVED  # errors may have left the 24 h
                st.dirty.add(tenant_id)
        reweigh, self._reweigh = self._reweigh, False
        for tenant_id in sorted(st.dirty):
            self._score(st.tenants[tenant_id], now, out, reweigh)
        self.touched |= st.dirty  # re-scored (all of them once a day, when pruned too)
        st.dirty.clear()
        for tenant, record in found:
            self._emit_signal(tenant, record, now, out)

    def _daily(self, now: int) -> None:
        """Once a day: everyone is re-scored (silence costs points) and old data goes."""
        st = self.state
        self._report_refusals(now)
        self._forget_silent_tenants(now)
        st.dirty.update(st.tenants)
        for tenant in st.tenants.values():
            tenant.stale |= DAY_BASED  # the day-based windows moved for everyone
        keep_from = (
            floor_to(now, self.buckets.login_window, self.buckets.origin)
            - self.buckets.login_window
        )
        lookback = self.settings.health.components.adoption.lookback
        for tenant in st.tenants.values():
            prune(
                tenant,
                now,
                keep_days=SESSION_DAYS_KEPT,
                keep_from_window=keep_from,
                feature_lookback=lookback,
            )
        forget_before = (now - self.settings.dedup_retention) // MS_PER_DAY
        for day in [d for d in st.seen_by_day if d < forget_before]:
            for key in st.seen_by_day.pop(day):
                st.seen.discard(key)
        if st.bare_ids_until is not None and st.bare_ids_until < forget_before:
            st.bare_ids_until = None

    def _forget_silent_tenants(self, now: int) -> None:
        """Tenants that sent nothing for `engine.forget_tenants_after` (churned, deleted,
        renamed) leave the state, so it does not grow with every tenant ever seen. The
        settings make sure nothing they sent can still count; one that comes back starts
        over, as a new tenant."""
        st = self.state
        silent_since = now - self.settings.engine.forget_tenants_after
        gone = [t for t in st.tenants.values() if t.last_event_at < silent_since]
        for tenant in gone:
            del st.tenants[tenant.tenant_id]
            st.dirty.discard(tenant.tenant_id)
            self.touched.add(tenant.tenant_id)  # drops its saved copy at the next snapshot
            if tenant.zone is not None:
                self.zones[tenant.zone] -= 1
        if gone:
            self._forgot(now, [tenant.tenant_id for tenant in gone])

    def _forgot(self, now: int, tenant_ids: list[str]) -> None:
        self.counts["tenants_forgotten"] += len(tenant_ids)
        log.info(
            "forgot tenants that sent nothing for engine.forget_tenants_after",
            extra={"tenants": len(tenant_ids), "first": tenant_ids[:5], "at": to_iso(now)},
        )

    # -- signals ----------------------------------------------------------------------

    def _check_login_drop(
        self, tenant: TenantState, now: int, found: list[tuple[TenantState, dict[str, Any]]]
    ) -> None:
        size = self.buckets.login_window
        current = tenant.sessions_by_window.get(now - size, 0)
        previous = tenant.sessions_by_window.get(now - 2 * size, 0)
        finding = sig.detect_login_drop(current, previous, self.settings.signals.login_drop)
        if finding is not None:
            found.append(
                (
                    tenant,
                    sig.signal_record(tenant.tenant_id, sig.LOGIN_DROP, now - size, now, finding),
                )
            )

    def _check_error_spike(
        self, tenant: TenantState, now: int, found: list[tuple[TenantState, dict[str, Any]]]
    ) -> None:
        cfg = self.settings.signals.error_spike
        size = cfg.window
        start = now - size
        # The whole windows within the history: a window that does not divide it must not
        # count back to an instant between windows, where no window's count is kept.
        oldest = start - cfg.history // size * size
        first = max(floor_to(tenant.first_seen, size, self.buckets.origin), oldest)
        windows = tenant.errors_by_window
        history = [windows.get(w, 0) for w in range(first, start, size)]
        for old in [w for w in windows if w < first]:
            del windows[old]
        finding = sig.detect_error_spike(windows.get(start, 0), history, cfg)
        if finding is not None:
            found.append(
                (tenant, sig.signal_record(tenant.tenant_id, sig.ERROR_SPIKE, start, now, finding))
            )

    def _emit_signal(
        self, tenant: TenantState, record: dict[str, Any], now: int, out: list[Output]
    ) -> None:
        out.append((SIGNALS, record))
        self.counts[f"signal:{record['signal']}"] += 1
        self._post(
            signal_fact(record, tenant.segment, tenant.score, tenant.zone, self._why(tenant)),
            tenant.tenant_id,
            tenant.cooldowns,
            now,
            out,
        )

    # -- health -----------------------------------------------------------------------

    def _score(
        self, tenant: TenantState, now: int, out: list[Output], reweigh: bool = False
    ) -> None:
        cfg = self.settings.health
        exact = self.scorer.rescore(tenant, now, reweigh)
        health = None
        if exact is not None:
            score = int(exact + 0.5)
            zone = zone_of(exact, cfg.zones)
            if score != tenant.score or zone != tenant.zone:
                health = self.scorer.explainable(tenant, exact, now)
                self._record_health(tenant, health, out)
        if tenant.zone is None:
            return
        warm = now - tenant.first_seen >= cfg.warmup  # enough history to call a zone or a drop
        # Also with an unchanged score: a tenant may have been in its zone since before
        # its warm-up ended.
        if warm and tenant.zone != tenant.zone_announced:
            assert tenant.score is not None
            fact = zone_change_fact(
                tenant.tenant_id,
                tenant.segment,
                now,
                tenant.score,
                tenant.zone,
                tenant.zone_announced,
                tenant.reasons,
            )
            tenant.zone_announced = tenant.zone
            self._post(fact, tenant.tenant_id, tenant.cooldowns, now, out)
        if health is not None:
            self._check_score_drop(tenant, health, now, out, warm)

    def _record_health(self, tenant: TenantState, health: Health, out: list[Output]) -> None:
        if health.zone != tenant.zone:
            self.zones[health.zone] += 1
            if tenant.zone is not None:
                self.zones[tenant.zone] -= 1
        tenant.score, tenant.zone = health.rounded, health.zone
        cfg = self.settings.health
        record = health_record(tenant, health, cfg, self._stall_after, self.scorer.lines)
        said = record["reasons"]
        if warming_up(tenant, health.now, cfg) is not None:
            said = said[:-1]  # the facts' reasons are about the score (a rule fires past it)
        tenant.reasons = "; ".join(said)
        out.append((HEALTH, record))

    def _check_score_drop(
        self, tenant: TenantState, health: Health, now: int, out: list[Output], warm: bool
    ) -> None:
        """Post a score drop if the score fell drop_points below its peak of the window
        (once warmed up); and keep the scores that can still be a peak, warm-up's too."""
        cfg = self.settings.health
        since = now - cfg.drop_window
        # The scores recorded since the window opened, and the one in force as it opened:
        # a score is recorded when it changes, so a flat one was recorded before the window.
        held = [entry for entry in tenant.recent_scores if entry[0] < since][-1:]
        recent = held + [(t, s) for t, s in tenant.recent_scores if t >= since]
        peak = max((s for _, s in recent), default=health.score)
        if warm and peak - health.score >= cfg.drop_points:
            fact = score_drop_fact(
                tenant.tenant_id,
                tenant.segment,
                now,
                health.rounded,
                health.zone,
                peak,
                tenant.reasons,
            )
            recent = []  # a continuing fall must lose drop_points again to re-fire
            self._post(fact, tenant.tenant_id, tenant.cooldowns, now, out)
        # An earlier score no higher than this one can never be the peak of a later window
        # (any window holding it holds this one too): drop it, so the list stays short.
        while recent and recent[-1][1] <= health.score:
            recent.pop()
        recent.append((now, health.score))
        tenant.recent_scores = recent

    def _why(self, tenant: TenantState) -> str:
        return tenant.reasons or "not scored yet"

    # -- rules ------------------------------------------------------------------------

    def _post(
        self,
        fact: dict[str, Any],
        tenant_id: str,
        cooldowns: dict[str, int],
        now: int,
        out: list[Output],
    ) -> None:
        """Hand a fact to the rules; act on each rule it matches, outside its cooldown
        for the tenant (`cooldowns`, the tenant's, updated here)."""
        self.touched.add(tenant_id)  # a rule's cooldown may start
        self.counts[f"fact:{fact['fact']}"] += 1
        matched, errors = self.rules.evaluate(fact)
        for error in errors:  # counted and logged; the other rules still act
            self.counts[f"rule_error:{error.rule_id}"] += 1
            log.error("rule evaluation failed", extra={"rule": error.rule_id, "error": str(error)})
        for rule in matched:
            if in_cooldown(cooldowns, rule, now):
                self.counts[f"suppressed:{rule.id}"] += 1
                continue
            for stream, record in render_actions(rule, fact, now):
                self.counts[f"action:{rule.id}:{stream}"] += 1
                out.append((stream, record))


def _late_letter(event: Event) -> dict[str, Any]:
    error = f"late: event time {to_iso(event.ts)} is before the watermark {to_iso(event.wm)}"
    return DeadLetter(event.source, event.position, event_json(event), "late", error).to_record()
