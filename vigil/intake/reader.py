"""Per source partition: decode raw messages and keep the partition's watermark.

Every connector's partition owns one Intake, so file and Kafka sources share the
decoding and event-time rules. Its state (the highest event time seen) goes into the
partition's snapshot, so a resumed run calls the same events late as the first one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from vigil.base.timeutil import format_duration, to_iso
from vigil.intake.decoder import decoder
from vigil.intake.events import (
    DEFAULT_CATALOGUE,
    DEFAULT_LIMITS,
    NO_WATERMARK,
    RAW_LIMIT,
    Catalogue,
    DeadLetter,
    Event,
    Limits,
    decode,
    raw_text,
)


class Tick(NamedTuple):
    """Watermark of one source partition, broadcast to every shard after each batch."""

    source: str
    wm: int | None  # None: the partition is idle and must not hold the stream back
    sources: int  # how many source partitions the stream has
    read_at: float = 0.0  # wall clock when the batch was read, for latency metrics


# What a source partition hands the dataflow per batch: its decoded messages in order,
# ending with its watermark tick. One item per batch, not per event, so the dataflow's
# per-item cost is paid a few dozen times a batch instead of a thousand.
Chunk = list[Event | DeadLetter | Tick]

log = logging.getLogger("vigil.input")


class Intake:
    def __init__(
        self,
        source: str,
        partition: str,
        partitions: int,
        lateness: int,
        max_ts: int | None = None,
        max_future: int | None = None,
        max_bytes: int | None = None,
        compiled: bool = True,
        limits: Limits = DEFAULT_LIMITS,
        catalogue: Catalogue = DEFAULT_CATALOGUE,
    ) -> None:
        self.source = source
        self.partition = partition
        self.partitions = partitions
        self.lateness = lateness
        self.max_ts = max_ts
        # One event dated far ahead would drag the watermark with it and make every later
        # event late; events more than this ahead of the wall clock are refused.
        self.max_future = max_future
        self.max_bytes = max_bytes  # longer messages are not decoded
        self.limits = limits
        self.catalogue = catalogue
        # Common valid events decoded compiled; the rest, or all of them with
        # compiled=False (the tests' reference), by vigil.intake.events.decode.
        self.decoder = decoder(catalogue) if compiled else None
        self.compiled = None if self.decoder is None else self.decoder.event

    @property
    def watermark(self) -> int:
        """Highest event time seen minus the allowed lateness."""
        return NO_WATERMARK if self.max_ts is None else self.max_ts - self.lateness

    def take(self, raw: bytes, position: Mapping[str, Any]) -> Event | DeadLetter:
        """The message as an event or a dead letter. Decoding is total; should it fail all
        the same (a bug), the message is dead-lettered and the stream goes on, as a
        message that stops a consumer for good would stop it again on every resume."""
        try:
            return self._take(raw, position)
        except Exception as exc:
            log.exception("a message failed to decode", extra={"position": dict(position)})
            error = f"decoding failed: {type(exc).__name__}: {exc}"[:500]
            return DeadLetter(self.source, position, raw_text(raw), "decode_failed", error)

    def _take(self, raw: bytes, position: Mapping[str, Any]) -> Event | DeadLetter:
        if self.max_bytes is not None and len(raw) > self.max_bytes:
            return self._too_large(raw, position)
        item = decode(
            raw, self.source, position, self.watermark, self.compiled, self.limits, self.catalogue
        )
        if isinstance(item, Event) and (self.max_ts is None or item.ts > self.max_ts):
            # Only a new highest event time can move the watermark, so only it is checked.
            if self.max_future is not None and item.ts > time.time() * 1000 + self.max_future:
                return self._from_the_future(item, raw)
            self.max_ts = item.ts
        return item

    def take_lines(self, lines: list[bytes], line: int) -> tuple[Chunk, int]:
        """A file's lines after line `line`, blank ones skipped; and the last line's number.
        A line over max_bytes is never blank: it is a dead letter, whatever it holds."""
        if self.decoder is not None:
            return self.decoder.take_lines(self, lines, line)
        items: Chunk = []
        for raw in lines:
            line += 1
            message = raw.rstrip(b"\r\n")  # the message is the line, as on Kafka
            fits = self.max_bytes is None or len(message) <= self.max_bytes
            if fits and raw.isspace():
                continue
            items.append(self.take(message, {"file": self.source, "line": line}))
        return items, line

    def _from_the_future(self, event: Event, raw: bytes) -> DeadLetter:
        error = (
            f"event time {to_iso(event.ts)} is more than {format_duration(self.max_future or 0)} "
            "ahead of the clock (raise input.max_future if such events are real)"
        )
        return DeadLetter(self.source, event.position, raw_text(raw), "future", error)

    def _too_large(self, raw: bytes, position: Mapping[str, Any]) -> DeadLetter:
        # A file line may have been cut at the limit already: its full size is unknown.
        error = (
            f"message is over {self.max_bytes:,} bytes (input.max_event_bytes) and was not "
            "decoded; an event is one JSON object on one line"
        )
        kept = raw[: min(RAW_LIMIT, self.max_bytes or RAW_LIMIT)]  # always less than it all
        return DeadLetter(
            self.source, position, f"{raw_text(kept)}...[truncated]", "too_large", error
        )

    def tick(self) -> Tick:
        return Tick(self.partition, self.watermark, self.partitions, time.time())
