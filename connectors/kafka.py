"""Kafka in and out, with confluent-kafka.

Source: one bytewax partition per topic partition, assigned (not subscribed), so the
offsets live in bytewax's recovery store together with the state they produced. Each
partition decodes its messages and keeps its own watermark, like a file does.

Sink: an idempotent producer per worker; every batch is flushed and every delivery
report checked, and any failure fails the dataflow instead of losing output (bytewax's
own KafkaSink does not check deliveries).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclOperation,
    AdminClient,
    NewTopic,
    OffsetSpec,
)

from vigil.base.errors import ConfigError, VigilError
from vigil.base.streams import ACTIONS, SinkItem
from vigil.config.kafka_secrets import MASK, masked
from vigil.intake.events import (
    DEFAULT_CATALOGUE,
    DEFAULT_LIMITS,
    Catalogue,
    DeadLetter,
    Event,
    Limits,
)
from vigil.intake.reader import Chunk, Intake
from vigil.ops.metrics import Metrics

log = logging.getLogger("vigil.kafka")

# Resume state of a topic partition: next offset to read, highest event time seen.
PartitionPosition = tuple[int, int | None]
# How often the input topic's partition count is compared with the one at start (s).
PARTITION_CHECK_INTERVAL = 10.0
# How long a partition that had nothing new is left before it is looked at again (s):
# the latency this may add, for about 10 cheap looks a second at a quiet partition.
POLL_INTERVAL = 0.1
# How often a partition that waits for slower ones (see _KafkaPartition._ahead) looks again.
ALIGN_INTERVAL = 0.02
_NOT_TOLD = object()


class KafkaUnavailable(VigilError):
    """The broker cannot be reached, or a topic is missing."""


class DeliveryFailed(VigilError):
    """Kafka did not acknowledge output; the run stops rather than lose it."""


class PartitionsChanged(VigilError):
    """The input topic has another partition count than at start: the run stops, since it
    reads only the partitions it started with (a restart reads them all)."""


# The consumer group of Vigil's readers. They are assigned their partitions and commit
# no offsets, but a Kafka consumer must name a group, and with ACLs the login needs
# Describe on it.
DEFAULT_GROUP = "vigil"


def group_of(config: Mapping[str, Any]) -> str:
    return str(config.get("group.id", DEFAULT_GROUP))


def read_failed(error: KafkaError, topic: str, config: Mapping[str, Any]) -> VigilError:
    """A consumer's error as the one line the run stops with; ACL refusals say which."""
    login = _login(config)
    if error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
        group = group_of(config)
        return KafkaUnavailable(
            f"{login} may not use the consumer group {group!r} to read {topic} (ACLs: grant "
            f"Describe on group {group}; Vigil commits no offsets to it)"
        )
    if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
        return KafkaUnavailable(f"{login} may not read {topic} (ACLs: grant Read)")
    return VigilError(f"Kafka error on {topic}: {error.str()}")


def _login(config: Mapping[str, Any]) -> str:
    return f"the login {config['sasl.username']!r}" if "sasl.username" in config else "Vigil"


# Errors by which a broker that answered refuses this client's login (SASL or TLS).
_LOGIN_REFUSED = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError._SSL,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.UNSUPPORTED_SASL_MECHANISM,
        KafkaError.ILLEGAL_SASL_STATE,
    }
)


