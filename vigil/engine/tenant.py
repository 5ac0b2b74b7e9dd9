"""A tenant's state as the recovery store keeps it.

The compiled core (native/src/tenant.rs) holds each tenant as typed data and folds its
events in; a snapshot saves it as this dataclass, pickled, and a restore reads it back.
What its signals and health components read is its declared measures' state, each
bounded (counts per bucket, the latest value per key), never a list of raw events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vigil.base.timeutil import MS_PER_DAY, MS_PER_HOUR
from vigil.config.settings import DEFAULT_COMPONENTS
from vigil.engine.measures import default_digests


@dataclass(slots=True)
class TenantState:
    tenant_id: str
    first_seen: int
    segment: str | None = None
    # Health and rule bookkeeping, written by the shard.
    score: int | None = None
    zone: str | None = None
    zone_announced: str | None = None  # the zone last posted as a fact
    reasons: str = ""
    # A bit per component, in the order of health records: measure it again.
    stale: int = 0
    # (ts, score) of the drop window, falling: the first one still in it is the peak.
    recent_scores: list[tuple[int, float]] = field(default_factory=list)
    cooldowns: dict[str, int] = field(default_factory=dict)
    # Event time of the latest event applied; a tenant silent for long is forgotten.
    # (Tenants are pickled by field name: one saved before this field has all the others,
    # and vigil.engine.snapshots.load_state sets this one.)
    last_event_at: int = 0
    # The declared measures' states (name -> (its declaration's digest, state)) and the
    # signals its measures cross now (raised once per crossing).
    measured: dict[str, tuple[str, Any]] = field(default_factory=dict)
    signals_raised: list[str] = field(default_factory=list)
    # The health components' measures (name -> (its declaration's digest, (value, share)
    # or None)).
    components: dict[str, tuple[str, Any]] = field(default_factory=dict)

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        """Unpickled by field name: a field saved by an older Vigil is set if it is still
        one, and what a tenant of an older store kept for its signals and components
        before they were declared over measures is taken over by those (see
        `_taken_over`)."""
        _, saved = state
        before = {name: saved.pop(name) for name in _KEPT_BEFORE if name in saved}
        for name, value in saved.items():
            object.__setattr__(self, name, value)
        if before:
            _taken_over(self, before)


# What tenants of older stores kept for the signals and components now declared over
# measures: the oldest (state format 11a818177577 and before) all of it, the later
# (5085f44ba9d4) the fields from `sessions_by_window` on.
_KEPT_BEFORE = (
    "sessions_seen",
    "sessions_by_day",
    "session_sums_day",
    "sessions_prior6",
    "sessions_prior7to13",
    "features",
    "pressure_by_hour",
    "product_activity",
    "sponsor",
    "sessions_by_window",
    "errors_by_window",
    "open_tickets",
    "tickets_seen",
    "nps",
    "csat",
    "unpaid_invoices",
    "invoices_seen",
    "integrations",
    "seats",
    "onboarding_started",
    "onboarding_completed",
    "onboarding_steps",
    "last_progress",
    "stall_signalled_at",
    "measures",
)
# The order of the components the engine measured with code of its own (format
# 5085f44ba9d4): their measures and stale bits in that order, then the five declared
# over measures, in theirs.
_ENGINE_ORDER = ("support_load", "sentiment", "billing", "integrations", "onboarding")
_DECLARED_ORDER = ("login_activity", "login_trend", "adoption", "error_pressure", "sponsor")


def _taken_over(tenant: TenantState, before: dict[str, Any]) -> None:
    """A tenant of an older store in this form: what it kept as the default measures hold
    it (the times of the latest session and activity, which the oldest did not keep, as
    the latest it had), its components' measures under their declarations, which of them
    were to be measured again, and a stall it signalled."""
    measure_digests, component_digests = default_digests()
    seeds = _seeds(tenant, before)
    measured = dict(getattr(tenant, "measured", {}))
    for name, plain in seeds.items():
        measured.setdefault(name, (measure_digests[name], plain))
    tenant.measured = measured
    old = list(before.get("measures", []))
    stale = getattr(tenant, "stale", 0)
    if len(old) == len(DEFAULT_COMPONENTS):  # the oldest: all ten, in the records' order
        by_name = dict(zip(DEFAULT_COMPONENTS, old, strict=True))
    elif len(old) == len(_ENGINE_ORDER):
        by_name = dict(zip(_ENGINE_ORDER, old, strict=True))
        stale = _stale_now(stale)
    else:
        by_name = {}
    components = dict(getattr(tenant, "components", {}))
    for name, measure in by_name.items():
        components[name] = (component_digests[name], measure)
    tenant.components = components
    tenant.stale = stale
    if _signalled_stretch(before) is not None:
        raised = list(getattr(tenant, "signals_raised", []))
        tenant.signals_raised = [*raised, "onboarding_stalled"]


def _seeds(tenant: TenantState, before: dict[str, Any]) -> dict[str, Any]:
    """The default measures' states, from what the tenant kept."""
    seeds: dict[str, Any] = {}
    latest = getattr(tenant, "last_event_at", tenant.first_seen)
    if "sessions_seen" in before:  # the oldest stores
        by_day = before.get("sessions_by_day", {})
        features = before.get("features", {})
        seeds.update(
            {
                "sessions_7d": [(day * MS_PER_DAY, float(n)) for day, n in sorted(by_day.items())],
                "last_session": (
                    max(by_day, default=0) * MS_PER_DAY or latest
                    if before.get("sessions_seen")
                    else None
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
        )
    started = before.get("onboarding_started")
    steps = before.get("onboarding_steps", set())
    completed = before.get("onboarding_completed", False)
    seeds.update(
        {
            "weekly_sessions": [
                (start, float(n))
                for start, n in sorted(before.get("sessions_by_window", {}).items())
            ],
            "hourly_errors": [
                (start, float(n)) for start, n in sorted(before.get("errors_by_window", {}).items())
            ],
            "open_tickets": dict(before.get("open_tickets", {}))
            if before.get("tickets_seen")
            else None,
            "nps": (before.get("nps"), None),
            "csat": (before.get("csat"), None),
            "unpaid_invoices": dict(before.get("unpaid_invoices", {}))
            if before.get("invoices_seen")
            else None,
            "integrations": dict(before.get("integrations", {})) or None,
            "onboarding": (
                started,
                completed,
                before.get("last_progress"),
                sorted(steps),
                _signalled_stretch(before),
            )
            if started is not None or steps or completed
            else None,
        }
    )
    return seeds


def _signalled_stretch(before: dict[str, Any]) -> int | None:
    """The last progress of the stretch without progress a stall was signalled of, if it
    is the current one."""
    progress, signalled = before.get("last_progress"), before.get("stall_signalled_at")
    if progress is not None and signalled is not None and signalled > progress:
        return int(progress)
    return None


def _stale_now(stale: int) -> int:
    """A store's stale bits of format 5085f44ba9d4 (the engine's own components first,
    then the declared), in the order of health records."""
    order = (*_ENGINE_ORDER, *_DECLARED_ORDER)
    now = 0
    for bit, name in enumerate(order):
        if stale >> bit & 1:
            now |= 1 << DEFAULT_COMPONENTS.index(name)
    # Components declared besides them kept their bits (10 and on, as now).
    return now | (stale & ~((1 << len(order)) - 1))
