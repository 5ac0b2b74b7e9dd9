from __future__ import annotations

import argparse
import io
import logging

import orjson
import pytest

from vigil.base.logs import BurstWatch, JsonFormatter, PlainFormatter, RepeatedLines
from vigil.config.settings import load_settings


def capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"test.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, stream


def test_json_lines_carry_the_extras_as_fields() -> None:
    logger, stream = capture(JsonFormatter())
    logger.info("connected to Kafka", extra={"bootstrap": "b:9092", "input_partitions": 3})
    line = orjson.loads(stream.getvalue())
    assert line["event"] == "connected to Kafka" and line["level"] == "info"
    assert line["bootstrap"] == "b:9092" and line["input_partitions"] == 3


def test_plain_lines_are_one_line_with_key_values() -> None:
    logger, stream = capture(PlainFormatter())
    logger.warning("dead-letter burst", extra={"count": 120})
    assert stream.getvalue().count("\n") == 1 and "dead-letter burst count=120" in stream.getvalue()


def test_input_in_a_plain_line_can_neither_forge_a_line_nor_drive_the_terminal() -> None:
    # An event type is input: a newline in it wrote a second, made-up log line.
    logger, stream = capture(PlainFormatter())
    forged = "x.y\n16:00:00 error   FAKE LINE"
    logger.info("events of a type outside the catalogue", extra={"type": forged})
    logger.info("forgot", extra={"first": "acme\x1b[2J", "tenants": ["b\x07"]})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "\x1b" not in stream.getvalue()
    assert lines[0].endswith("type=x.y\\n16:00:00 error   FAKE LINE")
    assert lines[1].endswith("first=acme\\x1b[2J tenants=['b\\x07']")


def test_bidirectional_controls_and_unicode_line_breaks_are_written_out() -> None:
    # U+202E shows what follows it right to left: "acme\u202eliam" displays as "acmemail".
    from vigil.base.logs import escaped

    assert escaped("acme\u202eliam\u2066x\u2028y") == "acme\\u202eliam\\u2066x\\u2028y"
    assert escaped("caf\u00e9 \u65e5\u672c") == "caf\u00e9 \u65e5\u672c"  # other text stays


def test_a_burst_of_dead_letters_is_one_line_not_one_per_letter() -> None:
    logger, stream = capture(JsonFormatter())
    watch = BurstWatch(logger, threshold=100, window=60)
    for n in range(250):
        watch.add("invalid_json" if n % 2 else "late")
    [line] = [orjson.loads(text) for text in stream.getvalue().splitlines()]
    assert line["event"] == "dead-letter burst" and line["count"] == 100
    assert line["reasons"] == {"late": 50, "invalid_json": 50}


def test_a_trickle_of_dead_letters_logs_nothing() -> None:
    logger, stream = capture(JsonFormatter())
    watch = BurstWatch(logger, threshold=100, window=60)
    for _ in range(99):
        watch.add("late")
    assert stream.getvalue() == ""


def test_the_start_line_never_shows_a_secret() -> None:
    from vigil.app.cli import _start_info

    env = {
        "VIGIL_KAFKA__BOOTSTRAP": "b:9092",
        "VIGIL_KAFKA__CONFIG__SASL_PASSWORD": "hunter2",
        "VIGIL_KAFKA__CONFIG__SASL_OAUTHBEARER_CONFIG": "scope=x secret=hunter3",
    }
    settings = load_settings(None, env=env)
    info = _start_info(argparse.Namespace(workers=1, config=None), settings, True, None)
    assert info["kafka_config"] == {"sasl.password": "***", "sasl.oauthbearer.config": "***"}
    assert "hunter" not in orjson.dumps(info).decode()


def test_the_kafka_clients_repeated_lines_pass_once_a_window_then_say_how_many_were_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A broker refusing connections: about 20 identical lines a second, 580 in a 30 s wait.
    clock = [1000.0]
    monkeypatch.setattr("vigil.base.logs.time.monotonic", lambda: clock[0])
    logger, stream = capture(PlainFormatter())
    logger.filters[:] = [RepeatedLines(window=60.0, remembered=4)]
    refused = "b1:9092/bootstrap: Connect to ipv4#10.0.0.1:9092 failed: refused (after {}ms)"
    for n in range(100):
        logger.error(refused.format(n % 7))  # the time it took varies: the same line still
        logger.error("b2:9092/bootstrap: Connect to ipv4#10.0.0.2:9092 failed: refused")
        clock[0] += 0.05
    said = stream.getvalue().splitlines()
    assert len(said) == 2 and "10.0.0.1" in said[0] and "10.0.0.2" in said[1]  # each broker
    clock[0] += 60
    logger.error(refused.format(3))
    last = stream.getvalue().splitlines()[-1]
    assert last.endswith("(after 3ms) (99 more times since it was last logged)")
    for n in range(10):  # other lines, each once: only a few are remembered
        logger.error(f"line {n}")
        clock[0] += 61
    assert len(logger.filters[0].seen) <= 4  # type: ignore[attr-defined]
    assert len(stream.getvalue().splitlines()) == 13
