"""What a Kafka source partition does when its next offset is gone from the topic
(connectors/kafka.py, _skip_expired), with the broker's answer stood in for: no broker
is needed, a consumer is only built and assigned here. The real broker's side is in
tests/test_kafka_mode.py."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import OFFSET_BEGINNING

import connectors.kafka as kafka
from connectors.kafka import KafkaEventSource, KafkaUnavailable
from vigil.metrics import Metrics

HOUR = 3_600_000


def partition_at(offset: int, metrics: Metrics) -> kafka._KafkaPartition:
    source = KafkaEventSource({"bootstrap.servers": "127.0.0.1:9"}, "t", HOUR, metrics=metrics)
    source.partitions = 1  # known: no broker is asked
    return source.build_part("input", "0-t", (offset, None))


@pytest.fixture
def bounds(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Set ["answer"] to the (oldest, end) the broker gives, or to an exception."""
    said: dict[str, object] = {}

    def offset_bounds(config: object, partition: object, timeout: float) -> tuple[int, int]:
        answer = said["answer"]
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    monkeypatch.setattr(kafka, "_offset_bounds", offset_bounds)
    return said


def expired(metrics: Metrics) -> float:
    return metrics.value("vigil_kafka_input_expired_total", topic="t", partition="0")


@pytest.mark.parametrize(
    ("oldest", "end", "reads_from", "lost"),
    [
        (40, 60, 40, 20),  # retention took 20-39
        (0, 10, 0, 0),  # past the end: emptied or recreated, read it all
        (10, 60, 20, 0),  # still there (a leader change): read on where it was
    ],
)
def test_an_offset_gone_from_the_topic_is_counted_and_reading_goes_on(
    bounds: dict[str, object], oldest: int, end: int, reads_from: int, lost: int
) -> None:
    metrics = Metrics()
    part = partition_at(20, metrics)
    bounds["answer"] = (oldest, end)
    try:
        part._skip_expired(20)
        assert part.offset == reads_from
        [assigned] = part.consumer.assignment()
        assert assigned.offset == reads_from
        assert expired(metrics) == lost
    finally:
        part.close()


def test_when_the_broker_cannot_say_the_loss_is_logged_as_unknown(
    bounds: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    part = partition_at(20, metrics)
    bounds["answer"] = KafkaUnavailable("cannot reach Kafka")
    try:
        with caplog.at_level(logging.ERROR, logger="vigil.kafka"):
            part._skip_expired(20)
        assert "how much is lost is unknown" in caplog.text
        [assigned] = part.consumer.assignment()
        assert assigned.offset == OFFSET_BEGINNING
        assert part.offset == 20  # a snapshot now resumes where the loss began
        assert expired(metrics) == 0
    finally:
        part.close()
