"""Health components declared in the settings, through the engine: scaled measures in
the score, their words, when they have data, restores, and the settings refused."""

from __future__ import annotations

from typing import Any

import pytest
from support import DAY, HOUR, T0, Harness, clock, event, restored

from vigil.base.errors import ConfigError
from vigil.base.timeutil import to_iso
from vigil.config.settings import DEFAULT_COMPONENTS, Settings, load_settings
from vigil.engine.shard import ShardEngine

QUIET = {"kind": "days_since", "events": ["user.session"]}
QUIET_DAYS = {
    "measure": "quiet",
    "weight": 25,
    "zero_at": 10,
    "reason": "{value} days since the last session (none from {zero_at})",
}


def settings(measures: dict[str, Any], components: dict[str, Any]) -> Settings:
    overrides = {"measures": measures, "health": {"components": components}}
    return load_settings(None, env={}, overrides=overrides)


def sessions(day: float, n: int = 1) -> list[dict[str, Any]]:
    return [event("acme", "user.session", int(T0 + day * DAY) + k * 60_000) for k in range(n)]


def last_health(h: Harness) -> dict[str, Any]:
    return h.out["health"][-1]


def test_a_declared_component_scores_its_measure_and_says_why() -> None:
    h = Harness(settings({"quiet": QUIET}, {"quiet_days": QUIET_DAYS}))
    h.feed([*sessions(0, 30), clock(T0 + 5 * DAY + 2 * HOUR)])
    record = last_health(h)
    assert list(record["components"]) == [*DEFAULT_COMPONENTS, "quiet_days"]
    quiet = record["components"]["quiet_days"]
    # Measured at midnight, 5 days after the first session, the last at 00:29.
    assert quiet["value"] == round(5 - 29 / 1440, 3)
    weights = {
        name: c["weight"] for name, c in record["components"].items() if c["value"] is not None
    }
    assert sum(weights.values()) == pytest.approx(100, abs=0.05)
    assert quiet["points"] == pytest.approx(quiet["weight"] * (1 - quiet["value"] / 10), abs=0.01)
    [line] = [r for r in record["reasons"] if "since the last session" in r]
    assert line.startswith("4.98 days since the last session (none from 10) (-")


def test_a_silent_tenant_loses_the_components_points_day_by_day() -> None:
    h = Harness(settings({"quiet": QUIET}, {"quiet_days": QUIET_DAYS}))
    h.feed([*sessions(0, 30), clock(T0 + 12 * DAY)])
    values = [r["components"]["quiet_days"]["value"] for r in h.out["health"]]
    assert values == sorted(values) and values[-1] > 10  # measured again each midnight
    assert h.out["health"][-1]["components"]["quiet_days"]["points"] == 0


def test_without_data_its_weight_goes_to_the_others() -> None:
    h = Harness(settings({"quiet": QUIET}, {"quiet_days": QUIET_DAYS}))
    h.feed([event("acme", "feature.used", T0, {"feature": "x"}), clock(T0 + 2 * DAY)])
    record = last_health(h)
    assert record["components"]["quiet_days"] == {"value": None, "weight": 0.0, "points": 0.0}
    assert any(r.startswith("no data for") and "quiet days" in r for r in record["reasons"])


def test_when_gives_it_data_only_while_another_measure_has_a_value() -> None:
    errors = {"kind": "count", "events": ["error.raised"], "window": "1d"}
    calm = {
        "measure": "errors",
        "weight": 20,
        "zero_at": 5,
        "when": "quiet",
        "reason": "{value} errors in the last day",
    }
    measures = {"quiet": QUIET, "errors": errors}
    h = Harness(settings(measures, {"calm": calm}))
    h.feed([event("acme", "feature.used", T0, {"feature": "x"}), clock(T0 + 2 * DAY)])
    assert last_health(h)["components"]["calm"]["value"] is None  # no session yet
    h.feed([*sessions(2, 1), clock(T0 + 4 * DAY)])
    assert last_health(h)["components"]["calm"]["value"] == 0.0  # no errors, and active


