"""What a run said about each account before its outcome was known: the health record in
force at a cutoff (the outcome's instant less a horizon) and the signals and rules that
fired in the lookback before it. Nothing after the cutoff is read, so a figure made from
these cases has no look-ahead."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigil.base.errors import ConfigError
from vigil.base.streams import HEALTH, NOTIFICATIONS, SIGNALS, TASKS
from vigil.base.timeutil import parse_rfc3339
from vigil.intake.outcomes import CHURNED, Outcome
from vigil.ops.summary import read_jsonl


@dataclass(frozen=True)
class Case:
    """One account with a known outcome, as a run saw it at the cutoff."""

    tenant_id: str
    churned: bool
    cutoff: int  # epoch ms: the outcome's instant less the horizon
    health: dict[str, Any] | None  # the latest health record at or before the cutoff
    flagged: frozenset[str]  # "signal:NAME" and "rule:ID" fired in the lookback

    def component(self, name: str) -> dict[str, Any]:
        """A component of the health record at the cutoff; without one, no data."""
        components = (self.health or {}).get("components", {})
        found: dict[str, Any] = components.get(name) or {"value": None}
        return found


def field_of(record: dict[str, Any], name: str, path: Path) -> Any:
    """A field an output record must have, or ConfigError naming the file."""
    value = record.get(name)
    if not isinstance(value, str) or not value:
        shown = str(record)[:200]
        raise ConfigError(f"{path}: a record without {name} (not a Vigil output?): {shown}")
    return value


def time_of(record: dict[str, Any], name: str, path: Path) -> int:
    """An output record's time field, in epoch ms, or ConfigError naming the file."""
    text = field_of(record, name, path)
    try:
        return parse_rfc3339(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: {name} {text!r}: {exc}") from None


def signal_key(name: str) -> str:
    return f"signal:{name}"


def rule_key(rule: str) -> str:
    return f"rule:{rule}"


def cases(out_dir: Path, outcomes: Iterable[Outcome], horizon: int, lookback: int) -> list[Case]:
    """Each tenant's case from a run's output files: its first outcome, and what the run
    wrote up to `horizon` before it."""
    if not (out_dir / f"{HEALTH}.jsonl").exists():
        raise ConfigError(f"no {HEALTH}.jsonl in {out_dir}: give the output folder of a run")
    first: dict[str, Outcome] = {}
    for outcome in outcomes:  # in date order: an account renewed, then churned, counts once
        first.setdefault(outcome.tenant_id, outcome)
    cutoffs = {tenant: outcome.at - horizon for tenant, outcome in first.items()}
    health = _latest_health(out_dir / f"{HEALTH}.jsonl", cutoffs)
    flagged = _flagged(out_dir, cutoffs, lookback)
    return [
        Case(
            tenant,
            outcome.outcome == CHURNED,
            cutoffs[tenant],
            health.get(tenant),
            frozenset(flagged.get(tenant, ())),
        )
        for tenant, outcome in sorted(first.items())
    ]


def _latest_health(path: Path, cutoffs: dict[str, int]) -> dict[str, dict[str, Any]]:
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    for record in read_jsonl(path):
        tenant = record.get("tenant_id")
        if not isinstance(tenant, str) or (cutoff := cutoffs.get(tenant)) is None:
            continue
        at = time_of(record, "ts", path)
        if at <= cutoff and (tenant not in latest or at >= latest[tenant][0]):
            latest[tenant] = (at, record)
    return {tenant: record for tenant, (_, record) in latest.items()}


# Each stream's records that flag a tenant: what names them, and when they happened.
_FLAGS = {
    SIGNALS: ("signal", "ts", signal_key),
    TASKS: ("rule", "created_at", rule_key),
    NOTIFICATIONS: ("rule", "ts", rule_key),
}


def _flagged(out_dir: Path, cutoffs: dict[str, int], lookback: int) -> dict[str, set[str]]:
    flagged: dict[str, set[str]] = defaultdict(set)
    for stream, (field, time_field, key) in _FLAGS.items():
        path = out_dir / f"{stream}.jsonl"
        for record in read_jsonl(path):
            tenant = record.get("tenant_id")
            if not isinstance(tenant, str) or (cutoff := cutoffs.get(tenant)) is None:
                continue
            if cutoff - lookback < time_of(record, time_field, path) <= cutoff:
                flagged[tenant].add(key(field_of(record, field, path)))
    return flagged
