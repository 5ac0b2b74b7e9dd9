from __future__ import annotations

import pytest

from vigil.base.timeutil import floor_to, format_duration, parse_duration, parse_rfc3339, to_iso


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "ms"),
        [
            ("250ms", 250),
            ("90s", 90_000),
            ("15m", 900_000),
            ("72h", 259_200_000),
            ("7d", 604_800_000),
        ],
    )
    def test_parse_and_format_round_trip(self, text: str, ms: int) -> None:
        assert parse_duration(text) == ms
        assert parse_duration(format_duration(ms)) == ms

    @pytest.mark.parametrize("text", ["", "7", "7 weeks", "-1h", "1.5h", "h"])
    def test_rejects_what_is_not_a_duration(self, text: str) -> None:
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(text)


class TestTimestamps:
    def test_offsets_are_normalised_to_utc_milliseconds(self) -> None:
        assert parse_rfc3339("2026-03-02T10:15:00+01:00") == parse_rfc3339("2026-03-02T09:15:00Z")
        assert parse_rfc3339("2026-03-02T09:15:00.001Z") % 1000 == 1

    def test_nanosecond_fractions_keep_milliseconds(self) -> None:
        assert to_iso(parse_rfc3339("2026-03-02T09:15:00.123456789Z")) == "2026-03-02T09:15:00.123Z"

    @pytest.mark.parametrize(
        "text",
        [
            "2026-03-02T09:15:00",
            "2026-03-02",
            "2026-W10-1T00:00:00Z",
            "yesterday",
            "2016-12-31T12:30:60Z",  # second 60 outside a leap second
            "2016-12-31T23:59:60+01:00",  # 22:59 UTC: not a leap second either
            "2016-12-31T23:59:61Z",
            "2016-12-31T23:59:60",  # no offset
        ],
    )
    def test_rejects_naive_and_non_rfc3339(self, text: str) -> None:
        with pytest.raises(ValueError, match="not an RFC 3339 timestamp with an offset"):
            parse_rfc3339(text)

    @pytest.mark.parametrize(
        ("text", "said"),
        [
            # ISO 8601 allows a decimal comma; RFC 3339 does not. The parser said "UTC
            # offset is mandatory" of a stamp that has one.
            ("2026-03-02T10:00:00,5Z", r"a decimal comma: RFC 3339 writes the fraction"),
            ("2026-03-02T10:00:00", "UTC offset is mandatory"),
            # Python's words were "offset must be a timedelta strictly between ...".
            ("2026-03-02T10:00:00+25:00", r"\(the offset from UTC must be less than 24 hours"),
            ("2026-03-02T10:00:00+05:60", r"\(tzminute must be in 0..59\)"),
        ],
    )
    def test_the_reason_names_what_is_wrong(self, text: str, said: str) -> None:
        with pytest.raises(ValueError, match=said):
            parse_rfc3339(text)

    def test_a_leap_second_is_the_second_after_23_59_59_utc(self) -> None:
        midnight = parse_rfc3339("2017-01-01T00:00:00Z")
        assert parse_rfc3339("2016-12-31T23:59:60Z") == midnight
        assert parse_rfc3339("2016-12-31T23:59:60.250Z") == midnight + 250
        assert parse_rfc3339("2017-01-01T00:59:60+01:00") == midnight  # 23:59:60 UTC
        assert parse_rfc3339("2016-12-31T23:59:59.999Z") < parse_rfc3339("2016-12-31T23:59:60Z")

    def test_floor_to_aligns_on_the_origin(self) -> None:
        monday = parse_rfc3339("1970-01-05T00:00:00Z")
        wednesday = parse_rfc3339("2026-03-04T12:00:00Z")
        assert to_iso(floor_to(wednesday, 7 * 86_400_000, monday)) == "2026-03-02T00:00:00Z"
