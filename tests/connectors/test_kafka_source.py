"""What a Kafka source partition does when its next offset is gone from the topic
(connectors/kafka.py, _skip_expired), with the broker's answer stood in for: no broker
is needed, a consumer is only built and assigned here. The real broker's side is in
tests/test_kafka_mode.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING

import vigil.connectors.kafka as kafka
from vigil.connectors.kafka import KafkaEventSource, KafkaUnavailable
from vigil.ops.metrics import Metrics

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


class _Message:
    """A consumed message, as much of one as the partition reads."""

    def __init__(self, offset: int, ts: int = 1772409600000) -> None:
        self._offset = offset
        self.ts = ts

    def error(self) -> None:
        return None

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        event = {"event_id": f"e{self._offset}", "type": "user.session", "tenant_id": "t"}
        return orjson.dumps({**event, "ts": self.ts})


@pytest.mark.parametrize(
    ("first", "lost", "said"),
    [
        (40, 20, "'offsets': '20-39'"),  # retention took 20-39
        (20, 0, ""),  # still there after all
        (0, 0, "'first_offset': 0"),  # emptied or recreated
    ],
)
def test_when_the_broker_cannot_say_the_first_message_read_says_what_was_lost(
    bounds: dict[str, object], caplog: pytest.LogCaptureFixture, first: int, lost: int, said: str
) -> None:
    metrics = Metrics()
    part = partition_at(20, metrics)
    bounds["answer"] = KafkaUnavailable("cannot reach Kafka")
    try:
        with caplog.at_level(logging.WARNING, logger="vigil.kafka"):
            part._skip_expired(20)
            assert "what was lost is counted when it comes" in caplog.text
            [assigned] = part.consumer.assignment()
            assert assigned.offset == OFFSET_BEGINNING
            assert part.offset == 20  # a snapshot now resumes where the loss began
            assert expired(metrics) == 0
            caplog.clear()
            part._take(_Message(first))  # type: ignore[arg-type]
            part._take(_Message(first + 1))  # type: ignore[arg-type]
        assert expired(metrics) == lost  # counted once, at the first message
        assert part.offset == first + 2
        logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
        assert (said in logged) if said else not caplog.records, logged
    finally:
        part.close()


def test_an_output_message_the_producer_refuses_at_once_stops_the_run_saying_why() -> None:
    # An output over the producer's message.max.bytes is refused before any delivery
    # report: it raised Kafka's own exception, which reached the user as a traceback.
    metrics = Metrics()
    config = {"bootstrap.servers": "127.0.0.1:1", "message.max.bytes": 1000, "log_level": 0}
    sink = kafka.KafkaOutputSink(config, {"health": "cs.health"}, flush_timeout=1, metrics=metrics)
    writer = sink.build("out", 0, 1)
    record = {"tenant_id": "acme", "reasons": ["x" * 2000]}
    try:
        with pytest.raises(kafka.DeliveryFailed) as caught:
            writer.write_batch([("health", ([record], 0.0))])
    finally:
        writer.close()
    size = len(orjson.dumps(record))
    assert str(caught.value) == (
        f"Kafka refused an output message of {size:,} bytes: cs.health: Unable to produce "
        "message: Broker: Message size too large"
    )
    assert metrics.value("vigil_kafka_delivery_errors_total", topic="cs.health") == 1


def test_a_producer_is_idempotent_whatever_the_settings_and_batches_as_they_say() -> None:
    assert kafka.producer_config({"client.id": "cs"}, linger_ms=5) == {
        "linger.ms": 5,
        "client.id": "cs",
        "enable.idempotence": True,
        "acks": "all",
    }
    assert kafka.producer_config({"linger.ms": "50"}, linger_ms=5)["linger.ms"] == "50"


def test_a_setting_the_kafka_client_refuses_is_one_line_with_secrets_masked() -> None:
    # A misspelt librdkafka property stopped vigil run, tail and produce with a traceback.
    from confluent_kafka import KafkaError, KafkaException

    from vigil.connectors.kafka import refusal

    assert refusal({"client.id": "vigil", "sasl.password": "hunter2"}) is None
    assert refusal({"no.such.thing": "1"}) == (
        'kafka.config: the Kafka client refuses it: No such configuration property: "no.such.thing"'
    )
    quoting = KafkaException(KafkaError(KafkaError._INVALID_ARG, 'Invalid value "hunter2"'))
    said = kafka._refused(quoting, {"sasl.password": "hunter2", "client.id": "x"})
    assert said == 'kafka.config: the Kafka client refuses it: Invalid value "***"'


class _FetchedSoFar:
    """A consumer's local queue: consume hands out what is in it and notes how long it
    was asked to wait for more. `end` is the partition's end as the last fetch saw it."""

    def __init__(self, real: object) -> None:
        self.real = real  # for everything else
        self.queue: list[_Message] = []
        self.waits: list[float] = []
        self.end = 0

    def add(self, *times: int) -> None:
        self.queue += [_Message(self.end + n, ts) for n, ts in enumerate(times)]
        self.end += len(times)

    def get_watermark_offsets(self, partition: object, cached: bool) -> tuple[int, int]:
        return (0, self.end)

    def consume(self, num_messages: int, timeout: float) -> list[_Message]:
        self.waits.append(timeout)
        taken, self.queue = self.queue[:num_messages], self.queue[num_messages:]
        return taken

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


