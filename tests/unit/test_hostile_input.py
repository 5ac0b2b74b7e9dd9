"""Generated hostile input: whatever a producer sends, the engine neither crashes nor
writes a record outside the contract, and every message that is not used is a dead letter
with a known reason.

Hypothesis builds catalogue events and then breaks them field by field (dropped fields,
wrong JSON types, wrong units, over-long names, odd attrs), plus raw bytes. Runs are
derandomized, so CI explores the same cases every time.
"""

from __future__ import annotations

from typing import Any, get_args

import orjson
from hostile import EXAMPLES, JSON, streams
from hypothesis import given
from hypothesis import strategies as st
from support import CONTRACT, DAY, T0, Harness, clock

from vigil.base.records import DeadLetterReason
from vigil.rules.engine import engine_for
from vigil.rules.loader import load_rules

REASONS = set(get_args(DeadLetterReason))
ZONES = {"green", "yellow", "orange", "red"}
RULES = engine_for(load_rules())


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
