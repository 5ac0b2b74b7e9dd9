"""Kafka mode end to end, through a real Apache Kafka broker (see tests/conftest.py).

Every test makes its own uuid-named topics. The reference for "what Vigil must output"
is a file-mode run of the same stream: Kafka mode has to give the same records.
"""

from __future__ import annotations

import gzip
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaException
from kafka_broker import KafkaBroker, free_port
from kafka_helpers import (
    OUTPUTS,
    as_multiset,
    distinct,
    file_outputs,
    make_topics,
    produce,
    read_outputs,
    read_topic,
    run_vigil,
    start_vigil,
    vigil_env,
    wait_for,
)
from support import ROOT, T0, committed_epoch, event, scenario_problems, scrape, vigil_command

from vigil.connectors.kafka import check_topics
from vigil.intake.simulate import FleetPlan, generate

pytestmark = pytest.mark.kafka

Outputs = dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[list[bytes], dict[str, dict[str, str]], Outputs]:
    """A simulated stream, its scenario manifest and the file-mode outputs for it."""
    work = tmp_path_factory.mktemp("fleet")
    lines, manifest = generate(FleetPlan(tenants=60, days=22, seed=21))
    stream = list(lines)
    events = work / "events.jsonl"
    events.write_bytes(b"".join(line + b"\n" for line in stream))
    done = run_vigil("run", "--input", str(events), "--output", str(work / "out"), "--quiet")
    assert done.returncode == 0, done.stderr
    return stream, manifest, file_outputs(work / "out")


def same_as_file_mode(got: Outputs, expected: Outputs) -> None:
    """Kafka outputs equal the file run's, as sets (a replay may repeat a record exactly);
    dead letters are compared without their source and position, which differ by design,
    and the id made from them."""
    for name in OUTPUTS:
        drop = ("position", "source", "deadletter_id") if name == "deadletter" else ()
        want, have = set(as_multiset(expected[name], drop)), set(as_multiset(got[name], drop))
        assert have == want, f"{name}: {len(have - want)} unexpected, {len(want - have)} missing"


def test_a_fleet_through_kafka_gives_the_file_mode_outputs(
    kafka_bootstrap: str, fleet: Any
) -> None:
    stream, manifest, expected = fleet
    topics = make_topics(kafka_bootstrap)
    produce(kafka_bootstrap, topics["input"], stream)
    done = run_vigil("run", "--kafka", kafka_bootstrap, "--until-end", env=vigil_env(topics))
    assert done.returncode == 0, done.stderr
    got = read_outputs(kafka_bootstrap, topics)
    # 22 days are too short for the two scenarios that wait 8 weeks
    too_short = ("usage_growth", "low_adoption")
    problems = scenario_problems(
        manifest, got["signals"], got["tasks"], got["notifications"], too_short
    )
    assert problems == []
    same_as_file_mode(got, expected)
    for record in got["deadletter"]:
        assert (
            record["position"]["topic"] == topics["input"] and record["position"]["partition"] == 0
        )
    # The summary counts what this run wrote (there are no files to read it back from).
    summary = dict(line.split(None, 1) for line in done.stdout.splitlines()[1:6])
    opened = {task["task_id"] for task in got["tasks"]}  # a record per change of each
    assert summary["tasks"].startswith(f"{len(opened):,} (")
    assert summary["notifications"] == f"{len(got['notifications']):,}"
    zones = done.stdout.split("tenants by zone", 1)[1].splitlines()[0]
    tenants = len({record["tenant_id"] for record in got["health"]})
    assert sum(int(part.split()[1]) for part in zones.split(",")) == tenants > 0
    # A CSM's "why?" for a tenant of a Kafka run: the story the file run's outputs tell.
    from vigil.app.explain import render, timeline

    tenant = next(t for t, info in sorted(manifest.items()) if info["scenario"] == "login_drop")
    told = run_vigil("explain", tenant, "--kafka", kafka_bootstrap, env=vigil_env(topics))
    assert told.returncode == 0, told.stderr
    assert told.stdout == render(timeline(expected, tenant, "the file run")) + "\n"
    assert "SIGNAL login_drop" in told.stdout and "RULE login-drop -> TASK" in told.stdout