def check_topics(
    config: Mapping[str, Any],
    timeout: float,
    *,
    read: Sequence[str] = (),
    write: Sequence[str] = (),
) -> dict[str, int]:
    """Partition counts of the topics to `read` and `write`, once the broker has answered
    and shown that they exist and that this login may use them. Otherwise
    KafkaUnavailable, in one line saying which of these it is: the broker cannot be
    reached, it refused the login, or a topic is missing or not permitted (Kafka ACLs)."""
    bootstrap = config.get("bootstrap.servers", "?")
    deadline = time.monotonic() + timeout
    admin = _connected_admin(config, timeout, deadline)
    topics = list(dict.fromkeys([*read, *write]))
    futures = admin.describe_topics(
        TopicCollection(topics),
        request_timeout=max(1.0, deadline - time.monotonic()),
        include_authorized_operations=True,
    )
    counts: dict[str, int] = {}
    missing, hidden, unreadable, unwritable = [], [], [], []
    for topic, future in futures.items():
        try:
            described = future.result()
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                missing.append(topic)
            elif error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                hidden.append(topic)  # Kafka does not say whether a hidden topic exists
            else:
                msg = f"cannot describe topic {topic} on Kafka at {bootstrap}: {error.str()}"
                raise KafkaUnavailable(msg) from None
            continue
        counts[topic] = len(described.partitions)
        allowed = described.authorized_operations  # None: the broker has no authorizer
        if allowed is None or AclOperation.ALL in allowed:
            continue
        if topic in read and AclOperation.READ not in allowed:
            unreadable.append(topic)
        if topic in write and AclOperation.WRITE not in allowed:
            unwritable.append(topic)
    login = _login(config)
    problems = []
    if missing:
        problems.append(f"topics missing: {', '.join(missing)} (create them first)")
    if hidden:
        problems.append(
            f"{login} may not see topics {', '.join(hidden)} (missing, or Kafka's ACLs give "
            "it no Describe on them)"
        )
    if unreadable:
        problems.append(f"{login} may not read {', '.join(unreadable)} (ACLs: grant Read)")
    if unwritable:
        problems.append(f"{login} may not write {', '.join(unwritable)} (ACLs: grant Write)")
    if problems:
        raise KafkaUnavailable(f"Kafka at {bootstrap}: {'; '.join(problems)}")
    return counts


def refusal(config: Mapping[str, Any]) -> str | None:
    """What the Kafka client says against `config` (a property it does not know, a value
    it does not take), asked before anything connects; None if it takes it."""
    try:
        AdminClient({**config, "log_level": 0})  # its warnings are a run's to log
    except KafkaException as exc:
        return _refused(exc, config)
    return None


def _refused(exc: KafkaException, config: Mapping[str, Any]) -> str:
    said = f"kafka.config: the Kafka client refuses it: {exc.args[0].str()}"
    for key, shown in masked(config).items():  # as an invalid value is quoted
        if shown == MASK and str(config[key]):
            said = said.replace(str(config[key]), MASK)
    return said


# How long every broker may refuse the connection before Vigil says so, rather than wait
# out kafka.connect_timeout: a broker that is starting refuses for a moment too.
REFUSED_FOR = 3.0


def create_topics(
    config: Mapping[str, Any],
    topics: Sequence[str],
    partitions: int,
    replication: int,
    timeout: float,
) -> dict[str, bool]:
    """Creates those of `topics` that do not exist, with `partitions` and `replication`
    (-1: the broker's default); whether each was created (False: it existed)."""
    bootstrap = config.get("bootstrap.servers", "?")
    deadline = time.monotonic() + timeout
    admin = _connected_admin(config, timeout, deadline)
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=replication) for t in topics],
        request_timeout=max(1.0, deadline - time.monotonic()),
    )
    created: dict[str, bool] = {}
    for topic, future in futures.items():
        try:
            future.result()
            created[topic] = True
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                msg = f"Kafka at {bootstrap} did not create topic {topic}: {error.str()}"
                raise KafkaUnavailable(msg) from None
            created[topic] = False
    return created


