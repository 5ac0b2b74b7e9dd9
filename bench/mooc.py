"""The health score on real activity with real outcomes: the MOOC dropout development set.

    python bench/mooc.py [--data ../shared/data/mooc-dropout] [--config FILE] [--fit FILE]

Reads the data where it lies (it is not the project's to copy): an enrollment plays a
tenant, each day's `event_access` count becomes that many `user.session` events, each
other kind of activity that day one `feature.used` event of that feature, and dropping
out plays churn, known the day after the enrollment's last logged day (its course
window's end). It writes the events and the outcomes to a scratch folder, runs Vigil on
them (`vigil run`, in its own process, with --config if given), and prints, as of each
enrollment's outcome (no look-ahead):

- the area under the ROC curve of the score and of each component alone, beside the
  naive baselines of the data's README (days since last activity; last week's activity
  against the week before);
- each signal's and rule's precision against the base rate;
- with --fit, the weights and scales fitted with cross-validation, and the settings file
  written there.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vigil.base.timeutil import MS_PER_DAY, MS_PER_HOUR, parse_rfc3339, to_iso  # noqa: E402
from vigil.config.settings import load_settings  # noqa: E402
from vigil.evaluate import report  # noqa: E402
from vigil.evaluate.figures import auc, calibrate  # noqa: E402
from vigil.evaluate.fit import fit, settings_file  # noqa: E402
from vigil.evaluate.history import cases  # noqa: E402
from vigil.evaluate.replay import replay  # noqa: E402
from vigil.intake.outcomes import (  # noqa: E402
    CHURNED,
    RENEWED,
    Outcome,
    outcomes_csv,
    read_outcomes,
)

FEATURES = ("discussion", "navigate", "page_close", "problem", "video", "wiki")
# The day's activity is spread over its working hours, sessions first.
DAY_START = 8 * MS_PER_HOUR
DAY_SPAN = 12 * MS_PER_HOUR


def read_course(path: Path) -> dict[str, list[tuple[int, list[int]]]]:
    """Per enrollment: (day, counts of access and each feature) for each logged day."""
    days: dict[str, list[tuple[int, list[int]]]] = defaultdict(list)
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            day = parse_rfc3339(f"{row['time']}T00:00:00Z")
            counts = [int(float(row["event_access"]))]
            counts += [int(float(row[f"event_{f}"])) for f in FEATURES]
            days[f"e{row['enrollment_id']}"].append((day, counts))
    return days


def events_of(tenant: str, day: int, counts: list[int]) -> list[tuple[int, bytes]]:
    sessions, *features = counts
    used = [f for f, n in zip(FEATURES, features, strict=True) if n > 0]
    total = sessions + len(used)
    out = []
    for k in range(total):
        ts = day + DAY_START + k * DAY_SPAN // max(total, 1)
        body: dict[str, object] = {
            "event_id": f"{tenant}-{day // MS_PER_DAY}-{k}",
            "tenant_id": tenant,
            "ts": to_iso(ts),
        }
        if k < sessions:
            body["type"] = "user.session"
        else:
            body["type"] = "feature.used"
            body["attrs"] = {"feature": used[k - sessions]}
        out.append((ts, orjson.dumps(body)))
    return out


def convert(data: Path, scratch: Path) -> tuple[Path, Path, dict[str, list[tuple[int, list[int]]]]]:
    """The events (in time order) and outcomes files, and each enrollment's days."""
    labels = {}
    with (data / "truth.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            labels[f"e{row['enrollment_id']}"] = row["label"] == "1"
    enrollments: dict[str, list[tuple[int, list[int]]]] = {}
    for course in sorted(data.glob("course*.csv")):
        enrollments.update(read_course(course))
    lines = []
    outcomes = []
    for tenant, days in enrollments.items():
        if tenant not in labels:
            continue
        for day, counts in days:
            lines.extend(events_of(tenant, day, counts))
        last = max(day for day, _ in days)
        outcomes.append(Outcome(tenant, CHURNED if labels[tenant] else RENEWED, last + MS_PER_DAY))
    lines.sort()
    events, outcomes_file = scratch / "events.jsonl", scratch / "outcomes.csv"
    events.write_bytes(b"\n".join(line for _, line in lines) + b"\n")
    outcomes_file.write_bytes(outcomes_csv(sorted(outcomes, key=lambda o: (o.at, o.tenant_id))))
    print(f"{len(outcomes)} enrollments, {len(lines):,} events", flush=True)
    return events, outcomes_file, {t: enrollments[t] for t in labels if t in enrollments}


def baselines(
    enrollments: dict[str, list[tuple[int, list[int]]]], outcomes: list[Outcome]
) -> dict[str, float | None]:
    """The README's naive baselines, as of each outcome (higher = healthier)."""
    churned, idle, trend = [], [], []
    for o in outcomes:
        active = [day for day, counts in enrollments[o.tenant_id] if any(counts)]
        last_week = sum(sum(c) for d, c in enrollments[o.tenant_id] if o.at - 7 * MS_PER_DAY <= d)
        week_before = sum(
            sum(c)
            for d, c in enrollments[o.tenant_id]
            if o.at - 14 * MS_PER_DAY <= d < o.at - 7 * MS_PER_DAY
        )
        churned.append(o.outcome == CHURNED)
        idle.append(-(o.at - max(active, default=o.at - 60 * MS_PER_DAY)) / MS_PER_DAY)
        trend.append(last_week / week_before if week_before else float(last_week > 0))
    return {
        "days since last activity": auc(churned, idle),
        "last week against the week before": auc(churned, trend),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/mooc-dropout")
    parser.add_argument("--config", type=Path, help="settings to run Vigil with")
    parser.add_argument("--fit", type=Path, help="fit weights and scales; write them here")
    args = parser.parse_args()
    settings = load_settings(args.config)
    with tempfile.TemporaryDirectory(prefix="vigil-mooc-") as scratch_dir:
        scratch = Path(scratch_dir)
        events, outcomes_file, enrollments = convert(args.data, scratch)
        outcomes = read_outcomes(outcomes_file)
        replay(events, scratch / "out", args.config, settings.rules.paths)
        found = cases(scratch / "out", outcomes, horizon=0, lookback=30 * MS_PER_DAY)
    result = calibrate(found, settings)
    sys.stdout.write(report.text(result, "0d", "30d"))
    print("\nNaive baselines (AUC):")
    for name, value in baselines(enrollments, outcomes).items():
        print(f"  {name:<36} {value:.3f}")
    print(f"  {'the score':<36} {result.score_auc:.3f}  (target 0.85)")
    below = [f.key for f in result.flags if f.precision <= result.base_rate]
    print(
        f"signals and rules at or below the base rate ({100 * result.base_rate:.1f}%): "
        + (", ".join(below) or "none")
    )
    if args.fit:
        fitted = fit(found, settings)
        args.fit.write_text(settings_file(fitted, "MOOC dropout development set, horizon 0d."))
        print("\n" + "\n".join(report.fitted_lines(fitted)) + f"\nwritten to {args.fit}")


if __name__ == "__main__":
    main()
