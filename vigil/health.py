"""The health score: 0-100 from weighted components, each explained in words.

A component with no data is left out and its weight spread over the rest. Every
component reports its value, the points it could earn (its weight after that
spreading) and the points it earned, so `score == sum(points)`.

Scoring runs for every changed tenant at every step, so it is split in three:
`Scorer.rescore` measures and gives the score alone (numbers only, cheap); only when the
rounded score or the zone changed does `Scorer.explainable` add the parts and
`health_record` put them into words. `Scorer.assess` does the first two at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import is_not
from typing import Any, TypeVar

from vigil.ids import health_id
from vigil.settings import ComponentSettings, HealthSettings
from vigil.tenant import COMPONENT_NAMES, PRESSURE_HOURS, TenantState
from vigil.timeutil import MS_PER_DAY, MS_PER_HOUR, to_iso
from vigil.zones import zone_of

# (value, share of the weight earned 0..1), or None when the component has no data.
Measure = tuple[float, float] | None
# Reason lines already worded, by (component index, measure, points available).
ReasonLines = dict[tuple[int, Measure, float], str]


@dataclass(frozen=True, slots=True)
class Health:
    score: float
    zone: str
    measures: tuple[Measure, ...]  # in COMPONENTS order
    weights: tuple[float, ...]  # points available per component (0 where no data)
    now: int

    @property
    def rounded(self) -> int:
        return int(self.score + 0.5)


class Scorer:
    """Scores tenants with one settings object; built once per shard, because scoring
    runs for every changed tenant at every step.

    A tenant caches its component measures; only those marked stale are measured again
    (`TenantState.stale`): by its new events, and by the shard when the clock moves them
    (the day-based windows at midnight, error pressure when an hour of errors leaves
    the last 24 h, onboarding when it stalls)."""

    def __init__(self, cfg: HealthSettings, stall_after: int) -> None:
        self.cfg = cfg
        self.stall_after = stall_after
        self.configured = tuple(getattr(cfg.components, name).weight for name, _, _ in COMPONENTS)
        # Points available per component for each set of components that have data
        # (missing weight spread over the rest), worked out once per set.
        self.spread: dict[tuple[bool, ...], tuple[float, ...] | None] = {}
        self.lines: ReasonLines = {}  # see health_record

    def assess(self, state: TenantState, now: int) -> Health | None:
        """Score a tenant as of event time `now` (all its events before `now` applied).
        None when no component has data yet, or when no measure changed since the
        tenant's last score (so neither can the score)."""
        score = self.rescore(state, now)
        return None if score is None else self.explainable(state, score, now)

    def rescore(self, state: TenantState, now: int, reweigh: bool = False) -> float | None:
        """The score alone, for the common case where it is compared and dropped; same
        None cases as `assess`, but with `reweigh` (the weights may have changed, so the
        score may have moved with no measure)."""
        parts, stall_after, measures = self.cfg.components, self.stall_after, state.measures
        changed = reweigh or state.score is None
        for index, measure in _TO_MEASURE[state.stale]:
            fresh, old = measure(state, now, parts, stall_after), measures[index]
            measures[index] = fresh  # the value may move while the points do not
            if (fresh is None) is not (old is None) or (fresh and old and fresh[1] != old[1]):
                changed = True
        state.stale = 0
        if not changed:
            return None  # same measures, same score: nothing new to say
        weights = self.weights(measures)
        if weights is None:
            return None
        score = 0.0
        for weight, m in zip(weights, measures, strict=True):
            if m is not None:
                score += weight * m[1]
        return score

    def weights(self, measures: list[Measure]) -> tuple[float, ...] | None:
        """Points available per component given which have data; None if none has."""
        present = tuple(map(is_not, measures, _NO_DATA))
        try:
            return self.spread[present]
        except KeyError:
            pass
        total = 0.0
        for weight, has_data in zip(self.configured, present, strict=True):
            if has_data:
                total += weight
        spread = None
        if total > 0:
            scale = 100 / total
            configured = zip(self.configured, present, strict=True)
            spread = tuple([w * scale if has_data else 0.0 for w, has_data in configured])
        self.spread[present] = spread
        return spread

    def explainable(self, state: TenantState, score: float, now: int) -> Health:
        """The score with its parts, for a health record: the tenant's current measures
        and the points each component could earn after spreading missing weight."""
        weights = self.weights(state.measures)
        assert weights is not None  # a score was computed from them
        return Health(score, zone_of(score, self.cfg.zones), tuple(state.measures), weights, now)


