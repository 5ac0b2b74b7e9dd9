"""Tasks have a life: a rule opens one, the ladder escalates it when its SLA passes while
what opened it still holds, and its `close_when` closes it once that has not held for
long enough.

Every change is a new record of the same `task_id` with the next `version`, so a CRM
upserts on the id. Changes are decided in event time, at the steps of the shard's clock
(`due`), so a replay or a restart makes the same records at the same instants.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any

from vigil.base.timeutil import format_duration, to_iso
from vigil.config.settings import PRIORITIES, LadderStep
from vigil.rules.model import CloseWhen, Rule
from vigil.rules.templates import render

OPEN, ESCALATED, CLOSED = "open", "escalated", "closed"

# An open task as a snapshot keeps it: its latest record and due time, the signals of its
# rule that hold (for close_when: cleared; the one that opened it, and any raised since),
# when what opened it stopped holding (None while it holds), and the fact that opened it
# (for the words of its closed_reason).
Entry = dict[str, Any]


class TaskBook:
    """A shard's open tasks, by tenant and rule: one open task per tenant and rule."""

    def __init__(
        self,
        rules: Mapping[str, Rule],
        ladder: tuple[LadderStep, ...],
        saved: dict[str, dict[str, Entry]] | None = None,
    ) -> None:
        self.rules = rules
        self.ladder = ladder
        self.open: dict[str, dict[str, Entry]] = saved if saved is not None else {}
        # (instant, tenant, rule) of what may fall due then; an entry whose task changed
        # since is found stale when it comes up (see due).
        self._wakes: list[tuple[int, str, str]] = []
        for tenant_id, tasks in self.open.items():
            for rule_id, entry in tasks.items():
                self._wake(tenant_id, rule_id, entry)

    def is_open(self, tenant_id: str, rule_id: str) -> bool:
        return rule_id in self.open.get(tenant_id, {})

    def opened(self, rule: Rule, fact: dict[str, Any], record: dict[str, Any], now: int) -> None:
        """Keep the task a rule just made, until it closes."""
        assert rule.task is not None
        zones = rule.close_when.zone if rule.close_when is not None else None
        entry = {
            "record": record,
            "due": now + rule.task.sla,
            "holding": [fact["signal"]] if "signal" in fact else [],
            # A fall within the zones a task closes in (a score drop that stays yellow)
            # starts it cleared.
            "cleared_since": now if zones is not None and fact.get("zone") in zones else None,
            "fact": fact,
        }
        self.open.setdefault(fact["tenant_id"], {})[rule.id] = entry
        self._wake(fact["tenant_id"], rule.id, entry)

    def signal_holds(self, tenant_id: str, signal: str, holds: bool, now: int) -> None:
        """A tenant's signal was raised (holds) or cleared at `now`: a task on a rule of
        several signals clears once none of them holds."""
        for rule_id, entry in self.open.get(tenant_id, {}).items():
            rule = self.rules.get(rule_id)
            if rule is None or rule.close_when is None or not rule.close_when.cleared:
                continue
            if signal not in (rule.when.signal or ()):
                continue
            holding: list[str] = entry["holding"]
            if holds and signal not in holding:
                holding.append(signal)
            elif not holds and signal in holding:
                holding.remove(signal)
            self._holds(tenant_id, rule_id, entry, bool(holding), now)

    def zone_is(self, tenant_id: str, zone: str, now: int) -> None:
        """A tenant's zone changed to `zone` at `now`."""
        for rule_id, entry in self.open.get(tenant_id, {}).items():
            close_when = self._close_when(rule_id)
            if close_when is not None and close_when.zone is not None:
                self._holds(tenant_id, rule_id, entry, zone not in close_when.zone, now)

    def due(self, now: int) -> list[dict[str, Any]]:
        """The records of the tasks that escalate or close at `now`, in (tenant, rule)
        order."""
        changed = []
        wakes = self._wakes
        while wakes and wakes[0][0] <= now:
            _, tenant_id, rule_id = heapq.heappop(wakes)
            entry = self.open.get(tenant_id, {}).get(rule_id)
            if entry is None or (wake := self._wake_of(rule_id, entry)) is None or wake > now:
                continue  # closed, or changed since this wake was set
            if entry["cleared_since"] is not None:
                changed.append(self._close(tenant_id, rule_id, entry, now))
            else:
                changed.append(self._escalate(tenant_id, rule_id, entry, now))
        return changed

    def forget(self, tenant_ids: list[str], now: int, silent_for: int) -> list[dict[str, Any]]:
        """Close the tasks of tenants let go for their silence."""
        reason = f"the tenant sent nothing for {format_duration(silent_for)} and was let go"
        closed = []
        for tenant_id in sorted(tenant_ids):
            for _, entry in sorted(self.open.get(tenant_id, {}).items()):
                closed.append(self._record(entry, now, CLOSED, closed_reason=reason))
            self.open.pop(tenant_id, None)
        return closed

    # -- transitions --------------------------------------------------------------------

    def _holds(self, tenant_id: str, rule_id: str, entry: Entry, holds: bool, now: int) -> None:
        before = entry["cleared_since"]
        if holds:
            entry["cleared_since"] = None
        elif before is None:
            entry["cleared_since"] = now
        if entry["cleared_since"] != before:  # its wake moved
            self._wake(tenant_id, rule_id, entry)

    def _close(self, tenant_id: str, rule_id: str, entry: Entry, now: int) -> dict[str, Any]:
        close_when = self._close_when(rule_id)
        assert close_when is not None  # only such tasks are ever cleared
        held_for = format_duration(now - entry["cleared_since"])
        reason = render(close_when.reason, {**entry["fact"], "cleared_for": held_for})
        tasks = self.open[tenant_id]
        del tasks[rule_id]
        if not tasks:
            del self.open[tenant_id]
        return self._record(entry, now, CLOSED, closed_reason=reason)

    def _escalate(self, tenant_id: str, rule_id: str, entry: Entry, now: int) -> dict[str, Any]:
        step = self._next_step(entry["record"]["priority"])
        assert step is not None  # a task is woken to escalate only when there is a step
        record = self._record(
            entry,
            now,
            ESCALATED,
            owner_role=step.owner_role,
            priority=step.priority,
            due_at=to_iso(now + step.sla),
        )
        entry["record"], entry["due"] = record, now + step.sla
        self._wake(tenant_id, rule_id, entry)
        return record

    def _record(self, entry: Entry, now: int, status: str, **changes: Any) -> dict[str, Any]:
        before = entry["record"]
        return {
            **before,
            **changes,
            "status": status,
            "version": before["version"] + 1,
            "updated_at": to_iso(now),
        }

    # -- when each task falls due -------------------------------------------------------

    def _wake(self, tenant_id: str, rule_id: str, entry: Entry) -> None:
        wake = self._wake_of(rule_id, entry)
        if wake is not None:
            heapq.heappush(self._wakes, (wake, tenant_id, rule_id))

    def _wake_of(self, rule_id: str, entry: Entry) -> int | None:
        """When the task closes (what opened it stopped holding `after` ago), or else
        escalates (its SLA passed and the ladder has a step above it); None: never, as it
        is."""
        close_when = self._close_when(rule_id)
        if close_when is None:
            return None  # a rule that says nothing of closing: open for good, as it was
        if entry["cleared_since"] is not None:
            return int(entry["cleared_since"]) + close_when.after
        if self._next_step(entry["record"]["priority"]) is None:
            return None
        return int(entry["due"])

    def _next_step(self, priority: str) -> LadderStep | None:
        rank = PRIORITIES.index(priority)
        return next((s for s in self.ladder if PRIORITIES.index(s.priority) > rank), None)

    def _close_when(self, rule_id: str) -> CloseWhen | None:
        rule = self.rules.get(rule_id)  # a rule removed since keeps its tasks as they are
        return rule.close_when if rule is not None else None
