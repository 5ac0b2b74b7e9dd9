from __future__ import annotations

from typing import Any

import orjson
import pytest

from vigil.base.timeutil import parse_rfc3339
from vigil.intake.events import DeadLetter, Event, decode, event_json

POSITION = {"file": "events.jsonl", "line": 7}


def valid(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": "e1",
        "type": "user.session",
        "tenant_id": "acme",
        "ts": "2026-03-02T09:15:00Z",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def run(raw: bytes | dict[str, Any]) -> Event | DeadLetter:
    data = raw if isinstance(raw, bytes) else orjson.dumps(raw)
    return decode(data, "events.jsonl", POSITION, watermark=0)


class TestValidEvents:
    def test_rfc3339_and_epoch_millis_are_the_same_instant(self) -> None:
        text = run(valid())
        millis = run(valid(ts=parse_rfc3339("2026-03-02T09:15:00Z")))
        assert isinstance(text, Event) and isinstance(millis, Event)
        assert text.ts == millis.ts == parse_rfc3339("2026-03-02T09:15:00Z")

    @pytest.mark.parametrize(
        "ts", ["2000-01-01T00:00:00Z", 946_684_800_000, "2999-12-31T23:59:59.999Z"]
    )
    def test_the_first_and_last_instants_of_the_years_accepted_are_events(
        self, ts: str | int
    ) -> None:
        assert isinstance(run(valid(ts=ts)), Event)

    def test_a_leap_second_is_an_event_not_a_dead_letter(self) -> None:
        item = run(valid(ts="2016-12-31T23:59:60.5Z"))  # valid RFC 3339; datetime has no :60
        assert isinstance(item, Event)
        assert item.ts == parse_rfc3339("2017-01-01T00:00:00.5Z")

    def test_optional_fields_and_unknown_types_are_accepted(self) -> None:
        item = run(
            valid(type="experiment.assigned", user_id="u1", segment="enterprise", attrs={"x": 1})
        )
        assert isinstance(item, Event)
        assert (item.type, item.user_id, item.segment, item.attrs) == (
            "experiment.assigned",
            "u1",
            "enterprise",
            {"x": 1},
        )

    def test_event_json_of_a_big_event_is_cut_as_a_raw_message_is(self) -> None:
        item = run(valid(attrs={"notes": "n" * 100_000}))
        assert isinstance(item, Event)
        written = event_json(item)
        assert written.endswith("bytes]") and len(written) < 16_500, written[-60:]

    @pytest.mark.parametrize("renewal", ["2026-12-31", "2026-12-31T00:00:00+02:00"])
    def test_a_renewal_date_is_a_date_or_a_whole_time(self, renewal: str) -> None:
        item = run(valid(type="contract.updated", attrs={"renewal_date": renewal, "seats": 5}))
        assert isinstance(item, Event) and item.attrs["renewal_date"] == renewal

    def test_event_json_round_trips_the_fields(self) -> None:
        item = run(valid(attrs={"duration_s": 30}, segment="smb"))
        assert isinstance(item, Event)
        assert orjson.loads(event_json(item)) == valid(attrs={"duration_s": 30}, segment="smb")


class TestDeadLetters:
    @pytest.mark.parametrize(
        ("raw", "reason", "needle"),
        [
            (b"{not json", "invalid_json", "not valid JSON"),
            # A Kafka tombstone (no value) said "Input is a zero-length, empty document".
            (b"", "invalid_json", "an empty message (a tombstone, or a value of blanks)"),
            (b" \t ", "invalid_json", "an empty message"),
            (b"[1, 2]", "not_an_object", "got array"),
            (valid(event_id=...), "missing_field", "'event_id'"),
            (valid(tenant_id=None), "missing_field", "'tenant_id'"),
            (valid(ts=...), "missing_field", "'ts'"),
            (valid(type=3), "invalid_field", "'type' must be a string"),
            (valid(type="x" * 129), "invalid_field", "'type' must be 1-128 characters"),
            (valid(type=""), "invalid_field", "'type' must be 1-128 characters, got 0"),
            (valid(event_id=""), "invalid_field", "1-128 characters"),
            (valid(tenant_id="x" * 129), "invalid_field", "1-128 characters"),
            (valid(ts="yesterday"), "invalid_ts", "RFC 3339"),
            (valid(ts="2026-03-02T09:15:00"), "invalid_ts", "offset"),
            (valid(ts=1.5), "invalid_ts", "must be whole epoch milliseconds (an integer), got 1.5"),
            (
                valid(ts=1_772_443_800_123.456),
                "invalid_ts",
                "got 1772443800123.456: send 1772443800123",
            ),
            (valid(ts=1.7e12), "invalid_ts", "got 1700000000000.0: send 1700000000000"),
            (valid(ts=1e300), "invalid_ts", "(an integer), got 1e+300"),
            (valid(ts="0001-01-01T00:00:00Z"), "invalid_ts", "outside years 2000-2999"),
            (valid(ts="1999-12-31T23:59:59.999Z"), "invalid_ts", "outside years 2000-2999"),
            (valid(ts="3000-01-01T00:00:00Z"), "invalid_ts", "outside years 2000-2999"),
            (valid(ts=-5), "invalid_ts", "epoch milliseconds"),
            (valid(ts=0), "invalid_ts", "not epoch milliseconds in years 2000-2999"),
            # Epoch seconds, the commonest producer bug: read as milliseconds, January 1970.
            (
                valid(ts=1_772_443_800),
                "invalid_ts",
                "as epoch seconds it would be 2026-03-02T09:30:00Z: send milliseconds",
            ),
            (
                valid(ts=1_772_443_800_000_000),
                "invalid_ts",
                "as epoch microseconds it would be 2026-03-02T09:30:00Z: send milliseconds",
            ),
            (
                valid(ts=1_772_443_800_000_000_000),
                "invalid_ts",
                "as epoch nanoseconds it would be 2026-03-02T09:30:00Z",
            ),
            (valid(ts=32_503_680_000_000), "invalid_ts", "not epoch milliseconds in years"),
            (valid(ts=True), "invalid_ts", "got boolean"),
            (valid(attrs=[1]), "invalid_field", "'attrs' must be an object"),
            (valid(segment="huge"), "invalid_field", "'segment'"),
            (valid(type="feature.used"), "missing_field", "attrs.feature"),
            (
                valid(type="survey.response", attrs={"kind": "nps", "score": 11}),
                "invalid_field",
                "0-10",
            ),
            (
                valid(type="survey.response", attrs={"kind": "csat", "score": "5"}),
                "invalid_field",
                'a number, got "5"',
            ),
            # Values are shown as JSON, the producer's language, not as Python's True.
            (
                valid(type="survey.response", attrs={"kind": "csat", "score": True}),
                "invalid_field",
                "attrs.score must be a number, got true",
            ),
            (
                valid(type="ticket.created", attrs={"ticket_id": "t", "priority": "P9"}),
                "invalid_field",
                "P1",
            ),
            # Any string was a date: the contract's renewal_date is one (or a whole time).
            (
                valid(type="contract.updated", attrs={"renewal_date": "2026-02-30"}),
                "invalid_field",
                "contract.updated: attrs.renewal_date must be a date such as 2026-12-31, got "
                '"2026-02-30"',
            ),
            (
                valid(type="contract.updated", attrs={"renewal_date": "next year"}),
                "invalid_field",
                "renewal_date must be a date",
            ),
            # Names kept in a tenant's state are bounded like ids (the key limit counts them).
            (
                valid(type="feature.used", attrs={"feature": ""}),
                "invalid_field",
                'attrs.feature must be a string of 1-128 characters, got ""',
            ),
            (
                valid(type="ticket.resolved", attrs={"ticket_id": "T" * 129}),
                "invalid_field",
                'attrs.ticket_id must be a string of 1-128 characters, got "TTT',
            ),
        ],
    )
    def test_bad_input_names_the_problem_and_keeps_the_raw(
        self, raw: Any, reason: str, needle: str
    ) -> None:
        item = run(raw)
        assert isinstance(item, DeadLetter), item
        assert item.reason == reason
        assert needle in item.error
        assert item.position == POSITION and item.source == "events.jsonl"
        assert item.raw == (raw if isinstance(raw, bytes) else orjson.dumps(raw)).decode()

    def test_a_huge_bad_value_is_cut_short_in_the_error(self) -> None:
        huge = "x" * 100_000
        for bad in (
            valid(segment=huge),
            valid(type="error.raised", attrs={"severity": huge}),
        ):
            item = run(bad)
            assert isinstance(item, DeadLetter) and item.reason == "invalid_field"
            assert len(item.error) < 200 and "... (100,002 characters)" in item.error, item.error

    @pytest.mark.parametrize("odd", [[1], {"a": 1}, True, None, 1.5, -1, "x" * 300, ""])
    def test_any_json_value_in_any_field_is_an_event_or_a_dead_letter(self, odd: Any) -> None:
        """Every top-level field and every catalogue attribute, set to values of every
        JSON type (lists and objects cannot be hashed): decoding never raises."""
        from vigil.intake.events import DEFAULT_CATALOGUE

        cases = [valid(**{field: odd}) for field in ("event_id", "type", "tenant_id", "ts")]
        cases += [valid(user_id=odd), valid(segment=odd), valid(attrs=odd)]
        for kind, names in DEFAULT_CATALOGUE.attrs.items():
            cases += [valid(type=kind, attrs={name: odd}) for name in names]
        for case in cases:
            item = run(case)
            assert isinstance(item, Event | DeadLetter), case
            if isinstance(item, DeadLetter):
                assert item.reason in {"missing_field", "invalid_field", "invalid_ts"}, item

    def test_huge_raw_is_truncated_in_the_dead_letter(self) -> None:
        item = run(b"x" * 100_000)
        assert isinstance(item, DeadLetter)
        assert len(item.raw) < 17_000 and item.raw.endswith("[truncated, 100000 bytes]")

    def test_invalid_utf8_is_a_dead_letter_not_a_crash(self) -> None:
        item = run(b'{"event_id": "\xff\xfe"}')
        assert isinstance(item, DeadLetter) and item.reason == "invalid_json"
        # orjson's words were "str is not valid UTF-8: surrogates not allowed".
        assert item.error == "not UTF-8 text: byte 0xff at byte 15 (JSON is UTF-8)"

    def test_latin1_text_names_its_first_byte_that_is_not_utf8(self) -> None:
        item = run(
            orjson.dumps(valid(tenant_id="café")).replace("é".encode(), "é".encode("latin-1"))
        )
        assert isinstance(item, DeadLetter) and item.reason == "invalid_json"
        assert item.error.startswith("not UTF-8 text: byte 0xe9 at byte ")
        assert item.raw.count("\ufffd") == 1  # the dead letter still shows the line


def test_a_dead_letter_id_names_its_message_where_it_was_read() -> None:
    def letter(raw: bytes, source: str, position: dict[str, Any]) -> str:
        item = decode(raw, source, position, 0)
        assert isinstance(item, DeadLetter)
        return str(item.to_record()["deadletter_id"])

    first = letter(b"{not json", "t", {"partition": 0, "offset": 7})
    assert first.startswith("dead_")
    assert first == letter(b"{not json", "t", {"offset": 7, "partition": 0})  # a replay
    assert first != letter(b"{not json", "t", {"partition": 1, "offset": 7})
    assert first != letter(b"{not json", "u", {"partition": 0, "offset": 7})
    # A pipe's line numbers start again in every run: its text tells the messages apart.
    assert first != letter(b"{not json!", "t", {"partition": 0, "offset": 7})
