"""A producer that puts ids into names: the key limit per tenant against no limit.

    python bench/cardinality.py [--tenants 200] [--days 30] [--per-day 60]

Every tenant sends sessions and, `--per-day` times a day, a `feature.used` whose name
carries an id (a page URL, say), so every use is a new feature. `vigil run` replays the
stream twice, each in its own process: with `engine.max_keys_per_tenant` at its default,
and with it so high that nothing is refused. It prints, for each, wall time, peak RSS,
the RSS at each quarter of the run and the keys not kept, and the ratios.
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

from runs import compare, write_stream  # noqa: E402

from vigil.base.timeutil import MS_PER_DAY, to_iso  # noqa: E402

Event = dict[str, Any]


def make_stream(path: Path, tenants: int, days: int, per_day: int) -> int:
    """Four sessions and `per_day` feature uses a tenant a day, a new feature name in every
    use; returns how many events."""

    def day_events(day: int, start: int, rng: random.Random) -> Iterator[tuple[int, Event]]:
        for tenant in range(tenants):
            for n in range(per_day + 4):
                ts = start + rng.randrange(MS_PER_DAY)
                body: Event = {
                    "event_id": f"t{tenant}-d{day}-{n}",
                    "tenant_id": f"tenant-{tenant:05d}",
                    "ts": to_iso(ts),
                    "type": "user.session",
                }
                if n >= 4:
                    page = f"/reports/{rng.getrandbits(48):012x}"
                    body.update(type="feature.used", attrs={"feature": page})
                yield ts, body

    return write_stream(path, days, 11, day_events)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=60, help="new feature names a day")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vigil-cardinality-") as tmp:
        work = Path(tmp)
        stream = work / "events.jsonl"
        events = make_stream(stream, args.tenants, args.days, args.per_day)
        names = args.tenants * args.days * args.per_day
        print(
            f"{events:,} events over {args.days} days from {args.tenants:,} tenants, "
            f"{names:,} distinct feature names"
        )
        unlimited = {"VIGIL_ENGINE__MAX_KEYS_PER_TENANT": str(names)}
        compare(
            stream,
            work,
            [("limit 500 (default)", {}), ("no limit", unlimited)],
            lambda result: f"keys not kept {result.summary_count('keys not kept'):,}",
        )


if __name__ == "__main__":
    main()