def health_record(
    state: TenantState,
    health: Health,
    cfg: HealthSettings,
    stall_after: int,
    lines: ReasonLines | None = None,
) -> dict[str, Any]:
    """The `health` output record of EVENTS.md: every component and the reasons.
    `lines`: the scorer's memo of reason lines (`Scorer.lines`), if it has one."""
    components = {}
    for index, measure, weight in zip(_INDEXES, health.measures, health.weights, strict=True):
        key = (index, measure, weight)
        entry = _ENTRIES.get(key)
        if entry is None:
            entry = _remember(_ENTRIES, key, _component_entry(measure, weight))
        components[COMPONENT_NAMES[index]] = entry
    said = reasons(state, health, cfg, stall_after, lines)
    warming = warming_up(state, health.now, cfg)
    ts = to_iso(health.now)
    return {
        "health_id": health_id(state.tenant_id, ts, health.rounded, health.zone),
        "tenant_id": state.tenant_id,
        "ts": ts,
        "score": health.rounded,
        "zone": health.zone,
        "components": components,
        "reasons": said if warming is None else [*said, warming],
    }


def _component_entry(measure: Measure, weight: float) -> dict[str, Any]:
    return {
        "value": None if measure is None else measure[0],
        "weight": round(weight, 2),
        "points": 0.0 if measure is None else round(weight * measure[1], 2),
    }


# Records repeat themselves: most components of a record did not move since the
# tenant's last one, and many tenants sit at the same values. So component entries are
# built once and shared by every record with the same one (records are never modified
# after they are built). The reason lines of components whose words depend on their
# measure alone are kept too, per Scorer as the words also depend on its settings. A
# measure's value keeps one type per component, so equal keys print alike.
_ENTRIES: dict[tuple[int, Measure, float], dict[str, Any]] = {}
MEMO_SIZE = 5_000  # per cache, emptied when full: a 1M-event run needs about 1,300

V = TypeVar("V")


def _remember(
    cache: dict[tuple[int, Measure, float], V], key: tuple[int, Measure, float], value: V
) -> V:
    if len(cache) >= MEMO_SIZE:
        cache.clear()
    cache[key] = value
    return value


_INDEXES = range(len(COMPONENT_NAMES))
_NO_DATA = (None,) * len(COMPONENT_NAMES)
_SPOKEN_NAMES = tuple(name.replace("_", " ") for name in COMPONENT_NAMES)


def reasons(
    state: TenantState,
    health: Health,
    cfg: HealthSettings,
    stall_after: int,
    lines: ReasonLines | None = None,
) -> list[str]:
    """Short sentences, the biggest loss of points first, then what had no data."""
    memo = {} if lines is None else lines
    losing: list[tuple[float, str]] = []
    missing: list[str] = []
    for index, measure, weight in zip(_INDEXES, health.measures, health.weights, strict=True):
        if measure is None:
            missing.append(_SPOKEN_NAMES[index])
            continue
        lost = weight * (1 - measure[1])
        if lost < 0.5:
            continue
        key = (index, measure, weight)
        line = memo.get(key)
        if line is None:
            explain = COMPONENTS[index][2]
            text = explain(state, measure, health.now, cfg.components, stall_after)
            line = f"{text} (-{lost:.0f} pts)"
            if index in _WORDS_FROM_MEASURE:
                _remember(memo, key, line)
        losing.append((lost, line))
    losing.sort(key=lambda item: -item[0])
    said = [line for _, line in losing]
    if not said:
        said.append("every component with data is at or near full points")
    if missing:
        said.append(f"no data for {', '.join(missing)}: weight spread over the other components")
    return said


def warming_up(state: TenantState, now: int, cfg: HealthSettings) -> str | None:
    """The last reason of a new account's health records, so that its first low scores
    (little data yet) are not read as risk; None once its warm-up is over. Left out of
    the reasons the rules' facts carry: those are about the score."""
    until = state.first_seen + cfg.warmup
    if now >= until:
        return None
    return (
        f"new account, warming up until {to_iso(until)}: its zone and score drops are not "
        "handed to the rules before then"
    )


# -- components: a measure (numbers) and an explanation (words) each ------------------


def counted(number: float, singular: str, plural: str | None = None) -> str:
    """'1 session', '3 sessions': the reasons are read by people."""
    return f"{number:.0f} {singular if number == 1 else plural or singular + 's'}"


