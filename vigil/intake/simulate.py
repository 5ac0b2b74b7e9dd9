"""A realistic telemetry stream for demos, tests and benchmarks.

A fleet of tenants in three segments with daily and weekly rhythms, mostly healthy,
some with one injected scenario each. Lines come out in arrival order, the way a
live stream delivers them: a few events arrive minutes after their event time (out
of order, within the lateness), a few hours late, some twice, some malformed.
The manifest says which tenant got which scenario, so tests can check the outcome, and
`outcomes` which tenants churn or renew at the end, so a score can be checked on them.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from vigil.base.jsonbytes import dumps_to_keep
from vigil.base.timeutil import (
    MS_PER_DAY,
    MS_PER_HOUR,
    MS_PER_MINUTE,
    floor_to,
    parse_rfc3339,
    to_iso,
)
from vigil.intake.events import MAX_EPOCH_MS, MIN_EPOCH_MS, YEARS
from vigil.intake.outcomes import CHURNED, RENEWED, Outcome

HEALTHY = "healthy"
LOGIN_DROP = "login_drop"
ONBOARDING_STALLED = "onboarding_stalled"
ONBOARDING_OK = "onboarding_ok"
ERROR_SPIKE = "error_spike"
AT_RISK = "at_risk"
# The lifecycle pack's, one per signal (vigil.config.settings.DEFAULT_SIGNALS).
RENEWAL = "renewal"
SEAT_CAP = "seat_cap"
USAGE_GROWTH = "usage_growth"
LOW_ADOPTION = "low_adoption"
SINGLE_USER = "single_user"
SUPPORT_VOLUME = "support_volume"
P1_UNRESOLVED = "p1_unresolved"
SPONSOR_DEPARTED = "sponsor_departed"
INVOICE_UNPAID = "invoice_unpaid"
NPS_DROP = "nps_drop"
INTEGRATION_ERRORS = "integration_errors"
DOWNGRADE = "downgrade"
PACK = (
    RENEWAL,
    SEAT_CAP,
    USAGE_GROWTH,
    LOW_ADOPTION,
    SINGLE_USER,
    SUPPORT_VOLUME,
    P1_UNRESOLVED,
    SPONSOR_DEPARTED,
    INVOICE_UNPAID,
    NPS_DROP,
    INTEGRATION_ERRORS,
    DOWNGRADE,
)
SCENARIOS = (LOGIN_DROP, ONBOARDING_STALLED, ONBOARDING_OK, ERROR_SPIKE, AT_RISK, *PACK)
# A renewing tenant's renewal date, in days after the stream ends: its R-60 stage starts
# 15 days before the end, and it renews 3 days before it.
RENEWAL_AFTER_END = 45
RENEWED_BEFORE_END = 3

DEFAULT_START = "2026-03-02T00:00:00Z"  # a Monday, like the default window origin
_SEGMENTS = (("smb", 0.6, 5.0), ("mid_market", 0.3, 10.0), ("enterprise", 0.1, 22.0))
_FEATURES = (
    "dashboards",
    "recipes",
    "alerts",
    "exports",
    "api",
    "sso",
    "datasets",
    "sharing",
    "scheduler",
)
_STEPS = ("sso_live", "integration_enabled", "first_dataset", "first_recipe", "users_invited")
_HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 4, 8, 12, 14, 14, 12, 10, 12, 14, 14, 12, 8, 5, 4, 3, 2, 1, 1]


@dataclass(frozen=True)
class FleetPlan:
    tenants: int
    days: int
    seed: int
    start: int = parse_rfc3339(DEFAULT_START)
    out_of_order_rate: float = 0.005
    late_rate: float = 0.0005
    duplicate_rate: float = 0.003
    malformed_rate: float = 0.0003
    unknown_type_rate: float = 0.0002

    def __post_init__(self) -> None:
        # A stream Vigil would read as invalid_ts dead letters is no sample of anything.
        if not MIN_EPOCH_MS <= self.start <= MAX_EPOCH_MS - self.days * MS_PER_DAY:
            raise ValueError(
                f"the {self.days} days from the start do not fit in {YEARS}, "
                "the only event times Vigil reads"
            )


@dataclass
class _Tenant:
    tenant_id: str
    segment: str
    sessions_per_day: float
    users: list[str]
    features: list[str]
    scenario: str = HEALTHY
    renewal: int = 0  # the contract's renewal date
    renews_on: int = -1  # the day a renewal is recorded (a later date): none
    counter: int = 0
    ended_at: int | None = None  # a silent tenant sends nothing from here on
    open_tickets: list[str] = field(default_factory=list)
    starts: dict[str, int] = field(default_factory=dict)


def scenario_days(plan: FleetPlan) -> dict[str, int]:
    """When each scenario starts, as days since the start; -1 where the run is too
    short for it to be seen (its window would not close before the stream ends)."""
    origin = parse_rfc3339("1970-01-05T00:00:00Z")
    first_monday = (
        floor_to(plan.start - 1, 7 * MS_PER_DAY, origin) + 7 * MS_PER_DAY - plan.start
    ) // MS_PER_DAY
    last_closable_week = ((plan.days - 1 - first_monday) // 7) - 1
    drop_day = first_monday + 7 * last_closable_week if last_closable_week >= 1 else -1
    days = plan.days

    def when(day: int, least: int) -> int:
        return day if days >= least else -1

    return {
        LOGIN_DROP: drop_day,
        ONBOARDING_STALLED: 1 if days >= 8 else -1,
        ONBOARDING_OK: 1 if days >= 8 else -1,
        ERROR_SPIKE: max(2, days // 2) if days >= 4 else -1,
        AT_RISK: max(8, days - 16) if days >= 16 else -1,
        RENEWAL: when(0, 16),
        SEAT_CAP: when(0, 3),
        USAGE_GROWTH: when(days - 24, 63),  # usage_growth compares 4 weeks once 8 are seen
        LOW_ADOPTION: when(0, 62),  # low_adoption waits 60 days
        SINGLE_USER: when(0, 3),
        SUPPORT_VOLUME: drop_day - 7 if drop_day >= 7 else -1,  # two closed weeks
        P1_UNRESOLVED: when(days - 18, 18),
        SPONSOR_DEPARTED: when(days // 2, 4),
        INVOICE_UNPAID: when(days - 12, 13),
        NPS_DROP: when(days // 2, 6),
        INTEGRATION_ERRORS: when(days - 8, 9),
        DOWNGRADE: when(days // 2, 4),
    }


def build_fleet(plan: FleetPlan, rng: random.Random) -> list[_Tenant]:
    starts = scenario_days(plan)
    usable = [name for name in SCENARIOS if starts[name] >= 0]
    # About 2% of the fleet per scenario, at least one each when the fleet allows.
    per_scenario = max(1, plan.tenants * 2 // 100) if plan.tenants >= 2 * len(usable) else 0
    fleet = []
    for index in range(plan.tenants):
        segment, rate = _pick_segment(rng)
        users = [f"u{index:05d}-{n}" for n in range(max(3, int(rate * 1.5)))]
        features = rng.sample(_FEATURES, 7)
        renewal = plan.start + rng.randint(200, 365) * MS_PER_DAY  # no runway in the stream
        fleet.append(
            _Tenant(
                f"tenant-{index:05d}",
                segment,
                rate * rng.uniform(0.9, 1.3),
                users,
                features,
                renewal=renewal,
            )
        )
    order = list(range(plan.tenants))
    rng.shuffle(order)
    for slot, name in enumerate(usable):
        for index in order[slot * per_scenario : (slot + 1) * per_scenario]:
            fleet[index].scenario = name
            fleet[index].starts = {name: starts[name]}
            _shape(fleet[index], plan)
    return fleet


def _shape(tenant: _Tenant, plan: FleetPlan) -> None:
    """What a pack scenario's tenant is from its start: its contract and its users."""
    if tenant.scenario == RENEWAL:
        tenant.renewal = plan.start + (plan.days + RENEWAL_AFTER_END) * MS_PER_DAY
        tenant.renews_on = plan.days - RENEWED_BEFORE_END
    elif tenant.scenario == LOW_ADOPTION:
        tenant.features = tenant.features[:2]