def _connected_admin(config: Mapping[str, Any], timeout: float, deadline: float) -> AdminClient:
    """An admin client whose broker has answered a metadata request. A refused login fails
    at once, where the request alone would only time out as a "transport failure", and
    brokers that all refuse the connection fail after REFUSED_FOR."""
    bootstrap = config.get("bootstrap.servers", "?")
    errors: list[KafkaError] = []
    refused_since: float | None = None
    try:
        admin = AdminClient({**config, "error_cb": errors.append})  # type: ignore[dict-item]
    except KafkaException as exc:  # a misspelt property: a traceback, before
        raise ConfigError(_refused(exc, config)) from None
    while True:
        try:
            admin.list_topics(timeout=min(0.5, max(0.05, deadline - time.monotonic())))
            return admin
        except KafkaException as exc:
            errors.append(exc.args[0])
        admin.poll(0)  # serves error_cb
        refused = next((e for e in errors if e.code() in _LOGIN_REFUSED), None)
        if refused is not None:
            msg = (
                f"Kafka at {bootstrap} refused the login: {refused.str()} (check "
                "security.protocol and the sasl.* or ssl.* settings in kafka.config)"
            )
            raise KafkaUnavailable(msg)
        now = time.monotonic()
        refusing = [e for e in errors if "Connection refused" in e.str()]
        if refusing and any(e.code() == KafkaError._ALL_BROKERS_DOWN for e in errors):
            refused_since = refused_since or now
            if now - refused_since >= REFUSED_FOR:
                msg = (
                    f"cannot reach Kafka at {bootstrap}: the connection is refused (by every "
                    f"broker, for {REFUSED_FOR:g} s; is Kafka running, and on that port?)"
                )
                raise KafkaUnavailable(msg)
        if now >= deadline:
            # The first error says why (name not known, say); the later ones only that
            # every broker is down.
            cause = next((e for e in errors if e.code() != KafkaError._ALL_BROKERS_DOWN), None)
            why = (cause or errors[-1]).str()
            raise KafkaUnavailable(f"cannot reach Kafka at {bootstrap} within {timeout:g} s: {why}")


def _offset_bounds(
    config: Mapping[str, Any], partition: TopicPartition, timeout: float
) -> tuple[int, int]:
    """A partition's oldest offset and its end, whatever the transactions open on it (a
    read_committed consumer's watermarks are not its log's bounds then)."""
    deadline = time.monotonic() + timeout
    admin = _connected_admin(config, timeout, deadline)
    bounds = []
    for spec in (OffsetSpec.earliest(), OffsetSpec.latest()):  # type: ignore[no-untyped-call]
        [future] = admin.list_offsets(
            {partition: spec}, request_timeout=max(1.0, deadline - time.monotonic())
        ).values()
        bounds.append(future.result().offset)
    return bounds[0], bounds[1]


class KafkaEventSource(FixedPartitionedSource[Chunk, PartitionPosition]):
    """Events from one topic. With `tail=False` each partition stops at the end it
    had when it was first read (a backfill); otherwise it waits for more."""

    def __init__(
        self,
        config: Mapping[str, Any],
        topic: str,
        lateness: int,
        *,
        batch_size: int = 1000,
        tail: bool = True,
        connect_timeout: float = 30.0,
        idle_after: float = 10.0,
        on_ready: Callable[[], None] | None = None,
        metrics: Metrics | None = None,
        max_future: int | None = None,
        max_bytes: int | None = None,
        limits: Limits = DEFAULT_LIMITS,
        catalogue: Catalogue = DEFAULT_CATALOGUE,
    ) -> None:
        self.config = dict(config)
        self.catalogue = catalogue
        self.topic = topic
        self.lateness = lateness
        self.batch_size = batch_size
        self.tail = tail
        self.connect_timeout = connect_timeout
        self.idle_after = idle_after
        self.on_ready = on_ready
        self.metrics = metrics
        self.max_future = max_future
        self.max_bytes = max_bytes
        self.limits = limits
        self.partitions: int | None = None
        # Event-time alignment of the partitions this process reads (see _KafkaPartition.
        # _ahead): the highest event time each has read, for those that hold the stream's
        # watermark back (not idle, not ended). Shared by the process's workers.
        self.read_up_to: dict[int, int] = {}
        self.read_up_to_lock = threading.Lock()

    def list_parts(self) -> list[str]:
        return [f"{index}-{self.topic}" for index in range(self.partition_count())]

    def resumes_from(self, stored: Collection[str]) -> bool:
        """Whether a recovery store holding positions of `stored` partitions was reading
        this topic: not one since renamed in kafka.topics.input, nor one recreated with
        fewer partitions. Partitions added since are fine: the store has no position for
        them yet."""
        return all(
            index.isdigit() and int(index) < self.partition_count() and topic == self.topic
            for index, _, topic in (part.partition("-") for part in stored)
        )

    def build_part(
        self, step_id: str, for_part: str, resume_state: PartitionPosition | None
    ) -> _KafkaPartition:
        index = int(for_part.split("-", 1)[0])
        return _KafkaPartition(self, index, self.partition_count(), resume_state)

    def partition_count(self) -> int:
        """The topic's partition count, asked of the broker once per process."""
        if self.partitions is None:
            counts = check_topics(self.config, self.connect_timeout, read=[self.topic])
            self.partitions = counts[self.topic]
        return self.partitions