def test_a_quiet_partition_is_looked_at_again_later_without_holding_up_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A worker reads its partitions one after the other: a partition that waited for its
    # next message (half a second) made a round of 24 quiet partitions take 12 s, and
    # every event on a busy one waited that long to be read.
    clock = [1000.0]
    monkeypatch.setattr(kafka.time, "monotonic", lambda: clock[0])
    part = partition_at(0, Metrics())
    fetched = part.consumer = _FetchedSoFar(part.consumer)  # type: ignore[assignment]
    try:
        [first] = part.next_batch()  # nothing yet: the shards still learn the watermark
        assert [type(item).__name__ for item in first] == ["Tick"]
        assert part.next_batch() == []  # nothing new to tell them
        awake = part.next_awake()
        assert awake is not None
        assert 0 < (awake - datetime.now(UTC)).total_seconds() <= kafka.POLL_INTERVAL
        fetched.queue = [_Message(0), _Message(1)]
        [batch] = part.next_batch()
        assert [type(item).__name__ for item in batch] == ["Event", "Event", "Tick"]
        assert part.next_awake() is None  # more may have been fetched: at once
        clock[0] += 11  # past idle_after with nothing read: the stream is not held back
        [idle] = part.next_batch()
        assert idle == [batch[-1]._replace(wm=None, read_at=idle[0].read_at)]
        assert part.next_batch() == []
        assert set(fetched.waits) == {0}  # never waited for a message
    finally:
        part.close()


Partitions = tuple[list[float], list[kafka._KafkaPartition], list[_FetchedSoFar]]


@pytest.fixture
def fast_and_slow(monkeypatch: pytest.MonkeyPatch) -> Iterator[Partitions]:
    """A fake clock, and two partitions of one source with their consumers' queues: the
    first has read events of hours 0 and 5, the second of hour 0."""
    clock = [1000.0]
    monkeypatch.setattr(kafka.time, "monotonic", lambda: clock[0])
    source = KafkaEventSource({"bootstrap.servers": "127.0.0.1:9"}, "t", HOUR, metrics=Metrics())
    source.partitions = 2
    parts = [source.build_part("input", f"{n}-t", (0, None)) for n in range(2)]
    queues = []
    for part in parts:
        queue = _FetchedSoFar(part.consumer)
        part.consumer = queue  # type: ignore[assignment]
        queues.append(queue)
    try:
        queues[0].add(*_hours(0, 5))
        queues[1].add(*_hours(0))
        assert _read(parts[0].next_batch()) == _hours(0, 5)
        assert _read(parts[1].next_batch()) == _hours(0)
        yield clock, parts, queues
    finally:
        for part in parts:
            part.close()


def _hours(*hours: int) -> list[int]:
    return [1772409600000 + hour * HOUR for hour in hours]


def _read(batches: list[list[object]]) -> list[int]:
    """The event times of the events a partition handed on."""
    return [item.ts for batch in batches for item in batch if type(item).__name__ == "Event"]


