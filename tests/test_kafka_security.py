"""Kafka that asks for a login (SASL/PLAIN) and enforces ACLs, as managed Kafka does.

One broker of this module's own: users admin (a super user), vigil (the ACLs a run
needs and no more) and viewer (too few). The settings reach Vigil as an operator would
pass a secret: `VIGIL_KAFKA__CONFIG__SASL_PASSWORD` and friends in the environment.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from kafka_broker import KafkaBroker
from kafka_helpers import (
    OUTPUTS,
    as_multiset,
    file_outputs,
    make_topics,
    produce,
    read_outputs,
    run_vigil,
    vigil_env,
)

from vigil.intake.simulate import FleetPlan, generate

pytestmark = pytest.mark.kafka

USERS = {"admin": "admin-secret", "vigil": "vigil-secret", "viewer": "viewer-secret"}


@pytest.fixture(scope="module")
def secure_broker() -> Iterator[KafkaBroker]:
    broker = KafkaBroker(users=USERS)
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


def grant(
    broker: KafkaBroker,
    user: str,
    name: str,
    operation: AclOperation,
    kind: ResourceType = ResourceType.TOPIC,
) -> None:
    binding = AclBinding(
        kind,
        name,
        ResourcePatternType.LITERAL,
        f"User:{user}",
        "*",
        operation,
        AclPermissionType.ALLOW,
    )
    admin = AdminClient(broker.client_config())
    for future in admin.create_acls([binding]).values():
        future.result(30)


def login_env(
    broker: KafkaBroker, topics: dict[str, str], user: str, password: str
) -> dict[str, str]:
    return vigil_env(
        topics,
        VIGIL_KAFKA__BOOTSTRAP=broker.bootstrap,
        VIGIL_KAFKA__CONFIG__SECURITY_PROTOCOL="SASL_PLAINTEXT",
        VIGIL_KAFKA__CONFIG__SASL_MECHANISM="PLAIN",
        VIGIL_KAFKA__CONFIG__SASL_USERNAME=user,
        VIGIL_KAFKA__CONFIG__SASL_PASSWORD=password,
        VIGIL_KAFKA__CONNECT_TIMEOUT="30s",
    )


def fleet() -> list[bytes]:
    lines, _ = generate(FleetPlan(tenants=30, days=22, seed=21))
    return list(lines)


def test_a_login_with_the_acls_a_run_needs_gives_the_file_mode_outputs(
    secure_broker: KafkaBroker, tmp_path: Path
) -> None:
    topics = make_topics(secure_broker.client_config())
    grant(secure_broker, "vigil", topics["input"], AclOperation.READ)
    grant(secure_broker, "vigil", "vigil", AclOperation.DESCRIBE, ResourceType.GROUP)
    for name in OUTPUTS:
        grant(secure_broker, "vigil", topics[name], AclOperation.WRITE)
    stream = fleet()
    produce(secure_broker.client_config(), topics["input"], stream)
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(stream) + b"\n")
    reference = run_vigil("run", "--input", str(events), "--output", str(tmp_path / "out"))
    assert reference.returncode == 0, reference.stderr
    expected = file_outputs(tmp_path / "out")
    assert expected["signals"] and expected["tasks"]  # the comparison below means something

    done = run_vigil(
        "run", "--until-end", env=login_env(secure_broker, topics, "vigil", USERS["vigil"])
    )
    assert done.returncode == 0, done.stderr
    assert "vigil-secret" not in done.stderr  # the settings are logged, the secret masked
    got = read_outputs(secure_broker.client_config(), topics)
    for name in OUTPUTS:  # dead letters name their place: a line here, an offset there
        drop = ("position", "source", "deadletter_id") if name == "deadletter" else ()
        assert set(as_multiset(got[name], drop)) == set(as_multiset(expected[name], drop)), name


def test_a_refused_login_is_said_at_once_not_after_the_connect_timeout(
    secure_broker: KafkaBroker,
) -> None:
    topics = make_topics(secure_broker.client_config())
    tail = ("tail", topics["input"], "--kafka", secure_broker.bootstrap, "--max", "1")
    for command in (("run", "--until-end"), tail):
        started = time.monotonic()
        done = run_vigil(
            *command, env=login_env(secure_broker, topics, "vigil", "wrong"), timeout=60
        )
        assert time.monotonic() - started < 20, command  # the connect timeout is 30 s
        assert done.returncode == 2, done.stderr
        assert f"Kafka at {secure_broker.bootstrap} refused the login" in done.stderr
        assert "Invalid username or password" in done.stderr
        assert "Traceback" not in done.stderr


def test_missing_acls_are_named_topic_by_topic_before_anything_is_read(
    secure_broker: KafkaBroker,
) -> None:
    topics = make_topics(secure_broker.client_config())
    produce(secure_broker.client_config(), topics["input"], fleet()[:100])
    grant(secure_broker, "viewer", topics["input"], AclOperation.DESCRIBE)  # but not Read
    grant(secure_broker, "viewer", topics["health"], AclOperation.READ)  # but not Write
    for name in ("signals", "tasks", "notifications"):
        grant(secure_broker, "viewer", topics[name], AclOperation.WRITE)
    done = run_vigil(
        "run", "--until-end", env=login_env(secure_broker, topics, "viewer", USERS["viewer"])
    )
    assert done.returncode == 2, done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert f"Kafka at {secure_broker.bootstrap}:" in error
    assert f"the login 'viewer' may not see topics {topics['deadletter']} (" in error
    assert f"the login 'viewer' may not read {topics['input']} (ACLs: grant Read)" in error
    assert f"the login 'viewer' may not write {topics['health']} (ACLs: grant Write)" in error
    assert "Traceback" not in done.stderr
    written = read_outputs(secure_broker.client_config(), topics, idle=1.0)
    assert all(not written[name] for name in OUTPUTS)  # refused before anything was read


def test_a_login_without_the_consumer_group_acl_is_told_which_acl_to_grant(
    secure_broker: KafkaBroker,
) -> None:
    topics = make_topics(secure_broker.client_config())
    produce(secure_broker.client_config(), topics["input"], fleet()[:100])
    grant(secure_broker, "viewer", topics["input"], AclOperation.READ)
    for name in OUTPUTS:
        grant(secure_broker, "viewer", topics[name], AclOperation.WRITE)
    env = login_env(secure_broker, topics, "viewer", USERS["viewer"])
    tail = ("tail", topics["input"], "--kafka", secure_broker.bootstrap, "--max", "1")
    for command in (("run", "--until-end"), tail):
        done = run_vigil(*command, env=env, timeout=120)
        assert done.returncode != 0, command
        error = done.stderr.strip().splitlines()[-1]
        assert "the login 'viewer' may not use the consumer group 'vigil'" in error, error
        assert "grant Describe on group vigil" in error
