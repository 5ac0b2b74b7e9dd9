"""The input contract (shared/EVENTS.md): decode one raw message into an Event or a DeadLetter.

Decoding is pure and total: every input becomes exactly one of the two, so nothing
is lost and nothing raises.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import Any, NamedTuple, NoReturn

import orjson

from vigil.base.ids import deadletter_id
from vigil.base.timeutil import parse_rfc3339, to_iso

KNOWN_TYPES = frozenset(
    {
        "user.session",
        "feature.used",
        "error.raised",
        "job.retry",
        "integration.state",
        "onboarding.started",
        "onboarding.step_completed",
        "onboarding.completed",
        "recipe.completed",
        "ticket.created",
        "ticket.resolved",
        "survey.response",
        "billing.invoice",
        "contract.updated",
        "sponsor.changed",
        "nudge.sent",
        "nudge.acted",
        "deployment.published",
        "config.changed",
        "account.churned",
        "account.renewed",
    }
)
SEGMENTS = ("smb", "mid_market", "enterprise")  # in the order errors list them
MAX_ID_LENGTH = 128
# Product telemetry dated outside years 2000-2999 is garbage. The lower bound catches the
# commonest producer bug, epoch seconds sent as milliseconds (today's seconds read as
# milliseconds fall in January 1970): accepted, such an event would start a shard's clock
# in 1970 and raise tasks dated then. An RFC 3339 time from year 1 would also have a shard
# step through two thousand years of hours.
MIN_EPOCH_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_EPOCH_MS = 32_503_680_000_000  # 3000-01-01T00:00:00Z
YEARS = "years 2000-2999"
NO_WATERMARK = -(2**62)  # before any event: nothing is late
# What a message may hold (input.max_depth, input.max_attrs unless configured). Past
# them it is a dead letter: nothing after the decoder walks an event's values with a
# recursion limit of its own (orjson writes at most 254 levels, pickle a few hundred).
MAX_DEPTH = 16  # levels of nesting: the event object is 1, its attrs object 2
MAX_ATTRS = 256  # values in attrs, counted through nested objects and arrays
# The compiled decoder leaves a message past these to Python (the settings' floors, so
# whatever the settings say, it never accepts what Python would refuse).
FLAT_DEPTH = 2
FEW_ATTRS = 16
UTF8_BOM = b"\xef\xbb\xbf"  # UTF-8 byte order mark; JSON parsers may ignore it (RFC 8259)


class Limits(NamedTuple):
    """How deep a message may nest, and how many values its attrs may hold."""

    max_depth: int = MAX_DEPTH
    max_attrs: int = MAX_ATTRS


DEFAULT_LIMITS = Limits()


class Event(NamedTuple):
    """A valid input event. `ts` is epoch milliseconds; `wm` is the stream watermark
    of its source partition just before it arrived (late when ts < wm)."""

    event_id: str
    type: str
    tenant_id: str
    ts: int
    user_id: str | None
    attrs: Mapping[str, Any]
    segment: str | None
    wm: int
    source: str
    position: Mapping[str, Any]


class DeadLetter(NamedTuple):
    """Rejected input, with a machine-readable reason and a human-readable error."""

    source: str
    position: Mapping[str, Any]
    raw: str
    reason: str
    error: str

    def to_record(self) -> dict[str, Any]:
        return {
            "deadletter_id": deadletter_id(self.source, self.position, self.raw),
            "source": self.source,
            "position": dict(self.position),
            "raw": self.raw,
            "reason": self.reason,
            "error": self.error,
        }


class Invalid(Exception):
    """Raised inside decoding only; becomes a DeadLetter."""

    def __init__(self, reason: str, error: str) -> None:
        super().__init__(error)
        self.reason = reason
        self.error = error


class Check(NamedTuple):
    """What an attribute must be: `kind` names the test (the compiled decoder reads the
    same table), `expected` says it in an error."""

    kind: str  # str, name, number, int, date or one_of
    expected: str
    choices: tuple[str, ...] = ()


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_name(value: Any) -> bool:
    """A name Vigil keeps in a tenant's state (a feature, a ticket id, ...): bounded like
    the ids, so that the key limit per tenant also bounds its memory."""
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_date(value: Any) -> bool:
    """A calendar date, 2026-12-31 (RFC 3339's full-date), or a whole RFC 3339 time."""
    if not isinstance(value, str):
        return False
    try:
        if _FULL_DATE.fullmatch(value):
            date.fromisoformat(value)  # a real day: not 2026-02-30
        else:
            parse_rfc3339(value)
    except ValueError:
        return False
    return True


_FULL_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TESTS: dict[str, Callable[[Any], bool]] = {
    "str": _is_str,
    "name": _is_name,
    "number": _is_number,
    "int": _is_int,
    "date": _is_date,
}


def _passes(check: Check, value: Any) -> bool:
    if check.kind == "one_of":
        return type(value) is str and value in check.choices
    return _TESTS[check.kind](value)


def one_of(*choices: str) -> Check:
    if len(choices) == 1:
        return Check("one_of", repr(choices[0]), choices)
    return Check("one_of", f"{', '.join(choices[:-1])} or {choices[-1]}", choices)


STR = Check("str", "a string")
NAME = Check("name", f"a string of 1-{MAX_ID_LENGTH} characters")
NUMBER = Check("number", "a number")
INT = Check("int", "an integer")
DATE = Check("date", "a date such as 2026-12-31")

# type -> {attr: (required, check)}; the catalogue of EVENTS.md.
_ATTRS: dict[str, dict[str, tuple[bool, Check]]] = {
    "user.session": {"duration_s": (False, NUMBER)},
    "feature.used": {"feature": (True, NAME)},
    "error.raised": {
        "code": (False, STR),
        "severity": (False, one_of("low", "medium", "high", "critical")),
    },
    "job.retry": {"job": (False, STR)},
    "integration.state": {
        "integration": (True, NAME),
        "state": (True, one_of("connected", "error", "disconnected")),
    },
    "onboarding.started": {"plan_days": (False, INT)},
    "onboarding.step_completed": {"step": (True, NAME)},
    "recipe.completed": {"recipe": (True, STR)},
    "ticket.created": {
        "ticket_id": (True, NAME),
        "priority": (True, one_of("P1", "P2", "P3", "P4")),
    },
    "ticket.resolved": {"ticket_id": (True, NAME)},
    "survey.response": {
        "kind": (True, one_of("nps", "csat")),
        "score": (True, NUMBER),
    },
    "billing.invoice": {
        "invoice_id": (True, NAME),
        "status": (True, one_of("issued", "paid", "overdue", "failed")),
        "amount": (False, NUMBER),
    },
    "contract.updated": {
        "seats": (False, INT),
        "renewal_date": (False, DATE),
        "arr": (False, NUMBER),
    },
    "sponsor.changed": {"status": (True, one_of("active", "departed"))},
    "nudge.sent": {"nudge": (True, STR)},
    "nudge.acted": {"nudge": (True, STR)},
    # Outcomes (vigil.intake.outcomes): what a health score predicts.
    "account.churned": {"reason": (False, STR)},
    "account.renewed": {"renewal_date": (False, DATE), "arr": (False, NUMBER)},
}
# The checks an attribute of a type added in the settings may name.
CHECKS = {"str": STR, "name": NAME, "number": NUMBER, "int": INT, "date": DATE}


class Catalogue(NamedTuple):
    """The event types Vigil knows, what each one's attributes must be, and the segments
    a tenant may be in: the built-in catalogue (the contract), or it extended in the
    settings (`[catalogue]`)."""

    types: frozenset[str]
    attrs: Mapping[str, Mapping[str, tuple[bool, Check]]]
    segments: tuple[str, ...]  # in the order errors list them

    def extended(
        self, types: Mapping[str, Mapping[str, tuple[bool, Check]]], segments: Iterable[str]
    ) -> Catalogue:
        added = tuple(s for s in dict.fromkeys(segments) if s not in self.segments)
        return Catalogue(self.types | types.keys(), {**self.attrs, **types}, self.segments + added)

    def attr_names(self, kind: str) -> tuple[str, ...]:
        return tuple(self.attrs.get(kind, ()))

    def is_date(self, kind: str, attr: str) -> bool:
        spec = self.attrs.get(kind, {}).get(attr)
        return spec is not None and spec[1].kind == "date"

    def key(self) -> bytes:
        """What tells two catalogues apart (a decoder is made once per catalogue)."""
        table = {k: {a: [r, *c] for a, (r, c) in spec.items()} for k, spec in self.attrs.items()}
        shape = [sorted(self.types), table, list(self.segments)]
        return orjson.dumps(shape, option=orjson.OPT_SORT_KEYS)


DEFAULT_CATALOGUE = Catalogue(KNOWN_TYPES, _ATTRS, SEGMENTS)
SCORE_RANGES = {"nps": (0, 10), "csat": (1, 5)}
_RANGED = frozenset({"survey.response"})  # types whose score _check_attrs checks in range

# The compiled check of a decoded message (vigil.intake.decoder.decoder().event): the Event the
# checks below make of it, or None to leave it to them.
CompiledCheck = Callable[[dict[str, Any], int, str, Mapping[str, Any]], "Event | None"]


CompiledAttr = tuple[str, bool, str, tuple[str, ...]]


def compiled_checks(
    catalogue: Catalogue = DEFAULT_CATALOGUE,
) -> dict[str, list[CompiledAttr] | None]:
    """_ATTRS for the compiled check: per type, (attr, required, check's kind, choices);
    None for a type it leaves to Python, one with a date or a score's range to check."""
    table: dict[str, list[CompiledAttr] | None] = {}
    for event_type, spec in catalogue.attrs.items():
        python_only = event_type in _RANGED or any(c.kind == "date" for _, c in spec.values())
        table[event_type] = (
            None
            if python_only
            else [
                (name, required, check.kind, check.choices)
                for name, (required, check) in spec.items()
            ]
        )
    return table


def decode(
    raw: bytes,
    source: str,
    position: Mapping[str, Any],
    watermark: int,
    compiled: CompiledCheck | None = None,
    limits: Limits = DEFAULT_LIMITS,
    catalogue: Catalogue = DEFAULT_CATALOGUE,
) -> Event | DeadLetter:
    """Decode one message; `watermark` is the partition's watermark before this message.
    `compiled` takes the common valid event off the checks here, which stay the
    reference for all else."""
    try:
        return _decode(raw, source, position, watermark, compiled, limits, catalogue)
    except Invalid as bad:
        return DeadLetter(source, position, raw_text(raw), bad.reason, bad.error)


RAW_LIMIT = 16_384  # bytes of a rejected message kept in its dead letter


def raw_text(raw: bytes, limit: int = RAW_LIMIT) -> str:
    """The message as text for a dead letter, cut at `limit` bytes so one huge line cannot
    flood the dead-letter output."""
    text = raw[:limit].decode("utf-8", errors="replace").rstrip("\r\n")
    return text if len(raw) <= limit else f"{text}...[truncated, {len(raw)} bytes]"


def event_json(event: Event) -> str:
    """The event written back as JSON (for a dead letter once the raw bytes are gone),
    cut at RAW_LIMIT as a raw message is."""
    obj: dict[str, Any] = {
        "event_id": event.event_id,
        "type": event.type,
        "tenant_id": event.tenant_id,
        "ts": to_iso(event.ts),
    }
    for name in ("user_id", "attrs", "segment"):
        value = getattr(event, name)
        if value:
            obj[name] = value
    return raw_text(orjson.dumps(obj))


def _not_json(raw: bytes, exc: orjson.JSONDecodeError) -> str:
    if not raw.strip():  # a file's blank lines are skipped: this is a Kafka message
        return "an empty message (a tombstone, or a value of blanks): not a JSON object"
    # orjson says "str is not valid UTF-8: surrogates not allowed" of any byte that is not
    # UTF-8, such as a producer writing Latin-1: name the byte and where it is instead.
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        byte = raw[bad.start]
        return f"not UTF-8 text: byte 0x{byte:02x} at byte {bad.start + 1} (JSON is UTF-8)"
    return f"not valid JSON: {exc}"


def _decode(
    raw: bytes,
    source: str,
    position: Mapping[str, Any],
    watermark: int,
    compiled: CompiledCheck | None,
    limits: Limits,
    catalogue: Catalogue,
) -> Event:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson's own bound, 1,024 levels
            raise Invalid("too_deep", _too_deep(limits)) from None
        raise Invalid("invalid_json", _not_json(raw, exc)) from None
    if type(obj) is not dict:
        raise Invalid("not_an_object", f"expected a JSON object, got {_json_type(obj)}")
    _check_bounds(obj, limits)
    if compiled is not None:
        event = compiled(obj, watermark, source, position)
        if event is not None:
            return event
    get = obj.get
    event_id: Any = get("event_id")
    kind: Any = get("type")
    tenant_id: Any = get("tenant_id")
    ts: Any = get("ts")
    user_id: Any = get("user_id")
    attrs: Any = get("attrs")
    segment: Any = get("segment")
    # One cheap test for the common, valid case; _explain() finds the exact problem.
    if not (
        type(event_id) is str
        and 0 < len(event_id) <= MAX_ID_LENGTH
        and type(kind) is str
        and 0 < len(kind) <= MAX_ID_LENGTH
        and type(tenant_id) is str
        and 0 < len(tenant_id) <= MAX_ID_LENGTH
        and (user_id is None or type(user_id) is str)
        and (attrs is None or type(attrs) is dict)
        and (segment is None or (type(segment) is str and segment in catalogue.segments))
    ):
        _explain(obj, catalogue)
    if type(ts) is str:
        try:
            millis = parse_rfc3339(ts)
        except ValueError as exc:
            raise Invalid("invalid_ts", f"field 'ts': {exc}") from None
        if not MIN_EPOCH_MS <= millis < MAX_EPOCH_MS:
            raise Invalid("invalid_ts", f"field 'ts' {ts[:64]!r} is outside {YEARS}")
    elif type(ts) is int and MIN_EPOCH_MS <= ts < MAX_EPOCH_MS:
        millis = ts
    else:
        _bad_timestamp(obj)
    if kind in catalogue.attrs:
        _check_attrs(kind, attrs or {}, catalogue.attrs[kind])
    return Event(
        event_id,
        kind,
        tenant_id,
        millis,
        user_id,
        attrs or {},
        segment,
        watermark,
        source,
        position,
    )


def _too_deep(limits: Limits) -> str:
    return (
        f"nested more than {limits.max_depth} levels deep (input.max_depth; the event "
        "object is level 1, its attrs level 2)"
    )


def _check_bounds(obj: dict[str, Any], limits: Limits) -> None:
    """Raise Invalid for a message nested deeper than max_depth, or whose attrs hold more
    than max_attrs values. Walked with a stack, not recursion: the message may be
    anything orjson parses, a thousand levels deep."""
    counted = 0
    stack = [(value, 2, key == "attrs") for key, value in obj.items() if type(value) in _NESTS]
    while stack:
        value, depth, in_attrs = stack.pop()
        if depth > limits.max_depth:
            raise Invalid("too_deep", _too_deep(limits))
        children = value.values() if type(value) is dict else value
        if in_attrs:
            counted += len(children)
            if counted > limits.max_attrs:
                raise Invalid("too_many_attrs", _too_many(limits))
        stack.extend((child, depth + 1, in_attrs) for child in children if type(child) in _NESTS)


_NESTS = (dict, list)


def _too_many(limits: Limits) -> str:
    return (
        f"attrs hold more than {limits.max_attrs} values, counted through nested objects "
        "and arrays (input.max_attrs)"
    )


def _explain(obj: dict[str, Any], catalogue: Catalogue) -> NoReturn:
    """Raise Invalid naming the first problem of an event that failed the fast test."""
    _identifier(obj, "event_id")
    _identifier(obj, "type")  # an unknown type's name becomes a metric label and a log field
    _identifier(obj, "tenant_id")
    _optional(obj, "user_id", str, "a string")
    _optional(obj, "attrs", dict, "an object")
    segment = obj.get("segment")
    segments = one_of(*catalogue.segments).expected
    raise Invalid("invalid_field", f"field 'segment' must be {segments}, got {_shown(segment)}")


def _required(obj: dict[str, Any], name: str, kind: type, expected: str) -> Any:
    if name not in obj or obj[name] is None:
        raise Invalid("missing_field", f"missing required field '{name}'")
    value = obj[name]
    if not isinstance(value, kind):
        raise Invalid(
            "invalid_field", f"field '{name}' must be {expected}, got {_json_type(value)}"
        )
    return value


def _optional(obj: dict[str, Any], name: str, kind: type, expected: str) -> Any:
    value = obj.get(name)
    if value is not None and not isinstance(value, kind):
        raise Invalid(
            "invalid_field", f"field '{name}' must be {expected}, got {_json_type(value)}"
        )
    return value


def _identifier(obj: dict[str, Any], name: str) -> str:
    value: str = _required(obj, name, str, "a string")
    if not 1 <= len(value) <= MAX_ID_LENGTH:
        raise Invalid(
            "invalid_field",
            f"field '{name}' must be 1-{MAX_ID_LENGTH} characters, got {len(value)}",
        )
    return value


def _bad_timestamp(obj: dict[str, Any]) -> NoReturn:
    """Raise Invalid for a `ts` that failed the fast test."""
    value = obj.get("ts")
    if value is None:
        raise Invalid("missing_field", "missing required field 'ts'")
    if _is_int(value):
        message = f"field 'ts' {value} is not epoch milliseconds in {YEARS}"
        for unit, millis in (
            ("seconds", value * 1000),
            ("microseconds", value // 1000),
            ("nanoseconds", value // 1_000_000),
        ):
            if MIN_EPOCH_MS <= millis < MAX_EPOCH_MS:  # the other units producers send
                message += f" (as epoch {unit} it would be {to_iso(millis)}: send milliseconds)"
                break
    elif isinstance(value, float):  # `time.time() * 1000` in a Python producer
        message = f"field 'ts' must be whole epoch milliseconds (an integer), got {value!r}"
        if MIN_EPOCH_MS <= value < MAX_EPOCH_MS:
            message += f": send {int(value)}"
    else:
        message = (
            f"field 'ts' must be an RFC 3339 string or epoch milliseconds, got {_json_type(value)}"
        )
    raise Invalid("invalid_ts", message)


def _check_attrs(
    kind: str, attrs: Mapping[str, Any], spec: Mapping[str, tuple[bool, Check]]
) -> None:
    for name, (required, check) in spec.items():
        value = attrs.get(name)
        if value is None:
            if required:
                raise Invalid("missing_field", f"{kind} needs attrs.{name} ({check.expected})")
            continue
        if not _passes(check, value):
            raise Invalid(
                "invalid_field",
                f"{kind}: attrs.{name} must be {check.expected}, got {_shown(value)}",
            )
    if kind in _RANGED:
        low, high = SCORE_RANGES[attrs["kind"]]
        score = attrs["score"]
        if not low <= score <= high:
            message = f"survey.response: {attrs['kind']} score must be {low}-{high}, got {score}"
            raise Invalid("invalid_field", message)


def _shown(value: Any, limit: int = 64) -> str:
    """A value for an error message, as JSON (the producer's language: `true`, not
    Python's `True`), cut short: the raw message is kept apart (raw_text), and an error
    must stay one readable line however big the value."""
    text = orjson.dumps(value).decode()
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _json_type(value: Any) -> str:
    names = {
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }
    return "null" if value is None else names.get(type(value), type(value).__name__)
