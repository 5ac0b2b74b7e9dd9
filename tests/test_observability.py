"""What an operator sees of a running `vigil run`: metrics, health endpoints, logs."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from kafka_broker import free_port
from support import DAY, HOUR, T0, clock, event, run_vigil, scrape, sessions

ROOT = Path(__file__).resolve().parents[1]
WEEK = 7 * DAY


def known_input() -> list[bytes]:
    """20 sessions one week, none the next: one login drop. Plus one duplicate, one
    unknown type, one line of garbage and one late event; the clock event is of a type
    outside the catalogue too."""
    week0 = sessions("acme", T0 + HOUR, 20, spacing=6 * HOUR)
    lines = [orjson.dumps(e) for e in week0]
    lines.append(orjson.dumps(week0[3]))  # resent
    lines.append(orjson.dumps(event("acme", "experiment.assigned", T0 + 5 * DAY)))
    lines.append(b"{garbage")
    lines.append(orjson.dumps(clock(T0 + 2 * WEEK + 2 * HOUR)))
    lines.append(orjson.dumps(event("beta", "user.session", T0 + 2 * WEEK - 5 * HOUR)))  # late
    return lines


def status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_metrics_and_health_of_a_running_file_replay(tmp_path: Path) -> None:
    port = free_port()
    env = {"VIGIL_METRICS__PORT": str(port), "VIGIL_LOG__FORMAT": "json", "PATH": "/usr/bin:/bin"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vigil.app.cli",
            "run",
            "--input",
            "-",
            "--output",
            str(tmp_path / "out"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    assert process.stdin is not None
    try:
        process.stdin.write(b"\n".join(known_input()) + b"\n")
        process.stdin.flush()  # stdin stays open: the run waits for more, so we can look
        deadline, samples = time.monotonic() + 60, {}
        while time.monotonic() < deadline:
            try:
                samples = scrape(port)
            except OSError:
                samples = {}
            actions = sum(v for (name, _), v in samples.items() if name == "vigil_actions_total")
            latencies = samples.get(("vigil_processing_latency_seconds_count", ()))
            # The engine counts an action when it makes it, the sink observes its latency
            # once written: wait until the sink has caught up with the signal's actions.
            if (
                samples.get(("vigil_signals_total", (("signal", "login_drop"),))) == 1
                and latencies == actions
            ):
                break
            time.sleep(0.2)
        assert status(port, "/healthz") == 200 and status(port, "/readyz") == 200
    finally:
        process.stdin.close()
        assert process.stderr is not None and process.stdout is not None
        stderr = process.stderr.read()
        process.stdout.read()
        process.wait(60)
    assert process.returncode == 0, stderr.decode()

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("vigil_events_total", type="user.session") == 20
    assert value("vigil_events_total", type="experiment.assigned") == 1
    assert value("vigil_unknown_event_types_total") == 2  # experiment.assigned, test.clock
    assert value("vigil_duplicate_events_total") == 1
    assert not [name for name, _ in samples if name.endswith("_created")]
    assert value("vigil_dead_letters_total", reason="invalid_json") == 1
    assert value("vigil_dead_letters_total", reason="late") == 1
    assert value("vigil_signals_total", signal="login_drop") == 1
    assert value("vigil_actions_total", rule="login-drop", kind="tasks") == 1
    assert value("vigil_actions_total", rule="login-drop", kind="notifications") == 1
    assert value("vigil_tenants") == 1  # "acme"; the clock's and beta's events never applied
    # acme's sessions are all behind the clock event's watermark; the clock is not queued.
    assert samples[("vigil_events_waiting", ())] == 0
    assert (
        sum(value("vigil_tenants_by_zone", zone=z) for z in ("green", "yellow", "orange", "red"))
        == 1
    )
    actions = sum(v for (name, _), v in samples.items() if name == "vigil_actions_total")
    assert (
        actions >= 2
    )  # login-drop's task and notification, and the zone rules' as acme goes quiet
    # One observation per task or notification record: a task's escalations too.
    changes = sum(v for (name, _), v in samples.items() if name == "vigil_task_changes_total")
    assert value("vigil_processing_latency_seconds_count") == actions + changes
    # Event time is 2026; the lag is wall clock minus the watermark, so it is large and positive.
    assert value("vigil_event_time_lag_seconds") > 0
    assert not any("tenant" in dict(labels) for _, labels in samples)  # no per-tenant labels
    # The process's own figures, as any Prometheus client serves them, and the version.
    from importlib.metadata import version

    assert value("process_resident_memory_bytes") > 10 * 2**20
    assert value("process_cpu_seconds_total") > 0 and value("process_open_fds") > 0
    assert value("vigil_build_info", version=version("vigil")) == 1

    log_lines = [orjson.loads(line) for line in stderr.splitlines() if line.startswith(b"{")]
    assert [line["event"] for line in log_lines][:1] == ["starting"]
    assert log_lines[-1]["event"] == "finished"
    assert len(log_lines) < 10  # notable events only, never a line per input event


def test_metrics_bind_to_loopback_and_a_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        events = tmp_path / "e.jsonl"
        events.write_bytes(b"\n".join(known_input()))
        env = {"VIGIL_METRICS__PORT": str(port), "PATH": "/usr/bin:/bin"}
        done = run_vigil("run", "--input", str(events), "--output", str(tmp_path / "o"), env=env)
    assert done.returncode == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}" in done.stderr


def test_the_status_endpoint_serves_on_ipv6_too() -> None:
    # An IPv6-only Kubernetes cluster gives pods only IPv6 addresses: metrics.host = "::"
    # failed with "Address family for hostname not supported".
    from vigil.ops.metrics import Metrics
    from vigil.ops.observe import Readiness, StatusServer

    server = StatusServer(Metrics(), Readiness(), "::1", 0)
    try:
        port = int(server.address.rsplit(":", 1)[1])
        assert server.address == f"[::1]:{port}"  # as a URL writes it
        url = f"http://{server.address}/healthz"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200 and response.read() == b"alive\n"
    finally:
        server.close()


def test_idle_connections_time_out_and_hold_no_thread_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """200 idle sockets held 204 threads, for as long as their clients liked."""
    import socket
    import threading

    from vigil.ops import observe
    from vigil.ops.metrics import Metrics

    monkeypatch.setattr(observe, "IDLE_TIMEOUT", 0.5)
    threads = threading.active_count()
    server = observe.StatusServer(Metrics(), observe.Readiness(), "127.0.0.1", 0)
    idle: list[socket.socket] = []
    try:
        host, port = server.address.split(":")
        for _ in range(200):
            idle.append(socket.create_connection((host, int(port)), timeout=5))
        time.sleep(0.3)
        # The server's thread and its pool, and a few of other tests' rule engines, whose
        # durable-rules hosts re-arm timer threads on their own (with 27 bundled rules a
        # CI run counted one more): far from a thread per connection.
        assert threading.active_count() <= threads + 1 + observe.WORKERS + 4
        # The first ones are closed by the server once idle for the timeout; those past
        # the pool and its queue at once. None is left open for good.
        for client in idle:
            assert client.recv(1) == b""  # the server's end of the connection
        url = f"http://{server.address}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
    finally:
        for client in idle:
            client.close()
        server.close()
