"""Per-tenant state, folded from events in event-time order.

Everything a signal or a health component needs is kept here in bounded, bucketed
form (counts per window, latest value per key), never as a list of raw events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from vigil.events import Event
from vigil.settings import Settings
from vigil.timeutil import MS_PER_DAY, MS_PER_HOUR, floor_to


@dataclass(frozen=True, slots=True)
class Buckets:
    """The window sizes the state is bucketed by, and the most keys a tenant keeps per
    map (features, open tickets, ...), taken from the settings once."""

    login_window: int
    error_window: int
    origin: int
    max_keys: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Buckets:
        return cls(
            login_window=settings.signals.login_drop.window,
            error_window=settings.signals.error_spike.window,
            origin=settings.engine.window_origin,
            max_keys=settings.engine.max_keys_per_tenant,
        )


class Effect:
    """What applying an event changed that the shard must index (bit flags; plain ints
    because this runs for every event)."""

    NONE = 0
    ERRORS = 1
    ONBOARDING_CLOCK = 2
    KEY_REFUSED = 4  # a new key for a map already at Buckets.max_keys: not kept
    PRESSURE = 8  # the first error or job retry of its hour: they leave the pressure 24 h on


# The map each event type adds keys to (named as the key limit's metric and log say it),
# and the attribute that holds the key.
KEYED_MAPS = {
    "feature.used": ("features", "feature"),
    "ticket.created": ("open_tickets", "ticket_id"),
    "billing.invoice": ("unpaid_invoices", "invoice_id"),
    "integration.state": ("integrations", "integration"),
    "onboarding.step_completed": ("onboarding_steps", "step"),
}


# The health components, in the order of health records; a bit each in `stale`.
COMPONENT_NAMES = (
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
BIT = {name: 1 << index for index, name in enumerate(COMPONENT_NAMES)}
# The error pressure counts the errors and job retries of the last this many whole hours.
PRESSURE_HOURS = 24
ALL_STALE = (1 << len(COMPONENT_NAMES)) - 1
# Components measured over windows that end "now" in whole days: they move at midnight
# with no event. The others move with their events, and CLOCK_MOVED ones with time too.
DAY_BASED = BIT["login_activity"] | BIT["login_trend"] | BIT["adoption"]
# Components that move with the clock within a day, at instants the shard keeps: error
# pressure when an hour of errors leaves the last 24 h, onboarding when it stalls.
CLOCK_MOVED = BIT["error_pressure"] | BIT["onboarding"]
_ACTIVITY = BIT["error_pressure"]  # its "has data" depends on any product activity
# Which components an event type can change; the scorer re-measures only those.
TOUCHES = {
    "user.session": BIT["login_activity"] | BIT["login_trend"] | _ACTIVITY,
    "feature.used": BIT["adoption"] | _ACTIVITY,
    "error.raised": _ACTIVITY,
    "job.retry": _ACTIVITY,
    "integration.state": BIT["integrations"],
    "onboarding.started": BIT["onboarding"],
    "onboarding.step_completed": BIT["onboarding"],
    "recipe.completed": BIT["onboarding"] | _ACTIVITY,
    "onboarding.completed": BIT["onboarding"],
    "ticket.created": BIT["support_load"],
    "ticket.resolved": BIT["support_load"],
    "survey.response": BIT["sentiment"],
    "billing.invoice": BIT["billing"],
    "sponsor.changed": BIT["sponsor"],
}


# Where an event stands in the life of its item (a ticket, an invoice, an onboarding),
# for events of one instant: producers that stamp whole seconds often give a ticket's
# creation and resolution the same time, and resolved before created left it open for
# good. "1" for the rest.
_LIFE_ORDER = {
    "onboarding.started": "0",
    "ticket.created": "0",
    "ticket.resolved": "2",
    "onboarding.completed": "2",
}
_INVOICE_LIFE_ORDER = {"issued": "0", "overdue": "1", "failed": "1", "paid": "2"}


def life_order(event: Event) -> str:
    """The event's place in its item's life, as one character that sorts."""
    if event.type == "billing.invoice":
        return _INVOICE_LIFE_ORDER.get(event.attrs["status"], "1")
    return _LIFE_ORDER.get(event.type, "1")


@dataclass(slots=True)
class TenantState:
    tenant_id: str
    first_seen: int
    segment: str | None = None
    sessions_seen: bool = False
    sessions_by_day: dict[int, int] = field(default_factory=dict)
    sessions_by_window: dict[int, int] = field(default_factory=dict)
    # Cached sums of closed days (see health._session_weeks), valid for session_sums_day.
    session_sums_day: int = -1
    sessions_prior6: int = 0
    sessions_prior7to13: int = 0
    features: dict[str, int] = field(default_factory=dict)
    errors_by_window: dict[int, int] = field(default_factory=dict)
    pressure_by_hour: dict[int, int] = field(default_factory=dict)
    product_activity: bool = False
    open_tickets: dict[str, str] = field(default_factory=dict)
    tickets_seen: bool = False
    nps: float | None = None
    csat: float | None = None
    unpaid_invoices: dict[str, str] = field(default_factory=dict)
    invoices_seen: bool = False
    integrations: dict[str, str] = field(default_factory=dict)
    sponsor: str | None = None
    seats: int | None = None
    onboarding_started: int | None = None
    onboarding_completed: bool = False
    onboarding_steps: set[str] = field(default_factory=set)
    last_progress: int | None = None
    stall_signalled_at: int | None = None
    # Health and rule bookkeeping, written by the shard.
    score: int | None = None
    zone: str | None = None
    zone_announced: str | None = None  # the zone last posted as a fact
    reasons: str = ""
    # Cached component measures, and which of them must be measured again.
    measures: list[tuple[float, float] | None] = field(
        default_factory=lambda: [None] * len(COMPONENT_NAMES)
    )
    stale: int = ALL_STALE
    # (ts, score) of the drop window, falling: the first one still in it is the peak.
    recent_scores: list[tuple[int, float]] = field(default_factory=list)
    cooldowns: dict[str, int] = field(default_factory=dict)
    # Event time of the latest event applied; a tenant silent for long is forgotten.
    # (Tenants are pickled by field name: one saved before this field has all the others,
    # and vigil.snapshots.load_state sets this one.)
    last_event_at: int = 0

    def apply(self, event: Event, buckets: Buckets) -> int:
        """Fold one event in; a tenant's events arrive here in the order of its queue:
        event time, then place in their item's life, then event_id."""
        self.last_event_at = event.ts
        if event.segment is not None:
            self.segment = event.segment
        found = _DISPATCH.get(event.type)
        if found is None:
            return Effect.NONE
        handler, touches = found
        self.stale |= touches
        return handler(self, event, buckets)

    @property
    def onboarding_open(self) -> bool:
        return self.onboarding_started is not None and not self.onboarding_completed


