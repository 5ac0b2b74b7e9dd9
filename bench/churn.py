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
import random
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from runs import Result, compare, write_stream  # noqa: E402

from vigil.base.timeutil import MS_PER_DAY, to_iso  # noqa: E402

Event = dict[str, Any]

FEATURES = ("reports", "alerts", "exports", "dashboards", "api", "sso")


def make_stream(path: Path, days: int, arrivals: int, active_days: int, per_day: int) -> int:
    """Events of the churning fleet; returns how many."""

    def day_events(day: int, start: int, rng: random.Random) -> Iterator[tuple[int, Event]]:
        # Tenants that started in the last `active_days` days are active today.
        for tenant in range(max(0, day - active_days + 1) * arrivals, (day + 1) * arrivals):
            for n in range(per_day):
                ts = start + rng.randrange(MS_PER_DAY)
                kind = "user.session" if n % 2 == 0 else "feature.used"
                body: Event = {
                    "event_id": f"t{tenant}-d{day}-{n}",
                    "type": kind,
                    "tenant_id": f"tenant-{tenant:06d}",
                    "ts": to_iso(ts),
                }
                if kind == "feature.used":
                    body["attrs"] = {"feature": rng.choice(FEATURES)}
                yield ts, body

    return write_stream(path, days, 7, day_events)


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
        never = {"VIGIL_ENGINE__FORGET_TENANTS_AFTER": "36500d"}

        def tenants(result: Result) -> str:
            forgotten = result.summary_count("tenants forgotten")
            return f"tenants forgotten {forgotten:,}, held at the end {ever - forgotten:,}"

        compare(stream, work, [("forget after 90d (default)", {}), ("keep all", never)], tenants)


if __name__ == "__main__":
    main()
