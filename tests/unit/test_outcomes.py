"""Outcomes: the catalogue's outcome events, the outcomes file, and the simulator's."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
from support import run_vigil

from vigil.base.errors import ConfigError
from vigil.base.timeutil import parse_rfc3339
from vigil.config.settings import Settings
from vigil.intake.events import DeadLetter, Event
from vigil.intake.outcomes import (
    CHURNED,
    RENEWED,
    Outcome,
    outcome_events,
    outcomes_csv,
    read_outcomes,
)
from vigil.intake.reader import Intake
from vigil.intake.simulate import AT_RISK, HEALTHY, LOGIN_DROP, FleetPlan, generate, outcomes


def take(message: dict[str, object]) -> Event | DeadLetter:
    intake = Intake("test", "p0", 1, Settings().input.allowed_lateness)
    taken: Event | DeadLetter = intake.take(orjson.dumps(message), {"line": 1})
    return taken


def test_the_catalogue_carries_outcome_events(tmp_path: Path) -> None:
    base = {"event_id": "e1", "tenant_id": "acme", "ts": "2026-06-30T12:00:00Z"}
    said = [
        {**base, "type": "account.churned", "attrs": {"reason": "budget"}},
        {
            **base,
            "tenant_id": "beta",
            "type": "account.renewed",
            "attrs": {"renewal_date": "2027-06-30"},
        },
    ]
    assert all(isinstance(take(event), Event) for event in said)
    events = tmp_path / "events.jsonl"
    lines = [orjson.dumps(e) for e in said] + [
        b"not json account.churned",
        b'{"type": "user.session"}',
    ]
    events.write_bytes(b"\n".join(lines) + b"\n")
    at = parse_rfc3339("2026-06-30T12:00:00Z")
    assert outcome_events(events) == [Outcome("acme", CHURNED, at), Outcome("beta", RENEWED, at)]
    bad = take({**base, "type": "account.renewed", "attrs": {"renewal_date": "next year"}})
    assert isinstance(bad, DeadLetter) and bad.reason == "invalid_field"


def test_an_outcomes_file_is_read_in_date_order(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_bytes(
        b"\xef\xbb\xbftenant_id,outcome,date\n"  # a byte order mark, as Excel writes
        b"beta,renewed,2026-07-01T09:30:00+02:00\n\n"
        b"acme,churned,2026-06-30\n"
    )
    assert read_outcomes(path) == [
        Outcome("acme", CHURNED, parse_rfc3339("2026-06-30T00:00:00Z")),
        Outcome("beta", RENEWED, parse_rfc3339("2026-07-01T07:30:00Z")),
    ]
    again = tmp_path / "again.csv"
    again.write_bytes(outcomes_csv(read_outcomes(path)))
    assert [o.outcome for o in read_outcomes(again)] == [CHURNED, RENEWED]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("tenant,outcome,date\n", ":1: the header must be tenant_id,outcome,date"),
        ("tenant_id,outcome,date\nacme,left,2026-06-30\n", ":2: outcome must be churned or"),
        ("tenant_id,outcome,date\nacme,churned,June\n", ":2: date 'June'"),
        ("tenant_id,outcome,date\nacme,churned\n", ":2: 3 columns expected, got 2"),
        ("tenant_id,outcome,date\nok,renewed,2026-01-01\n,churned,2026-06-30\n", ":3: tenant_id"),
    ],
)
def test_a_bad_outcomes_file_names_its_line(tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"{path}{said}"):
        read_outcomes(path)


def test_the_simulated_outcomes_follow_the_scenarios_with_noise() -> None:
    plan = FleetPlan(tenants=3000, days=20, seed=5)  # long enough for every scenario
    ends = outcomes(plan)
    scenario = {tenant: said["scenario"] for tenant, said in manifest_of(plan).items()}
    churned: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for o in ends:
        seen[scenario[o.tenant_id]] += 1
        churned[scenario[o.tenant_id]] += o.outcome == CHURNED
    rate = {name: churned[name] / seen[name] for name in seen}
    assert 0 < rate[HEALTHY] < rate[LOGIN_DROP] < 1 and rate[HEALTHY] < rate[AT_RISK] < 1
    assert {o.at for o in ends} == {plan.start + 20 * 86_400_000}  # the day after the stream
    assert outcomes(plan) == ends  # the same seed, the same outcomes


def manifest_of(plan: FleetPlan) -> dict[str, dict[str, str]]:
    return generate(plan)[1]


def test_simulate_writes_the_outcomes_file_beside_an_unchanged_stream(tmp_path: Path) -> None:
    args = ("simulate", "--tenants", "40", "--days", "2", "--seed", "9")
    plain = run_vigil(*args, "--output", str(tmp_path / "a.jsonl"))
    both = run_vigil(
        *args, "--output", str(tmp_path / "b.jsonl"), "--outcomes", str(tmp_path / "o.csv")
    )
    assert plain.returncode == both.returncode == 0, both.stderr
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert len(read_outcomes(tmp_path / "o.csv")) == 40
