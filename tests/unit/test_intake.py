from __future__ import annotations

import pickle
import time
from typing import Any

import orjson
import pytest

from vigil.config.settings import Settings
from vigil.engine.policy import Policy
from vigil.intake import reader as intake_module
from vigil.intake.events import DeadLetter, Event, Limits
from vigil.intake.reader import NO_WATERMARK, Intake
from vigil.rules.engine import engine_for

HOUR = 3_600_000
DAY = 24 * HOUR
T0 = 1_772_409_600_000  # 2026-03-02T00:00:00Z


def message(ts: int, event_id: str = "e") -> bytes:
    return orjson.dumps({"event_id": event_id, "type": "user.session", "tenant_id": "t", "ts": ts})


class TestWatermark:
    def test_each_event_carries_the_watermark_it_arrived_under(self) -> None:
        intake = Intake("s", "p", 1, lateness=HOUR)
        first, second, older = (intake.take(message(T0 + h * HOUR), {}) for h in (10, 12, 11))
        assert isinstance(first, Event) and first.wm == NO_WATERMARK
        assert isinstance(second, Event) and second.wm == T0 + 9 * HOUR
        assert isinstance(older, Event) and older.wm == T0 + 11 * HOUR  # the max stays 12 h
        assert intake.tick().wm == T0 + 11 * HOUR


class TestFutureGuard:
    def test_an_event_far_ahead_of_the_clock_is_refused_and_moves_nothing(self) -> None:
        now = int(time.time() * 1000)
        intake = Intake("s", "p", 1, lateness=HOUR, max_future=DAY)
        assert isinstance(intake.take(message(now - HOUR), {"line": 1}), Event)
        bogus = intake.take(message(now + 400 * DAY), {"line": 2})
        assert isinstance(bogus, DeadLetter) and bogus.reason == "future"
        assert "more than 1d ahead of the clock" in bogus.error and bogus.position == {"line": 2}
        assert intake.watermark == now - 2 * HOUR  # the bad timestamp did not drag it
        assert isinstance(intake.take(message(now + HOUR), {"line": 3}), Event)  # near future: fine

    def test_without_a_limit_any_date_is_accepted(self) -> None:
        intake = Intake("s", "p", 1, lateness=HOUR)
        assert isinstance(intake.take(message(32_000_000_000_000), {}), Event)


class TestSizeLimit:
    def test_a_message_over_the_limit_is_a_dead_letter_and_moves_nothing(self) -> None:
        intake = Intake("s", "p", 1, lateness=HOUR, max_bytes=1024)
        fits = orjson.dumps(
            {"event_id": "a", "type": "user.session", "tenant_id": "t", "ts": T0 + HOUR, "pad": ""}
        )
        fits = fits.replace(b'"pad":""', b'"pad":"' + b"x" * (1024 - len(fits)) + b'"')
        assert len(fits) == 1024 and isinstance(intake.take(fits, {}), Event)
        big = message(T0 + 5 * HOUR).replace(b"}", b',"pad":"' + b"x" * 2_000 + b'"}')
        letter = intake.take(big, {"offset": 7})
        assert isinstance(letter, DeadLetter) and letter.reason == "too_large"
        assert letter.position == {"offset": 7}
        assert letter.raw == big[:1024].decode() + "...[truncated]"
        assert intake.max_ts == T0 + HOUR  # not decoded: its time did not count


def nested(depth: int) -> bytes:
    """A JSON value `depth` levels deep: arrays around an object."""
    return b"[" * (depth - 1) + b"{}" + b"]" * (depth - 1)


def with_field(field: bytes, value: bytes, kind: str = "deployment.published") -> bytes:
    body = f'{{"event_id":"e","type":"{kind}","tenant_id":"t","ts":{T0},'.encode()
    return body + b'"' + field + b'":' + value + b"}"