def test_per_another_measure_and_against_the_window_before() -> None:
    measures = {
        "users": {
            "kind": "distinct",
            "events": ["user.session"],
            "field": "user_id",
            "window": "7d",
        },
        "seats": {"kind": "latest", "events": ["contract.updated"], "field": "attrs.seats"},
        "week": {"kind": "count", "events": ["user.session"], "window": "7d"},
    }
    components = {
        "seat_use": {
            "measure": "users",
            "per": "seats",
            "weight": 10,
            "full_at": 0.8,
            "reason": "{value} of seats used",
        },
        "trend": {
            "measure": "week",
            "versus": "previous_window",
            "min_previous": 4,
            "weight": 10,
            "full_at": 1,
            "reason": "sessions at {value} of the week before",
        },
    }
    users = [
        {**event("acme", "user.session", T0 + k * HOUR), "user_id": f"u{k % 3}"} for k in range(8)
    ]
    later = [{**event("acme", "user.session", T0 + 7 * DAY + HOUR), "user_id": "u0"}]
    contract = event("acme", "contract.updated", T0, {"seats": 10})
    h = Harness(settings(measures, components))
    h.feed([contract, *users, *later, clock(T0 + 8 * DAY)])
    record = last_health(h)
    assert record["components"]["seat_use"]["value"] == pytest.approx(0.1)  # u0 in 7 days
    assert record["components"]["trend"]["value"] == pytest.approx(1 / 8)
    assert "sessions at 0.125 of the week before" in " ".join(record["reasons"])


def test_a_count_is_said_as_a_whole_number_with_its_word() -> None:
    week = {"kind": "count", "events": ["user.session"], "window": "7d"}
    busy = {
        "measure": "week",
        "weight": 10,
        "full_at": 20,
        "reason": "{value:session|sessions} in 7 days (full points at {full_at})",
    }
    h = Harness(settings({"week": week}, {"busy": busy}))
    h.feed([*sessions(0, 1), clock(T0 + DAY + HOUR)])
    record = last_health(h)
    assert record["components"]["busy"]["value"] == 1 and isinstance(
        record["components"]["busy"]["value"], int
    )
    assert any(
        r.startswith("1 session in 7 days (full points at 20) (-") for r in record["reasons"]
    )
    h.feed([*sessions(1.5, 2), clock(T0 + 2 * DAY + HOUR)])
    assert any(
        r.startswith("3 sessions in 7 days (full points at 20)") for r in last_health(h)["reasons"]
    )


def test_equals_is_full_points_or_none() -> None:
    measures = {
        "sponsor_now": {"kind": "latest", "events": ["sponsor.changed"], "field": "attrs.status"}
    }
    backed = {
        "measure": "sponsor_now",
        "weight": 10,
        "equals": "active",
        "reason": "the sponsor is {value}",
    }
    h = Harness(settings(measures, {"backed": backed}))
    h.feed([event("acme", "sponsor.changed", T0, {"status": "departed"}), clock(T0 + DAY)])
    backing = last_health(h)["components"]["backed"]
    assert (backing["value"], backing["points"]) == (0.0, 0.0) and backing["weight"] > 0


def test_a_restore_goes_on_as_if_never_stopped_and_a_changed_one_is_measured_afresh() -> None:
    chosen = settings({"quiet": QUIET}, {"quiet_days": QUIET_DAYS})
    stream = [*sessions(0, 10), *sessions(3, 2), clock(T0 + 3 * DAY + 5 * HOUR)]
    rest = [*sessions(6, 1), clock(T0 + 9 * DAY)]
    straight = Harness(chosen).feed(stream).feed(rest)
    h = Harness(chosen).feed(stream)
    saved = restored(h.engine)
    assert set(saved.tenants["acme"].components) == {*DEFAULT_COMPONENTS, "quiet_days"}
    h.engine = ShardEngine(chosen, h.rules, saved)
    h.feed(rest)
    assert h.out == straight.out
    steeper = settings({"quiet": QUIET}, {"quiet_days": {**QUIET_DAYS, "zero_at": 4}})
    again = Harness(steeper).feed(stream)
    again.engine = ShardEngine(steeper, again.rules, restored(h.engine))
    again.feed([clock(T0 + 9 * DAY + HOUR)])
    quiet = last_health(again)["components"]["quiet_days"]  # measured under its new scale
    assert quiet["points"] == pytest.approx(quiet["weight"] * (1 - quiet["value"] / 4), abs=0.01)