def prefetch_share(partitions: int, batch_size: int) -> dict[str, int]:
    """How much a partition's consumer fetches ahead. librdkafka's defaults (100,000
    messages, 64 MiB) are per consumer, and Vigil runs one per partition: a script that
    only read a topic of 24 partitions peaked at 500 MiB, against 75 MiB for one. Split, a
    process reading every partition holds about what one consumer would; each keeps at
    least a batch and 1 MiB. Settings in [kafka.config] win."""
    return {
        "queued.min.messages": max(batch_size, 100_000 // partitions),
        "queued.max.messages.kbytes": max(1024, 65_536 // partitions),
    }


class _KafkaPartition(StatefulSourcePartition[Chunk, PartitionPosition]):
    def __init__(
        self,
        source: KafkaEventSource,
        index: int,
        partitions: int,
        resume: PartitionPosition | None,
    ) -> None:
        self.source = source
        self.index = index
        self.offset, max_ts = resume or (OFFSET_BEGINNING, None)
        self.intake = Intake(
            source.topic,
            f"{source.topic}/{index}",
            partitions,
            source.lateness,
            max_ts,
            source.max_future,
            source.max_bytes,
            limits=source.limits,
            catalogue=source.catalogue,
        )
        self.consumer = Consumer(
            {
                **prefetch_share(partitions, source.batch_size),
                **source.config,
                "group.id": group_of(source.config),
                "enable.auto.commit": False,  # offsets live in the recovery store
                "enable.partition.eof": not source.tail,
                # An offset the topic no longer has is an error to handle (_skip_expired),
                # not a silent jump to another one.
                "auto.offset.reset": "error",
            }
        )
        self.consumer.assign([TopicPartition(source.topic, index, self.offset)])
        self.where = {"topic": source.topic, "partition": index}  # for its log lines
        # A lost offset whose loss is not counted yet (see _skip_expired).
        self.lost_from: int | None = None
        self.last_message = time.monotonic()
        self.at_end = False
        # When to look for messages again after a look that found none (monotonic clock),
        # and the watermark the shards were last told (none yet).
        self.awake_at: float | None = None
        self.told_wm: object = _NOT_TOLD
        self.waiting = False  # for slower partitions (see _ahead)
        self.lag_checked = 0.0
        self.count_checked = time.monotonic()
        where = "from the beginning" if resume is None else f"at offset {self.offset}"
        log.info("reading partition", extra={**self.where, "start": where})

    def _skip_expired(self, at: int) -> None:
        """The topic no longer has offset `at`: its retention deleted the input from there
        before it was read (Vigil was stopped, or fell that far behind while running), or
        the partition was emptied or recreated. The consumer reports it instead of jumping
        on by itself (`auto.offset.reset=error`), so the loss is logged and counted, never
        silent; reading goes on from the oldest message left."""
        where = TopicPartition(self.source.topic, self.index)
        try:
            oldest, end = _offset_bounds(self.source.config, where, self.source.connect_timeout)
        except (KafkaException, KafkaUnavailable) as exc:
            log.error(
                "input at this offset is gone from the topic; reading from the oldest message "
                "left, and what was lost is counted when it comes",
                extra={**self.where, "offset": at, "error": str(exc)},
            )
            self.lost_from = at  # see _take
            self._read_from(OFFSET_BEGINNING)
            return
        if at > end:
            self._recreated(at, end=end)
        elif oldest > at:
            self._count_loss(at, oldest)
        self._read_from(at if oldest <= at <= end else oldest)

    def _count_loss(self, at: int, oldest: int) -> None:
        """Offsets `at` to `oldest - 1` were deleted before they were read."""
        lost = oldest - at
        log.error(
            "input deleted by the topic's retention before it was read",
            extra={**self.where, "offsets": f"{at}-{oldest - 1}", "messages": lost},
        )
        if self.source.metrics is not None:
            self.source.metrics.input_expired.labels(self.source.topic, str(self.index)).inc(lost)

    def _recreated(self, at: int, **found: int) -> None:
        """Offset `at` is past the partition's end (`found`: the end, or the first offset
        read from its start): nothing was lost, the partition is another one now."""
        log.warning(
            "input offset past the partition's end (the topic was emptied or recreated); "
            "reading from the oldest message left",
            extra={**self.where, "offset": at, **found},
        )

    def _read_from(self, offset: int) -> None:
        # Assigning again is the way on: after the error the partition accepts no seek.
        if offset >= 0:  # else it stays where the loss began, for a resume to meet it again
            self.offset = offset
        self.consumer.assign([TopicPartition(self.source.topic, self.index, offset)])

    def next_batch(self) -> list[Chunk]:
        if self.at_end:
            raise StopIteration
        batch: Chunk = []
        ahead = self._ahead()
        self._report_waiting(ahead)
        # Only what the consumer has fetched already: a worker reads its partitions one
        # after the other, so waiting here for one partition's next message holds up all
        # the others (half a second each made a round of 24 quiet partitions take 12 s).
        # With nothing fetched, next_awake has bytewax come back a little later.
        for message in () if ahead else self.consumer.consume(self.source.batch_size, 0):
            item = self._take(message)
            if item is not None:
                batch.append(item)
        if self.source.on_ready is not None:
            self.source.on_ready()  # connected: the consumer answered
        self._report_lag()
        if self.index == 0:  # one partition asks for the whole topic
            self._check_partition_count()
        now = time.monotonic()
        if ahead:
            if self._unread():
                self.last_message = now  # waiting to read, not idle
            self.awake_at = now + ALIGN_INTERVAL
        else:
            self.awake_at = None if batch or self.at_end else now + POLL_INTERVAL
        tick = self.intake.tick()
        if batch:
            self.last_message = now
        elif self.source.tail and now - self.last_message > self.source.idle_after:
            tick = tick._replace(wm=None)  # idle: do not hold the stream's watermark back
        self._report_progress(tick.wm is not None and not self.at_end)
        if not batch and tick.wm == self.told_wm:
            return []  # nothing read, and the shards know this watermark already
        self.told_wm = tick.wm
        batch.append(tick)
        return [batch]

    def _ahead(self) -> bool:
        """Whether this partition has read more than the allowed lateness of event time
        past the slowest partition of the process. Its events would only wait in memory
        until the slowest one's watermark passes them: reading a topic of 96 partitions from
        its start, partitions of lighter tenants ran days ahead, and 200,000 events waited.
        It reads on once the others catch up, or go idle or end."""
        mine = self.intake.max_ts
        with self.source.read_up_to_lock:
            if mine is None or self.index not in self.source.read_up_to:
                return False  # it holds nothing back (idle, or nothing read yet): reads on
            slowest = min(self.source.read_up_to.values())
        return mine - slowest > self.source.lateness

    def _unread(self) -> bool:
        """Whether the partition has messages past the ones read, as the consumer's last
        fetch saw its end. One that waits with none goes idle as if it read on."""
        end = self._fetched_end()
        return end is not None and end > self.offset

    def _report_waiting(self, waiting: bool) -> None:
        """Count the partition in vigil_kafka_partitions_waiting while it waits: its
        consumer lag grows meanwhile, on purpose."""
        if waiting != self.waiting and self.source.metrics is not None:
            gauge = self.source.metrics.partitions_waiting.labels(self.source.topic)
            if waiting:
                gauge.inc()
            else:
                gauge.dec()
        self.waiting = waiting

    def _report_progress(self, holding: bool) -> None:
        """Tell the process's other partitions how far this one has read, while it holds
        the stream's watermark back."""
        with self.source.read_up_to_lock:
            if holding and self.intake.max_ts is not None:
                self.source.read_up_to[self.index] = self.intake.max_ts
            else:
                self.source.read_up_to.pop(self.index, None)

    def next_awake(self) -> datetime | None:
        if self.awake_at is None:
            return None  # at once: more may be fetched already
        return datetime.now(UTC) + timedelta(seconds=max(0.0, self.awake_at - time.monotonic()))

    def _take(self, message: Message) -> Event | DeadLetter | None:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                self.at_end = True
                return None
            if error.code() == KafkaError._AUTO_OFFSET_RESET:
                self._skip_expired(message.offset() or 0)  # the offset it could not read
                return None
            raise read_failed(error, f"{self.source.topic}/{self.index}", self.source.config)
        offset = message.offset() or 0  # always set on a consumed message
        if self.lost_from is not None:
            # The broker could not say where the partition starts after a lost offset: the
            # first message read from its start says it.
            if offset > self.lost_from:
                self._count_loss(self.lost_from, offset)
            elif offset < self.lost_from:
                self._recreated(self.lost_from, first_offset=offset)
            self.lost_from = None
        self.offset = offset + 1
        position = {"topic": self.source.topic, "partition": self.index, "offset": offset}
        return self.intake.take(message.value() or b"", position)

    def _report_lag(self) -> None:
        """Messages behind the partition's end, every 5 s at most. The end is the one the
        consumer's last fetch brought: asking the broker waited behind the consumer's own
        fetch, a quarter of a second a time, which was most of the run reading a topic of
        24 partitions (316 s for 1M events against 49 s for one partition)."""
        metrics, now = self.source.metrics, time.monotonic()
        if metrics is None or now - self.lag_checked < 5.0 or self.offset < 0:
            return
        self.lag_checked = now
        end = self._fetched_end()
        if end is None:
            return  # no fetch has answered yet: the next check will tell
        metrics.consumer_lag.labels(self.source.topic, str(self.index)).set(
            max(0, end - self.offset)
        )

    def _fetched_end(self) -> int | None:
        """The partition's end as the consumer's last fetch brought it (no request to the
        broker); None before any fetch has answered."""
        partition = TopicPartition(self.source.topic, self.index)
        ends = self.consumer.get_watermark_offsets(partition, cached=True)
        return None if ends is None or ends[1] < 0 else ends[1]

    def _check_partition_count(self) -> None:
        """Partitions added while running would not be read until a restart, and their events
        would be late by then: stop now (every 10 s, one metadata request) so a restart
        reads them while their events are still on time."""
        now = time.monotonic()
        if now - self.count_checked < PARTITION_CHECK_INTERVAL:
            return
        self.count_checked = now
        topic = self.source.topic
        try:
            found = self.consumer.list_topics(topic, timeout=1.0).topics.get(topic)
        except KafkaException:
            return  # the broker is away: the next check will tell
        if found is None or found.error is not None:
            return  # the topic itself is gone: consuming reports that
        started_with = self.intake.partitions  # what the watermark waits on
        if len(found.partitions) != started_with:
            msg = (
                f"input topic {topic} has {len(found.partitions)} partitions now, and had "
                f"{started_with} when the run started; start it again to read them all "
                "(with a recovery store it resumes where it stopped)"
            )
            raise PartitionsChanged(msg)

    def snapshot(self) -> PartitionPosition:
        # Debug, as for a file: at info, a process reading 96 partitions logged 96 lines
        # at every snapshot (10 s), 35,000 an hour.
        log.debug("snapshot", extra={**self.where, "offset": self.offset})
        return (self.offset, self.intake.max_ts)

    def close(self) -> None:
        self._report_progress(False)
        self._report_waiting(False)
        self.consumer.close()


def produce(
    producer: Producer,
    topic: str,
    value: bytes,
    key: bytes | None,
    on_delivery: Callable[[Any, Any], None],
) -> str | None:
    """Hand one message to the producer, waiting while its local queue is full. What the
    producer refused at once, before any delivery report (a message over
    message.max.bytes), or None: the delivery report tells the rest."""
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
            return None
        except BufferError:
            producer.poll(0.1)  # let deliveries drain
        except KafkaException as exc:
            return str(exc.args[0].str())


def producer_config(config: Mapping[str, Any], linger_ms: int) -> dict[str, Any]:
    """A producer that loses and doubles nothing: idempotent, acknowledged by every
    replica (the settings refuse other values for these). Batching is the user's to tune."""
    return {"linger.ms": linger_ms, **config, "enable.idempotence": True, "acks": "all"}


class KafkaOutputSink(DynamicSink[SinkItem]):
    """`(stream, (records, read_at))` items to the stream's topic, keyed by tenant_id."""

    def __init__(
        self,
        config: Mapping[str, Any],
        topics: Mapping[str, str],
        flush_timeout: float = 120.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = dict(config)
        self.topics = dict(topics)
        self.flush_timeout = flush_timeout
        self.metrics = metrics

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _KafkaWriter:
        return _KafkaWriter(self)


class _KafkaWriter(StatelessSinkPartition[SinkItem]):
    def __init__(self, sink: KafkaOutputSink) -> None:
        self.sink = sink
        self.producer = Producer(producer_config(sink.config, linger_ms=5))
        self.failures: list[str] = []

    def write_batch(self, items: list[SinkItem]) -> None:
        for stream, (records, _) in items:
            topic = self.sink.topics[stream]
            for record in records:
                key = record.get("tenant_id")
                self._produce(topic, orjson.dumps(record), None if key is None else key.encode())
        left = self.producer.flush(self.sink.flush_timeout)
        if left:
            wait = self.sink.flush_timeout
            msg = f"{left} output messages not acknowledged by Kafka within {wait:g} s"
            raise DeliveryFailed(msg)
        if self.failures:
            failures, self.failures = self.failures, []
            msg = f"Kafka refused {len(failures)} output messages, first: {failures[0]}"
            raise DeliveryFailed(msg)
        if self.sink.metrics is not None:
            self.sink.metrics.observe_written(
                read_at
                for stream, (records, read_at) in items
                if stream in ACTIONS
                for _ in records
            )

    def _produce(self, topic: str, value: bytes, key: bytes | None) -> None:
        refused = produce(self.producer, topic, value, key, self._delivered)
        if refused is not None:
            if self.sink.metrics is not None:
                self.sink.metrics.delivery_errors.labels(topic).inc()
            msg = f"Kafka refused an output message of {len(value):,} bytes: {topic}: {refused}"
            raise DeliveryFailed(msg)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.failures.append(f"{message.topic()}: {error.str()}")
            if self.sink.metrics is not None:
                self.sink.metrics.delivery_errors.labels(message.topic() or "?").inc()

    def close(self) -> None:
        self.producer.flush(self.sink.flush_timeout)
