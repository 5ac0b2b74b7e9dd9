"""Memory over a long run with tenant churn: forgetting silent tenants against keeping all.

    python bench/churn.py [--days 365] [--arrivals 25] [--active-days 30] [--per-day 4]

A fleet where tenants keep arriving and leaving: every day `--arrivals` new tenants
start, each sends `--per-day` sessions and feature uses a day for `--active-days` days,
then nothing more. `vigil run` replays it twice, each in its own process, on the same
file: with `engine.forget_tenants_after` at its default, and with it so long that no
tenant is forgotten. It prints, for each, wall time, peak RSS, the RSS at each quarter of
the run, and how many tenants were forgotten; with forgetting, the state holds the
tenants of the last active period plus the setting, not every tenant ever seen.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vigil.timeutil import MS_PER_DAY, to_iso  # noqa: E402

FEATURES = ("reports", "alerts", "exports", "dashboards", "api", "sso")


def make_stream(path: Path, days: int, arrivals: int, active_days: int, per_day: int) -> int:
    """Time-ordered events of the churning fleet; returns how many."""
    rng = random.Random(7)
    # Ending yesterday: later events would be dead letters (input.max_future).
    start = (int(time.time() * 1000) // MS_PER_DAY - days - 1) * MS_PER_DAY
    count = 0
    with path.open("wb") as out:
        for day in range(days):
            # Tenants that started in the last `active_days` days are active today.
            active = range(max(0, day - active_days + 1) * arrivals, (day + 1) * arrivals)
            todays = []
            for tenant in active:
                for n in range(per_day):
                    ts = start + day * MS_PER_DAY + rng.randrange(MS_PER_DAY)
                    kind = "user.session" if n % 2 == 0 else "feature.used"
                    body = {
                        "event_id": f"t{tenant}-d{day}-{n}",
                        "type": kind,
                        "tenant_id": f"tenant-{tenant:06d}",
                        "ts": to_iso(ts),
                    }
                    if kind == "feature.used":
                        body["attrs"] = {"feature": rng.choice(FEATURES)}
                    todays.append((ts, body))
            todays.sort(key=lambda item: item[0])
            out.writelines(orjson.dumps(body) + b"\n" for _, body in todays)
            count += len(todays)
    return count


@dataclass
class Result:
    seconds: float
    peak_mib: float
    quarters_mib: list[float]  # RSS at the end of each quarter of the run
    forgotten: int


def run(stream: Path, out_dir: Path, forget_after: str | None) -> Result:
    """`vigil run` in a child process: its wall time, peak RSS and RSS as it runs."""
    env = {**os.environ, "VIGIL_METRICS__PORT": "0"}
    if forget_after is not None:
        env["VIGIL_ENGINE__FORGET_TENANTS_AFTER"] = forget_after
    command = [sys.executable, "-m", "vigil.cli", "run", "--input", str(stream)]
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
    forgotten = [line for line in said.splitlines() if line.startswith("tenants forgotten")]
    return Result(
        seconds=seconds,
        peak_mib=usage.ru_maxrss / 1024,
        quarters_mib=quarters,
        forgotten=int(forgotten[0].split()[2].replace(",", "")) if forgotten else 0,
    )


def _rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--arrivals", type=int, default=25, help="new tenants a day")
    parser.add_argument("--active-days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=4, help="events a tenant a day")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vigil-churn-") as tmp:
        work = Path(tmp)
        stream = work / "events.jsonl"
        events = make_stream(stream, args.days, args.arrivals, args.active_days, args.per_day)
        ever = args.days * args.arrivals
        print(
            f"{events:,} events over {args.days} days; {ever:,} tenants in all, each active "
            f"{args.active_days} days ({args.arrivals * args.active_days:,} at a time)"
        )
        results = {}
        for label, forget_after in (("forget after 90d (default)", None), ("keep all", "36500d")):
            result = results[label] = run(stream, work / label.split()[0], forget_after)
            quarters = " / ".join(f"{mib:.0f}" for mib in result.quarters_mib)
            print(
                f"  {label:<27} {result.seconds:5.1f} s, peak RSS {result.peak_mib:4.0f} MiB, "
                f"RSS at each quarter of the run {quarters} MiB; tenants forgotten "
                f"{result.forgotten:,}, held at the end {ever - result.forgotten:,}"
            )
        forgetting, keeping = results["forget after 90d (default)"], results["keep all"]
        print(
            f"  forgetting / keeping all: peak RSS {forgetting.peak_mib / keeping.peak_mib:.2f}, "
            f"time {forgetting.seconds / keeping.seconds:.2f}"
        )


if __name__ == "__main__":
    main()