V = TypeVar("V")


def _put(keyed: dict[str, V], key: str, value: V, buckets: Buckets) -> int:
    """`keyed[key] = value`, unless the key is new and `keyed` is at the limit."""
    if len(keyed) >= buckets.max_keys and key not in keyed:
        return Effect.KEY_REFUSED
    keyed[key] = value
    return Effect.NONE


def _session(state: TenantState, event: Event, buckets: Buckets) -> int:
    state.product_activity = state.sessions_seen = True
    day = event.ts // MS_PER_DAY
    state.sessions_by_day[day] = state.sessions_by_day.get(day, 0) + 1
    window = floor_to(event.ts, buckets.login_window, buckets.origin)
    state.sessions_by_window[window] = state.sessions_by_window.get(window, 0) + 1
    return Effect.NONE


def _feature(state: TenantState, event: Event, buckets: Buckets) -> int:
    state.product_activity = True
    return _put(state.features, event.attrs["feature"], event.ts, buckets)


def _error(state: TenantState, event: Event, buckets: Buckets) -> int:
    pressure = _pressure(state, event, buckets)
    window = floor_to(event.ts, buckets.error_window, buckets.origin)
    state.errors_by_window[window] = state.errors_by_window.get(window, 0) + 1
    return Effect.ERRORS | pressure


def _pressure(state: TenantState, event: Event, buckets: Buckets) -> int:
    state.product_activity = True
    hour = event.ts // MS_PER_HOUR
    before = state.pressure_by_hour.get(hour, 0)
    state.pressure_by_hour[hour] = before + 1
    return Effect.NONE if before else Effect.PRESSURE  # the hour's end is known already


def _integration(state: TenantState, event: Event, buckets: Buckets) -> int:
    return _put(state.integrations, event.attrs["integration"], event.attrs["state"], buckets)


def _onboarding_started(state: TenantState, event: Event, buckets: Buckets) -> int:
    if state.onboarding_started is not None:
        return Effect.NONE  # a resent start does not restart the clock
    state.onboarding_started = event.ts
    state.last_progress = event.ts
    return Effect.ONBOARDING_CLOCK