def _session_weeks(state: TenantState, now: int) -> tuple[int, int]:
    """Sessions in the 7 days up to the day holding the last instant before `now`, and
    in the 7 days before those. The 13 closed days are summed once a day and cached."""
    today = (now - 1) // MS_PER_DAY
    if state.session_sums_day != today:
        get = state.sessions_by_day.get
        state.session_sums_day = today
        state.sessions_prior6 = sum(get(day, 0) for day in range(today - 6, today))
        state.sessions_prior7to13 = sum(get(day, 0) for day in range(today - 13, today - 6))
    return state.sessions_prior6 + state.sessions_by_day.get(today, 0), state.sessions_prior7to13


def _login_activity(state: TenantState, now: int, parts: ComponentSettings, _: int) -> Measure:
    if not state.sessions_seen:
        return None
    sessions = _session_weeks(state, now)[0]
    return sessions, min(1.0, sessions / parts.login_activity.full_at)


def _login_activity_why(
    state: TenantState, m: tuple[float, float], now: int, parts: ComponentSettings, _: int
) -> str:
    sessions = counted(m[0], "session")
    return f"{sessions} in the last 7 days (full points at {parts.login_activity.full_at:g})"


def _login_trend(state: TenantState, now: int, parts: ComponentSettings, _: int) -> Measure:
    current, previous = _session_weeks(state, now)
    if previous < parts.login_trend.min_baseline:
        return None
    ratio = current / previous
    return round(ratio, 3), min(1.0, ratio)


def _login_trend_why(
    state: TenantState, m: tuple[float, float], now: int, parts: ComponentSettings, _: int
) -> str:
    return f"sessions down {100 * (1 - m[0]):.0f}% on the 7 days before"


def _adoption(state: TenantState, now: int, parts: ComponentSettings, _: int) -> Measure:
    if not state.features:
        return None
    since = now - parts.adoption.lookback
    used = 0
    for last in state.features.values():
        if last >= since:
            used += 1
    return used, min(1.0, used / parts.adoption.full_at)


