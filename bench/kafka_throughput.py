"""Vigil through a real Kafka broker, beside file mode on the same stream, in one run.

    python bench/kafka_throughput.py [--events 1000000] [--tenants 10000] [--partitions 1]
                                     [--bootstrap HOST:PORT]

1. Simulates the stream (1M events over 10k tenants by default) and times `vigil run`
   on the file.
2. Produces it to a fresh topic (one partition, or --partitions keyed by tenant as
   `vigil produce` does), then times `vigil run --kafka ... --until-end` over it (a
   backfill: tail off, stop at the end of the topic).
3. Latency: with Vigil tailing a fresh topic (of as many partitions), produces a smaller
   fleet at a steady pace below Vigil's capacity and measures, for every task and
   notification, the time from producing the input event that moved the watermark past
   it to its arrival on the output topic (Kafka message timestamps), p50 and p99.

Without --bootstrap a broker is started from scripts/kafka_broker.py (Maven, Java).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))

from kafka_broker import KafkaBroker  # noqa: E402
from throughput import child, make_stream  # noqa: E402

from vigil.base.streams import OUTPUTS  # noqa: E402
from vigil.base.timeutil import parse_rfc3339  # noqa: E402

LATENESS_MS = 3_600_000


def topics_for(bootstrap: str, partitions: int = 1) -> dict[str, str]:
    run = uuid.uuid4().hex[:8]
    topics = {name: f"bench.{run}.{name}" for name in ("input", *OUTPUTS)}
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the futures
    for future in admin.create_topics(
        [NewTopic(topic, partitions if name == "input" else 1, 1) for name, topic in topics.items()]
    ).values():
        future.result(30)
    return topics


def env_for(topics: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, "VIGIL_METRICS__PORT": "0", "VIGIL_LOG__LEVEL": "WARNING"}
    env.update({f"VIGIL_KAFKA__TOPICS__{name.upper()}": topic for name, topic in topics.items()})
    return env


def produce(
    bootstrap: str, topic: str, lines: list[bytes], pace: float | None = None, keyed: bool = False
) -> list[float]:
    """Produce in order; returns each message's produce time. `pace`: messages/s.
    `keyed`: by tenant, so that a tenant's events stay in order in one partition."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    times, started = [], time.time()
    for index, line in enumerate(lines):
        if pace is not None:
            wait = started + index / pace - time.time()
            if wait > 0:
                time.sleep(wait)
        key = tenant_of(line) if keyed else None
        while True:
            try:
                producer.produce(topic, value=line, key=key)
                break
            except BufferError:
                producer.poll(0.05)
        times.append(time.time())
        producer.poll(0)
    assert producer.flush(120) == 0, "produce did not complete"
    return times


