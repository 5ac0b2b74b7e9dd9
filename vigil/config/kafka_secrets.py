"""Which librdkafka settings are secrets, as librdkafka itself says.

librdkafka marks some properties sensitive (passwords, private keys, OAuth client
secrets and configs, the SASL user name, ...) and writes "[redacted]" for their values
when it logs a client's configuration. Vigil asks it, one property at a time, instead
of keeping a list of its own that a new librdkafka release would leave behind.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cache
from typing import Any

MASK = "***"
_REDACTED = "[redacted]"
# Values to try a property with: librdkafka refuses a value of the wrong type, and each of
# its types takes one of these.
_PROBES = ("x", "1", "true")


@cache
def is_sensitive(key: str) -> bool:
    """Whether librdkafka treats `key` as sensitive. A key it does not know, or takes no
    value for alone, counts as one: masking a setting that is no secret costs a log
    reader little, showing one that is costs much more."""
    from confluent_kafka import KafkaException  # a settings check needs no Kafka client

    for probe in _PROBES:
        try:
            shown = _configuration_logged({key: probe})
        except KafkaException as exc:
            if "Invalid value" in str(exc) or "Expected" in str(exc):
                continue  # a number, a flag or a choice: try the next probe
            return True
        except (ValueError, TypeError):
            return True
        return shown.get(key) == _REDACTED
    return False  # no free text fits: a choice among names, never a secret


def masked(config: Mapping[str, Any]) -> dict[str, Any]:
    """librdkafka settings with the value of every secret replaced by ***."""
    return {key: MASK if is_sensitive(key) else value for key, value in config.items()}


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _configuration_logged(config: dict[str, str]) -> dict[str, str]:
    """The configuration a client made with `config` logs (debug "conf"), as key ->
    value. The client connects to nothing: it has no bootstrap servers."""
    from confluent_kafka import Producer

    logger = logging.getLogger(f"{__name__}.probe")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    lines = _Lines()
    logger.addHandler(lines)
    try:
        client = Producer({**config, "debug": "conf", "logger": logger})
        client.poll(0)  # hands the queued log lines to `logger`
        del client
    finally:
        logger.removeHandler(lines)
    shown = {}
    for line in lines.lines:
        key, sep, value = line.rpartition("]: ")[2].strip().partition(" = ")
        if sep:
            shown[key] = value
    return shown
