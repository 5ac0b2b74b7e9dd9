from __future__ import annotations

import io
import os
import pty
import subprocess
import time
from pathlib import Path

from support import ROOT, run_vigil, vigil_command

from vigil.ops.metrics import Metrics
from vigil.ops.progress import Progress, format_progress


def test_format_gives_rate_share_and_eta() -> None:
    assert (
        format_progress(5000, 2.0, 250, 1000) == "5,000 events, 2,500/s, 25% of the input, ETA 0:06"
    )
    assert format_progress(10, 1.0, 0, None) == "10 events, 10/s"


def test_the_line_is_redrawn_on_its_stream_and_cleared_at_the_end() -> None:
    metrics = Metrics()
    metrics.record_types({"user.session": 7})
    metrics.dead_letters.labels("late").inc(2)
    stream = io.StringIO()
    progress = Progress(metrics, lambda: 50, 100, stream=stream, interval=0.01).start()
    deadline = time.monotonic() + 10  # a loaded machine may schedule the thread late
    while "of the input" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    progress.stop()
    text = stream.getvalue()
    assert "\r\x1b[K9 events" in text and "50% of the input" in text
    assert text.endswith("\r\x1b[K")


def test_a_terminal_gets_progress_and_the_outputs_do_not(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    # Enough events for a run of well over a second, so that the line (redrawn every
    # 0.5 s) is drawn: 150 tenants took 0.5 s.
    made = run_vigil("simulate", "--tenants", "600", "--days", "28", "--output", str(events))
    assert made.returncode == 0, made.stderr
    leader, follower = pty.openpty()
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
    assert b"events, " in seen and b"% of the input, ETA" in seen
    assert b"\x1b[K" not in done.stdout  # the summary on stdout is clean
    for output in (tmp_path / "out").iterdir():
        assert b"ETA" not in output.read_bytes()