class TestBounds:
    @pytest.mark.parametrize("compiled", [True, False])
    @pytest.mark.parametrize("depth", [17, 254, 300, 1_100, 100_000])
    @pytest.mark.parametrize("where", ["attrs", "segment", "feature", "extra"])
    def test_nesting_past_the_bound_is_a_too_deep_dead_letter(
        self, compiled: bool, depth: int, where: str
    ) -> None:
        # The event object is level 1: a value in one of its fields starts at level 2.
        if where == "attrs":
            raw = with_field(b"attrs", b'{"a":' + nested(depth - 2) + b"}")
        elif where == "feature":  # a wrongly typed attribute, which the error quotes
            raw = with_field(b"attrs", b'{"feature":' + nested(depth - 2) + b"}", "feature.used")
        else:  # a wrongly typed field, which the error quotes; a field nobody reads
            raw = with_field(where.encode(), nested(depth - 1))
        intake = Intake("s", "p", 1, lateness=HOUR, compiled=compiled)
        [letter], _ = intake.take_lines([raw + b"\n"], 0)
        assert isinstance(letter, DeadLetter) and letter.reason == "too_deep", letter
        assert "nested more than 16 levels deep (input.max_depth" in letter.error
        assert orjson.loads(orjson.dumps(letter.to_record()))["reason"] == "too_deep"

    def test_at_the_highest_bound_what_follows_the_decoder_handles_the_event(self) -> None:
        # 200 levels, the most the settings allow: a late one's dead letter writes it back
        # as JSON, and a snapshot pickles it.
        intake = Intake("s", "p", 1, lateness=HOUR, limits=Limits(max_depth=200))
        raw = with_field(b"attrs", b'{"a":' + nested(198) + b"}")
        event = intake.take(raw, {"line": 1})
        assert isinstance(event, Event)
        late = event._replace(wm=event.ts + 1)
        assert Policy(Settings(), engine_for([])).late_record(late)["reason"] == "late"
        assert pickle.loads(pickle.dumps(event)) == event
        too_deep = intake.take(with_field(b"attrs", b'{"a":' + nested(199) + b"}"), {})
        assert isinstance(too_deep, DeadLetter) and too_deep.reason == "too_deep"

    @pytest.mark.parametrize("compiled", [True, False])
    def test_attrs_past_their_count_are_a_dead_letter(self, compiled: bool) -> None:
        intake = Intake("s", "p", 1, lateness=HOUR, compiled=compiled)
        flat = {f"k{n}": n for n in range(256)}
        assert isinstance(intake.take(with_field(b"attrs", orjson.dumps(flat)), {}), Event)
        for attrs in (
            {**flat, "one_more": 1},
            {"list": list(range(256))},  # the list and its 256 values: 257
            {"a": {"b": {f"k{n}": n for n in range(255)}}},
        ):
            letter = intake.take(with_field(b"attrs", orjson.dumps(attrs)), {})
            assert isinstance(letter, DeadLetter) and letter.reason == "too_many_attrs"
            assert "attrs hold more than 256 values" in letter.error

    @pytest.mark.parametrize("compiled", [True, False])
    def test_a_line_over_the_limit_is_never_blank_whatever_it_starts_with(
        self, compiled: bool
    ) -> None:
        # A file line is read up to the limit: past it, only blanks had been seen.
        intake = Intake("s", "p", 1, lateness=HOUR, max_bytes=1024, compiled=compiled)
        padded = b" " * 2_000 + message(T0)
        lines = [b" \t\r\n", padded[: 1024 + 3], message(T0) + b"\n"]
        items, last = intake.take_lines(lines, 0)
        assert last == 3 and len(items) == 2  # the first line is blank, the second is not
        assert isinstance(items[0], DeadLetter) and items[0].reason == "too_large"
        assert items[0].position == {"file": "s", "line": 2}

    @pytest.mark.parametrize("compiled", [True, False])
    def test_a_message_whose_decoding_fails_is_dead_lettered_and_the_stream_goes_on(
        self, compiled: bool, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        real = intake_module.decode

        def poisoned(raw: bytes, *args: Any) -> Event | DeadLetter:
            if b"poison" in raw:
                raise RecursionError("maximum recursion depth exceeded")
            return real(raw, *args)

        monkeypatch.setattr(intake_module, "decode", poisoned)
        intake = Intake("topic", "topic/0", 1, lateness=HOUR, compiled=compiled)
        poison = with_field(b"attrs", b'{"poison":[1]}')  # nested: Python decodes it
        items, _ = intake.take_lines([message(T0, "a"), poison, message(T0, "b")], 0)
        assert [type(item) for item in items] == [Event, DeadLetter, Event]
        letter = items[1]
        assert isinstance(letter, DeadLetter) and letter.reason == "decode_failed"
        assert letter.position == {"file": "topic", "line": 2}
        assert letter.error == "decoding failed: RecursionError: maximum recursion depth exceeded"


def test_decoding_imports_neither_the_engine_nor_the_rules() -> None:
    import subprocess
    import sys

    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, vigil.intake.reader; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    heavy = [
        m
        for m in loaded
        if m.startswith(("vigil.rules", "vigil.engine", "vigil.config", "durable", "bytewax"))
    ]
    assert heavy == []
