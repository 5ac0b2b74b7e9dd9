"""No input stops `vigil run`: generated hostile lines (nesting up to 100,000 levels in
every field, megabytes of whitespace, wrong types nested deep, invalid UTF-8, huge
numbers and objects) run through the CLI with a recovery store snapshotting at every
batch, and every line is accounted for; a run killed anywhere resumes to the outputs of
one that was not."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import ROOT, T0, committed_epoch, event, quiet_env, run_vigil, vigil_command

from vigil.intake.simulate import FleetPlan, generate

pytestmark = pytest.mark.slow

FIELDS = ("event_id", "type", "tenant_id", "ts", "user_id", "attrs", "segment", "extra")
MIB = 1 << 20


def nested(depth: int, inner: bytes = b"1") -> bytes:
    """A JSON value `depth` levels deep, objects and arrays in turn."""
    opened = b"".join(b'{"k":' if level % 2 else b"[" for level in range(depth))
    closed = b"".join(b"}" if level % 2 else b"]" for level in reversed(range(depth)))
    return opened + inner + closed


def with_value(field: str, value: bytes, n: int) -> bytes:
    body = orjson.dumps(event(f"t{n % 7}", "feature.used", T0 + n * 1000, {"feature": "f"}))
    key = f'"{field}":'.encode()
    if key in body:  # replace the field's value: the event ends with attrs
        head, _, _ = body.partition(key)
        return head + key + value + b"}"
    return body[:-1] + b"," + key + value + b"}"


def _deep(draw: Any, n: int) -> bytes:
    field = draw(st.sampled_from(FIELDS))
    depth = draw(st.sampled_from([15, 16, 17, 254, 255, 256, 1_025, 100_000]))
    inner = draw(st.sampled_from([b"1", b'"x"', b"{}", b"null"]))
    return with_value(field, nested(depth, inner), n)


def _whitespace(draw: Any, n: int) -> bytes:
    blank = draw(st.sampled_from([b" ", b"\t", b"\r", b"\x0b"]))
    size = draw(st.sampled_from([MIB - 100, MIB, MIB + 1, 2 * MIB]))
    return blank * size + orjson.dumps(event("t", "user.session", T0 + n * 1000))


def _huge_number(draw: Any, n: int) -> bytes:
    field = draw(st.sampled_from(["ts", "attrs", "extra"]))
    number = draw(st.sampled_from([b"1e400", b"-1e400", b"1" + b"0" * 40, b"-9" * 30, b"1e-400"]))
    value = b'{"seats":' + number + b"}" if field == "attrs" else number
    return with_value(field, value, n).replace(b'"feature.used"', b'"contract.updated"')


def _huge_object(draw: Any, n: int) -> bytes:
    count = draw(st.sampled_from([255, 256, 257, 5_000, 60_000]))
    attrs = {"feature": "f", **{f"k{k}": k for k in range(count - 1)}}
    return orjson.dumps(event(f"t{n}", "feature.used", T0 + n, attrs))


def _raw(draw: Any, n: int) -> bytes:
    return draw(st.binary(max_size=60)).replace(b"\n", b"")


def _valid(draw: Any, n: int) -> bytes:
    return orjson.dumps(event(f"t{n % 5}", "user.session", T0 + n * 60_000))


KINDS = [_deep, _whitespace, _huge_number, _huge_object, _raw, _valid]


@st.composite
def hostile_streams(draw: Any) -> list[bytes]:
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=10, max_size=40))
    lines = [kind(draw, n) for n, kind in enumerate(kinds)]
    lines += [lines[0], b"", b"  \t"]  # a repeat, and blank lines
    return draw(st.permutations(lines))


def _summary_counts(out: str) -> dict[str, int]:
    events = re.search(r"events processed  ([\d,]+) in", out)
    repeats = re.search(r"([\d,]+) duplicates dropped", out)
    blank = re.search(r"([\d,]+) blank lines skipped", out)
    letters = re.search(r"dead letters      ([\d,]+)", out)
    assert events and repeats and letters, out

    def number(found: re.Match[str] | None) -> int:
        return int(found.group(1).replace(",", "")) if found else 0

    return {
        "events": number(events),
        "duplicates": number(repeats),
        "blank": number(blank),
        "dead letters": number(letters),
    }


@settings(
    max_examples=6,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(hostile_streams())
def test_hostile_lines_never_stop_a_run_and_each_is_accounted_for(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes]
) -> None:
    folder = tmp_path_factory.mktemp("hostile")
    path = folder / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    env = {**quiet_env(), "VIGIL_INPUT__BATCH_SIZE": "3", "VIGIL_INPUT__MAX_FUTURE": "off"}
    ran = run_vigil(
        "run", "--input", str(path), "--output", str(folder / "out"),
        "--recovery-dir", str(folder / "store"), "--snapshot-interval", "1ms",
        env=env, timeout=240,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "Traceback" not in ran.stderr, ran.stderr[-3000:]
    counts = _summary_counts(ran.stdout)
    assert sum(counts.values()) == len(lines), (counts, len(lines))
    letters = (folder / "out" / "deadletter.jsonl").read_bytes().splitlines()
    assert len(letters) == counts["dead letters"]
    reasons = {orjson.loads(letter)["reason"] for letter in letters}
    assert "decode_failed" not in reasons, reasons  # every line was decoded as designed


def _stream(path: Path) -> None:
    """A simulated fleet with hostile lines among its events."""
    draw = random.Random(11)
    lines, _ = generate(FleetPlan(tenants=60, days=21, seed=5))
    lines = [line.rstrip(b"\n") for line in lines]
    for n in range(0, len(lines), 97):
        lines.insert(n, with_value(draw.choice(FIELDS), nested(draw.choice([20, 300, 5_000])), n))
    path.write_bytes(b"\n".join(lines) + b"\n")


def _killed(args: tuple[str, ...], env: dict[str, str], ready: Any, delay: float) -> None:
    """`vigil run ARGS` SIGKILLed `delay` seconds after `ready()` holds (or it ended)."""
    run = subprocess.Popen(
        vigil_command(*args),
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not ready() and run.poll() is None:
            time.sleep(0.001)
        time.sleep(delay)
        run.send_signal(signal.SIGKILL)
        run.wait(30)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(30)


def _ids(out: Path) -> dict[str, list[str]]:
    found = {}
    for stream in ("health", "signals", "tasks", "notifications", "deadletter"):
        records = [
            orjson.loads(line) for line in (out / f"{stream}.jsonl").read_bytes().splitlines()
        ]
        found[stream] = sorted(next(iter(record.values())) for record in records)
    return found


def test_a_run_killed_at_a_random_point_resumes_to_the_outputs_of_one_that_was_not(
    tmp_path: Path,
) -> None:
    events = tmp_path / "events.jsonl"
    _stream(events)
    env = {**quiet_env(), "VIGIL_INPUT__BATCH_SIZE": "50", "VIGIL_INPUT__MAX_FUTURE": "off"}
    whole = run_vigil("run", "--input", str(events), "--output", str(tmp_path / "whole"), env=env)
    assert whole.returncode == 0, whole.stderr[-3000:]
    args = (
        "run", "--input", str(events), "--output", str(tmp_path / "out"),
        "--recovery-dir", str(tmp_path / "store"), "--snapshot-interval", "20ms",
    )  # fmt: skip
    seed = time.time_ns()
    delay = random.Random(seed).uniform(0, 0.5)  # anywhere after the first snapshots
    _killed(args, env, lambda: committed_epoch(tmp_path / "store") >= 2, delay)
    resumed = run_vigil(*args, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _ids(tmp_path / "out") == _ids(tmp_path / "whole"), f"killed {delay:.3f} s in"


def test_a_run_killed_while_its_store_is_made_leaves_one_the_next_run_takes(
    tmp_path: Path,
) -> None:
    """Killed in the first milliseconds of its store (4 in 15 such kills left a store that
    every later run refused), the next run on the same folder completes."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(orjson.dumps(event("t", "user.session", T0)) + b"\n")
    draw = random.Random(3)
    for attempt in range(8):
        store, out = tmp_path / f"store-{attempt}", tmp_path / f"out-{attempt}"
        args = ("run", "--input", str(events), "--output", str(out), "--recovery-dir", str(store))
        _killed(args, quiet_env(), store.exists, draw.uniform(0, 0.03))
        again = run_vigil(*args)
        assert again.returncode == 0, (attempt, again.stderr[-2000:])
