"""Hypothesis strategies for hostile input: catalogue events broken field by field,
in roughly rising event time (tests/unit/test_hostile_input.py, test_golden.py)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from support import HOUR, T0

from vigil.base.timeutil import to_iso
from vigil.intake.events import DEFAULT_CATALOGUE

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
ATTR_NAMES = sorted({name for names in DEFAULT_CATALOGUE.attrs.values() for name in names})
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
    "reason": "budget",
}


def broken(valid: Any) -> st.SearchStrategy[Any]:
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
        kind = draw(st.sampled_from([*DEFAULT_CATALOGUE.attrs, "experiment.assigned"]))
        extra = draw(st.lists(st.sampled_from(ATTR_NAMES), max_size=3, unique=True))
        event: dict[str, Any] = {
            "event_id": draw(st.sampled_from([f"e{n}" for n in range(60)])),  # some resent
            "type": kind,
            "tenant_id": draw(st.sampled_from(["t-a", "t-b", "t-c"])),
            "ts": draw(st.sampled_from([to_iso(ts), ts])),
            "user_id": "u1",
            "segment": "enterprise",
            "attrs": {
                name: PLAUSIBLE_ATTRS[name]
                for name in [*DEFAULT_CATALOGUE.attr_names(kind), *extra]
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
                holder[key] = draw(broken(holder[key]))
        stream.append(event)
    return stream