@pytest.mark.parametrize(
    ("component", "said"),
    [
        (
            {**QUIET_DAYS, "measure": "nothing"},
            "health.components.quiet_days.measure: no measure 'nothing'",
        ),
        (
            {**QUIET_DAYS, "when": "nothing"},
            "health.components.quiet_days.when: no measure 'nothing'",
        ),
        (
            {**QUIET_DAYS, "earned_while": "nothing"},
            "health.components.quiet_days.earned_while: no measure 'nothing'",
        ),
        ({**QUIET_DAYS, "full_at": 3}, "one scale: full_at, zero_at or equals"),
        ({k: v for k, v in QUIET_DAYS.items() if k != "zero_at"}, "one scale"),
        ({**QUIET_DAYS, "reason": "{days} quiet"}, "reason: no {days} to say"),
        ({**QUIET_DAYS, "reason": "{value:.1f} days"}, "a placeholder takes no format but"),
        ({**QUIET_DAYS, "reason": "{zero_at:a|b} days"}, "a placeholder takes no format but"),
        ({**QUIET_DAYS, "reason": "{value!r} days"}, "a placeholder takes no format but"),
        ({**QUIET_DAYS, "reason": "{value days"}, "reason:"),
        ({**QUIET_DAYS, "zero_at": None, "equals": "x"}, "equals is for latest or states measures"),
        ({**QUIET_DAYS, "versus": "previous_window"}, "previous_window is for count or sum"),
    ],
)
def test_a_component_that_cannot_be_measured_is_refused_with_its_key(
    component: dict[str, Any], said: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        settings({"quiet": QUIET}, {"quiet_days": component})
    assert said in str(refused.value)


def test_at_most_32_components_in_all() -> None:
    many = {f"c{n}": QUIET_DAYS for n in range(32 - len(DEFAULT_COMPONENTS) + 1)}
    with pytest.raises(ConfigError, match="at most 32 health components in all"):
        settings({"quiet": QUIET}, many)
    most = settings({"quiet": QUIET}, dict(list(many.items())[:-1])).health.components
    assert len(most.declared) == 32


def test_errors_leaving_an_hourly_window_give_points_back_at_the_tenants_next_event() -> None:
    day_of_errors = {"kind": "count", "events": ["error.raised"], "window": "24h", "bucket": "1h"}
    calm = {"measure": "errors", "weight": 20, "zero_at": 10, "reason": "{value} errors in 24 h"}
    chosen = settings({"errors": day_of_errors}, {"calm": calm})
    burst = [event("acme", "error.raised", T0 + 2 * HOUR + n * 60_000) for n in range(5)]
    burst += [event("acme", "error.raised", T0 + 5 * HOUR + n * 60_000) for n in range(5)]
    h = Harness(chosen).feed([*sessions(0, 1), *burst, clock(T0 + 20 * HOUR)])
    assert last_health(h)["components"]["calm"]["value"] == 10
    # The 02:00 hour left at 03:00 the next day; a silent tenant is no better for it.
    h.feed([clock(T0 + 28 * HOUR)])
    assert last_health(h)["components"]["calm"]["value"] == 10
    # Its next event measures afresh, by the hour: the 05:00 hour is still in.
    h.feed([*sessions(27.5 / 24), clock(T0 + 29 * HOUR + HOUR // 2)])
    assert last_health(h)["components"]["calm"]["value"] == 5
    assert last_health(h)["ts"] == to_iso(T0 + DAY + 4 * HOUR)  # the step it came back at
    h.feed([clock(T0 + 32 * HOUR)])  # the 05:00 hour left at 06:00, while it was silent
    assert last_health(h)["components"]["calm"]["value"] == 5
    # A restore knows when what it holds will leave, as the running shard did.
    again = Harness(chosen).feed([*sessions(0, 1), *burst, clock(T0 + 20 * HOUR)])
    again.engine = ShardEngine(chosen, again.rules, restored(again.engine))
    again.feed([clock(T0 + 28 * HOUR), *sessions(27.5 / 24), clock(T0 + 29 * HOUR + HOUR // 2)])
    again.feed([clock(T0 + 32 * HOUR)])
    assert again.out["health"] == h.out["health"]


def test_a_bucket_must_divide_the_window() -> None:
    odd = {"kind": "count", "events": ["error.raised"], "window": "24h", "bucket": "5h"}
    with pytest.raises(ConfigError, match=r"the bucket \(5h\) must divide the window \(1d\)"):
        settings({"errors": odd}, {})


def test_the_default_components_are_declared_over_measures() -> None:
    """Every default component is settings over the default measures: a user changes
    them as any declared component."""
    chosen = Settings().health.components
    assert tuple(chosen.declared) == DEFAULT_COMPONENTS
    wider = settings({"features_30d": {"window": "60d"}}, {"adoption": {"full_at": 8}})
    assert wider.measures["features_30d"].kind == "distinct"  # the default, but its window
    assert wider.measures["features_30d"].window == 60 * DAY
    used = [event("acme", "feature.used", T0 + n * HOUR, {"feature": f"f{n}"}) for n in range(4)]
    h = Harness(wider).feed([*used, clock(T0 + DAY + HOUR)])
    assert last_health(h)["components"]["adoption"]["value"] == 4
    said = "4 features used in the last 60 days (full points at 8)"
    assert any(r.startswith(said) for r in last_health(h)["reasons"])
