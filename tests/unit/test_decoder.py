"""The compiled decoder (vigil._native.Decoder) against vigil/intake/events.py, the reference it
speeds up: the same lines give the same events and dead letters, in the same order, and
move the watermark alike, whatever the lines hold. It must also do the work: it, not
Python, takes the common valid event."""

from __future__ import annotations

import itertools
import time
from typing import Any

import orjson
from hostile import EXAMPLES, JSON, streams
from hypothesis import given, settings
from hypothesis import strategies as st
from support import DAY, HOUR, T0

from vigil.base.timeutil import parse_rfc3339
from vigil.intake.events import DeadLetter, Event, Limits
from vigil.intake.reader import Intake
from vigil.intake.simulate import FleetPlan, generate

BATCH = 50
COMPILED = Intake("f", "p", 1, HOUR).compiled


class Counted(Intake):
    """An Intake that counts the lines the compiled decoder leaves to Python."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.left_to_python = 0

    def take(self, raw: bytes, position: Any) -> Event | DeadLetter:
        self.left_to_python += 1
        return super().take(raw, position)


def _read(intake: Intake, lines: list[bytes]) -> tuple[list[str], int]:
    """Every item of the lines read in batches, and the intake's state after each batch.
    As repr: 100 and 100.0, or 0 and -0.0, are equal but not written alike."""
    items: list[str] = []
    line = 0
    for start in range(0, len(lines), BATCH):
        taken, line = intake.take_lines(lines[start : start + BATCH], line)
        items.extend(repr(item) for item in taken)
        items.append(repr((intake.watermark, intake.max_ts)))
    return items, line


def _assert_decoded_alike(lines: list[bytes], **limits: Any) -> Counted:
    interpreted = Intake("f.jsonl", "p", 1, HOUR, compiled=False, **limits)
    compiled = Counted("f.jsonl", "p", 1, HOUR, **limits)
    assert interpreted.decoder is None and compiled.decoder is not None
    mine, theirs = _read(compiled, lines), _read(interpreted, lines)
    assert len(mine[0]) == len(theirs[0])
    for n, (a, b) in enumerate(zip(mine[0], theirs[0], strict=True)):
        assert a == b, f"item {n} differs"
    assert mine[1] == theirs[1]
    return compiled


def test_a_simulated_stream_decodes_alike_and_mostly_compiled() -> None:
    lines, _ = generate(FleetPlan(tenants=40, days=10, seed=3))
    lines = list(lines)
    # Blank lines, Windows line ends and a line over the size limit, as files have them.
    lines[10:10] = [b"\n", b"  \t\r\n", lines[20].rstrip(b"\n") + b"\r\n", b"{" + b" " * 900 + b"}"]
    compiled = _assert_decoded_alike(lines, max_bytes=800)
    # Python takes the malformed and late lines, the survey responses, the contracts:
    # a few percent.
    assert compiled.left_to_python < 0.05 * len(lines), compiled.left_to_python


def test_an_event_from_the_future_is_left_to_python() -> None:
    """The clock check happens for a new highest event time only, as in Intake.take."""
    now = int(time.time() * 1000)
    stamps = [T0, T0 + HOUR, T0 + 400 * DAY, T0 + 2 * HOUR, T0 + 500 * DAY, T0 + 3 * HOUR]
    lines = [
        orjson.dumps({"event_id": f"e{n}", "type": "x", "tenant_id": "t", "ts": ts})
        for n, ts in enumerate(stamps)
    ]
    # Anything past T0 + 200 days is from the future.
    compiled = _assert_decoded_alike(lines, max_future=T0 + 200 * DAY - now)
    taken, _ = compiled.take_lines(lines[2:3], 0)
    assert isinstance(taken[0], DeadLetter) and taken[0].reason == "future"


def test_json_spelt_any_way_decodes_alike() -> None:
    """Numbers at the edges of their types, escapes, repeated and unknown fields,
    nesting: each line is read alike, down to the type of every number."""
    head = '{"event_id":"e%d","type":"user.session","tenant_id":"t","ts":1772409600000'
    values = [
        "0",
        "-0",
        "-0.0",
        "1E2",
        "1e-400",
        "1.5e300",
        "0.1",
        "3580.8",
        "123456789.123456789",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775809",
        "1" * 40,
        "1e400",
        "01",
        "1.",
        ".5",
        "true",
        "null",
        '"x"',
        '"\\u00e9\\n"',
        '"\\ud800"',
        '"\\ud83d\\ude00"',
        "[1,[2,{}]]",
        '{"a":{"b":[]}}',
        "NaN",
        "Infinity",
    ]
    lines = [
        f'{head % n},"attrs":{{"duration_s":{value},"other":{value}}}}}'.encode()
        for n, value in enumerate(values)
    ]
    lines += [
        (head % 100 + ',"attrs":{"a":1,"a":2,"b":3}}').encode(),  # a repeated attribute
        (head % 101 + ',"user_id":"u","user_id":"v"}').encode(),  # a repeated field
        (head % 102 + ',"schema":2}').encode(),  # a field outside the contract
        (head % 103 + ',"user_id":"caf\\u00e9"}').encode(),  # an escape in a field
        (head % 104 + ',"user_id":"café ☕ 𝄞"}').encode(),
        (head % 105 + ',"user_id":"a\tb"}').encode(),  # a raw tab: not JSON
        (head % 106 + "}  ").encode(),
        (head % 107 + "} x").encode(),
        ("\ufeff" + head % 108 + "}").encode(),
        (head % 109).encode() + b',"user_id":"\xff"}',
        (head % 110 + ',"segment":"enterprise","user_id":null,"attrs":null}').encode(),
        (b'{"type":"user.session","event_id":"e111","ts":"2026-03-02T00:00:00Z","tenant_id":"t"}'),
        ("[" * 200 + "]" * 200).encode(),
    ]
    compiled = _assert_decoded_alike(lines)
    assert compiled.left_to_python < len(lines)  # it read some of them itself


RAW_LINES = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"", b" ", b"\t\r\n", b"\x0b", b"\xef\xbb\xbf{}", b"[]", b"null", b"{"]),
    JSON.map(orjson.dumps),
)


@EXAMPLES
@given(streams(), st.lists(st.tuples(st.integers(min_value=0, max_value=40), RAW_LINES)))
def test_broken_events_and_raw_bytes_decode_alike(
    stream: list[dict[str, Any]], raw: list[tuple[int, bytes]]
) -> None:
    lines = [orjson.dumps(event) for event in stream]
    for at, line in raw:
        lines.insert(min(at, len(lines)), line)
    now = int(time.time() * 1000)
    _assert_decoded_alike(lines, max_bytes=200)
    _assert_decoded_alike(lines, max_future=T0 + 20 * HOUR - now)


def _nested_at(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def test_nesting_and_attrs_around_their_bounds_decode_alike() -> None:
    """The compiled decoder takes only flat messages with few attrs; what it leaves, Python
    checks against the bounds the settings give, whatever they are."""
    base = {"event_id": "e", "type": "feature.used", "tenant_id": "t", "ts": T0}
    lines = []
    for n, depth in enumerate(range(0, 20)):
        for field in ("attrs", "extra", "segment"):
            body = {**base, "event_id": f"e{n}{field}", field: _nested_at(depth)}
            if field == "attrs" and depth:
                body["attrs"] = {"feature": "f", "x": _nested_at(depth - 1)}
            lines.append(orjson.dumps(body))
    for count in (1, 15, 16, 17, 20, 255, 256, 257, 300):
        attrs = {"feature": "f", **{f"k{k}": k for k in range(count - 1)}}
        lines.append(orjson.dumps({**base, "event_id": f"c{count}", "attrs": attrs}))
    _assert_decoded_alike(lines)
    _assert_decoded_alike(lines, limits=Limits(max_depth=2, max_attrs=16))
    _assert_decoded_alike(lines, limits=Limits(max_depth=5, max_attrs=20))


def _digits(low: int, high: int, width: int = 2) -> st.SearchStrategy[str]:
    return st.integers(min_value=low, max_value=high).map(lambda n: f"{n:0{width}d}")


# Each part of an RFC 3339 time: (a valid value, values at and past its edges).
_PARTS = [
    (_digits(2000, 2100, 4), st.sampled_from(["1999", "0000", "9999", "20x6", "202", "２０２６"])),
    (st.just("-"), st.sampled_from(["/", "", "--"])),
    (_digits(1, 12), st.sampled_from(["00", "13", "1", "99"])),
    (st.just("-"), st.sampled_from(["/", ""])),
    (_digits(1, 28), st.sampled_from(["00", "29", "30", "31", "32"])),
    (st.sampled_from(["T", "t", " "]), st.sampled_from(["_", "", "TT"])),
    (_digits(0, 23), st.sampled_from(["24", "25", "99"])),
    (st.just(":"), st.sampled_from(["", "::", "."])),
    (_digits(0, 59), st.sampled_from(["60", "61", "6"])),
    (st.just(":"), st.sampled_from(["", ";"])),
    (_digits(0, 59), st.sampled_from(["60", "61", "6"])),
    (
        st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=12).map(".{}".format)),
        st.sampled_from([".", ",5", ".5.5", ".x"]),
    ),
    (
        st.one_of(
            st.sampled_from(["Z", "z", "+00:00", "-00:00"]),
            st.tuples(st.sampled_from("+-"), _digits(0, 23), _digits(0, 59)).map(
                lambda p: f"{p[0]}{p[1]}:{p[2]}"
            ),
        ),
        st.one_of(
            st.sampled_from(["", "UTC", "+0100", "+01", "Z ", "ZZ"]),
            st.tuples(st.sampled_from("+-"), st.sampled_from(["24", "25", "00", "23"])).flatmap(
                lambda p: st.sampled_from([f"{p[0]}{p[1]}:00", f"{p[0]}{p[1]}:60"])
            ),
        ),
    ),
]


@st.composite
def _timestamps(draw: st.DrawFn) -> str:
    """An RFC 3339 time, valid or with one or two of its parts out of range or misspelt."""
    broken = draw(st.lists(st.integers(min_value=0, max_value=len(_PARTS) - 1), max_size=2))
    return "".join(draw(bad if n in broken else good) for n, (good, bad) in enumerate(_PARTS))


@settings(EXAMPLES, max_examples=3000)
@given(_timestamps())
def test_a_time_the_decoder_reads_is_the_time_python_reads(stamp: str) -> None:
    assert COMPILED is not None
    obj = {"event_id": "e", "type": "x", "tenant_id": "t", "ts": stamp}
    event = COMPILED(obj, 0, "f", {})
    if event is not None:
        assert event.ts == parse_rfc3339(stamp), stamp


def test_the_decoder_reads_the_common_spellings_of_time() -> None:
    """So that the test above compares something: these it must read itself."""
    assert COMPILED is not None
    for stamp in [
        "2026-03-02T09:30:00Z",
        "2026-03-02t09:30:00.5z",
        "2026-03-02 09:30:00.123456789+05:30",
        "2024-02-29T23:59:59.999-23:59",
        "2000-01-01T00:00:00Z",
    ]:
        obj = {"event_id": "e", "type": "x", "tenant_id": "t", "ts": stamp}
        event = COMPILED(obj, 0, "f", {})
        assert event is not None and event.ts == parse_rfc3339(stamp), stamp


def test_the_decoder_leaves_the_edges_of_the_calendar_to_python() -> None:
    assert COMPILED is not None
    for stamp in [
        "2100-02-29T00:00:00Z",  # not a leap year (a century)
        "2026-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-06-30T23:59:60Z",  # a leap second: valid, and Python's to read
        "2026-03-02T09:30:00+24:00",
        "2026-03-02T09:30:00.Z",
    ]:
        obj = {"event_id": "e", "type": "x", "tenant_id": "t", "ts": stamp}
        assert COMPILED(obj, 0, "f", {}) is None, stamp
    leap_day = {"event_id": "e", "type": "x", "tenant_id": "t", "ts": "2000-02-29T00:00:00Z"}
    assert COMPILED(leap_day, 0, "f", {}) is not None  # a leap year (every 400th century)


def test_every_catalogue_type_with_valid_attributes_is_taken_compiled() -> None:
    """Only the types with a check made in Python alone are left to it."""
    from hostile import PLAUSIBLE_ATTRS

    from vigil.intake.events import DEFAULT_CATALOGUE, decode

    assert COMPILED is not None
    left = set()
    for kind, names in itertools.chain(DEFAULT_CATALOGUE.attrs.items(), [("x.unknown", ())]):
        attrs = {name: PLAUSIBLE_ATTRS[name] for name in names}
        if kind == "sponsor.changed":
            attrs["status"] = "departed"
        obj = {"event_id": "e", "type": kind, "tenant_id": "t", "ts": T0, "attrs": attrs}
        assert isinstance(decode(orjson.dumps(obj), "f", {}, 0), Event), kind  # valid
        if COMPILED(obj, 0, "f", {}) is None:
            left.add(kind)
    assert left == {"survey.response", "contract.updated", "account.renewed"}  # dates, ranges