def _pick_segment(rng: random.Random) -> tuple[str, float]:
    roll = rng.random()
    for name, share, rate in _SEGMENTS:
        if roll < share:
            return name, rate
        roll -= share
    return _SEGMENTS[-1][0], _SEGMENTS[-1][2]


def manifest(fleet: list[_Tenant]) -> dict[str, dict[str, str]]:
    return {t.tenant_id: {"scenario": t.scenario, "segment": t.segment} for t in fleet}


# How likely a tenant of each scenario is to leave at the end of the stream: its story
# makes churn likely, but not certain (some at-risk accounts renew, some healthy ones
# leave), as real outcomes are.
CHURN_ODDS = {
    HEALTHY: 0.08,
    ONBOARDING_OK: 0.10,
    ERROR_SPIKE: 0.25,
    ONBOARDING_STALLED: 0.50,
    LOGIN_DROP: 0.60,
    AT_RISK: 0.70,
    RENEWAL: 0.20,
    SEAT_CAP: 0.04,
    USAGE_GROWTH: 0.04,
    LOW_ADOPTION: 0.35,
    SINGLE_USER: 0.30,
    SUPPORT_VOLUME: 0.30,
    P1_UNRESOLVED: 0.40,
    SPONSOR_DEPARTED: 0.45,
    INVOICE_UNPAID: 0.40,
    NPS_DROP: 0.35,
    INTEGRATION_ERRORS: 0.25,
    DOWNGRADE: 0.55,
}


