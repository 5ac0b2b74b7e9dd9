"""The durable_rules wrapper: which rules a derived fact matches.

Facts from NOTES.md this design follows:
- a posted event is consumed by ONE rule, so every rule gets its own ruleset and a
  fact is posted to each ruleset whose rule could match it: about that kind of fact,
  and about its signal or zone (`_ROUTED_BY`);
- one fixed session id per ruleset (at most 1024 sessions; no delete_state calls);
- every posted message carries a unique id (the fact id);
- exceptions inside actions are swallowed by durable_rules, so the action only
  records the match and the caller checks that it did;
- durable_rules timers run on wall-clock time, so no time logic lives here.
The engine's C core is process-global; one engine per distinct rule set is cached and
shared by the worker threads of a process, behind a lock.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from typing import Any

import orjson
from durable import engine as durable

from vigil.base.errors import RuleEvaluationError
from vigil.rules.model import Rule, When

_SESSION = "vigil"
# The field that names what a fact is about, per kind of fact. A rule that lists values
# for it is posted only facts with one of them: a post costs tens of µs in durable_rules
# (JSON, and an exception when nothing matches), and most zone changes, to green or
# yellow, concern no rule at all. The rule's condition still decides (compile_condition
# tests the same field), so this only spares posts that could not match.
_ROUTED_BY = {"signal": "signal", "zone_change": "zone"}
_CACHE: dict[str, RuleEngine] = {}
_CACHE_LOCK = threading.Lock()


def compile_condition(when: When) -> dict[str, Any]:
    """A rule's `when` as a durable_rules JSON condition on one message."""
    terms: list[dict[str, Any]] = [{"fact": when.fact}]
    for name in ("signal", "severity", "zone", "from_zone", "segment"):
        allowed = getattr(when, name)
        if allowed:
            options = [{name: value} for value in allowed]
            terms.append(options[0] if len(options) == 1 else {"$or": options})
    if when.score_below is not None:
        terms.append({"$lt": {"score": when.score_below}})
    if when.score_at_least is not None:
        terms.append({"$gte": {"score": when.score_at_least}})
    elif when.score_below is not None:
        # A signal of a tenant not scored yet carries score -1 (vigil.rules.facts): it has no
        # score to be below anything.
        terms.append({"$gte": {"score": 0}})
    return {"m": {"$and": terms}}


class _Host(durable.Host):  # type: ignore[misc]
    """Resolves each ruleset's string action name to a recorder of the match."""

    def __init__(self) -> None:
        self.matched: list[str] = []
        super().__init__()

    def get_action(self, action_name: str) -> Any:
        def record(closure: Any) -> None:
            self.matched.append(action_name)

        return record


class RuleEngine:
    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = {rule.id: rule for rule in rules}
        definitions = {rule.id: compile_condition(rule.when) for rule in rules}
        digest = hashlib.blake2b(
            orjson.dumps(definitions, option=orjson.OPT_SORT_KEYS), digest_size=6
        )
        self._prefix = f"vigil_{digest.hexdigest()}_"
        self._by_fact: dict[str, list[str]] = {}
        for rule in rules:
            self._by_fact.setdefault(rule.when.fact, []).append(rule.id)
        self._routes: dict[tuple[str, object], list[str]] = {}  # see _candidates
        self._host = _Host()
        self._host.set_rulesets(
            {
                self._ruleset(rule_id): {rule_id: {"all": [cond], "run": rule_id}}
                for rule_id, cond in definitions.items()
            }
        )
        self._lock = threading.Lock()

    def _ruleset(self, rule_id: str) -> str:
        return self._prefix + rule_id

    def evaluate(self, fact: dict[str, Any]) -> tuple[list[Rule], list[RuleEvaluationError]]:
        """The rules that match `fact`, and the failures of the ones the engine could not
        evaluate (one failing rule does not stop the others)."""
        matched: list[Rule] = []
        errors: list[RuleEvaluationError] = []
        message = {**fact, "sid": _SESSION, "id": fact["fact_id"]}
        with self._lock:
            for rule_id in self._candidates(fact):
                try:
                    if self._post(rule_id, message):
                        matched.append(self.rules[rule_id])
                except RuleEvaluationError as exc:
                    exc.rule_id = rule_id
                    errors.append(exc)
        return matched, errors

    def _candidates(self, fact: dict[str, Any]) -> list[str]:
        """The rules that could match `fact`, by its kind and what it is about."""
        kind = fact["fact"]
        field = _ROUTED_BY.get(kind)
        about = None if field is None else fact.get(field)
        route = (kind, about)
        rule_ids = self._routes.get(route)
        if rule_ids is None:  # a few routes per rule set: signals and zones are closed lists
            rule_ids = [
                rule_id
                for rule_id in self._by_fact.get(kind, ())
                if field is None or _allows(getattr(self.rules[rule_id].when, field), about)
            ]
            self._routes[route] = rule_ids
        return rule_ids

    def _post(self, rule_id: str, message: dict[str, Any]) -> bool:
        self._host.matched.clear()
        try:
            self._host.post(self._ruleset(rule_id), message)
        except durable.MessageNotHandledException:
            return False
        except Exception as exc:
            msg = f"rule '{rule_id}' failed on fact {message['fact_id']}: {exc}"
            raise RuleEvaluationError(msg) from exc
        if self._host.matched != [rule_id]:
            msg = f"rule '{rule_id}' matched fact {message['fact_id']} but its action did not run"
            raise RuleEvaluationError(msg)
        return True


def _allows(allowed: tuple[str, ...] | None, value: object) -> bool:
    return allowed is None or value in allowed


def engine_for(rules: Sequence[Rule]) -> RuleEngine:
    """The process's engine for this exact rule set (durable_rules state is global)."""
    key = orjson.dumps([rule.model_dump(mode="json") for rule in rules]).decode()
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = RuleEngine(rules)
        return _CACHE[key]
