"""Session fixtures: a real Kafka broker for the tests marked `kafka`.

With TEST_KAFKA_BOOTSTRAP set, tests use that broker; otherwise one is started here
(scripts/kafka_broker.py: Apache Kafka from Maven, KRaft, 127.0.0.1) and stopped at the
end. A broker that cannot start is an error, never a skip; and under CI a skipped Kafka
test is reported as a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from kafka_broker import KafkaBroker


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    given = os.environ.get("TEST_KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    broker = KafkaBroker()
    try:
        yield broker.start()
    finally:
        broker.close()


@pytest.fixture
def private_broker() -> Iterator[KafkaBroker]:
    """A broker of this test's own, for tests that stop and restart it."""
    broker = KafkaBroker()
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and item.get_closest_marker("kafka") and os.environ.get("CI"):
        report.outcome = "failed"
        report.longrepr = f"a Kafka test may not skip in CI: {report.longrepr}"
