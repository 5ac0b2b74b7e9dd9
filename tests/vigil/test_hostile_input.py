"""Generated hostile input: whatever a producer sends, the engine neither crashes nor
writes a record outside the contract, and every message that is not used is a dead letter
with a known reason.

Hypothesis builds catalogue events and then breaks them field by field (dropped fields,
wrong JSON types, wrong units, over-long names, odd attrs), plus raw bytes. Runs are
derandomized, so CI explores the same cases every time.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import CONTRACT, DAY, HOUR, T0, Harness, clock

from rules.engine import engine_for
from rules.loader import load_rules
from vigil.events import CATALOGUE_ATTRS
from vigil.timeutil import to_iso

REASONS = {
    "invalid_json",
    "not_an_object",
    "missing_field",
    "invalid_field",
    "invalid_ts",
    "late",
    "future",
    "too_large",
}
ZONES = {"green", "yellow", "orange", "red"}
RULES = engine_for(load_rules())
EXAMPLES = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Any JSON value, small.
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
# Values close to valid ones, where decoding rules are easiest to get wrong.
NEAR_MISSES = st.sampled_from(
    [
        "",
        "x" * 129,
        "P1",
        "nps",
        "connected",
        "paid",
        "2026-03-02",
        "2026-03-02T09:30:00",
        "1970-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2026-06-30T23:59:60Z",  # a leap second: valid
        "2026-06-30T12:00:60Z",
        1_772_443_800,  # epoch seconds
        1_772_443_800_000_000,  # epoch microseconds
        -1,
        0,
        2**53,
        1.5,
        -0.0,
        11,
        True,
    ]
)
ATTR_NAMES = sorted({name for names in CATALOGUE_ATTRS.values() for name in names})
PLAUSIBLE_ATTRS: dict[str, Any] = {
    "duration_s": 30.5,
    "feature": "reports",
    "code": "E500",
    "severity": "high",
    "job": "sync",
    "integration": "crm",
    "state": "error",
    "plan_days": 30,
    "step": "sso_live",
    "recipe": "r1",
    "ticket_id": "t1",
    "priority": "P1",
    "kind": "nps",
    "score": 3,
    "invoice_id": "i1",
    "status": "overdue",
    "amount": 10.0,
    "seats": 5,
    "renewal_date": "2026-06-01",
    "arr": 1000,
    "nudge": "tour",
}


def _broken(valid: Any) -> st.SearchStrategy[Any]:
    """A near miss of a valid value, or any JSON value."""
    return st.one_of(NEAR_MISSES, JSON) if valid is not None else JSON


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Events in roughly rising event time (some out of order, some resent), about half
    of them with one or two fields dropped or broken."""
    stream = []
    ts = T0
    for _ in range(draw(st.integers(min_value=1, max_value=40))):
        ts += draw(st.integers(min_value=-2 * HOUR, max_value=12 * HOUR))
        kind = draw(st.sampled_from([*CATALOGUE_ATTRS, "experiment.assigned"]))
        extra = draw(st.lists(st.sampled_from(ATTR_NAMES), max_size=3, unique=True))
        event: dict[str, Any] = {
            "event_id": draw(st.sampled_from([f"e{n}" for n in range(60)])),  # some resent
            "type": kind,
            "tenant_id": draw(st.sampled_from(["t-a", "t-b", "t-c"])),
            "ts": draw(st.sampled_from([to_iso(ts), ts])),
            "user_id": "u1",
            "segment": "enterprise",
            "attrs": {
                name: PLAUSIBLE_ATTRS[name] for name in [*CATALOGUE_ATTRS.get(kind, ()), *extra]
            },
        }
        # Attributes are where each type's own rules are: they get broken most.
        fields = [*event, *(f"attrs.{name}" for name in event["attrs"] for _ in range(4))]
        for name in draw(st.lists(st.sampled_from(fields), max_size=2)):
            holder, key = (event.get("attrs"), name[6:]) if "." in name else (event, name)
            if not isinstance(holder, dict) or key not in holder:
                continue  # attrs itself was dropped or broken first
            if draw(st.booleans()):
                del holder[key]
            else:
                holder[key] = draw(_broken(holder[key]))
        stream.append(event)
    return stream


def _check_outputs(h: Harness, fed: int) -> None:
    for stream, records in h.out.items():
        for record in records:
            assert CONTRACT[stream] <= set(record), (stream, record)
            orjson.dumps(record)  # every record can be written
    for dead in h.out["deadletter"]:
        assert dead["reason"] in REASONS, dead
        assert 0 < len(dead["error"]) < 1_000, dead
    for health in h.out["health"]:
        assert 0 <= health["score"] <= 100 and health["zone"] in ZONES, health
    assert len(h.out["deadletter"]) <= fed


@EXAMPLES
@given(streams())
def test_a_stream_of_broken_events_never_stops_the_engine(stream: list[dict[str, Any]]) -> None:
    h = Harness(rules=RULES)
    h.feed(stream, batch_size=7)
    # Let event time run on past every window, deadline and stall the stream could open.
    # (A stream of 40 events at most 12 h apart ends before T0 + 20 days.)
    h.feed([clock(T0 + 30 * DAY)])
    _check_outputs(h, len(stream) + 2)


@EXAMPLES
@given(st.lists(st.binary(max_size=200) | JSON.map(orjson.dumps), min_size=1, max_size=20))
def test_raw_bytes_and_json_that_is_no_event_are_dead_letters(messages: list[bytes]) -> None:
    h = Harness(rules=RULES)
    h.feed(messages)
    _check_outputs(h, len(messages))
    # None of these is an event with an id, a type, a tenant and a time: all are rejected.
    assert len(h.out["deadletter"]) == len(messages)
