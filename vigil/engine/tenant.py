"""A tenant's state as the recovery store keeps it.

The compiled core (native/src/tenant.rs) holds each tenant as typed data and folds its
events in; a snapshot saves it as this dataclass, pickled, and a restore reads it back.
Everything a signal or a health component needs is kept in bounded, bucketed form
(counts per window, latest value per key), never as a list of raw events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vigil.config.settings import BUILT_IN_COMPONENTS

# The built-in health components, in the order of health records; a bit each in `stale`.
COMPONENT_NAMES = tuple(BUILT_IN_COMPONENTS)
ALL_STALE = (1 << len(COMPONENT_NAMES)) - 1


@dataclass(slots=True)
class TenantState:
    tenant_id: str
    first_seen: int
    segment: str | None = None
    sessions_seen: bool = False
    sessions_by_day: dict[int, int] = field(default_factory=dict)
    sessions_by_window: dict[int, int] = field(default_factory=dict)
    # Cached sums of closed days, valid for session_sums_day.
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
    # and vigil.engine.snapshots.load_state sets this one.)
    last_event_at: int = 0
    # The declared measures' states (name -> (its declaration's digest, state)) and the
    # declared signals its measures cross now (raised once per crossing).
    measured: dict[str, tuple[str, Any]] = field(default_factory=dict)
    signals_raised: list[str] = field(default_factory=list)
    # The declared health components' measures (name -> (its declaration's digest,
    # (value, share) or None)).
    components: dict[str, tuple[str, Any]] = field(default_factory=dict)
