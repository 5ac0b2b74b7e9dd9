"""A real, single-node Apache Kafka (KRaft) broker for the tests, without Docker.

Kafka 4.1 and its runtime dependencies come from Maven Central (scripts/kafka/pom.xml)
into a cache folder once; each broker gets a fresh data folder, free ports on
127.0.0.1, and is stopped cleanly at the end.

    python scripts/kafka_broker.py fetch            # download the jars into the cache
    python scripts/kafka_broker.py run              # start one, print its address, stop on Ctrl-C

Tests use `KafkaBroker` directly (tests/conftest.py).
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POM = ROOT / "scripts" / "kafka" / "pom.xml"
DEFAULT_CACHE = Path(os.environ.get("VIGIL_KAFKA_CACHE", ROOT / ".cache" / "kafka"))
KAFKA_JAR = "kafka_2.13-4.1.1.jar"
READY_LINE = "Kafka Server started"

_LOG4J2 = """\
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="out" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Logger name="kafka" level="INFO"/>
    <Logger name="org.apache.kafka" level="WARN"/>
    <Root level="WARN"><AppenderRef ref="out"/></Root>
  </Loggers>
</Configuration>
"""


class BrokerError(RuntimeError):
    pass


def fetch(cache: Path = DEFAULT_CACHE) -> Path:
    """The folder of Kafka's jars, downloaded through Maven the first time."""
    libs = cache / "libs"
    if (libs / KAFKA_JAR).exists():
        return libs
    if shutil.which("mvn") is None:
        raise BrokerError(
            "Maven (mvn) is needed to fetch Apache Kafka; install it, or set TEST_KAFKA_BOOTSTRAP"
        )
    partial = cache / "libs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    command = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={partial}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or not (partial / KAFKA_JAR).exists():
        raise BrokerError(
            f"fetching Kafka with Maven failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)  # only a complete download becomes the cache
    return libs


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class KafkaBroker:
    """One broker process; `start()` returns once it serves, `stop()` shuts it down.
    `stop()` then `start()` again restarts it on the same ports and data."""

    def __init__(
        self,
        cache: Path = DEFAULT_CACHE,
        workdir: Path | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        """`users` ({name: password}): clients must log in with SASL/PLAIN as one of them,
        and ACLs decide what each may do (the first user is a super user)."""
        self.users = users or {}
        self.libs = fetch(cache)
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="vigil-kafka-"))
        self.port, self.controller_port = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "broker.log"
        self._configure()

    def _listener_lines(self) -> list[str]:
        if not self.users:
            return [
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            ]
        admin, admin_password = next(iter(self.users.items()))
        accounts = " ".join(f'user_{name}="{word}"' for name, word in self.users.items())
        jaas = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{admin}" password="{admin_password}" {accounts};'
        )
        return [
            f"listeners=SASL_PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{self.port}",
            "inter.broker.listener.name=SASL_PLAINTEXT",
            "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
            "sasl.enabled.mechanisms=PLAIN",
            "sasl.mechanism.inter.broker.protocol=PLAIN",
            f"listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas}",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            # The controller listener has no login: its peer (this node) is ANONYMOUS.
            f"super.users=User:{admin};User:ANONYMOUS",
        ]

    def client_config(self, user: str | None = None, password: str | None = None) -> dict[str, str]:
        """librdkafka settings to reach this broker, logged in as `user` (default: the
        super user) with its password unless another is given."""
        config = {"bootstrap.servers": self.bootstrap}
        if self.users:
            user = user or next(iter(self.users))
            config |= {
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "PLAIN",
                "sasl.username": user,
                "sasl.password": password if password is not None else self.users[user],
            }
        return config

    def _configure(self) -> None:
        data = self.workdir / "data"
        self.properties = self.workdir / "server.properties"
        self.properties.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    *self._listener_lines(),
                    "controller.listener.names=CONTROLLER",
                    f"log.dirs={data}",
                    "num.partitions=1",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "log.segment.bytes=1048576",
                    "auto.create.topics.enable=false",
                ]
            )
            + "\n"
        )
        self.log4j = self.workdir / "log4j2.xml"
        self.log4j.write_text(_LOG4J2)
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        formatted = subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster_id}",  # an id may start with "-"
                "-c",
                str(self.properties),
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if formatted.returncode != 0:
            raise BrokerError(
                f"formatting Kafka storage failed:\n{formatted.stdout}\n{formatted.stderr}"
            )

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            "java",
            "-Xms256m",
            "-Xmx768m",
            "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j}",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    def start(self, timeout: float = 120.0) -> str:
        if self.process is not None:
            raise BrokerError("broker already running")
        log = self.log_path.open("ab")
        mark = self.log_path.stat().st_size
        self.process = subprocess.Popen(
            self._java("kafka.Kafka", str(self.properties)), stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                raise BrokerError(f"Kafka exited during start-up; log:\n{self._log_tail()}")
            with self.log_path.open("rb") as handle:
                handle.seek(mark)
                if READY_LINE.encode() in handle.read():
                    return self.bootstrap
            time.sleep(0.2)
        self.stop()
        raise BrokerError(f"Kafka did not start within {timeout:.0f} s; log:\n{self._log_tail()}")

    def stop(self, timeout: float = 60.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["fetch", "run"])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()
    if args.command == "fetch":
        print(fetch(args.cache))
        return
    broker = KafkaBroker(args.cache)
    try:
        print(broker.start(), flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        broker.close()


if __name__ == "__main__":
    try:
        main()
    except BrokerError as exc:
        sys.exit(f"kafka_broker: {exc}")
