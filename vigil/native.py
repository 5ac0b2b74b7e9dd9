"""The shard engine and the event checks compiled (the `vigil._native` extension, built
from `native/`).

`ShardCore` runs the hot loop of `vigil.shard.ShardEngine` (de-duplication, the
event-time queue, tenant state, windows, scoring and health records) on typed data.
What is rare and shared with the interpreted engine stays in Python, here: the records
of signals, facts and the rules' actions, dead letters, logs and counters. Outputs
are byte for byte the interpreted engine's (tests/vigil/test_native.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from vigil import health
from vigil import signals as sig
from vigil.events import KNOWN_TYPES, Event
from vigil.facts import signal_fact
from vigil.intake import Tick
from vigil.metrics import ShardFigures
from vigil.rules.engine import RuleEngine
from vigil.settings import SESSION_DAYS_KEPT, Settings
from vigil.shard import ShardEngine, ShardState, _late_letter
from vigil.streams import SIGNALS, Output
from vigil.tenant import TenantState
from vigil.timeutil import to_iso

try:
    from vigil._native import ShardCore

    AVAILABLE = True
except ImportError:  # built without Rust: the interpreted engine runs
    AVAILABLE = False


class NativeShardEngine(ShardEngine):
    def __init__(
        self, settings: Settings, rules: RuleEngine, state: ShardState | None = None
    ) -> None:
        # The interpreted engine checks a restored state and works out what derives from
        # it (ShardEngine._resume); the core then takes it over.
        super().__init__(settings, rules, state)
        self.core = ShardCore(
            settings, self, Event, to_iso, KNOWN_TYPES, SESSION_DAYS_KEPT, health.MEMO_SIZE
        )
        if state is not None:
            self.core.restore(self.state, self._rescore_at, self._reweigh)
            self._rescore_at, self.zones = {}, Counter()
        # What the core does not hold: the fields only a snapshot reads.
        self.state = ShardState(layout=self.state.layout, scored_with=self.state.scored_with)

    def process(self, items: Iterable[Event | Tick]) -> list[Output]:
        out: list[Output] = self.core.process(items)
        counts, types = self.core.take_counts()
        self.counts.update(counts)
        self.type_counts.update(types)
        return out

    # -- what a snapshot saves (vigil.snapshots) ---------------------------------------

    def touch_all(self) -> None:
        self.core.touch_all()

    def take_changed(self) -> set[str]:
        self.touched.clear()  # what _post adds: the core keeps its own
        return set(self.core.take_changed())

    def tenant_ids(self) -> Iterable[str]:
        return self.core.tenant_ids()

    def saved_tenant(self, tenant_id: str) -> TenantState | None:
        return self.core.export_tenant(tenant_id, TenantState)

    def plain_fields(self) -> dict[str, Any]:
        fields = self.core.plain_state()
        fields.update(layout=self.state.layout, scored_with=self.state.scored_with)
        return fields

    def seen_day_counts(self) -> dict[int, int]:
        return self.core.seen_day_counts()

    def seen_day(self, day: int) -> list[str]:
        return self.core.seen_day(day)

    def figures(self) -> ShardFigures:
        core = self.core
        return ShardFigures(core.tenant_count, core.zones, core.watermark, core.pending_count)

    # -- called by the core -----------------------------------------------------------

    def _late_record(self, event: Event) -> dict[str, Any]:
        return _late_letter(event)

    def _login_drop_record(
        self, tenant_id: str, current: int, previous: int, start: int, end: int
    ) -> dict[str, Any] | None:
        finding = sig.detect_login_drop(current, previous, self.settings.signals.login_drop)
        return _record(tenant_id, sig.LOGIN_DROP, start, end, finding)

    def _error_spike_record(
        self, tenant_id: str, count: int, history: Sequence[int], start: int, end: int
    ) -> dict[str, Any] | None:
        finding = sig.detect_error_spike(count, history, self.settings.signals.error_spike)
        return _record(tenant_id, sig.ERROR_SPIKE, start, end, finding)

    def _stall_record(
        self, tenant_id: str, started: int, last_progress: int, deadline: int, steps: int
    ) -> dict[str, Any]:
        finding = sig.describe_onboarding_stall(started, last_progress, self._stall_after, steps)
        return sig.signal_record(
            tenant_id, sig.ONBOARDING_STALLED, last_progress, deadline, finding
        )

    def _signal_actions(
        self,
        record: dict[str, Any],
        segment: str | None,
        score: int | None,
        zone: str | None,
        why: str,
        cooldowns: dict[str, int],
        now: int,
    ) -> list[Output]:
        out: list[Output] = [(SIGNALS, record)]
        self.counts[f"signal:{record['signal']}"] += 1
        fact = signal_fact(record, segment, score, zone, why)
        self._post(fact, record["tenant_id"], cooldowns, now, out)
        return out


def _record(
    tenant_id: str, signal: str, start: int, end: int, finding: sig.Finding | None
) -> dict[str, Any] | None:
    return None if finding is None else sig.signal_record(tenant_id, signal, start, end, finding)


def engine_class(settings: Settings) -> type[ShardEngine]:
    """The shard engine a run uses: the compiled one where it is built, unless
    engine.compiled is false."""
    return NativeShardEngine if AVAILABLE and settings.engine.compiled else ShardEngine
