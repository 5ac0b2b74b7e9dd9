"""`vigil calibrate` and `vigil backtest` on generated data: simulated fleets whose
tenants churn or renew as their scenarios make likely."""

from __future__ import annotations

import tomllib
from pathlib import Path

import orjson
import pytest
from support import run_vigil

from vigil.base.timeutil import MS_PER_DAY, parse_rfc3339
from vigil.config.settings import load_settings
from vigil.evaluate.history import cases, rule_key, signal_key
from vigil.intake.outcomes import CHURNED, RENEWED, Outcome


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A fleet of 240 tenants over 28 days, and their outcomes the day after."""
    work = tmp_path_factory.mktemp("history")
    events, outcomes = work / "events.jsonl", work / "outcomes.csv"
    made = run_vigil(
        "simulate", "--tenants", "240", "--days", "28", "--seed", "4",
        "--output", str(events), "--outcomes", str(outcomes),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return events, outcomes


def _write(path: Path, records: list[dict[str, object]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))


def test_a_case_reads_nothing_after_its_cutoff(tmp_path: Path) -> None:
    """The score in force at the outcome less the horizon, and only the signals and
    rules of the lookback before it."""
    at = parse_rfc3339("2026-04-01T00:00:00Z")

    def health(ts: str, score: int) -> dict[str, object]:
        return {"tenant_id": "acme", "ts": ts, "score": score, "zone": "green", "components": {}}

    _write(
        tmp_path / "health.jsonl",
        [
            health("2026-03-20T00:00:00Z", 90),
            health("2026-03-25T00:00:00Z", 70),  # in force 7 days before the outcome
            health("2026-03-26T00:00:00Z", 10),  # after the cutoff: never read
        ],
    )
    _write(
        tmp_path / "signals.jsonl",
        [
            {"tenant_id": "acme", "signal": "login_drop", "ts": "2026-03-24T00:00:00Z"},
            {"tenant_id": "acme", "signal": "error_spike", "ts": "2026-03-30T00:00:00Z"},
            {"tenant_id": "acme", "signal": "old", "ts": "2026-02-01T00:00:00Z"},
        ],
    )
    _write(
        tmp_path / "tasks.jsonl",
        [{"tenant_id": "acme", "rule": "entered-red", "created_at": "2026-03-31T00:00:00Z"}],
    )
    outcomes = [Outcome("acme", CHURNED, at), Outcome("acme", RENEWED, at + 9 * MS_PER_DAY)]
    [case] = cases(tmp_path, outcomes, horizon=7 * MS_PER_DAY, lookback=30 * MS_PER_DAY)
    assert case.churned and case.cutoff == at - 7 * MS_PER_DAY  # its first outcome
    assert case.health is not None and case.health["score"] == 70
    assert case.flagged == {signal_key("login_drop")}
    assert rule_key("entered-red") not in case.flagged


def test_calibrate_runs_vigil_on_a_history_and_reports_against_its_outcomes(
    history: tuple[Path, Path], tmp_path: Path
) -> None:
    events, outcomes = history
    page, fitted = tmp_path / "report.html", tmp_path / "fitted.toml"
    ran = run_vigil(
        "calibrate", "--input", str(events), "--outcomes", str(outcomes),
        "--report", str(page), "--fit", str(fitted),
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    said = ran.stdout
    assert "240 accounts with an outcome, 240 scored at their cutoff" in said
    score = next(line.split() for line in said.splitlines() if line.startswith("score "))
    assert 0.6 < float(score[2]) <= 1.0  # the simulator's at-risk tenants churn more
    for needle in ("login_activity", "Churn by zone", "signal:login_drop", "rule:entered-red"):
        assert needle in said, needle
    assert "cross-validated AUC (5 folds)" in said
    shown = page.read_text()
    assert shown.count("<img") >= 2 and "Reliability" in shown and "ROC" in shown
    # The fitted settings load as settings, with whole, non-negative points.
    written = tomllib.loads(fitted.read_text())["health"]["components"]
    assert written and all(
        c["weight"] >= 0 and c["weight"] == int(c["weight"]) for c in written.values()
    )
    assert "Cross-validated AUC" in fitted.read_text()
    fitted_settings = load_settings(fitted)
    for name, declared in written.items():
        assert fitted_settings.health.components.declared[name].weight == declared["weight"]


def test_calibrate_reads_a_runs_outputs_and_outcome_events(
    history: tuple[Path, Path], tmp_path: Path
) -> None:
    events, outcomes = history
    with_outcomes = tmp_path / "events.jsonl"
    rows = [line.split(",") for line in outcomes.read_text().splitlines()[1:]]
    said = [
        {
            "event_id": f"o{n}",
            "type": f"account.{kind}",
            "tenant_id": tenant,
            "ts": f"{day}T00:00:00Z",
        }
        for n, (tenant, kind, day) in enumerate(rows)
    ]
    lines = [orjson.dumps(event) for event in said]
    with_outcomes.write_bytes(events.read_bytes() + b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    assert run_vigil("run", "--input", str(events), "--output", str(out), "--quiet").returncode == 0
    from_events = run_vigil("calibrate", "--input", str(with_outcomes), "--horizon", "7d")
    from_outputs = run_vigil(
        "calibrate", "--outputs", str(out), "--outcomes", str(outcomes), "--horizon", "7d"
    )
    assert from_events.returncode == from_outputs.returncode == 0, from_events.stderr
    assert "(7d before the outcome)" in from_outputs.stdout
    # The same scores: the outcome events come after every other event of their tenant.
    score = [line for line in from_outputs.stdout.splitlines() if line.startswith("score ")]
    assert score and score[0] in from_events.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--outcomes", "x.csv"], "give one of --outputs DIR"),
        (["--outputs", "{tmp}", "--outcomes", "{tmp}/none.csv"], "cannot read outcomes"),
        (["--outputs", "{tmp}", "--outcomes", "{outcomes}"], "no health.jsonl in"),
        (["--outputs", "{tmp}", "--outcomes", "{outcomes}", "--horizon", "soon"], "--horizon"),
        (["--outputs", "{tmp}/odd", "--outcomes", "{outcomes}"], "a record without ts"),
    ],
)
def test_calibrate_refuses_what_it_cannot_use(
    history: tuple[Path, Path], tmp_path: Path, args: list[str], said: str
) -> None:
    _, outcomes = history
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "health.jsonl").write_text('{"tenant_id": "tenant-00001", "score": 3}\n')
    given = [a.format(tmp=tmp_path, outcomes=outcomes) for a in args]
    ran = run_vigil("calibrate", *given)
    assert ran.returncode == 2 and said in ran.stderr, ran.stderr
    assert "Traceback" not in ran.stderr


def test_backtest_says_what_a_candidate_rule_would_have_made(
    history: tuple[Path, Path], tmp_path: Path
) -> None:
    events, _ = history
    rule = tmp_path / "yellow.yaml"
    rule.write_text(
        "rules:\n"
        "  - id: entered-yellow\n"
        "    description: a check-in on every tenant that turns yellow\n"
        "    when: {fact: zone_change, zone: yellow}\n"
        "    cooldown: 7d\n"
        "    task: {playbook: check-in, title: 'Check in with {tenant_id}',\n"
        "           description: 'Health {score}', owner_role: csm, priority: low, sla: 72h}\n"
    )
    stricter = tmp_path / "stricter.toml"
    stricter.write_text("[signals.login_drop]\nbelow = 0.01\n")
    before = set(tmp_path.iterdir())
    ran = run_vigil(
        "backtest", "--input", str(events), "--candidate-rules", str(rule),
        "--candidate-config", str(stricter),
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    [yellow] = [line for line in lines if "entered-yellow" in line and "->" in line]
    made = int(yellow.split("->")[1].split()[0])
    assert yellow.split()[2] == "0" and made > 0 and f"(-0 / +{made})" in yellow
    assert any(line.startswith("  task") and "csm" in line for line in lines)
    assert "Candidate, per week" in ran.stdout and "tasks and notifications a week" in ran.stdout
    assert set(tmp_path.iterdir()) == before  # nothing written beside the inputs
