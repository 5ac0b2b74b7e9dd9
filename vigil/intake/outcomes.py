"""Outcomes: which accounts left and which renewed, and when; what a health score is a
prediction of. They come as catalogue events (`account.churned`, `account.renewed`) or
as a file of their own (CSV, `tenant_id,outcome,date`), for checking the score against
them (docs/reference/events.md, Outcomes)."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, NamedTuple

import orjson

from vigil.base.errors import ConfigError
from vigil.base.timeutil import parse_rfc3339, to_iso
from vigil.intake.events import MAX_ID_LENGTH

OutcomeKind = Literal["churned", "renewed"]
CHURNED: OutcomeKind = "churned"
RENEWED: OutcomeKind = "renewed"
OUTCOME_TYPES: dict[str, OutcomeKind] = {"account.churned": CHURNED, "account.renewed": RENEWED}
COLUMNS = ("tenant_id", "outcome", "date")


class Outcome(NamedTuple):
    tenant_id: str
    outcome: OutcomeKind
    at: int  # epoch milliseconds: the outcome's date, at midnight UTC if given as a date


def read_outcomes(path: Path) -> list[Outcome]:
    """The outcomes of a CSV file with a header of `tenant_id,outcome,date` (a date, or
    an RFC 3339 time), in date order; ConfigError naming the line of the first problem."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return sorted(_rows(path, csv.reader(handle)), key=lambda o: (o.at, o.tenant_id))
    except OSError as exc:
        raise ConfigError(f"cannot read outcomes {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from exc


def outcomes_csv(outcomes: Iterable[Outcome]) -> bytes:
    """The outcomes as read_outcomes reads them, a date each."""
    text = io.StringIO()
    out = csv.writer(text, lineterminator="\n")
    out.writerow(COLUMNS)
    for o in outcomes:
        out.writerow((o.tenant_id, o.outcome, to_iso(o.at)[:10]))
    return text.getvalue().encode()


def _rows(path: Path, rows: Iterable[list[str]]) -> Iterable[Outcome]:
    lines = iter(rows)
    header = [name.strip() for name in next(lines, [])]
    if tuple(header) != COLUMNS:
        raise ConfigError(
            f"{path}:1: the header must be {','.join(COLUMNS)}, got {','.join(header)}"
        )
    for number, row in enumerate(lines, 2):
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        if len(row) != len(COLUMNS):
            raise ConfigError(f"{path}:{number}: {len(COLUMNS)} columns expected, got {len(row)}")
        tenant, outcome, date = (cell.strip() for cell in row)
        if not 0 < len(tenant) <= MAX_ID_LENGTH:
            raise ConfigError(f"{path}:{number}: tenant_id must be 1-{MAX_ID_LENGTH} characters")
        if outcome not in (CHURNED, RENEWED):
            raise ConfigError(
                f"{path}:{number}: outcome must be churned or renewed, got {outcome!r}"
            )
        try:
            at = parse_rfc3339(date if "T" in date else f"{date}T00:00:00Z")
        except ValueError as exc:
            raise ConfigError(f"{path}:{number}: date {date!r}: {exc}") from None
        yield Outcome(tenant, CHURNED if outcome == CHURNED else RENEWED, at)


def outcome_events(path: Path) -> list[Outcome]:
    """The outcomes said by the outcome events of an events file (JSON Lines, plain or
    gzip), in date order; other lines, and lines that are no outcome event, are passed
    over (a run makes dead letters of those that are broken)."""
    found = []
    try:
        with path.open("rb") as probe:
            gzipped = probe.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rb") if gzipped else path.open("rb") as handle:
            for line in handle:
                if b"account." not in line:
                    continue
                found.extend(_outcome_in(line))
    except (OSError, EOFError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    return sorted(found, key=lambda o: (o.at, o.tenant_id))


def _outcome_in(line: bytes) -> list[Outcome]:
    try:
        record = orjson.loads(line)
        kind = OUTCOME_TYPES[record["type"]]
        tenant, at = record["tenant_id"], parse_rfc3339(record["ts"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return []
    if not isinstance(tenant, str) or not 0 < len(tenant) <= MAX_ID_LENGTH:
        return []
    return [Outcome(tenant, kind, at)]
