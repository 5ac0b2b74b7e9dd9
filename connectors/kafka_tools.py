"""Load a file into a topic, and read a topic back: for demos, tests and debugging."""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import sys
import time
import zlib
from collections.abc import Iterator
from typing import IO, Any, cast

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from vigil.base.errors import ConfigError, VigilError
from vigil.config.settings import KafkaSettings
from vigil.connectors.files import is_gzip, pipe_text
from vigil.connectors.kafka import (
    DeliveryFailed,
    check_topics,
    group_of,
    produce,
    producer_config,
    read_failed,
)
from vigil.intake.events import UTF8_BOM


def tenant_key(line: bytes) -> bytes:
    """Key by tenant so a tenant's events stay in one partition, in order. A line with no
    tenant (Vigil will dead-letter it) is keyed by a digest of its bytes, so loading the
    same file twice puts every message in the same partition (the line itself as its key
    would double a long line's size, past what Kafka takes)."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        event = None
    tenant = event.get("tenant_id") if isinstance(event, dict) else None
    if isinstance(tenant, str):
        return tenant.encode()
    return hashlib.blake2b(line, digest_size=16).digest()


class ProduceInterrupted(Exception):
    """Ctrl-C while producing: how many messages were sent and how many acknowledged."""

    def __init__(self, sent: int, acknowledged: int) -> None:
        super().__init__(f"{acknowledged:,} of {sent:,} messages acknowledged")
        self.sent = sent
        self.acknowledged = acknowledged


def produce_file(kafka: KafkaSettings, path: str, topic: str) -> int:
    """Every non-blank line of `path` as one message; raises if any is not acknowledged.
    Interrupted while reading (say, ending a live `... | vigil produce --input -`), it
    still delivers what it sent; interrupted again, or while delivering, it stops
    waiting. Either way it raises ProduceInterrupted with the counts."""
    failures: list[str] = []
    acknowledged = 0

    def delivered(error: KafkaError | None, message: Message) -> None:
        nonlocal acknowledged
        if error is not None:
            failures.append(error.str())
        else:
            acknowledged += 1

    count = 0
    with _open(path) as handle:  # opened first: a missing file is told before Kafka is tried
        config = kafka.client_config()
        check_topics(config, kafka.connect_timeout / 1000, write=[topic])
        producer = Producer(producer_config(config, linger_ms=20))
        interrupted, unreadable = False, None
        try:
            for number, line in enumerate(handle):
                line = line.rstrip(b"\r\n")
                if number == 0:  # as `vigil run` reads the file, so its messages are the same
                    line = line.removeprefix(UTF8_BOM)
                if not line.strip():
                    continue
                count += 1
                refused = produce(producer, topic, line, tenant_key(line), delivered)
                if refused is not None:  # a line longer than a message may be, say
                    failures.append(f"line {number + 1} ({len(line):,} bytes): {refused}")
                producer.poll(0)
        except KeyboardInterrupt:
            interrupted = True  # stop reading, but deliver what was sent
        except (OSError, EOFError, zlib.error) as exc:  # a gzip file cut short, a bad disk
            unreadable = exc  # likewise
    try:
        left = producer.flush(kafka.delivery_timeout / 1000)
    except KeyboardInterrupt:  # stop waiting too
        interrupted, left = True, len(producer)
    if interrupted:
        raise ProduceInterrupted(count, acknowledged)
    if unreadable is not None:
        msg = (
            f"--input: cannot read {path} after {count:,} messages ({acknowledged:,} of them "
            f"acknowledged by {topic}): {unreadable}"
        )
        raise VigilError(msg)
    if left or failures:
        first = failures[0] if failures else "timed out"
        raise DeliveryFailed(
            f"{left + len(failures)} of {count} messages not delivered to {topic}: {first}"
        )
    return count


def _open(path: str) -> IO[bytes]:
    if path == "-":
        return pipe_text(open(sys.stdin.fileno(), "rb", closefd=False), "stdin")
    try:
        if is_gzip(path):
            return cast(IO[bytes], gzip.open(path, "rb"))
        handle = open(path, "rb")  # noqa: SIM115 - returned open
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # a named pipe, <(...)
            return pipe_text(handle, path)
        return handle
    except OSError as exc:
        raise ConfigError(f"--input: cannot read {path}: {exc.strerror or exc}") from exc


def _reader(
    kafka: KafkaSettings, topic: str, extra: dict[str, Any]
) -> tuple[Consumer, int, dict[str, Any]]:
    """A consumer that commits nothing (offsets are chosen by assignment), how many
    partitions `topic` has, and the client config; a missing topic or broker is told first.
    It is in the run's consumer group, so one ACL on the group serves every reader."""
    config = kafka.client_config()
    partitions = check_topics(config, kafka.connect_timeout / 1000, read=[topic])[topic]
    settings = {**config, "group.id": group_of(config), "enable.auto.commit": False, **extra}
    return Consumer(settings), partitions, config


def tail_topic(
    kafka: KafkaSettings,
    topic: str,
    *,
    from_end: bool = False,
    limit: int | None = None,
    idle_exit: float | None = None,
) -> Iterator[bytes]:
    """The values of every partition of `topic`, as they come."""
    consumer, partitions, config = _reader(kafka, topic, {})
    start = OFFSET_END if from_end else OFFSET_BEGINNING
    consumer.assign([TopicPartition(topic, p, start) for p in range(partitions)])
    seen, last = 0, time.monotonic()
    try:
        while limit is None or seen < limit:
            message = consumer.poll(0.5)
            if message is None:
                if idle_exit is not None and time.monotonic() - last > idle_exit:
                    return
                continue
            error = message.error()
            if error is not None:
                raise read_failed(error, topic, config)
            last = time.monotonic()
            seen += 1
            yield message.value() or b""
    finally:
        consumer.close()


def read_keyed(kafka: KafkaSettings, topic: str, key: bytes) -> Iterator[bytes]:
    """The values of the messages keyed `key` on `topic`, from the start of every partition
    to where each ended when asked. Other keys are skipped without being decoded."""
    # The partition's end event, even if its last offset holds no message.
    consumer, partitions, config = _reader(kafka, topic, {"enable.partition.eof": True})
    try:
        ends = {}
        for p in range(partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=kafka.connect_timeout / 1000
            )
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        while ends:
            message = consumer.poll(kafka.connect_timeout / 1000)
            if message is None:
                raise VigilError(f"Kafka stopped answering while {topic} was read")
            error, partition, offset = message.error(), message.partition(), message.offset()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                raise read_failed(error, topic, config)
            if partition not in ends or offset is None:
                continue  # read to where it ended when asked
            if error is not None or offset + 1 >= ends[partition]:
                del ends[partition]  # at its end (then the message is the end event)
            if error is None and message.key() == key:
                yield message.value() or b""
    finally:
        consumer.close()
