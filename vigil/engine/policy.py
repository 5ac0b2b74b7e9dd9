"""What a shard's compiled core finds, in words and rules.

The core (vigil._native.ShardCore) owns a shard's state and its clock. What it finds (a
late event, a signal, a zone change, a score drop, a refused key, the end of a day) it
returns among its health records as findings (native/src/findings.rs); `outputs` turns
each into records, facts, the rules' actions, log lines and counts.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from vigil._native import (
    Cleared,
    Context,
    Crossed,
    DayEnded,
    KeyRefused,
    Late,
    ScoreDropped,
    Stepped,
    ZoneChanged,
)
from vigil.base.streams import DEADLETTER, SIGNALS, TASKS, Output
from vigil.base.timeutil import to_iso
from vigil.config.settings import Settings
from vigil.intake.events import DeadLetter, Event, event_json
from vigil.rules import signals as sig
from vigil.rules.actions import in_cooldown, render_actions
from vigil.rules.engine import RuleEngine
from vigil.rules.facts import score_drop_fact, signal_fact, zone_change_fact
from vigil.rules.tasks import TaskBook

log = logging.getLogger("vigil.engine")

# What the core hands over besides health records.
Finding = Late | Crossed | Cleared | ZoneChanged | ScoreDropped | KeyRefused | DayEnded | Stepped


class Policy:
    def __init__(
        self,
        settings: Settings,
        rules: RuleEngine,
        tasks: dict[str, dict[str, dict[str, Any]]] | None = None,
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.tasks = TaskBook(rules.rules, settings.rules.ladder, tasks)
        self.counts: Counter[str] = Counter()
        self._declared = list(settings.signals.declared)
        # The tenants refused a key since midnight, by map (see _refused).
        self._refused_today: dict[str, set[str]] = {}

    def outputs(self, finding: Finding) -> list[Output]:
        """What a finding of the core becomes: records and the rules' actions (some
        findings are only counted and logged)."""
        match finding:
            case Late(event=event):
                return [(DEADLETTER, self.late_record(event))]
            case Crossed():
                record, at = self._crossed_record(finding)
                self.tasks.signal_holds(finding.tenant_id, record["signal"], True, at)
                return self._signal(record, finding.context, at)
            case Cleared():
                name = self._declared[finding.signal]
                self.tasks.signal_holds(finding.tenant_id, name, False, finding.at)
                return []
            case Stepped():
                return self._task_changes(self.tasks.due(finding.at))
            case ZoneChanged():
                c = finding.context
                self.tasks.zone_is(finding.tenant_id, finding.zone, finding.at)
                fact = zone_change_fact(
                    finding.tenant_id,
                    c.segment,
                    finding.at,
                    finding.score,
                    finding.zone,
                    finding.from_zone,
                    c.reasons,
                )
                return self.post(fact, c.cooldowns, finding.at)
            case ScoreDropped():
                c = finding.context
                fact = score_drop_fact(
                    finding.tenant_id,
                    c.segment,
                    finding.at,
                    finding.score,
                    finding.zone,
                    finding.peak,
                    c.reasons,
                )
                return self.post(fact, c.cooldowns, finding.at)
            case KeyRefused():
                self._refused(
                    f"measures.{finding.measure}", finding.tenant_id, finding.key, finding.at
                )
                return []
            case DayEnded():
                self._report_refusals(finding.at)
                if not finding.forgotten:
                    return []
                self._forgot(finding.at, finding.forgotten)
                silent_for = self.settings.engine.forget_tenants_after
                return self._task_changes(
                    self.tasks.forget(finding.forgotten, finding.at, silent_for)
                )
        raise TypeError(f"not a finding of the core: {finding!r}")

    # -- dead letters -----------------------------------------------------------------

    def late_record(self, event: Event) -> dict[str, Any]:
        error = f"late: event time {to_iso(event.ts)} is before the watermark {to_iso(event.wm)}"
        letter = DeadLetter(event.source, event.position, event_json(event), "late", error)
        return letter.to_record()

    # -- signals ----------------------------------------------------------------------

    def _crossed_record(self, finding: Crossed) -> tuple[dict[str, Any], int]:
        """The record of a signal (vigil.engine.measures): its measure, against what it
        is compared with, crossed a bound; and the instant it is of."""
        name = self._declared[finding.signal]
        signal = self.settings.signals.declared[name]
        found = sig.declared_finding(
            signal, finding.measured, finding.other, finding.history, finding.stalled
        )
        if finding.stalled is not None and signal.stalled_after is not None:
            # Of the stretch without progress, up to when it became a stall.
            start = finding.stalled[1]
            end = start + signal.stalled_after
        else:
            window = self.settings.measures[signal.measure].window
            start, end = finding.at - (window or self.settings.engine.health_step), finding.at
        return sig.signal_record(finding.tenant_id, name, start, end, found), end

    def _signal(self, record: dict[str, Any], context: Context, now: int) -> list[Output]:
        """The signal's record, and the actions of the rules its fact matches."""
        self.counts[f"signal:{record['signal']}"] += 1
        why = context.reasons or "not scored yet"
        fact = signal_fact(record, context.segment, context.score, context.zone, why)
        return [(SIGNALS, record), *self.post(fact, context.cooldowns, now)]

    # -- rules ------------------------------------------------------------------------

    def post(self, fact: dict[str, Any], cooldowns: dict[str, int], now: int) -> list[Output]:
        """Hand a fact to the rules; act on each rule it matches, outside its cooldown
        for the tenant (`cooldowns`, the tenant's, updated here)."""
        out: list[Output] = []
        self.counts[f"fact:{fact['fact']}"] += 1
        matched, errors = self.rules.evaluate(fact)
        for error in errors:  # counted and logged; the other rules still act
            self.counts[f"rule_error:{error.rule_id}"] += 1
            log.error("rule evaluation failed", extra={"rule": error.rule_id, "error": str(error)})
        for rule in matched:
            # While its task is open the rule has acted: what it would make again is that.
            if self.tasks.is_open(fact["tenant_id"], rule.id) or in_cooldown(cooldowns, rule, now):
                self.counts[f"suppressed:{rule.id}"] += 1
                continue
            for stream, record in render_actions(rule, fact, now):
                self.counts[f"action:{rule.id}:{stream}"] += 1
                if stream == TASKS:
                    self.tasks.opened(rule, fact, record, now)
                out.append((stream, record))
        return out

    def _task_changes(self, records: list[dict[str, Any]]) -> list[Output]:
        for record in records:
            self.counts[f"task:{record['rule']}:{record['status']}"] += 1
        return [(TASKS, record) for record in records]

    # -- state kept in bounds ---------------------------------------------------------

    def _refused(self, kind: str, tenant_id: str, key: str | None, ts: int) -> None:
        """Counted every time. Logged with the first refusal of the day per map, as an
        example, and in one line a day per map (see _report_refusals): a producer that
        puts ids into names usually does it for every tenant, on every event."""
        self.counts[f"keys_refused:{kind}"] += 1
        tenants = self._refused_today.setdefault(kind, set())
        if not tenants:
            log.warning(
                "a tenant has as many keys as engine.max_keys_per_tenant: new ones are not kept",
                extra={
                    "tenant": tenant_id,
                    "map": kind,
                    "limit": self.settings.engine.max_keys_per_tenant,
                    "refused": key,
                    "at": to_iso(ts),
                },
            )
        tenants.add(tenant_id)

    def _report_refusals(self, now: int) -> None:
        for kind, tenants in sorted(self._refused_today.items()):
            log.warning(
                "tenants refused keys at engine.max_keys_per_tenant in the day before",
                extra={
                    "map": kind,
                    "tenants": len(tenants),
                    "first": sorted(tenants)[:5],
                    "until": to_iso(now),
                },
            )
        self._refused_today.clear()

    def _forgot(self, now: int, tenant_ids: list[str]) -> None:
        self.counts["tenants_forgotten"] += len(tenant_ids)
        log.info(
            "forgot tenants that sent nothing for engine.forget_tenants_after",
            extra={"tenants": len(tenant_ids), "first": tenant_ids[:5], "at": to_iso(now)},
        )