def _adoption_why(
    state: TenantState, m: tuple[float, float], now: int, parts: ComponentSettings, _: int
) -> str:
    lookback = counted(parts.adoption.lookback // MS_PER_DAY, "day")  # whole days (settings)
    features = counted(m[0], "feature")
    return f"{features} used in the last {lookback} (full points at {parts.adoption.full_at})"


def _error_pressure(state: TenantState, now: int, parts: ComponentSettings, _: int) -> Measure:
    if not state.product_activity:
        return None
    first_hour = now // MS_PER_HOUR - PRESSURE_HOURS
    count = 0
    for hour, n in state.pressure_by_hour.items():
        if hour >= first_hour:
            count += n
    return count, max(0.0, 1 - count / parts.error_pressure.zero_at)


def pressure_counts_until(hour: int) -> int:
    """The instant from which the errors and job retries of `hour` (hours since the
    epoch) no longer count in the error pressure (see _error_pressure)."""
    return (hour + PRESSURE_HOURS + 1) * MS_PER_HOUR


def _error_pressure_why(
    state: TenantState, m: tuple[float, float], now: int, parts: ComponentSettings, _: int
) -> str:
    return f"{counted(m[0], 'error or job retry', 'errors and job retries')} in the last 24 h"


def _support_load(state: TenantState, now: int, parts: ComponentSettings, _: int) -> Measure:
    if not state.tickets_seen:
        return None
    cfg = parts.support_load
    open_total = len(state.open_tickets)
    open_p1 = sum(1 for priority in state.open_tickets.values() if priority == "P1")
    load = open_total + (cfg.p1_counts_as - 1) * open_p1
    return open_total, max(0.0, 1 - load / cfg.zero_at)


def _support_load_why(
    state: TenantState, m: tuple[float, float], now: int, parts: ComponentSettings, _: int
) -> str:
    open_p1 = sum(1 for priority in state.open_tickets.values() if priority == "P1")
    if m[0] == 1:
        return "1 open ticket, a P1" if open_p1 else "1 open ticket"
    return f"{m[0]:.0f} open tickets, {open_p1 or 'none'} of them P1"


def _sentiment(state: TenantState, now: int, parts: ComponentSettings, _: int) -> Measure:
    scores = []
    if state.nps is not None:
        scores.append(state.nps / 10)
    if state.csat is not None:
        scores.append((state.csat - 1) / 4)
    if not scores:
        return None
    fraction = sum(scores) / len(scores)
    return round(fraction * 10, 2), fraction


def _sentiment_why(
    state: TenantState, m: tuple[float, float], now: int, parts: ComponentSettings, _: int
) -> str:
    words = []
    if state.nps is not None:
        words.append(f"NPS {state.nps:g}/10")
    if state.csat is not None:
        words.append(f"CSAT {state.csat:g}/5")
    return f"latest {' and '.join(words)}"


def _billing(state: TenantState, now: int, parts: ComponentSettings, _: int) -> Measure:
    if not state.invoices_seen:
        return None
    statuses = list(state.unpaid_invoices.values())
    cfg = parts.billing
    penalty = (
        statuses.count("overdue") * cfg.overdue_penalty
        + statuses.count("failed") * cfg.failed_penalty
    )
    return len(statuses), max(0.0, 1 - penalty)


def _billing_why(
    state: TenantState, m: tuple[float, float], now: int, parts: ComponentSettings, _: int
) -> str:
    statuses = list(state.unpaid_invoices.values())
    counts = [
        f"{statuses.count(word)} {word}" for word in ("overdue", "failed") if word in statuses
    ]
    return f"invoices unpaid: {' and '.join(counts)}"


def _integrations(state: TenantState, now: int, parts: ComponentSettings, _: int) -> Measure:
    if not state.integrations:
        return None
    connected = sum(1 for v in state.integrations.values() if v == "connected")
    return connected, connected / len(state.integrations)


def _integrations_why(
    state: TenantState, m: tuple[float, float], now: int, parts: ComponentSettings, _: int
) -> str:
    broken = sorted(k for k, v in state.integrations.items() if v != "connected")
    listed = ", ".join(f"{k} ({state.integrations[k]})" for k in broken[:3])
    if len(broken) > 3:
        listed += f" and {len(broken) - 3} more"
    held = counted(len(state.integrations), "integration")
    return f"{len(broken)} of {held} not connected: {listed}"


def _sponsor(state: TenantState, now: int, parts: ComponentSettings, _: int) -> Measure:
    if state.sponsor is None:
        return None
    return (1.0, 1.0) if state.sponsor == "active" else (0.0, 0.0)


def _sponsor_why(
    state: TenantState, m: tuple[float, float], now: int, parts: ComponentSettings, _: int
) -> str:
    return "executive sponsor departed"


def _onboarding(
    state: TenantState, now: int, parts: ComponentSettings, stall_after: int
) -> Measure:
    if not state.onboarding_open or state.last_progress is None:
        return None
    cfg = parts.onboarding
    done = len(state.onboarding_steps.intersection(cfg.expected_steps))
    fraction = done / len(cfg.expected_steps) if cfg.expected_steps else 1.0
    if now - state.last_progress > stall_after:
        fraction *= cfg.stalled_factor
    return done, fraction


def _onboarding_why(
    state: TenantState, m: tuple[float, float], now: int, parts: ComponentSettings, stall_after: int
) -> str:
    text = f"onboarding {m[0]:.0f} of {len(parts.onboarding.expected_steps)} steps done"
    idle = now - (state.last_progress or now)
    if idle > stall_after:
        text += f", stalled: no progress for {idle // MS_PER_HOUR} h"
    return text


MeasureFn = Callable[[TenantState, int, ComponentSettings, int], Measure]
ExplainFn = Callable[[TenantState, tuple[float, float], int, ComponentSettings, int], str]

# The order of the `components` object in health records (COMPONENT_NAMES).
COMPONENTS: tuple[tuple[str, MeasureFn, ExplainFn], ...] = (
    ("login_activity", _login_activity, _login_activity_why),
    ("login_trend", _login_trend, _login_trend_why),
    ("adoption", _adoption, _adoption_why),
    ("error_pressure", _error_pressure, _error_pressure_why),
    ("support_load", _support_load, _support_load_why),
    ("sentiment", _sentiment, _sentiment_why),
    ("billing", _billing, _billing_why),
    ("integrations", _integrations, _integrations_why),
    ("sponsor", _sponsor, _sponsor_why),
    ("onboarding", _onboarding, _onboarding_why),
)
# For every stale mask, the components to measure again: a step usually touches two or
# three of the ten, so scoring skips the rest without testing them.
_TO_MEASURE = tuple(
    tuple((i, fn) for i, (_, fn, _) in enumerate(COMPONENTS) if mask >> i & 1)
    for mask in range(1 << len(COMPONENTS))
)
# Components whose explanation is a function of their measure and the settings only.
_WORDS_FROM_MEASURE = frozenset(
    COMPONENT_NAMES.index(name)
    for name in ("login_activity", "login_trend", "adoption", "error_pressure", "sponsor")
)