def _onboarding_progress(state: TenantState, event: Event, buckets: Buckets) -> int:
    refused = Effect.NONE
    if event.type == "onboarding.step_completed":
        steps, step = state.onboarding_steps, event.attrs["step"]
        if len(steps) < buckets.max_keys or step in steps:
            steps.add(step)
        else:
            refused = Effect.KEY_REFUSED  # still progress: the stall clock restarts
    else:
        state.product_activity = True
    if not state.onboarding_open:
        return refused
    state.last_progress = event.ts
    return Effect.ONBOARDING_CLOCK | refused


def _onboarding_completed(state: TenantState, event: Event, buckets: Buckets) -> int:
    state.onboarding_completed = True
    return Effect.NONE


def _ticket_created(state: TenantState, event: Event, buckets: Buckets) -> int:
    state.tickets_seen = True
    return _put(state.open_tickets, event.attrs["ticket_id"], event.attrs["priority"], buckets)


def _ticket_resolved(state: TenantState, event: Event, buckets: Buckets) -> int:
    state.tickets_seen = True
    state.open_tickets.pop(event.attrs["ticket_id"], None)
    return Effect.NONE


def _survey(state: TenantState, event: Event, buckets: Buckets) -> int:
    if event.attrs["kind"] == "nps":
        state.nps = float(event.attrs["score"])
    else:
        state.csat = float(event.attrs["score"])
    return Effect.NONE


def _invoice(state: TenantState, event: Event, buckets: Buckets) -> int:
    state.invoices_seen = True
    invoice_id, status = event.attrs["invoice_id"], event.attrs["status"]
    if status in ("overdue", "failed"):
        return _put(state.unpaid_invoices, invoice_id, status, buckets)
    # Issued or paid: not (or no longer) a problem; forget it to stay bounded.
    state.unpaid_invoices.pop(invoice_id, None)
    return Effect.NONE


def _contract(state: TenantState, event: Event, buckets: Buckets) -> int:
    seats = event.attrs.get("seats")
    if seats is not None:
        state.seats = seats
    return Effect.NONE


def _sponsor(state: TenantState, event: Event, buckets: Buckets) -> int:
    state.sponsor = event.attrs["status"]
    return Effect.NONE


def _context_only(state: TenantState, event: Event, buckets: Buckets) -> int:
    return Effect.NONE


_HANDLERS = {
    "user.session": _session,
    "feature.used": _feature,
    "error.raised": _error,
    "job.retry": _pressure,
    "integration.state": _integration,
    "onboarding.started": _onboarding_started,
    "onboarding.step_completed": _onboarding_progress,
    "recipe.completed": _onboarding_progress,
    "onboarding.completed": _onboarding_completed,
    "ticket.created": _ticket_created,
    "ticket.resolved": _ticket_resolved,
    "survey.response": _survey,
    "billing.invoice": _invoice,
    "contract.updated": _contract,
    "sponsor.changed": _sponsor,
    "nudge.sent": _context_only,
    "nudge.acted": _context_only,
    "deployment.published": _context_only,
    "config.changed": _context_only,
}


def prune(
    state: TenantState, now: int, keep_days: int, keep_from_window: int, feature_lookback: int
) -> None:
    """Drop buckets nothing can read any more, so a tenant's state stays bounded."""
    _prune_features(state.features, now - feature_lookback)
    oldest_day = now // MS_PER_DAY - keep_days
    for day in [d for d in state.sessions_by_day if d < oldest_day]:
        del state.sessions_by_day[day]
    oldest_hour = now // MS_PER_HOUR - PRESSURE_HOURS
    for hour in [h for h in state.pressure_by_hour if h < oldest_hour]:
        del state.pressure_by_hour[hour]
    for window in [w for w in state.sessions_by_window if w < keep_from_window]:
        del state.sessions_by_window[window]


def _prune_features(features: dict[str, int], since: int) -> None:
    """Forget features last used before `since`: the clock only moves on, so adoption can
    never count them again. The newest one stays even so, because a tenant that used
    features long ago scores 0 for adoption, where one that never did has no data."""
    old = [name for name, last in features.items() if last < since]
    if old and len(old) == len(features):
        old.remove(max(old, key=lambda name: (features[name], name)))
    for name in old:
        del features[name]


# One lookup per event: the handler, and the health components it can change.
_DISPATCH = {kind: (handler, TOUCHES.get(kind, 0)) for kind, handler in _HANDLERS.items()}
