"""What the benchmarks that compare two settings share: a stream written a day at a time,
and `vigil run` in a child process, watched from outside (wall time, peak RSS and the RSS
at each quarter of the run)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vigil.base.timeutil import MS_PER_DAY  # noqa: E402

# (event time, event) of one day: `day` counted from the first, `start` its midnight.
DayEvents = Callable[[int, int, random.Random], Iterable[tuple[int, dict[str, Any]]]]


def write_stream(path: Path, days: int, seed: int, day_events: DayEvents) -> int:
    """`days` days of events, each day's in event-time order, ending yesterday (later ones
    would be dead letters: input.max_future); returns how many."""
    rng = random.Random(seed)
    first = (int(time.time() * 1000) // MS_PER_DAY - days - 1) * MS_PER_DAY
    count = 0
    with path.open("wb") as out:
        for day in range(days):
            todays = sorted(day_events(day, first + day * MS_PER_DAY, rng), key=lambda e: e[0])
            out.writelines(orjson.dumps(body) + b"\n" for _, body in todays)
            count += len(todays)
    return count


@dataclass
class Result:
    seconds: float
    peak_mib: float
    quarters_mib: list[float]  # RSS at the end of each quarter of the run
    summary: str  # what the run printed on stdout

    def quarters(self) -> str:
        return " / ".join(f"{mib:.0f}" for mib in self.quarters_mib)

    def summary_count(self, heading: str) -> int:
        """The number after `heading` on the summary line that starts with it; 0 when
        the line is missing (the summary prints some lines only when not zero)."""
        for line in self.summary.splitlines():
            if line.startswith(heading):
                return int(line[len(heading) :].split()[0].replace(",", ""))
        return 0


def run(stream: Path, out_dir: Path, settings_env: dict[str, str]) -> Result:
    """`vigil run` on `stream`, with VIGIL_* settings from `settings_env`."""
    env = {**os.environ, "VIGIL_METRICS__PORT": "0", **settings_env}
    command = [sys.executable, "-m", "vigil.app.cli", "run", "--input", str(stream)]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as summary:
        child = subprocess.Popen(
            [*command, "--output", str(out_dir)],
            env=env,
            cwd=ROOT,
            stdout=summary,
            stderr=subprocess.DEVNULL,
        )
        samples: list[tuple[float, int]] = []  # (seconds, RSS KiB)
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            rss = _rss_kib(child.pid)
            if rss is not None:
                samples.append((time.perf_counter() - started, rss))
            time.sleep(0.25)
        seconds = time.perf_counter() - started
        summary.seek(0)
        said = summary.read().decode()
    if os.waitstatus_to_exitcode(status) != 0 or not samples:
        sys.exit(f"vigil run failed:\n{said}")
    quarters = [
        next((rss for at, rss in samples if at >= seconds * q / 4), samples[-1][1]) / 1024
        for q in (1, 2, 3, 4)
    ]
    return Result(seconds, usage.ru_maxrss / 1024, quarters, said)


def _rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def compare(
    stream: Path,
    work: Path,
    variants: list[tuple[str, dict[str, str]]],
    detail: Callable[[Result], str],
) -> list[Result]:
    """Run `stream` once per (label, VIGIL_* settings), each in its own process, print a
    line for each (with `detail` of its result), then the first against the second."""
    width = max(len(label) for label, _ in variants) + 1
    results = []
    for n, (label, env) in enumerate(variants):
        result = run(stream, work / f"out-{n}", env)
        results.append(result)
        print(
            f"  {label:<{width}} {result.seconds:5.1f} s, peak RSS {result.peak_mib:4.0f} MiB, "
            f"RSS at each quarter of the run {result.quarters()} MiB; {detail(result)}"
        )
    first, second = results[0], results[1]
    print(
        f"  {variants[0][0]} / {variants[1][0]}: peak RSS {first.peak_mib / second.peak_mib:.2f}, "
        f"time {first.seconds / second.seconds:.2f}"
    )
    return results
