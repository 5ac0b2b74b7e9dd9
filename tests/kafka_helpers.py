"""Helpers for tests against a real broker: private topics, producing, reading back,
running `vigil` as a process."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from support import ROOT, run_vigil, vigil_command  # noqa: F401 - re-exported for the Kafka tests

from vigil.base.streams import OUTPUTS
from vigil.connectors.kafka_tools import tenant_key

# A broker's address, or the whole client config for one that wants a login.
Broker = str | Mapping[str, Any]


def client_config(broker: Broker) -> dict[str, Any]:
    return {"bootstrap.servers": broker} if isinstance(broker, str) else dict(broker)


def make_topics(bootstrap: Broker, partitions: int = 1, **topic_config: str) -> dict[str, str]:
    """Fresh uuid-named input and output topics; returns {stream: topic}."""
    run = uuid.uuid4().hex[:10]
    topics = {name: f"test.{run}.{name}" for name in ("input", *OUTPUTS)}
    admin = AdminClient(client_config(bootstrap))
    futures = admin.create_topics(
        [
            NewTopic(
                topic, partitions if name == "input" else 1, 1, config=topic_config.get(name, {})
            )
            for name, topic in topics.items()
        ]
    )
    for future in futures.values():
        future.result(30)
    return topics


def vigil_env(topics: dict[str, str], **extra: str) -> dict[str, str]:
    """Environment for a `vigil` process on these topics; no metrics endpoint unless asked."""
    env = {**os.environ, "VIGIL_METRICS__PORT": "0", **extra}
    for name, topic in topics.items():
        env[f"VIGIL_KAFKA__TOPICS__{name.upper()}"] = topic
    return env


def start_vigil(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen(
        vigil_command(*args), env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT
    )


def produce(bootstrap: Broker, topic: str, lines: list[bytes]) -> None:
    producer = Producer({**client_config(bootstrap), "enable.idempotence": True, "linger.ms": 20})
    for line in lines:
        producer.produce(topic, value=line, key=tenant_key(line))
        producer.poll(0)
    assert producer.flush(60) == 0


def read_topic(
    bootstrap: Broker, topic: str, idle: float = 3.0, deadline: float = 60.0
) -> list[dict[str, Any]]:
    """Every record on `topic` (all partitions), read until `idle` seconds pass without one."""
    consumer = Consumer(
        {
            **client_config(bootstrap),
            "group.id": f"t-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    records: list[dict[str, Any]] = []
    last = start = time.monotonic()
    try:
        while time.monotonic() - last < idle and time.monotonic() - start < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            records.append(orjson.loads(message.value() or b"null"))
            last = time.monotonic()
    finally:
        consumer.close()
    return records


def read_outputs(
    bootstrap: Broker, topics: dict[str, str], idle: float = 1.5
) -> dict[str, list[dict[str, Any]]]:
    return {name: read_topic(bootstrap, topics[name], idle) for name in OUTPUTS}


def wait_for(
    bootstrap: str, topic: str, count: int, timeout: float = 120.0
) -> list[dict[str, Any]]:
    """Read `topic` until it holds at least `count` records (or the timeout passes)."""
    deadline = time.monotonic() + timeout
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        records = read_topic(bootstrap, topic, idle=1.0)
        if len(records) >= count:
            break
    return records


def as_multiset(records: list[dict[str, Any]], drop: tuple[str, ...] = ()) -> Counter[bytes]:
    return Counter(
        orjson.dumps({k: v for k, v in r.items() if k not in drop}, option=orjson.OPT_SORT_KEYS)
        for r in records
    )


def distinct(records: list[dict[str, Any]]) -> set[bytes]:
    """The records as a set, without the input topic's name (which differs per test run),
    nor a dead letter's id, made from it."""
    plain = []
    for record in records:
        if "source" in record:
            position = {k: v for k, v in record["position"].items() if k != "topic"}
            record = {**record, "source": "-", "position": position, "deadletter_id": "-"}
        plain.append(record)
    return set(as_multiset(plain))


def file_outputs(out_dir: Path) -> dict[str, list[dict[str, Any]]]:
    return {
        name: [orjson.loads(line) for line in (out_dir / f"{name}.jsonl").read_bytes().splitlines()]
        for name in OUTPUTS
    }