def tenant_of(line: bytes) -> bytes | None:
    try:
        tenant = orjson.loads(line).get("tenant_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None  # a malformed line of the simulator's: any partition will do
    return tenant.encode() if isinstance(tenant, str) else None


def read_with_timestamps(bootstrap: str, topic: str, idle: float = 3.0) -> list[tuple[float, dict]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    found, last = [], time.monotonic()
    while time.monotonic() - last < idle:
        message = consumer.poll(0.2)
        if message is None or message.error() is not None:
            continue
        found.append((message.timestamp()[1] / 1000, orjson.loads(message.value())))
        last = time.monotonic()
    consumer.close()
    return found


def event_time(line: bytes) -> int | None:
    try:
        ts = orjson.loads(line).get("ts")
        return ts if isinstance(ts, int) else parse_rfc3339(ts)
    except Exception:  # malformed on purpose: no event time
        return None


def latency(
    bootstrap: str, tenants: int, days: int, pace: float, work: Path, partitions: int = 1
) -> dict[str, float]:
    stream = work / "latency.jsonl"
    make_stream(stream, 10**9, tenants, seed=7, days=days)
    lines = stream.read_bytes().splitlines()
    topics = topics_for(bootstrap, partitions)
    vigil = subprocess.Popen(
        [sys.executable, "-m", "vigil.app.cli", "run", "--kafka", bootstrap, "--quiet"],
        env=env_for(topics),
        cwd=ROOT,
    )
    try:
        time.sleep(5)  # let it connect before the clock starts
        produced = produce(bootstrap, topics["input"], lines, pace, keyed=partitions > 1)
        time.sleep(5)
    finally:
        vigil.terminate()
        vigil.wait(60)
    # The watermark passes instant t when an event with ts >= t + lateness arrives.
    triggers, max_ts = [], -1
    for line, at in zip(lines, produced, strict=True):
        ts = event_time(line)
        if ts is not None and ts > max_ts:
            max_ts = ts
            triggers.append((max_ts, at))
    samples = []
    for stream_name, stamp_field in (("tasks", "created_at"), ("notifications", "ts")):
        for received, record in read_with_timestamps(bootstrap, topics[stream_name]):
            needed = parse_rfc3339(record[stamp_field]) + LATENESS_MS
            trigger = next(at for ts, at in triggers if ts >= needed)
            samples.append(received - trigger)
    samples.sort()
    return {
        "count": len(samples),
        "p50": statistics.median(samples) if samples else float("nan"),
        "p99": samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        if samples
        else float("nan"),
        "events": len(lines),
        "pace": pace,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=1, help="of the input topic")
    parser.add_argument("--bootstrap", help="use this broker instead of starting one")
    parser.add_argument("--latency-tenants", type=int, default=300)
    parser.add_argument("--latency-days", type=int, default=22)
    parser.add_argument("--latency-pace", type=float, default=8000.0, help="events/s produced")
    args = parser.parse_args()
    broker = None if args.bootstrap else KafkaBroker()
    bootstrap = args.bootstrap or broker.start()  # type: ignore[union-attr]
    try:
        with tempfile.TemporaryDirectory(prefix="vigil-kbench-") as tmp:
            work = Path(tmp)
            stream = work / "events.jsonl"
            print(
                f"simulating {args.events:,} events over {args.tenants:,} tenants ...", flush=True
            )
            make_stream(stream, args.events, args.tenants, seed=42)
            lines = stream.read_bytes().splitlines()
            file_run = child("full", stream, work / "out")
            file_rate = len(lines) / file_run["seconds"]
            topics = topics_for(bootstrap, args.partitions)
            started = time.perf_counter()
            produce(bootstrap, topics["input"], lines, keyed=args.partitions > 1)
            produce_rate = len(lines) / (time.perf_counter() - started)
            started = time.perf_counter()
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "vigil.app.cli",
                    "run",
                    "--kafka",
                    bootstrap,
                    "--until-end",
                    "--quiet",
                ],
                env=env_for(topics),
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            kafka_seconds = time.perf_counter() - started
            if done.returncode != 0:
                sys.exit(f"vigil run --kafka failed:\n{done.stderr}")
            kafka_rate = len(lines) / kafka_seconds
            print(f"file mode:   {file_rate:>10,.0f} events/s  ({file_run['seconds']:.1f} s)")
            print(
                f"kafka mode:  {kafka_rate:>10,.0f} events/s  ({kafka_seconds:.1f} s "
                f"incl. start-up; produce ran at {produce_rate:,.0f}/s)"
            )
            print(f"kafka / file: {kafka_rate / file_rate:.2f} ({args.partitions} partitions)")
            result = latency(
                bootstrap,
                args.latency_tenants,
                args.latency_days,
                args.latency_pace,
                work,
                args.partitions,
            )
            print(
                f"latency, input produced -> task/notification received "
                f"({result['count']} of them, {result['events']:,} events produced at "
                f"{result['pace']:,.0f}/s): "
                f"p50 {result['p50'] * 1000:,.0f} ms, p99 {result['p99'] * 1000:,.0f} ms"
            )
            print(json.dumps({"file_rate": file_rate, "kafka_rate": kafka_rate, **result}))
    finally:
        if broker is not None:
            broker.close()


if __name__ == "__main__":
    main()