def test_malformed_messages_are_dead_letters_with_offsets(kafka_bootstrap: str) -> None:
    topics = make_topics(kafka_bootstrap)
    good = [
        orjson.dumps(
            {
                "event_id": f"e{n}",
                "type": "user.session",
                "tenant_id": "acme",
                "ts": f"2026-03-02T1{n}:00:00Z",
            }
        )
        for n in range(3)
    ]
    lines = [good[0], b"{not json", good[1], b'{"event_id": "x", "type": "user.session"}', good[2]]
    produce(kafka_bootstrap, topics["input"], lines)
    done = run_vigil("run", "--kafka", kafka_bootstrap, "--until-end", env=vigil_env(topics))
    assert done.returncode == 0, done.stderr
    assert "events processed  3 " in done.stdout
    letters = read_topic(kafka_bootstrap, topics["deadletter"])
    assert sorted((d["position"]["offset"], d["reason"]) for d in letters) == [
        (1, "invalid_json"),
        (3, "missing_field"),
    ]
    assert all(
        d["position"]
        == {"topic": topics["input"], "partition": 0, "offset": d["position"]["offset"]}
        for d in letters
    )


def test_a_poison_message_mid_topic_is_dead_lettered_and_every_later_one_read(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Messages nested past what orjson writes stopped the run, and the same message stopped
    it again on every resume: the consumer halted for good."""
    topics = make_topics(kafka_bootstrap)
    good = [
        orjson.dumps(event("acme", "user.session", T0 + n * 60_000, event_id=f"e{n}"))
        for n in range(10)
    ]
    deep = b"[" * 100_000 + b"]" * 100_000
    poison = [
        good[0][:-1] + b',"attrs":{"a":' + deep + b"}}",  # past orjson's own limit
        # late, with attrs too deep for its dead letter to be written as JSON
        orjson.dumps(event("acme", "user.session", T0 - 86_400_000))[:-1]
        + b',"attrs":{"a":'
        + b"[" * 300
        + b"]" * 300
        + b"}}",
        good[3][:-1] + b',"segment":' + b"[" * 300 + b"]" * 300 + b"}",  # a wrong type, quoted
    ]
    lines = [good[0], poison[0], good[1], good[2], poison[1], good[3], poison[2], *good[4:]]
    produce(kafka_bootstrap, topics["input"], lines)
    args = ("run", "--kafka", kafka_bootstrap, "--until-end", "--recovery-dir", str(tmp_path))
    done = run_vigil(*args, "--snapshot-interval", "1ms", env=vigil_env(topics))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "events processed  10 " in done.stdout, done.stdout
    assert "dead letters      3 (too_deep 3)" in done.stdout, done.stdout
    letters = read_topic(kafka_bootstrap, topics["deadletter"])
    assert sorted((d["position"]["offset"], d["reason"]) for d in letters) == [
        (1, "too_deep"),
        (4, "too_deep"),
        (6, "too_deep"),
    ]
    assert all(d["position"]["topic"] == topics["input"] for d in letters)


@pytest.mark.parametrize(
    ("stop", "exit_code"),
    [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGTERM, 143)],
    ids=["SIGKILL", "SIGTERM"],
)
def test_stopped_mid_stream_then_restarted_loses_nothing(
    kafka_bootstrap: str, fleet: Any, tmp_path: Path, stop: signal.Signals, exit_code: int
) -> None:
    stream, _, expected = fleet
    topics = make_topics(kafka_bootstrap)
    env = vigil_env(topics)
    half = len(stream) // 2
    produce(kafka_bootstrap, topics["input"], stream[:half])
    store = tmp_path / "recovery"
    args = (
        "run",
        "--kafka",
        kafka_bootstrap,
        "--recovery-dir",
        str(store),
        "--snapshot-interval",
        "500ms",
    )
    first = start_vigil(*args, env=env, log=tmp_path / "first.log")
    try:
        # Mid-stream: some output is out, and at least one snapshot has been taken since.
        assert wait_for(kafka_bootstrap, topics["health"], 200, timeout=120), (
            tmp_path / "first.log"
        ).read_text()
        seen, deadline = committed_epoch(store), time.monotonic() + 60
        while committed_epoch(store) <= seen:
            assert time.monotonic() < deadline, (tmp_path / "first.log").read_text()
            time.sleep(0.05)
    finally:
        first.send_signal(stop)
        first.wait(30)
    assert first.returncode == exit_code, (tmp_path / "first.log").read_text()
    produce(kafka_bootstrap, topics["input"], stream[half:])
    second = run_vigil(*args, "--until-end", env=env)
    assert second.returncode == 0, second.stderr
    # It resumed from a snapshot, not from the start (which would also give these outputs).
    assert "at offset" in second.stderr and "from the beginning" not in second.stderr
    got = read_outputs(kafka_bootstrap, topics)
    same_as_file_mode(got, expected)
    if stop == signal.SIGTERM:
        # A clean stop wrote and snapshotted everything it had read: nothing is repeated.
        assert {name: len(got[name]) for name in OUTPUTS} == {
            name: len(expected[name]) for name in OUTPUTS
        }
    # After a kill, duplicates are allowed around the restart, but only as exact repeats
    # with the same id (of a task, the same version: each change is a record of its id).
    for name, key in (
        ("signals", ("signal_id",)),
        ("tasks", ("task_id", "version")),
        ("notifications", ("notification_id",)),
    ):
        by_id: dict[tuple[Any, ...], set[bytes]] = {}
        for record in got[name]:
            by_id.setdefault(tuple(record[k] for k in key), set()).add(
                orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
            )
        assert all(len(records) == 1 for records in by_id.values()), name


def test_a_broker_outage_mid_stream_loses_nothing(
    private_broker: KafkaBroker, fleet: Any, tmp_path: Path
) -> None:
    stream, _, expected = fleet
    bootstrap = private_broker.bootstrap
    topics = make_topics(bootstrap)
    env = vigil_env(topics)
    half = len(stream) // 2
    produce(bootstrap, topics["input"], stream[:half])
    store = tmp_path / "recovery"
    args = ("run", "--kafka", bootstrap, "--recovery-dir", str(store), "--snapshot-interval", "1s")
    log = tmp_path / "vigil.log"
    vigil = start_vigil(*args, env=env, log=log)
    try:
        assert wait_for(bootstrap, topics["health"], 200, timeout=120)
        private_broker.stop()
        time.sleep(5)
        private_broker.start()
        produce(bootstrap, topics["input"], stream[half:])
        expected_health = len(expected["health"])
        started = time.monotonic()
        caught_up = len(wait_for(bootstrap, topics["health"], expected_health, timeout=180))
        waited = time.monotonic() - started
    finally:
        vigil.terminate()
        vigil.wait(60)
    said = f"after the outage: {caught_up} of {expected_health} health records in {waited:.0f} s, "
    said += f"then exit {vigil.returncode} (143: rode it out, stopped by the test)"
    print(said)
    if vigil.returncode not in (0, 143):  # it gave up (exit 1): it must resume from its store
        resumed = run_vigil(*args, "--until-end", env=env)
        assert resumed.returncode == 0, resumed.stderr
    try:
        same_as_file_mode(read_outputs(bootstrap, topics), expected)
    except AssertionError as failed:  # say what Vigil did: a failure here is rare and slow
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:])
        raise AssertionError(f"{failed}\n{said}\n--- vigil log, last lines ---\n{tail}") from None


def test_two_processes_on_three_partitions_match_one(
    kafka_bootstrap: str, fleet: Any, tmp_path: Path
) -> None:
    stream, _, _ = fleet
    one, two = (
        make_topics(kafka_bootstrap, partitions=3),
        make_topics(kafka_bootstrap, partitions=3),
    )
    for topics in (one, two):
        produce(kafka_bootstrap, topics["input"], stream)
    single = run_vigil("run", "--kafka", kafka_bootstrap, "--until-end", env=vigil_env(one))
    assert single.returncode == 0, single.stderr
    addresses = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    processes = [
        start_vigil(
            "run",
            "--kafka",
            kafka_bootstrap,
            "--until-end",
            "--addresses",
            addresses,
            "--process-id",
            str(index),
            env=vigil_env(two),
            log=tmp_path / f"p{index}.log",
        )
        for index in range(2)
    ]
    for process in processes:
        assert process.wait(300) == 0, (tmp_path / "p0.log").read_text() + (
            tmp_path / "p1.log"
        ).read_text()
    got_one, got_two = read_outputs(kafka_bootstrap, one), read_outputs(kafka_bootstrap, two)
    for name in OUTPUTS:
        assert distinct(got_one[name]) == distinct(got_two[name]), name
    assert got_one["signals"] and got_one["tasks"]


def test_a_refused_connection_is_a_clear_error_within_seconds() -> None:
    started = time.monotonic()
    done = run_vigil("run", "--kafka", "127.0.0.1:9", env=vigil_env({}), timeout=60)
    # Within a few seconds, not kafka.connect_timeout (30 s): every broker refuses.
    assert time.monotonic() - started < 15
    assert done.returncode == 2
    assert "cannot reach Kafka at 127.0.0.1:9: the connection is refused" in done.stderr
    assert "Connection refused" in done.stderr  # why, not only "transport failure"
    assert "Traceback" not in done.stderr
    # The client retries about 20 times a second, each time saying so: said once now.
    assert done.stderr.count("Connect to ipv4#127.0.0.1:9 failed") == 1, done.stderr


def test_a_broker_that_never_answers_is_a_clear_error_within_the_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        started = time.monotonic()
        done = run_vigil(
            "run",
            "--kafka",
            f"127.0.0.1:{port}",
            env=vigil_env({}, VIGIL_KAFKA__CONNECT_TIMEOUT="3s"),
            timeout=60,
        )
    assert time.monotonic() - started < 20
    assert done.returncode == 2
    assert f"cannot reach Kafka at 127.0.0.1:{port} within 3 s" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_refused_delivery_fails_the_run(kafka_bootstrap: str) -> None:
    # The health topic takes no message over 200 bytes: every health record is refused.
    topics = make_topics(kafka_bootstrap, health={"max.message.bytes": "200"})
    produce(
        kafka_bootstrap,
        topics["input"],
        [
            orjson.dumps(
                {
                    "event_id": f"e{n}",
                    "type": "user.session",
                    "tenant_id": "acme",
                    "ts": f"2026-03-02T{n:02d}:00:00Z",
                }
            )
            for n in range(6)
        ],
    )
    done = run_vigil("run", "--kafka", kafka_bootstrap, "--until-end", env=vigil_env(topics))
    assert done.returncode == 1
    assert "Kafka refused" in done.stderr and topics["health"] in done.stderr


def test_produce_and_tail_commands(kafka_bootstrap: str, tmp_path: Path) -> None:
    topics = make_topics(kafka_bootstrap)
    events = tmp_path / "e.jsonl"
    rows = [
        {"event_id": f"e{n}", "type": "user.session", "tenant_id": f"t{n % 2}", "ts": T0 + n}
        for n in range(5)
    ]
    # A UTF-8 byte order mark before the first line is left out, as `vigil run` reads it.
    lines = b"\n".join(orjson.dumps(r) for r in rows) + b"\n\n{broken\n"
    events.write_bytes(b"\xef\xbb\xbf" + lines)
    made = run_vigil(
        "produce",
        "--input",
        str(events),
        "--kafka",
        kafka_bootstrap,
        "--topic",
        topics["input"],
        env=vigil_env(topics),
    )
    assert made.returncode == 0, made.stderr
    assert f"produced 6 messages to {topics['input']}" in made.stdout  # the blank line is skipped
    tailed = run_vigil(
        "tail", topics["input"], "--kafka", kafka_bootstrap, "--max", "6", env=vigil_env(topics)
    )
    assert tailed.returncode == 0, tailed.stderr
    assert tailed.stdout.splitlines() == [orjson.dumps(r).decode() for r in rows] + ["{broken"]
    # A gzip file is read as the file it holds; one cut short is told, after what it sent.
    packed = tmp_path / "e.jsonl.gz"
    many = b"".join(orjson.dumps({**rows[0], "event_id": f"g{n}"}) + b"\n" for n in range(5000))
    packed.write_bytes(gzip.compress(many)[:-3000])
    args = ("produce", "--input", str(packed), "--kafka", kafka_bootstrap)
    cut = run_vigil(*args, "--topic", topics["signals"], env=vigil_env(topics))
    assert cut.returncode == 2, cut.stderr
    told = re.search(
        r"cannot read .*e\.jsonl\.gz after ([\d,]+) messages \(\1 of them ack", cut.stderr
    )
    assert told is not None and 0 < int(told.group(1).replace(",", "")) < 5000, cut.stderr
    packed.write_bytes(gzip.compress(many))
    whole = run_vigil(*args, "--topic", topics["tasks"], env=vigil_env(topics))
    assert whole.returncode == 0 and "produced 5,000 messages" in whole.stdout, whole.stdout
    # So is gzip on standard input (`aws s3 cp s3://bucket/e.jsonl.gz - | vigil produce
    # --input -`), which went to the topic as compressed bytes cut at every newline byte.
    piped = subprocess.run(
        vigil_command(
            "produce",
            "--input",
            "-",
            "--kafka",
            kafka_bootstrap,
            "--topic",
            topics["notifications"],
        ),
        input=gzip.compress(many),
        capture_output=True,
        env=vigil_env(topics),
        cwd=ROOT,
        timeout=120,
    )
    assert piped.returncode == 0 and b"produced 5,000 messages" in piped.stdout, piped.stderr
    sent = read_topic(kafka_bootstrap, topics["notifications"])
    assert sent == [orjson.loads(line) for line in many.splitlines()]


def test_produce_tail_and_explain_log_the_kafka_clients_lines_as_settings_say(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # The client's own lines (here its debug lines, which it always writes when asked)
    # came out bare from these commands, whatever log.format and log.level said.
    topics = make_topics(kafka_bootstrap)
    events = tmp_path / "e.jsonl"
    events.write_bytes(orjson.dumps({"event_id": "a", "type": "x", "tenant_id": "t", "ts": T0}))
    config = tmp_path / "vigil.toml"
    config.write_text('[kafka.config]\ndebug = "generic"\n[log]\nlevel = "debug"\nformat = "json"')
    given = ("--kafka", kafka_bootstrap, "--config", str(config))
    env = vigil_env(topics)
    ran = {
        "produce": run_vigil("produce", "--input", str(events), *given, env=env),
        "tail": run_vigil("tail", topics["input"], "--max", "1", *given, env=env),
        "explain": run_vigil("explain", "t", *given, env=env),
    }
    logged = {}
    for command, done in ran.items():
        logged[command] = [orjson.loads(line) for line in done.stderr.splitlines()]  # JSON, each
        assert "vigil.kafka.client" in {entry["logger"] for entry in logged[command]}, command
    assert ran["produce"].returncode == 0 and ran["tail"].returncode == 0
    assert orjson.loads(ran["tail"].stdout) == orjson.loads(events.read_bytes())
    # No output about "t" (no run read the topic): an error, in the log's format too.
    assert ran["explain"].returncode == 2
    assert "no output about tenant 't'" in logged["explain"][-1]["error"]


def test_produce_names_a_line_too_long_for_a_message_and_sends_the_others(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # Both long lines stopped the produce with a traceback: the first, not an event, was
    # keyed by its own bytes, which doubled it past the producer's 1,000,000-byte limit.
    topics = make_topics(kafka_bootstrap)
    rows = [
        {"event_id": f"e{n}", "type": "user.session", "tenant_id": "t", "ts": T0 + n}
        for n in range(2)
    ]
    not_an_event = b"{" + b"x" * 600_000
    too_long = orjson.dumps({**rows[0], "event_id": "big", "attrs": {"note": "y" * 1_200_000}})
    lines = [orjson.dumps(rows[0]), not_an_event, too_long, orjson.dumps(rows[1])]
    events = tmp_path / "e.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    args = ("--input", str(events), "--kafka", kafka_bootstrap, "--topic", topics["input"])
    made = run_vigil("produce", *args, env=vigil_env(topics))
    assert made.returncode == 2, made.stderr
    assert made.stderr.splitlines()[-1] == (
        f"vigil produce: error: 1 of 4 messages not delivered to {topics['input']}: line 3 "
        f"({len(too_long):,} bytes): Unable to produce message: Broker: Message size too large"
    )
    tailed = run_vigil(
        "tail", topics["input"], "--kafka", kafka_bootstrap, "--max", "3", env=vigil_env(topics)
    )
    assert tailed.returncode == 0, tailed.stderr
    assert tailed.stdout.encode().splitlines() == [lines[0], not_an_event, lines[3]]


def test_produce_from_a_pipe_ended_by_ctrl_c_delivers_what_it_read_and_says_so(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = make_topics(kafka_bootstrap)
    args = ("produce", "--input", "-", "--kafka", kafka_bootstrap, "--topic", topics["input"])
    producer = subprocess.Popen(
        vigil_command(*args),
        env=vigil_env(topics),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert producer.stdin is not None
        for line in _sessions("live", 0, 50):  # a live feed that stays open
            producer.stdin.write(line.decode() + "\n")
        producer.stdin.flush()
        time.sleep(3)
        producer.send_signal(signal.SIGINT)
        producer.wait(60)  # with its input still open: the signal, not its end, stops it
        assert producer.stderr is not None
        said = producer.stderr.read()
    finally:
        producer.kill()
        producer.communicate()
    assert producer.returncode == 130, said
    assert f"interrupted: 50 of 50 messages acknowledged by {topics['input']}" in said, said
    assert len(read_topic(kafka_bootstrap, topics["input"])) == 50


def test_metrics_in_kafka_mode_show_partitions_and_readiness(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    import urllib.request

    topics = make_topics(kafka_bootstrap, partitions=2)
    port = free_port()
    rows = [
        orjson.dumps(
            {
                "event_id": f"e{n}",
                "type": "user.session",
                "tenant_id": f"t{n % 7}",
                "ts": 1_772_000_000_000 + n * 60_000,
            }
        )
        for n in range(400)
    ]
    produce(kafka_bootstrap, topics["input"], rows)
    env = vigil_env(topics, VIGIL_METRICS__PORT=str(port))
    vigil = start_vigil("run", "--kafka", kafka_bootstrap, env=env, log=tmp_path / "vigil.log")
    text, ready = "", 0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/metrics", timeout=5
                ) as response:
                    text = response.read().decode()
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/readyz", timeout=5
                ) as response:
                    ready = response.status
            except OSError:
                time.sleep(0.3)
                continue
            if (
                'vigil_events_total{type="user.session"} 400.0' in text
                and "vigil_kafka_consumer_lag_messages" in text
            ):
                break
            time.sleep(0.3)
    finally:
        vigil.terminate()
        vigil.wait(60)
    assert ready == 200
    assert 'vigil_events_total{type="user.session"} 400.0' in text
    for partition in ("0", "1"):
        labels = f'partition="{partition}",topic="{topics["input"]}"'
        assert f"vigil_kafka_consumer_lag_messages{{{labels}}} 0.0" in text


def test_partitions_without_traffic_do_not_hold_the_stream_back(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # One tenant, so every event lands in one of the three partitions; the other two
    # never get a message. Once they count as idle, time moves and health comes out.
    topics = make_topics(kafka_bootstrap, partitions=3)
    rows = [
        orjson.dumps(
            {
                "event_id": f"e{n}",
                "type": "user.session",
                "tenant_id": "solo",
                "ts": 1_772_000_000_000 + n * 600_000,
            }
        )
        for n in range(30)
    ]
    produce(kafka_bootstrap, topics["input"], rows)
    env = vigil_env(topics, VIGIL_KAFKA__IDLE_AFTER="1s", VIGIL_METRICS__PORT="0")
    vigil = start_vigil("run", "--kafka", kafka_bootstrap, env=env, log=tmp_path / "vigil.log")
    try:
        health = wait_for(kafka_bootstrap, topics["health"], 1, timeout=60)
    finally:
        vigil.terminate()
        vigil.wait(60)
    assert health and health[0]["tenant_id"] == "solo", (tmp_path / "vigil.log").read_text()


def _sessions(tenant: str, start_minute: int, count: int) -> list[bytes]:
    """`count` sessions of `tenant` ten minutes apart, from `start_minute` past a fixed hour."""
    return [
        orjson.dumps(
            {
                "event_id": f"{tenant}-{minute}",
                "type": "user.session",
                "tenant_id": tenant,
                "ts": 1_772_000_000_000 + minute * 60_000,
            }
        )
        for minute in range(start_minute, start_minute + 10 * count, 10)
    ]


def test_partitions_added_while_running_stop_the_run_and_a_restart_reads_them(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewPartitions

    topics = make_topics(kafka_bootstrap, partitions=1)
    produce(kafka_bootstrap, topics["input"], _sessions("first", 0, 30))
    env = vigil_env(topics)
    args = ("run", "--kafka", kafka_bootstrap, "--recovery-dir", str(tmp_path / "store"))
    log = tmp_path / "vigil.log"
    vigil = start_vigil(*args, env=env, log=log)
    try:
        assert wait_for(kafka_bootstrap, topics["health"], 1, timeout=60), log.read_text()
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        for future in admin.create_partitions([NewPartitions(topics["input"], 2)]).values():
            future.result(30)
        # A tenant only the new partition has, on time; the first one goes on in partition 0.
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        for line in _sessions("second", 240, 24):
            producer.produce(topics["input"], value=line, partition=1)
        for line in _sessions("first", 300, 30):
            producer.produce(topics["input"], value=line, partition=0)
        assert producer.flush(30) == 0
        vigil.wait(60)  # the partition count is checked every 10 s
    finally:
        vigil.kill()
        vigil.wait(30)
    said = log.read_text()
    assert vigil.returncode == 1, said
    assert "has 2 partitions now, and had 1 when the run started" in said, said
    again = run_vigil(*args, "--until-end", env=env)
    assert again.returncode == 0, again.stderr
    assert "partition=1 start=from the beginning" in again.stderr, again.stderr
    health = read_topic(kafka_bootstrap, topics["health"])
    assert any(record["tenant_id"] == "second" for record in health), health
    late = [d for d in read_topic(kafka_bootstrap, topics["deadletter"]) if d["reason"] == "late"]
    assert late == []


def test_input_the_topic_deleted_while_vigil_was_stopped_is_reported_not_skipped_silently(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    lines, _ = generate(FleetPlan(tenants=10, days=3, seed=8))  # 534 lines
    stream = list(lines)
    topics = make_topics(kafka_bootstrap)
    env = vigil_env(topics)
    args = ("run", "--kafka", kafka_bootstrap, "--until-end", "--recovery-dir", str(tmp_path))
    produce(kafka_bootstrap, topics["input"], stream[:300])
    first = run_vigil(*args, env=env)
    assert first.returncode == 0, first.stderr
    produce(kafka_bootstrap, topics["input"], stream[300:])
    # What retention does to a topic while Vigil is stopped: its oldest messages go.
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    [deleted] = admin.delete_records([TopicPartition(topics["input"], 0, 350)]).values()
    deleted.result(30)
    second = run_vigil(*args, env={**env, "VIGIL_LOG__FORMAT": "json"})
    assert second.returncode == 0, second.stderr
    # Every line on stderr is a JSON log record.
    logged = [orjson.loads(line) for line in second.stderr.splitlines()]
    events = {(record["logger"], record["event"].split(" [")[0]): record for record in logged}
    assert events[("vigil.kafka", "reading partition")]["start"] == "at offset 300", logged
    lost = events[("vigil.kafka", "input deleted by the topic's retention before it was read")]
    assert (lost["level"], lost["offsets"], lost["messages"]) == ("error", "300-349", 50)
    health = read_topic(kafka_bootstrap, topics["health"])
    assert health, "the run went on from the oldest message left"


def test_a_store_of_another_input_topic_is_refused_in_one_line(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # Bytewax panics on a stored partition the run does not list (a traceback, after
    # the broker was asked): kafka.topics.input changed under a recovery store.
    first, second = make_topics(kafka_bootstrap), make_topics(kafka_bootstrap)
    produce(kafka_bootstrap, first["input"], [orjson.dumps(event("acme", "user.session", T0))])
    args = ("run", "--kafka", kafka_bootstrap, "--until-end", "--recovery-dir", str(tmp_path))
    assert run_vigil(*args, env=vigil_env(first)).returncode == 0
    moved = run_vigil(*args, env=vigil_env({**first, "input": second["input"]}))
    assert moved.returncode == 2, moved.stderr
    said = (
        f"vigil run: error: recovery store {tmp_path} was reading 0-{first['input']}, not "
        f"topic {second['input']} with 1 partition (kafka.topics.input)"
    )
    assert said in moved.stderr and "Traceback" not in moved.stderr, moved.stderr


def test_a_store_of_a_topic_recreated_with_fewer_partitions_is_refused_in_one_line(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = make_topics(kafka_bootstrap, partitions=2)
    produce(kafka_bootstrap, topics["input"], _sessions("old", 0, 30))
    args = ("run", "--kafka", kafka_bootstrap, "--until-end", "--recovery-dir", str(tmp_path))
    assert run_vigil(*args, env=vigil_env(topics)).returncode == 0
    _recreate(kafka_bootstrap, topics["input"], partitions=1)
    fewer = run_vigil(*args, env=vigil_env(topics))
    assert fewer.returncode == 2, fewer.stderr
    was = f"0-{topics['input']}, 1-{topics['input']}"
    said = f"was reading {was}, not topic {topics['input']} with 1 partition (kafka.topics.input)"
    assert said in fewer.stderr and "Traceback" not in fewer.stderr, fewer.stderr


def _recreate(bootstrap: str, topic: str, partitions: int = 1) -> None:
    """Delete `topic` and create it again, empty."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics([topic]).values():
        future.result(30)
    deadline = time.monotonic() + 60
    while True:  # the deletion finishes in the background
        try:
            [made] = admin.create_topics([NewTopic(topic, partitions, 1)]).values()
            made.result(30)
            return
        except KafkaException:
            assert time.monotonic() < deadline, "the topic could not be created again"
            time.sleep(0.5)


def test_a_topic_recreated_while_vigil_was_stopped_is_read_from_its_start(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The store's offset is past the end of the new, shorter topic: a warning, and the new
    topic's messages are all read (none of them is counted as lost)."""
    topics = make_topics(kafka_bootstrap)
    env = vigil_env(topics, VIGIL_LOG__FORMAT="json")
    args = ("run", "--kafka", kafka_bootstrap, "--until-end", "--recovery-dir", str(tmp_path))
    produce(kafka_bootstrap, topics["input"], _sessions("old", 0, 30))
    first = run_vigil(*args, env=env)
    assert first.returncode == 0, first.stderr
    _recreate(kafka_bootstrap, topics["input"])
    produce(kafka_bootstrap, topics["input"], _sessions("new", 400, 10))
    second = run_vigil(*args, env=env)
    assert second.returncode == 0, second.stderr
    logged = [orjson.loads(line) for line in second.stderr.splitlines()]
    [past] = [r for r in logged if r["event"].startswith("input offset past the partition's end")]
    assert (past["level"], past["offset"], past["end"]) == ("warning", 30, 10), logged
    assert not [r for r in logged if "retention" in r["event"]], logged
    assert "events processed  10 " in second.stdout, second.stdout


def test_input_the_topic_deletes_while_vigil_is_running_is_reported_not_skipped_silently(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Retention overtaking a running Vigil (a consumer that fell a whole retention period
    behind). To hold Vigil back deterministically, offset 20 is a message in an open
    transaction: a read_committed consumer reads nothing past it, so the messages after it
    wait on the broker, unread, while the test deletes some of them as retention would."""
    from confluent_kafka import Producer, TopicPartition
    from confluent_kafka.admin import AdminClient

    topics = make_topics(kafka_bootstrap)
    lines = _sessions("acme", 0, 60)
    produce(kafka_bootstrap, topics["input"], lines[:20])  # offsets 0-19
    port = free_port()
    env = vigil_env(topics, VIGIL_METRICS__PORT=str(port), VIGIL_LOG__FORMAT="json")
    log = tmp_path / "vigil.log"
    vigil = start_vigil("run", "--kafka", kafka_bootstrap, env=env, log=log)

    def metric(name: str, **labels: str) -> float:
        try:
            samples = scrape(port)
        except OSError:
            return -1.0  # not serving yet
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def wait_until(done: Callable[[], bool], timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline or vigil.poll() is not None:
                return False
            time.sleep(0.2)
        return True

    def sessions_read() -> float:
        return metric("vigil_events_total", type="user.session")

    def expired() -> float:
        return metric("vigil_kafka_input_expired_total", topic=topics["input"], partition="0")

    try:
        assert wait_until(lambda: sessions_read() == 20), log.read_text()
        holder = Producer(
            {"bootstrap.servers": kafka_bootstrap, "transactional.id": f"hold-{topics['input']}"}
        )
        holder.init_transactions(30)
        holder.begin_transaction()
        holder.produce(topics["input"], value=lines[20])  # offset 20, not committed
        assert holder.flush(30) == 0
        produce(kafka_bootstrap, topics["input"], lines[21:])  # offsets 21-59
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        [deleted] = admin.delete_records([TopicPartition(topics["input"], 0, 40)]).values()
        deleted.result(30)
        holder.abort_transaction(30)
        assert wait_until(lambda: expired() == 20 and sessions_read() == 40), log.read_text()
    finally:
        vigil.terminate()
        vigil.wait(30)
    said = log.read_text()  # JSON log records, then the summary on stdout
    logged = [orjson.loads(line) for line in said.splitlines() if line.startswith("{")]
    [lost] = [r for r in logged if r["event"].startswith("input deleted by the topic's retention")]
    assert (lost["level"], lost["offsets"], lost["messages"]) == ("error", "20-39", 20), said
    assert "events processed  40 " in said, said  # 0-19 and 40-59, the rest are gone


def _fresh_names() -> dict[str, str]:
    run = uuid.uuid4().hex[:10]
    return {name: f"test.{run}.{name}" for name in ("input", *OUTPUTS)}


def test_topics_create_makes_the_missing_topics_as_the_settings_say(kafka_bootstrap: str) -> None:
    topics = _fresh_names()
    env = vigil_env(topics, VIGIL_KAFKA__CREATE__PARTITIONS="2")
    first = run_vigil("topics", "create", "--kafka", kafka_bootstrap, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count(" created") == 6, first.stdout
    again = run_vigil("topics", "create", "--kafka", kafka_bootstrap, env=env)
    assert again.returncode == 0 and again.stdout.count(" exists") == 6, again.stdout
    config = {"bootstrap.servers": kafka_bootstrap}
    assert set(check_topics(config, 30, read=list(topics.values())).values()) == {2}


def test_a_run_creates_the_missing_topics_at_start_when_asked(kafka_bootstrap: str) -> None:
    topics = _fresh_names()
    refused = run_vigil("run", "--kafka", kafka_bootstrap, "--until-end", env=vigil_env(topics))
    assert refused.returncode == 2 and "topics missing" in refused.stderr
    env = vigil_env(topics, VIGIL_KAFKA__CREATE__AT_START="true")
    done = run_vigil("run", "--kafka", kafka_bootstrap, "--until-end", env=env)
    assert done.returncode == 0, done.stderr
    assert "created topics" in done.stderr
    config = {"bootstrap.servers": kafka_bootstrap}
    assert set(check_topics(config, 30, read=list(topics.values())).values()) == {3}
