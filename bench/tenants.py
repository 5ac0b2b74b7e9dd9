"""What a tenant costs `vigil run` in memory: peak RSS at two fleet sizes, same events.

    python bench/tenants.py [--tenants 10000 100000] [--events 1000000]

Each fleet sends the same number of events, simulated and replayed by `vigil run` in a
process of its own, whose peak RSS is its own. The difference between the two peaks,
over the difference in tenants, is what one more tenant costs (the event ids held and
the interpreter are the same in both, so they cancel out). The simulator gives every
tenant the same activity, so the larger fleet's events span fewer hours, and more of
them wait in the queue at once (within input.allowed_lateness): part of what a tenant
costs here is its share of those. It prints each run's peak, time and event-time span,
and bytes per tenant.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import orjson  # noqa: E402
from throughput import make_stream  # noqa: E402

from vigil.base.timeutil import parse_rfc3339  # noqa: E402

MIB = 1 << 20


def replay(events: Path, out: Path) -> tuple[float, float]:
    """(seconds, peak MiB) of `vigil run` on `events`, in a child process."""
    command = ["run", "--input", str(events), "--output", str(out), "--quiet"]
    env = {**os.environ, "VIGIL_METRICS__PORT": "0"}
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "vigil.app.cli", *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"vigil run failed on {events}: run it alone to see why")
    return seconds, usage.ru_maxrss / 1024


def span_hours(events: Path) -> float:
    """Hours of event time from the stream's first line to its last (it is in order)."""
    with events.open("rb") as lines:
        first = orjson.loads(lines.readline())["ts"]
        lines.seek(max(0, events.stat().st_size - 4096))
        last = orjson.loads(lines.read().splitlines()[-1])["ts"]
    ms = [parse_rfc3339(ts) if isinstance(ts, str) else ts for ts in (first, last)]
    return (ms[1] - ms[0]) / 3_600_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, nargs=2, default=[10_000, 100_000])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    peaks = []
    with tempfile.TemporaryDirectory() as tmp:
        for tenants in args.tenants:
            events = Path(tmp) / f"events-{tenants}.jsonl"
            make_stream(events, args.events, tenants, args.seed)
            hours = span_hours(events)
            seconds, peak = replay(events, Path(tmp) / f"out-{tenants}")
            events.unlink()
            peaks.append(peak)
            fleet = f"{tenants:>9,} tenants  {args.events:,} events over {hours:,.0f} h"
            print(f"{fleet}  {seconds:6.1f} s  peak {peak:,.0f} MiB")
    (few, many), (low, high) = args.tenants, peaks
    per_tenant = (high - low) * MIB / (many - few)
    print(f"memory per tenant: {per_tenant:,.0f} bytes (peak difference over tenant difference)")


if __name__ == "__main__":
    main()
