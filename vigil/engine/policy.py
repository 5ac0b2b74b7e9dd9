"""What a shard's compiled core hands to Python: the words and the rules.

The core (vigil._native.ShardCore) owns a shard's state and its clock. When it finds
something (a late event, a closed window, a stalled onboarding, a fact for the rules, a
refused key, forgotten tenants) it calls the public methods here, which turn it into
records, facts, the rules' actions, log lines and counts.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from vigil.base.streams import SIGNALS, Output
from vigil.base.timeutil import to_iso
from vigil.config.settings import Settings
from vigil.intake.events import DeadLetter, Event, event_json
from vigil.rules import signals as sig
from vigil.rules.actions import in_cooldown, render_actions
from vigil.rules.engine import RuleEngine
from vigil.rules.facts import signal_fact

log = logging.getLogger("vigil.engine")

# The map each event type adds keys to, named as the key limit's metric and log say it.
KEYED_MAPS = {
    "feature.used": "features",
    "ticket.created": "open_tickets",
    "billing.invoice": "unpaid_invoices",
    "integration.state": "integrations",
    "onboarding.step_completed": "onboarding_steps",
}


class Policy:
    def __init__(self, settings: Settings, rules: RuleEngine) -> None:
        self.settings = settings
        self.rules = rules
        self.counts: Counter[str] = Counter()
        self._declared = list(settings.signals.declared)
        # The tenants refused a key since midnight, by map (see refused_key).
        self._refused_today: dict[str, set[str]] = {}

    # -- dead letters -----------------------------------------------------------------

    def late_record(self, event: Event) -> dict[str, Any]:
        error = f"late: event time {to_iso(event.ts)} is before the watermark {to_iso(event.wm)}"
        letter = DeadLetter(event.source, event.position, event_json(event), "late", error)
        return letter.to_record()

    # -- signals ----------------------------------------------------------------------

    def login_drop_record(
        self, tenant_id: str, current: int, previous: int, start: int, end: int
    ) -> dict[str, Any] | None:
        finding = sig.detect_login_drop(current, previous, self.settings.signals.login_drop)
        return _record(tenant_id, sig.LOGIN_DROP, start, end, finding)

    def error_spike_record(
        self, tenant_id: str, count: int, history: Sequence[int], start: int, end: int
    ) -> dict[str, Any] | None:
        finding = sig.detect_error_spike(count, history, self.settings.signals.error_spike)
        return _record(tenant_id, sig.ERROR_SPIKE, start, end, finding)

    def stall_record(
        self, tenant_id: str, started: int, last_progress: int, deadline: int, steps: int
    ) -> dict[str, Any]:
        stall_after = self.settings.signals.onboarding_stalled.stall_after
        finding = sig.describe_onboarding_stall(started, last_progress, stall_after, steps)
        return sig.signal_record(
            tenant_id, sig.ONBOARDING_STALLED, last_progress, deadline, finding
        )

    def declared_signal_record(
        self, tenant_id: str, index: int, measured: Any, other: Any, now: int
    ) -> dict[str, Any]:
        """The record of a signal declared over measures (vigil.engine.measures): its measure,
        against what it is compared with, crossed a bound at `now`."""
        name = self._declared[index]
        signal = self.settings.signals.declared[name]
        finding = sig.declared_finding(signal, measured, other)
        window = self.settings.measures[signal.measure].window
        start = now - (window or self.settings.engine.health_step)
        return sig.signal_record(tenant_id, name, start, now, finding)

    def signal_actions(
        self,
        record: dict[str, Any],
        segment: str | None,
        score: int | None,
        zone: str | None,
        why: str,
        cooldowns: dict[str, int],
        now: int,
    ) -> list[Output]:
        """The signal's record, and the actions of the rules its fact matches."""
        out: list[Output] = [(SIGNALS, record)]
        self.counts[f"signal:{record['signal']}"] += 1
        fact = signal_fact(record, segment, score, zone, why)
        self.post(fact, cooldowns, now, out)
        return out

    # -- rules ------------------------------------------------------------------------

    def post(
        self, fact: dict[str, Any], cooldowns: dict[str, int], now: int, out: list[Output]
    ) -> None:
        """Hand a fact to the rules; act on each rule it matches, outside its cooldown
        for the tenant (`cooldowns`, the tenant's, updated here)."""
        self.counts[f"fact:{fact['fact']}"] += 1
        matched, errors = self.rules.evaluate(fact)
        for error in errors:  # counted and logged; the other rules still act
            self.counts[f"rule_error:{error.rule_id}"] += 1
            log.error("rule evaluation failed", extra={"rule": error.rule_id, "error": str(error)})
        for rule in matched:
            if in_cooldown(cooldowns, rule, now):
                self.counts[f"suppressed:{rule.id}"] += 1
                continue
            for stream, record in render_actions(rule, fact, now):
                self.counts[f"action:{rule.id}:{stream}"] += 1
                out.append((stream, record))

    # -- state kept in bounds ---------------------------------------------------------

    def refused_key(self, event_type: str, tenant_id: str, key: str, ts: int) -> None:
        """Counted every time. Logged with the first refusal of the day per map, as an
        example, and in one line a day per map (see report_refusals): a producer that
        puts ids into names usually does it for every tenant, on every event."""
        self._refused(KEYED_MAPS[event_type], tenant_id, key, ts)

    def _refused(self, kind: str, tenant_id: str, key: str | None, ts: int) -> None:
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

    def measure_key_refused(self, measure: str, tenant_id: str, ts: int) -> None:
        """A declared measure refused a new key: counted and reported as the built-in
        maps' are, under the measure's name."""
        self._refused(f"measures.{measure}", tenant_id, None, ts)

    def report_refusals(self, now: int) -> None:
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

    def forgot(self, now: int, tenant_ids: list[str]) -> None:
        self.counts["tenants_forgotten"] += len(tenant_ids)
        log.info(
            "forgot tenants that sent nothing for engine.forget_tenants_after",
            extra={"tenants": len(tenant_ids), "first": tenant_ids[:5], "at": to_iso(now)},
        )


def _record(
    tenant_id: str, signal: str, start: int, end: int, finding: sig.Finding | None
) -> dict[str, Any] | None:
    return None if finding is None else sig.signal_record(tenant_id, signal, start, end, finding)