def outcomes(plan: FleetPlan) -> list[Outcome]:
    """Each tenant's outcome, the day after the stream ends: churned or renewed, drawn
    from its scenario's odds. Drawn apart from the stream (the same seed gives the same
    lines whether or not the outcomes are asked for)."""
    fleet = build_fleet(plan, random.Random(plan.seed))
    draw = random.Random(f"outcomes of {plan.seed}")
    at = plan.start + plan.days * MS_PER_DAY
    return [
        Outcome(t.tenant_id, CHURNED if draw.random() < CHURN_ODDS[t.scenario] else RENEWED, at)
        for t in fleet
    ]


def generate(
    plan: FleetPlan, on_day: Callable[[], object] | None = None
) -> tuple[Iterator[bytes], dict[str, dict[str, str]]]:
    """The stream's lines in arrival order, and the manifest of scenarios; `on_day` is
    called as each day's lines are all given (for a progress bar)."""
    rng = random.Random(plan.seed)
    fleet = build_fleet(plan, rng)
    return _lines(plan, fleet, rng, on_day), manifest(fleet)


def _lines(
    plan: FleetPlan,
    fleet: list[_Tenant],
    rng: random.Random,
    on_day: Callable[[], object] | None = None,
) -> Iterator[bytes]:
    starts = scenario_days(plan)
    arrivals: list[tuple[int, int, bytes]] = []  # (arrival time, sequence, line)
    sequence = 0
    for day in range(plan.days):
        day_start = plan.start + day * MS_PER_DAY
        for tenant in fleet:
            for event in _tenant_day(tenant, day, day_start, starts, rng):
                for arrival, line in _deliveries(event, plan, rng):
                    heapq.heappush(arrivals, (arrival, sequence, line))
                    sequence += 1
        # Events of later days arrive after this day ends, so these are final.
        while arrivals and arrivals[0][0] < day_start + MS_PER_DAY:
            yield heapq.heappop(arrivals)[2]
        if on_day is not None:
            on_day()
    while arrivals:
        yield heapq.heappop(arrivals)[2]


