"""The contract in docs/reference/: its JSON Schemas hold for what Vigil really reads and
writes. (That the parts made from the code are up to date, `make docs` checks.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from support import ROOT, run_vigil

from vigil.app.cli import command_parsers
from vigil.base.streams import OUTPUTS
from vigil.config.settings import Settings
from vigil.intake.events import DeadLetter, Event
from vigil.intake.reader import Intake

SCHEMAS = ROOT / "docs" / "reference" / "schemas"
# The dead-letter reasons a schema can tell: the rest (bad JSON, a date outside the
# years, the bounds on size and nesting, lateness) the decoder alone checks.
SCHEMA_REASONS = {"not_an_object", "missing_field", "invalid_field"}


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A simulated fleet (bad lines included) and what `vigil run` wrote of it."""
    work = tmp_path_factory.mktemp("contract")
    events, out = work / "events.jsonl", work / "out"
    made = run_vigil(
        "simulate", "--tenants", "150", "--days", "21", "--seed", "5", "--output", str(events)
    )
    assert made.returncode == 0, made.stderr
    ran = run_vigil("run", "--input", str(events), "--output", str(out))
    assert ran.returncode == 0, ran.stderr
    return events, out


@pytest.mark.parametrize("stream", OUTPUTS)
def test_every_output_record_keeps_to_its_schema(run: tuple[Path, Path], stream: str) -> None:
    check = validator(stream)
    records = [
        orjson.loads(line)
        for line in (run[1] / f"{stream}.jsonl").read_bytes().split(b"\n")
        if line
    ]
    assert len(records) >= 5, f"too few {stream} records to say anything"
    for record in records:
        errors = [e.message for e in check.iter_errors(record)]
        assert not errors, (stream, record, errors)


def test_the_output_schemas_refuse_a_record_off_the_contract() -> None:
    health = {
        "health_id": "health_1",
        "tenant_id": "acme",
        "ts": "2026-03-02T09:00:00Z",
        "score": 81,
        "zone": "green",
        "components": {"login_activity": {"value": 20, "weight": 25.0, "points": 25.0}},
        "reasons": [],
    }
    check = validator("health")
    assert not list(check.iter_errors(health))
    for broken in (
        {**health, "zone": "blue"},
        {**health, "score": 101},
        {**health, "ts": "yesterday"},
        {**health, "extra": 1},
        {k: v for k, v in health.items() if k != "reasons"},
    ):
        assert list(check.iter_errors(broken)), broken


def test_the_event_schema_takes_what_vigil_takes_and_refuses_what_it_refuses(
    run: tuple[Path, Path],
) -> None:
    """Every line of the simulated stream: an event Vigil accepts keeps to the schema; a
    line it rejects for a reason a schema can tell does not."""
    check = validator("event")
    settings = Settings()
    intake = Intake("test", "p0", 1, settings.input.allowed_lateness)
    accepted, refused = 0, 0
    for number, raw in enumerate(run[0].read_bytes().split(b"\n"), 1):
        if not raw.strip():
            continue
        taken: Any = intake.take(raw, {"line": number})
        if isinstance(taken, Event):
            accepted += 1
            errors = [e.message for e in check.iter_errors(orjson.loads(raw))]
            assert not errors, (raw, errors)
        elif isinstance(taken, DeadLetter) and taken.reason in SCHEMA_REASONS:
            refused += 1
            assert list(check.iter_errors(orjson.loads(raw))), (taken.reason, raw)
    assert accepted > 10_000 and refused >= 3


GOOD = {"event_id": "e1", "type": "ticket.created", "tenant_id": "acme", "ts": 1772442000000}
BROKEN = [
    ({k: v for k, v in GOOD.items() if k != "tenant_id"}, "missing_field"),
    ({**GOOD, "event_id": 7}, "invalid_field"),
    ({**GOOD, "attrs": {"ticket_id": "T-1"}}, "missing_field"),
    ({**GOOD, "attrs": {"ticket_id": "T-1", "priority": "P9"}}, "invalid_field"),
    ({**GOOD, "attrs": ["T-1"]}, "invalid_field"),
    (
        {**GOOD, "segment": "galaxy", "attrs": {"ticket_id": "T-1", "priority": "P1"}},
        "invalid_field",
    ),
    ({**GOOD, "type": "survey.response", "attrs": {"kind": "csat", "score": 7}}, "invalid_field"),
    ({**GOOD, "type": "contract.updated", "attrs": {"seats": 2.5}}, "invalid_field"),
    ([GOOD], "not_an_object"),
]


@pytest.mark.parametrize(("message", "reason"), BROKEN)
def test_the_event_schema_refuses_each_kind_of_broken_event(message: Any, reason: str) -> None:
    taken = Intake("test", "p0", 1, Settings().input.allowed_lateness).take(
        orjson.dumps(message), {"line": 1}
    )
    assert isinstance(taken, DeadLetter) and taken.reason == reason, taken
    assert list(validator("event").iter_errors(message))


def test_every_option_of_every_command_says_what_it_does() -> None:
    for command, parser in command_parsers().items():
        for action in parser._actions:
            assert action.help, f"vigil {command} {action.option_strings or action.dest}"


def test_the_docs_tell_no_commit_and_no_dated_story() -> None:
    """The user-facing docs say what is, not what happened: history is in git and the
    changelog."""
    pages = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *ROOT.glob("docs/**/*.md")]
    for page in pages:
        text = page.read_text()
        said = re.findall(r"(?:commit|version|at) `[0-9a-f]{7,40}`|\(\d{4}-\d{2}-\d{2}[,)]", text)
        assert not said, (page.name, said)
