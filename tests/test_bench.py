"""Every benchmark runs to its end on a small stream and prints its figures. Nothing here
is timed: the harness itself must not rot as the code it measures changes (the engine's
--stages subclass once kept an old signature, and `--stages` stopped with a TypeError)."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT, quiet_env

SMALL_RUNS = {
    "engine.py": (
        [
            "--events",
            "6000",
            "--tenants",
            "60",
            "--repeat",
            "1",
            "--snapshot",
            "--config",
            "bench/declared.toml",
        ],
        ["digest", "µs/event CPU", "restore", "declared.toml / defaults:"],
    ),
    "throughput.py": (
        ["--events", "6000", "--tenants", "60", "--repeat", "1", "--store"],
        ["bare flow", "intake only", "with a recovery store", "full / bare:", "engine work"],
    ),
    "cardinality.py": (
        ["--tenants", "10", "--days", "2", "--per-day", "5"],
        ["limit 500 (default) / no limit: peak RSS"],
    ),
    "churn.py": (
        ["--days", "3", "--arrivals", "10", "--active-days", "2", "--per-day", "4"],
        ["forget after 90d (default) / keep all: peak RSS"],
    ),
    "simulate.py": (["--tenants", "10", "20", "--days", "1"], ["memory per tenant"]),
    "tenants.py": (["--tenants", "20", "60", "--events", "3000"], ["memory per tenant:"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SMALL_RUNS))
def test_the_benchmark_runs_and_prints_its_figures(script: str) -> None:
    args, expected = SMALL_RUNS[script]
    _prints(script, args, expected)


@pytest.mark.kafka
def test_the_kafka_benchmark_runs_on_the_test_broker(kafka_bootstrap: str) -> None:
    args = ["--events", "3000", "--tenants", "30", "--partitions", "3"]
    args += ["--bootstrap", kafka_bootstrap]
    args += ["--latency-tenants", "20", "--latency-days", "2", "--latency-pace", "2000"]
    expected = ["file mode:", "kafka mode:", "(3 partitions)", "latency, input produced"]
    _prints("kafka_throughput.py", args, expected)


def _prints(script: str, args: list[str], expected: list[str]) -> str:
    """Runs bench/`script` to its end (bounded), checks it printed every `expected` text,
    and returns what it printed."""
    ran = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        env=quiet_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    missing = [text for text in expected if text not in ran.stdout]
    assert not missing, ran.stdout
    return ran.stdout


@pytest.mark.slow
def test_the_outcomes_benchmark_runs_on_data_of_its_shape(tmp_path: Path) -> None:
    """bench/mooc.py on made-up enrollments in the development data's format (the data
    itself stays outside the repository): those that stop early drop out."""
    rng = random.Random(3)
    kinds = ["access", "discussion", "navigate", "page_close", "problem", "video", "wiki"]
    rows, truth = [], ["enrollment_id,label"]
    for enrollment in range(60):
        dropped = rng.random() < 0.6
        last_active = rng.randrange(3, 15) if dropped else 29
        for day in range(30):
            active = day <= last_active and rng.random() < 0.6
            counts = [rng.randrange(1, 6) if active and rng.random() < 0.7 else 0 for _ in kinds]
            rows.append(f"{enrollment},2014-06-{day + 1:02d}," + ",".join(map(str, counts)))
        truth.append(f"{enrollment},{int(dropped)}")
    header = "enrollment_id,time," + ",".join(f"event_{k}" for k in kinds)
    (tmp_path / "course1.csv").write_text("\n".join([header, *rows]) + "\n")
    (tmp_path / "truth.csv").write_text("\n".join(truth) + "\n")
    fitted = tmp_path / "fitted.toml"
    said = _prints(
        "mooc.py",
        ["--data", str(tmp_path), "--fit", str(fitted)],
        ["60 enrollments", "days since last activity", "the score", "cross-validated AUC"],
    )
    assert "precision" in said and fitted.exists()
