"""A tenant's state as the recovery store keeps it.

The compiled core (native/src/tenant.rs) holds each tenant as typed data and folds its
events in; a snapshot saves it as this dataclass, pickled, and a restore reads it back.
Everything a signal or a health component needs is kept in bounded, bucketed form
(counts per window, latest value per key), never as a list of raw events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vigil.base.timeutil import MS_PER_DAY, MS_PER_HOUR
from vigil.config.settings import ENGINE_COMPONENTS
from vigil.engine.measures import default_digests

# The components the engine measures with code of its own, in its core's order; a bit
# each in `stale`.
COMPONENT_NAMES = tuple(ENGINE_COMPONENTS)
ALL_STALE = (1 << len(COMPONENT_NAMES)) - 1


@dataclass(slots=True)
class TenantState:
    tenant_id: str
    first_seen: int
    segment: str | None = None
    sessions_by_window: dict[int, int] = field(default_factory=dict)
    errors_by_window: dict[int, int] = field(default_factory=dict)
    open_tickets: dict[str, str] = field(default_factory=dict)
    tickets_seen: bool = False
    nps: float | None = None
    csat: float | None = None
    unpaid_invoices: dict[str, str] = field(default_factory=dict)
    invoices_seen: bool = False
    integrations: dict[str, str] = field(default_factory=dict)
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
    # and vigil.engine.snapshots.load_state sets this one.)
    last_event_at: int = 0
    # The declared measures' states (name -> (its declaration's digest, state)) and the
    # declared signals its measures cross now (raised once per crossing).
    measured: dict[str, tuple[str, Any]] = field(default_factory=dict)
    signals_raised: list[str] = field(default_factory=list)
    # The declared health components' measures (name -> (its declaration's digest,
    # (value, share) or None)).
    components: dict[str, tuple[str, Any]] = field(default_factory=dict)

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        """Unpickled by field name: a field saved by an older Vigil is set if it is still
        one, and what a tenant saved before five of the default components were declared
        over measures kept for them is taken over by those (see `_taken_over`)."""
        _, saved = state
        before = {name: saved.pop(name) for name in _BEFORE_MEASURES if name in saved}
        for name, value in saved.items():
            object.__setattr__(self, name, value)
        if before:
            _taken_over(self, before)


# What tenants kept for login activity and trend, adoption, error pressure and the sponsor
# before those were declared over measures (state format 11a818177577 and older).
_BEFORE_MEASURES = (
    "sessions_seen",
    "sessions_by_day",
    "session_sums_day",
    "sessions_prior6",
    "sessions_prior7to13",
    "features",
    "pressure_by_hour",
    "product_activity",
    "sponsor",
)
# Those stores' components, in their order; five are now declared over measures.
_COMPONENTS_BEFORE = (
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


def _taken_over(tenant: TenantState, before: dict[str, Any]) -> None:
    """A tenant of an older store in this form: its sessions, features, errors and
    sponsor as the default measures hold them (the times of the latest session and
    activity, which it did not keep, as the latest it had), its measures of the five
    components as theirs, and which of them were to be measured again."""
    measure_digests, component_digests = default_digests()
    by_day = before.get("sessions_by_day", {})
    features = before.get("features", {})
    latest = getattr(tenant, "last_event_at", tenant.first_seen)
    seeds: dict[str, Any] = {
        "sessions_7d": [(day * MS_PER_DAY, float(n)) for day, n in sorted(by_day.items())],
        "last_session": (
            max(by_day, default=0) * MS_PER_DAY or latest if before.get("sessions_seen") else None
        ),
        "features_30d": dict(features),
        "last_feature": max(features.values(), default=None),
        "pressure_24h": [
            (hour * MS_PER_HOUR, float(n))
            for hour, n in sorted(before.get("pressure_by_hour", {}).items())
        ],
        "last_activity": latest if before.get("product_activity") else None,
        "sponsor_status": (before.get("sponsor"), None),
    }
    measured = dict(getattr(tenant, "measured", {}))
    for name, plain in seeds.items():
        measured.setdefault(name, (measure_digests[name], plain))
    tenant.measured = measured
    old = list(tenant.measures)
    if len(old) == len(_COMPONENTS_BEFORE):
        by_name = dict(zip(_COMPONENTS_BEFORE, old, strict=True))
        tenant.measures = [by_name[name] for name in COMPONENT_NAMES]
        components = dict(getattr(tenant, "components", {}))
        for name, digest in component_digests.items():
            if name in by_name:
                components.setdefault(name, (digest, by_name[name]))
        tenant.components = components
        tenant.stale = _stale_now(tenant.stale)


def _stale_now(stale: int) -> int:
    """An older store's bits of the components to measure again, in this one's order: the
    engine's own, then the declared (the five first, as the default order has them)."""
    declared_first = [n for n in _COMPONENTS_BEFORE if n not in COMPONENT_NAMES]
    now = 0
    for bit, name in enumerate(_COMPONENTS_BEFORE):
        if stale >> bit & 1:
            if name in COMPONENT_NAMES:
                now |= 1 << COMPONENT_NAMES.index(name)
            else:
                now |= 1 << (len(COMPONENT_NAMES) + declared_first.index(name))
    # Declared components after those kept their bits (10 and on, as now).
    return now | (stale & ~((1 << len(_COMPONENTS_BEFORE)) - 1))