def test_a_partition_far_ahead_in_event_time_waits_for_the_slowest_one(
    fast_and_slow: Partitions,
) -> None:
    # Reading a topic from its start, a partition of lighter tenants runs ahead in event
    # time, and its events wait in memory for the slowest partition's watermark: 200,000
    # of them for a 96-partition topic, growing with the backlog.
    clock, (fast, slow), (fast_queue, slow_queue) = fast_and_slow
    metrics = fast.source.metrics
    assert metrics is not None
    fast_queue.add(*_hours(6))
    assert fast.next_batch() == []  # 5 h ahead of the slowest, more than the lateness
    assert metrics.value("vigil_kafka_partitions_waiting", topic="t") == 1
    awake = fast.next_awake()
    assert awake is not None
    assert (awake - datetime.now(UTC)).total_seconds() <= kafka.ALIGN_INTERVAL
    assert fast_queue.queue  # left where it was fetched
    clock[0] += 11  # waiting to read is not idle: the stream still waits for it
    assert fast.next_batch() == []
    slow_queue.add(*_hours(4))
    assert _read(slow.next_batch()) == _hours(4)  # within the lateness now
    assert _read(fast.next_batch()) == _hours(6)
    assert metrics.value("vigil_kafka_partitions_waiting", topic="t") == 0
    fast_queue.add(*_hours(9))
    assert fast.next_batch() == []
    clock[0] += 11  # the slow partition goes quiet, then idle: nothing to wait for
    assert slow.next_batch()[0][-1].wm is None
    assert _read(fast.next_batch()) == _hours(9)
    assert fast.next_batch() == []  # read all it had


def test_a_partition_ahead_with_nothing_more_to_read_goes_idle_as_ever(
    fast_and_slow: Partitions,
) -> None:
    clock, (fast, slow), (fast_queue, slow_queue) = fast_and_slow
    assert fast.next_batch() == []  # ahead, and it has read all there is
    clock[0] += 11
    [[idle]] = fast.next_batch()  # so it stops holding the stream back
    assert idle.wm is None
    # Idle, it holds nothing back, and is not held back: a message that comes is read.
    fast_queue.add(*_hours(8))
    assert _read(fast.next_batch()) == _hours(8)
    fast_queue.add(*_hours(9))
    assert fast.next_batch() == []  # and it waits again, holding the stream back again
    slow_queue.add(*_hours(7))
    slow.next_batch()
    assert _read(fast.next_batch()) == _hours(9)


@pytest.mark.parametrize(
    ("config", "partitions", "prefetch"),
    [
        ({}, 1, (100_000, 65_536)),  # librdkafka's own defaults, for one consumer
        ({}, 24, (4_166, 2_730)),  # a process reading all 24 holds about as much
        ({}, 500, (1_000, 1_024)),  # at least a batch and 1 MiB each
        ({"queued.max.messages.kbytes": 9_000}, 24, (4_166, 9_000)),  # the settings win
    ],
)
def test_the_consumers_of_a_topic_share_what_one_would_fetch_ahead(
    monkeypatch: pytest.MonkeyPatch,
    config: dict[str, int],
    partitions: int,
    prefetch: tuple[int, int],
) -> None:
    built: list[dict[str, object]] = []

    class Consumer:
        def __init__(self, config: dict[str, object]) -> None:
            built.append(config)

        def assign(self, partitions: object) -> None:
            pass

    monkeypatch.setattr(kafka, "Consumer", Consumer)
    source = KafkaEventSource({"bootstrap.servers": "127.0.0.1:9", **config}, "t", HOUR)
    source.partitions = partitions
    source.build_part("input", "0-t", None)
    [made] = built
    assert (made["queued.min.messages"], made["queued.max.messages.kbytes"]) == prefetch


def test_each_partition_decodes_with_the_compiled_decoder() -> None:
    source = KafkaEventSource({"bootstrap.servers": "127.0.0.1:9"}, "t", HOUR)
    source.partitions = 1  # known: no broker is asked
    part = source.build_part("input", "0-t", (0, None))
    try:
        assert part.intake.decoder is not None
    finally:
        part.close()
