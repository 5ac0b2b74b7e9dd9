"""Turn a matched rule and the fact it matched into CRM tasks and alert-feed notifications."""

from __future__ import annotations

from typing import Any

from vigil.base.ids import stable_id
from vigil.base.streams import NOTIFICATIONS, TASKS
from vigil.base.timeutil import to_iso
from vigil.rules.model import Rule
from vigil.rules.templates import render

# Fact fields that are bookkeeping, not evidence a CSM needs to read.
_NOT_EVIDENCE = frozenset({"fact", "sid", "id"})


def in_cooldown(cooldowns: dict[str, int], rule: Rule, now: int) -> bool:
    """True when the rule already acted for this tenant less than `cooldown` ago (event
    time); otherwise records `now` as its latest action."""
    last = cooldowns.get(rule.id)
    if last is not None and now < last + rule.cooldown:
        return True
    cooldowns[rule.id] = now
    return False


def render_actions(rule: Rule, fact: dict[str, Any], now: int) -> list[tuple[str, dict[str, Any]]]:
    """The task and/or notification records of EVENTS.md for one firing; ids depend
    only on tenant, rule and fact, so replays and restarts repeat them exactly."""
    tenant_id = fact["tenant_id"]
    evidence = {k: v for k, v in fact.items() if k not in _NOT_EVIDENCE}
    evidence["fact_kind"] = fact["fact"]
    out: list[tuple[str, dict[str, Any]]] = []
    if rule.task is not None:
        task = rule.task
        out.append(
            (
                TASKS,
                {
                    "task_id": stable_id("task", tenant_id, rule.id, fact["fact_id"]),
                    "tenant_id": tenant_id,
                    "rule": rule.id,
                    "playbook": task.playbook,
                    "title": render(task.title, fact),
                    "description": render(task.description, fact),
                    "owner_role": task.owner_role,
                    "priority": task.priority,
                    "due_at": to_iso(now + task.sla),
                    "created_at": to_iso(now),
                    "status": "open",
                    "version": 1,
                    "updated_at": to_iso(now),
                    "closed_reason": None,
                    "evidence": evidence,
                },
            )
        )
    if rule.notification is not None:
        note = rule.notification
        out.append(
            (
                NOTIFICATIONS,
                {
                    "notification_id": stable_id("ntf", tenant_id, rule.id, fact["fact_id"]),
                    "tenant_id": tenant_id,
                    "rule": rule.id,
                    "severity": fact["severity"] if note.severity == "fact" else note.severity,
                    "channel": note.channel,
                    "title": render(note.title, fact),
                    "body": render(note.body, fact),
                    "ts": to_iso(now),
                    "evidence": evidence,
                },
            )
        )
    return out
