from __future__ import annotations

import time

import orjson

from vigil.events import DeadLetter, Event
from vigil.intake import NO_WATERMARK, Intake

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
