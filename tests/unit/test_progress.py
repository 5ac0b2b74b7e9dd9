from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import subprocess
import termios
import time
from pathlib import Path

from support import ROOT, run_vigil, vigil_command

from vigil.ops.metrics import Metrics
from vigil.ops.progress import Progress


def test_the_bar_is_redrawn_on_its_stream_and_gone_at_the_end() -> None:
    metrics = Metrics()
    metrics.record_types({"user.session": 7})
    metrics.dead_letters.labels("late").inc(2)
    stream = io.StringIO()
    progress = Progress(metrics, lambda: 50, 100, stream=stream, interval=0.01).start()
    deadline = time.monotonic() + 10  # a loaded machine may schedule the thread late
    while "9 events" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    progress.stop()
    text = stream.getvalue()
    assert "9 events" in text and "50%" in text
    assert text.rstrip(" ").endswith("\r")  # cleared: the summary starts on a clean line


def test_a_terminal_gets_progress_and_the_outputs_do_not(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    # Enough events for a run of well over a second, so that the line (redrawn every
    # 0.5 s) is drawn: 150 tenants took 0.5 s.
    made = run_vigil("simulate", "--tenants", "600", "--days", "28", "--output", str(events))
    assert made.returncode == 0, made.stderr
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 120 wide
    env = {**os.environ, "VIGIL_METRICS__PORT": "0"}
    done = subprocess.run(
        vigil_command("run", "--input", str(events), "--output", str(tmp_path / "out")),
        stderr=follower,
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert done.returncode == 0
    assert b" events, " in seen and b"%|" in seen and b"B/s" in seen
    # Every log line starts a line of its own: the bar is cleared before it, not written over.
    logged = [line for line in re.split(rb"[\r\n]", seen) if b" info " in line]
    assert logged and all(re.match(rb"\d\d:\d\d:\d\d info ", line) for line in logged), logged
    assert b"\x1b[K" not in done.stdout  # the summary on stdout is clean
    for output in (tmp_path / "out").iterdir():
        assert b"ETA" not in output.read_bytes()


def test_simulate_shows_its_days_on_a_terminal_and_writes_only_lines(tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    done = subprocess.run(
        vigil_command("simulate", "--tenants", "400", "--days", "6", "--seed", "3"),
        stderr=follower,
        stdout=subprocess.PIPE,
        cwd=ROOT,
        timeout=300,
    )
    os.close(follower)
    seen = b""
    while chunk := _read(leader):
        seen += chunk
    os.close(leader)
    assert done.returncode == 0
    assert b"/6 [" in seen and b"day/s" in seen  # days of 6, at a rate in days
    assert all(line.startswith(b"{") for line in done.stdout.splitlines())  # only events


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # the other end closed
        return b""
