"""Event-time helpers: every timestamp inside Vigil is integer Unix epoch milliseconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import ciso8601

MS_PER_SECOND = 1_000
MS_PER_MINUTE = 60 * MS_PER_SECOND
MS_PER_HOUR = 60 * MS_PER_MINUTE
MS_PER_DAY = 24 * MS_PER_HOUR

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_ONE_SECOND = timedelta(seconds=1)
_UNITS = {"ms": 1, "s": MS_PER_SECOND, "m": MS_PER_MINUTE, "h": MS_PER_HOUR, "d": MS_PER_DAY}
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")


def parse_duration(text: str) -> int:
    """Parse '90s', '15m', '72h' or '7d' into milliseconds."""
    match = _DURATION.match(text)
    if match is None:
        msg = f"not a duration: {text!r} (expected a whole number and a unit: ms, s, m, h or d)"
        raise ValueError(msg)
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_duration(ms: int) -> str:
    """The shortest exact spelling of a duration, the inverse of parse_duration."""
    for unit in ("d", "h", "m", "s"):
        if ms and ms % _UNITS[unit] == 0:
            return f"{ms // _UNITS[unit]}{unit}"
    return f"{ms}ms"


def parse_rfc3339(text: str) -> int:
    """Parse an RFC 3339 timestamp, which must carry an offset, to epoch milliseconds.
    Fractions beyond microseconds are cut; sub-millisecond precision is dropped."""
    try:
        stamp = ciso8601.parse_rfc3339(text)
    except ValueError as exc:
        leap = _leap_second(text)
        if leap is None:
            # ISO 8601's decimal comma, which the parser reports as a missing offset
            why = _COMMA if text[19:20] == "," else _OFFSET if "timedelta" in str(exc) else exc
            msg = f"not an RFC 3339 timestamp with an offset: {text[:64]!r} ({why})"
            raise ValueError(msg) from None
        stamp = leap
    return (stamp - _EPOCH) // _ONE_MS  # epoch_ms inline: this runs for every event


def epoch_ms(stamp: datetime) -> int:
    """An aware datetime as epoch milliseconds."""
    return (stamp - _EPOCH) // _ONE_MS  # integer arithmetic: floats lose milliseconds


_COMMA = "a decimal comma: RFC 3339 writes the fraction of a second after a point, 10:00:00.5"
# Python's own words for it name its types ("strictly between -timedelta(hours=24)...").
_OFFSET = "the offset from UTC must be less than 24 hours, -23:59 to +23:59"


def _leap_second(text: str) -> datetime | None:
    """RFC 3339 allows second 60 at 23:59 UTC (a leap second, in any offset), which
    datetime cannot hold: it is read as the second after 23:59:59, so the events of a
    leap second keep their order after those of the second before it. None if `text`
    is not a leap second."""
    if text[16:19] != ":60":  # YYYY-MM-DDTHH:MM:SS
        return None
    try:
        before = ciso8601.parse_rfc3339(f"{text[:17]}59{text[19:]}")
    except ValueError:
        return None
    utc = before.astimezone(UTC)
    return before + _ONE_SECOND if (utc.hour, utc.minute) == (23, 59) else None


@lru_cache(maxsize=4096)  # outputs of one step share their timestamps
def to_iso(ms: int) -> str:
    """Render epoch milliseconds as RFC 3339 UTC, with milliseconds only when needed."""
    stamp = datetime.fromtimestamp(ms / MS_PER_SECOND, tz=UTC)
    if ms % MS_PER_SECOND:
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % MS_PER_SECOND:03d}Z"
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def floor_to(ms: int, step: int, origin: int = 0) -> int:
    """Start of the window of size `step` (aligned to `origin`) that contains `ms`."""
    return ms - (ms - origin) % step
