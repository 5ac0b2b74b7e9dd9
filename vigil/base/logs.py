"""Structured logs: one line per notable event (start, connection, restore, snapshot,
dead-letter bursts), plain or JSON; never one line per input event, never a secret."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections import Counter
from typing import Any

import orjson

# Attributes every LogRecord has; anything else was passed in `extra=` and is data.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD)
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        text = f"{stamp} {record.levelname.lower():<7} {record.getMessage()}"
        return escaped(f"{text} {extras}" if extras else text)


# C0 and C1 controls; Unicode's line and paragraph separators (some viewers break lines
# there); and the bidirectional controls, which make a terminal show text in another
# order than it is (a tenant id could seem to be another's).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def escaped(text: str, keep: str = "") -> str:
    """`text` with its control characters written out (`\\n`, `\\x1b`), but those in
    `keep`: values from the input (an event type, a tenant id) can then neither start a
    made-up line nor send escape sequences to the terminal that shows them."""

    def written_out(found: re.Match[str]) -> str:
        char = found.group()
        return char if char in keep else char.encode("unicode_escape").decode("ascii")

    return _CONTROL.sub(written_out, text)


def configure(level: str = "INFO", fmt: str = "plain") -> None:
    """Send Vigil's logs to stderr; called once by the command line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
    root = logging.getLogger("vigil")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def kafka_client_logger() -> logging.Logger:
    """The logger the Kafka clients' own lines go to (KafkaSettings.client_config), with
    their repeats held back (RepeatedLines), whatever command or flow made the client."""
    logger = logging.getLogger("vigil.kafka.client")
    if not any(isinstance(held, RepeatedLines) for held in logger.filters):
        logger.addFilter(RepeatedLines())
    return logger


# What varies between repeats of a client's line: a time taken, a count of its own.
_VARYING = re.compile(r"\b\d+(?=ms\b| identical)")


class RepeatedLines(logging.Filter):
    """Lets the same line through once per `window` seconds. The Kafka client says the
    same thing about 20 times a second while it retries a broker that refuses
    connections: 580 identical lines in a 30 s wait for one that is down. The next time
    the line passes, it says how many times it was held back."""

    def __init__(self, window: float = 60.0, remembered: int = 1000) -> None:
        super().__init__()
        self.window = window
        self.remembered = remembered
        self.seen: dict[str, tuple[float, int]] = {}  # line -> (last let through, held)
        self.lock = threading.Lock()  # the clients' lines come from several threads

    def filter(self, record: logging.LogRecord) -> bool:
        text, now = record.getMessage(), time.monotonic()
        line = _VARYING.sub("N", text)  # "failed: ... (after 0ms ...)", then "after 1ms"
        with self.lock:
            passed, held = self.seen.get(line, (None, 0))
            if passed is not None and now - passed < self.window:
                self.seen[line] = (passed, held + 1)
                return False
            if len(self.seen) >= self.remembered:  # bounded: forget lines out of the window
                self.seen = {k: v for k, v in self.seen.items() if now - v[0] < self.window}
            self.seen[line] = (now, 0)
        if held:
            record.msg, record.args = f"{text} ({held:,} more times since it was last logged)", ()
        return True


def json_configured() -> bool:
    """Whether Vigil's logs are JSON lines, so an error is one too (for a log pipeline
    that parses every line of the container's output)."""
    handlers = logging.getLogger("vigil").handlers
    return any(isinstance(handler.formatter, JsonFormatter) for handler in handlers)


class BurstWatch:
    """Logs when dead letters come in bursts: one line when `threshold` of them arrive
    within `window` seconds, then quiet until the window is over."""

    def __init__(self, logger: logging.Logger, threshold: int = 100, window: float = 60.0) -> None:
        self.logger = logger
        self.threshold = threshold
        self.window = window
        self.started = time.monotonic()
        self.reasons: Counter[str] = Counter()
        self.warned = False

    def add(self, reason: str) -> None:
        now = time.monotonic()
        if now - self.started >= self.window:
            self.started, self.reasons, self.warned = now, Counter(), False
        self.reasons[reason] += 1
        total = sum(self.reasons.values())
        if not self.warned and total >= self.threshold:
            self.warned = True
            self.logger.warning(
                "dead-letter burst",
                extra={
                    "count": total,
                    "seconds": round(now - self.started, 1),
                    "reasons": dict(self.reasons),
                },
            )
