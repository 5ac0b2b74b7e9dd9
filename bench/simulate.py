"""What `vigil simulate` costs: time and peak memory for two fleet sizes.

    python bench/simulate.py [--tenants 10000 40000] [--days 2]

The simulator holds one day of the fleet's lines, to deliver them in arrival order, so
its memory grows with the fleet. Each fleet is simulated in its own process, whose peak
RSS is its own. It prints lines/s and peak RSS for each, and the memory each tenant adds.
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


def simulate(tenants: int, days: int, out: Path) -> tuple[int, float, float]:
    """(lines, seconds, peak MiB) of one `vigil simulate` in a child process."""
    started = time.perf_counter()
    command = ["simulate", "--tenants", str(tenants), "--days", str(days), "--output", str(out)]
    child = subprocess.Popen([sys.executable, "-m", "vigil.app.cli", *command], cwd=ROOT)
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"vigil simulate --tenants {tenants} failed")
    peak_mib = usage.ru_maxrss / 1024
    with out.open("rb") as lines:
        return sum(1 for _ in lines), seconds, peak_mib


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, nargs=2, default=[10_000, 40_000])
    parser.add_argument("--days", type=int, default=2)
    args = parser.parse_args()
    small, large = sorted(args.tenants)
    results = {}
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        for tenants in (small, large):
            lines, seconds, peak = simulate(tenants, args.days, Path(tmp) / f"{tenants}.jsonl")
            results[tenants] = peak
            print(
                f"{tenants:>8,} tenants, {args.days} days: {lines:>10,} lines, "
                f"{lines / seconds:>8,.0f} lines/s, peak {peak:.0f} MiB"
            )
    per_tenant_kib = (results[large] - results[small]) * 1024 / (large - small)
    print(
        f"memory per tenant: {per_tenant_kib:.1f} KiB; peak {large:,} / {small:,}: "
        f"{results[large] / results[small]:.2f} for {large / small:.1f}x the tenants"
    )


if __name__ == "__main__":
    main()
