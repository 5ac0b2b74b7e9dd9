"""What rules and settings would have done over a history: tasks and notifications per
rule, per week and per owner role (tasks) or channel (notifications), and how that
differs from what the current ones did. Records are told apart by their ids, which are
deterministic: the same task in both runs has the same id."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vigil.base.streams import NOTIFICATIONS, TASKS
from vigil.evaluate.history import field_of, time_of
from vigil.ops.summary import read_jsonl

# Each action stream: its id, its time, and who it goes to.
_ACTIONS = {
    TASKS: ("task_id", "created_at", "owner_role"),
    NOTIFICATIONS: ("notification_id", "ts", "channel"),
}


@dataclass
class Actions:
    """The tasks and notifications of one run, counted."""

    ids: dict[str, set[str]] = field(default_factory=dict)  # by stream
    by_rule: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stream, rule)
    by_week: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # + week
    by_owner: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stream, owner)
    weeks: set[str] = field(default_factory=set)


def week_of(ms: int) -> str:
    """The ISO week of an instant (UTC), as "2026-W10"."""
    year, week, _ = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isocalendar()
    return f"{year}-W{week:02d}"


def actions(out_dir: Path) -> Actions:
    counted = Actions()
    for stream, (id_field, time_field, owner_field) in _ACTIONS.items():
        seen: set[str] = set()
        path = out_dir / f"{stream}.jsonl"
        for record in read_jsonl(path):
            made = field_of(record, id_field, path)
            if made in seen:
                continue  # written again by a resumed run
            seen.add(made)
            week = week_of(time_of(record, time_field, path))
            rule = field_of(record, "rule", path)
            counted.by_rule[stream, rule] += 1
            counted.by_week[stream, rule, week] += 1
            counted.by_owner[stream, field_of(record, owner_field, path)] += 1
            counted.weeks.add(week)
        counted.ids[stream] = seen
    return counted


@dataclass(frozen=True)
class Difference:
    """Of one stream and rule: how many each run made, and how many only one did."""

    stream: str
    rule: str
    current: int
    candidate: int
    only_current: int
    only_candidate: int


def differences(
    current: Actions, candidate: Actions, current_dir: Path, candidate_dir: Path
) -> list[Difference]:
    rules = sorted(set(current.by_rule) | set(candidate.by_rule))
    only_current = _rules_of(current_dir, current.ids, candidate.ids)
    only_candidate = _rules_of(candidate_dir, candidate.ids, current.ids)
    return [
        Difference(
            stream,
            rule,
            current.by_rule[stream, rule],
            candidate.by_rule[stream, rule],
            only_current[stream, rule],
            only_candidate[stream, rule],
        )
        for stream, rule in rules
    ]


def _rules_of(
    out_dir: Path, mine: dict[str, set[str]], theirs: dict[str, set[str]]
) -> Counter[tuple[str, str]]:
    """By (stream, rule): the records of this run that the other did not make."""
    alone: Counter[tuple[str, str]] = Counter()
    for stream, (id_field, _, _) in _ACTIONS.items():
        apart = mine.get(stream, set()) - theirs.get(stream, set())
        if not apart:
            continue
        for record in read_jsonl(out_dir / f"{stream}.jsonl"):
            if record[id_field] in apart:
                apart.discard(record[id_field])
                alone[stream, record["rule"]] += 1
    return alone


def text(current: Actions, candidate: Actions, diffs: list[Difference]) -> str:
    weeks = sorted(current.weeks | candidate.weeks)
    lines = [
        f"over {len(weeks)} weeks ({weeks[0]} to {weeks[-1]})"
        if weeks
        else "no tasks or notifications in either run"
    ]
    lines += [
        "",
        "Per rule: current -> candidate (made only by the current / only by the candidate)",
    ]
    for d in diffs:
        lines.append(
            f"  {d.stream[:-1]:<12} {d.rule:<28} {d.current:>6} -> {d.candidate:<6}"
            f" (-{d.only_current} / +{d.only_candidate})"
        )
    lines += ["", "Candidate, per week (a week is Monday to Sunday, UTC)"]
    header = f"  {'':<12} {'rule':<28} " + " ".join(f"{w[-3:]:>5}" for w in weeks)
    lines.append(header)
    for stream, rule in sorted(candidate.by_rule):
        row = " ".join(f"{candidate.by_week[stream, rule, w]:>5}" for w in weeks)
        lines.append(f"  {stream[:-1]:<12} {rule:<28} {row}")
    lines += ["", "Per owner role (tasks) and channel (notifications): current -> candidate"]
    for stream, owner in sorted(set(current.by_owner) | set(candidate.by_owner)):
        lines.append(
            f"  {stream[:-1]:<12} {owner:<28} {current.by_owner[stream, owner]:>6} -> "
            f"{candidate.by_owner[stream, owner]}"
        )
    per_week = sum(candidate.by_rule.values()) / len(weeks) if weeks else 0.0
    lines += ["", f"candidate: {per_week:.1f} tasks and notifications a week"]
    return "\n".join(lines) + "\n"