def _deliveries(
    event: dict[str, Any], plan: FleetPlan, rng: random.Random
) -> Iterator[tuple[int, bytes]]:
    ts = event["ts"] if isinstance(event["ts"], int) else parse_rfc3339(event["ts"])
    roll = rng.random()
    if roll < plan.malformed_rate:
        yield ts, _malformed(event, rng)
        return
    line = dumps_to_keep(event)  # held in the day's arrival queue
    roll -= plan.malformed_rate
    if roll < plan.late_rate:
        yield ts + rng.randint(2 * MS_PER_HOUR, 5 * MS_PER_HOUR), line
        return
    roll -= plan.late_rate
    if roll < plan.out_of_order_rate:
        yield ts + rng.randint(MS_PER_MINUTE, 40 * MS_PER_MINUTE), line
        return
    yield ts, line
    if rng.random() < plan.duplicate_rate:
        yield ts + rng.randint(0, 10 * MS_PER_MINUTE), line


def _malformed(event: dict[str, Any], rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:
        return orjson.dumps(event)[:-7]  # cut short: invalid JSON
    broken = dict(event)
    if kind == 1:
        del broken["tenant_id"]
    elif kind == 2:
        broken["ts"] = "yesterday at noon"
    else:
        broken["event_id"] = 12345
    return dumps_to_keep(broken)


def _tenant_day(
    tenant: _Tenant, day: int, day_start: int, starts: dict[str, int], rng: random.Random
) -> Iterator[dict[str, Any]]:
    if tenant.ended_at is not None and day_start >= tenant.ended_at:
        return
    emit = _Emitter(tenant, day_start, rng)
    scenario = tenant.scenario
    onboarding = scenario in (ONBOARDING_STALLED, ONBOARDING_OK)
    if day == 0 and not onboarding:
        yield from emit.account_setup()
    if onboarding:
        yield from _onboarding_day(emit, tenant, day, starts[scenario])
        if tenant.ended_at is not None and day_start + MS_PER_DAY > tenant.ended_at:
            return
    factor = _activity_factor(tenant, day, day_start, starts)
    if onboarding and day < starts[scenario]:
        factor = 0.0  # a new customer: no usage before onboarding starts
    yield from emit.usage(factor)
    yield from emit.background(day)
    if scenario == ERROR_SPIKE and day == starts[ERROR_SPIKE]:
        yield from emit.error_burst(hour=14, count=30)
    if scenario == AT_RISK and day >= starts[AT_RISK]:
        yield from emit.going_bad(day - starts[AT_RISK])
    if scenario in PACK and day >= starts[scenario]:
        yield from emit.lifecycle(day - starts[scenario])


def _activity_factor(tenant: _Tenant, day: int, day_start: int, starts: dict[str, int]) -> float:
    weekend = (day_start // MS_PER_DAY + 3) % 7 >= 5  # 1970-01-01 was a Thursday
    factor = 0.25 if weekend else 1.0
    if tenant.scenario == LOGIN_DROP and day >= starts[LOGIN_DROP]:
        factor = 0.0  # they stopped: the near stop the default login_drop looks for
    if tenant.scenario == AT_RISK and day >= starts[AT_RISK]:
        factor *= 0.05
    return factor


def _onboarding_day(
    emit: _Emitter, tenant: _Tenant, day: int, start_day: int
) -> Iterator[dict[str, Any]]:
    if day == 0:
        yield from emit.account_setup()
    if day < start_day:
        return
    step_index = day - start_day
    if step_index == 0:
        yield emit.event("onboarding.started", 9, {"plan_days": 14})
    if tenant.scenario == ONBOARDING_STALLED:
        if 1 <= step_index <= 2:
            yield emit.event("onboarding.step_completed", 11, {"step": _STEPS[step_index - 1]})
        if step_index == 2:
            tenant.ended_at = emit.day_start + 12 * MS_PER_HOUR  # goes silent after this step
        return
    if 1 <= step_index <= len(_STEPS):
        yield emit.event("onboarding.step_completed", 11, {"step": _STEPS[step_index - 1]})
    if step_index == len(_STEPS):
        yield emit.event("onboarding.completed", 15, None)


def scenario_start(tenant: _Tenant, scenario: str) -> int:
    return tenant.starts.get(scenario, -1)


class _Emitter:
    """Builds one tenant's events for one day."""

    def __init__(self, tenant: _Tenant, day_start: int, rng: random.Random) -> None:
        self.tenant = tenant
        self.day_start = day_start
        self.rng = rng

    def event(self, kind: str, hour: float | None, attrs: dict[str, Any] | None) -> dict[str, Any]:
        tenant, rng = self.tenant, self.rng
        tenant.counter += 1
        at = self.day_start + int((self._hour() if hour is None else hour) * MS_PER_HOUR)
        at += rng.randrange(MS_PER_HOUR) if hour is not None else 0
        event: dict[str, Any] = {
            "event_id": f"{tenant.tenant_id}-{tenant.counter}",
            "type": kind,
            "tenant_id": tenant.tenant_id,
            # Mostly RFC 3339, sometimes epoch milliseconds: both are in the contract.
            "ts": at if rng.random() < 0.05 else to_iso(at),
            "user_id": self._user(),
            "segment": tenant.segment,
        }
        if attrs:
            event["attrs"] = attrs
        return event

    def _user(self) -> str:
        users, rng = self.tenant.users, self.rng
        if self.tenant.scenario == SINGLE_USER and rng.random() < 0.9:
            return users[0]  # the one user the account hangs on
        return rng.choice(users)

    def _hour(self) -> float:
        return self.rng.choices(range(24), weights=_HOUR_WEIGHTS)[0] + self.rng.random()

    def account_setup(self) -> Iterator[dict[str, Any]]:
        tenant = self.tenant
        seats = len(tenant.users) * (1 if tenant.scenario == SEAT_CAP else 2)
        yield self.contract(seats, tenant.renewal)
        yield self.event("sponsor.changed", 8, {"status": "active"})
        yield self.event("integration.state", 9, {"integration": "crm", "state": "connected"})
        yield self.event(
            "billing.invoice",
            10,
            {"invoice_id": f"{self.tenant.tenant_id}-inv1", "status": "issued", "amount": 1000.0},
        )

    def usage(self, factor: float) -> Iterator[dict[str, Any]]:
        rng = self.rng
        # Binomial, not Poisson: a tenant's active users vary less from day to day.
        trials = round(self.tenant.sessions_per_day / 0.7)
        sessions = sum(1 for _ in range(trials) if rng.random() < 0.7 * factor)
        for _ in range(sessions):
            session = self.event(
                "user.session", None, {"duration_s": round(rng.uniform(60, 3600), 1)}
            )
            yield session
            if rng.random() < 0.7:
                feature = self.event(
                    "feature.used", None, {"feature": rng.choice(self.tenant.features)}
                )
                feature["ts"] = session["ts"]  # used during the session
                yield feature
        for _ in range(_poisson(rng, 0.3 * factor)):
            yield self.event("error.raised", None, {"code": "E500", "severity": "low"})

    def background(self, day: int) -> Iterator[dict[str, Any]]:
        rng, tenant = self.rng, self.tenant
        if day == 2:
            yield self.event(
                "billing.invoice",
                10,
                {"invoice_id": f"{tenant.tenant_id}-inv1", "status": "paid", "amount": 1000.0},
            )
        if rng.random() < 0.08:
            ticket = f"{tenant.tenant_id}-tk{tenant.counter}"
            tenant.open_tickets.append(ticket)
            yield self.event(
                "ticket.created", 10, {"ticket_id": ticket, "priority": rng.choice(["P3", "P4"])}
            )
        if tenant.open_tickets and rng.random() < 0.5:
            yield self.event("ticket.resolved", 16, {"ticket_id": tenant.open_tickets.pop(0)})
        if rng.random() < 0.04:
            unhappy = tenant.scenario == AT_RISK and day >= scenario_start(tenant, AT_RISK)
            score = rng.choice([1, 2, 3] if unhappy else [8, 9, 9, 10])
            yield self.event("survey.response", 13, {"kind": "nps", "score": score})
        if rng.random() < 0.02:
            yield self.event("nudge.sent", 12, {"nudge": "try-scheduler"})
        if rng.random() < 0.01:
            yield self.event("experiment.assigned", 12, {"variant": "b"})  # outside the catalogue

    def contract(self, seats: int, renewal: int) -> dict[str, Any]:
        date = to_iso(renewal)[:10]
        return self.event(
            "contract.updated", 8, {"seats": seats, "arr": 12000.0, "renewal_date": date}
        )

    def lifecycle(self, days_in: int) -> Iterator[dict[str, Any]]:
        """A pack scenario's events, `days_in` days after it starts."""
        tenant, scenario = self.tenant, self.tenant.scenario
        if scenario == RENEWAL and days_in == tenant.renews_on:
            tenant.renewal += 365 * MS_PER_DAY
            yield self.contract(len(tenant.users) * 2, tenant.renewal)
        elif scenario == USAGE_GROWTH and days_in == 0:
            tenant.sessions_per_day *= 2.0  # new teams: twice the use from tomorrow on
        elif scenario == SUPPORT_VOLUME and days_in < 14:
            ticket = f"{tenant.tenant_id}-v{days_in}"
            yield self.event("ticket.created", 10, {"ticket_id": ticket, "priority": "P3"})
        elif scenario == P1_UNRESOLVED and days_in == 0:
            ticket = f"{tenant.tenant_id}-p1"
            yield self.event("ticket.created", 10, {"ticket_id": ticket, "priority": "P1"})
        elif scenario == SPONSOR_DEPARTED and days_in == 0:
            yield self.event("sponsor.changed", 15, {"status": "departed"})
        elif scenario == INVOICE_UNPAID and days_in == 0:
            invoice = {"invoice_id": f"{tenant.tenant_id}-inv9", "amount": 1000.0}
            yield self.event("billing.invoice", 10, {**invoice, "status": "overdue"})
        elif scenario == NPS_DROP and days_in == 0:
            yield self.event("survey.response", 13, {"kind": "nps", "score": 4})
        elif scenario == INTEGRATION_ERRORS and days_in < 4:  # a report may come late
            yield self.event("integration.state", 9, {"integration": "crm", "state": "error"})
        elif scenario == DOWNGRADE and days_in == 0:
            yield self.contract(len(tenant.users), tenant.renewal)  # half the seats

    def error_burst(self, hour: int, count: int) -> Iterator[dict[str, Any]]:
        for _ in range(count):
            yield self.event("error.raised", hour, {"code": "E503", "severity": "high"})

    def going_bad(self, days_in: int) -> Iterator[dict[str, Any]]:
        tenant = self.tenant
        if days_in == 0:
            yield self.event("survey.response", 11, {"kind": "nps", "score": 2})
            yield self.event(
                "billing.invoice",
                10,
                {"invoice_id": f"{tenant.tenant_id}-inv2", "status": "overdue", "amount": 1000.0},
            )
            yield self.event("integration.state", 9, {"integration": "crm", "state": "error"})
        if days_in == 1:
            yield self.event(
                "ticket.created", 10, {"ticket_id": f"{tenant.tenant_id}-p1", "priority": "P1"}
            )
            yield self.event("sponsor.changed", 15, {"status": "departed"})
        if days_in == 2:
            yield self.event(
                "billing.invoice",
                10,
                {"invoice_id": f"{tenant.tenant_id}-inv2", "status": "failed", "amount": 1000.0},
            )
            yield self.event(
                "ticket.created", 11, {"ticket_id": f"{tenant.tenant_id}-p1b", "priority": "P1"}
            )


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: fine for the small means used here."""
    if mean <= 0:
        return 0
    limit, product, count = pow(2.718281828459045, -mean), rng.random(), 0
    while product > limit:
        product *= rng.random()
        count += 1
    return count
