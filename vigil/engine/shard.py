"""One engine shard: the compiled core that owns the shard's state and its clock, and
the policy it hands what it finds to.

A shard owns the tenants hashed onto it. It receives their events and the stream's
watermark ticks, and moves its own clock through event time in fixed steps:

- an accepted event waits in a queue until the watermark passes the next step; the
  queue is drained in event-time order (at one instant: an item's creation before its
  end, then by tenant and event_id), so the state at every step is the same whatever
  the arrival order, batch size or worker count;
- at each step it closes the windows that end there (even for silent tenants),
  fires onboarding deadlines that fell before it, re-scores the tenants that changed
  (every tenant once a day, so silence costs points), and posts the derived facts
  to the rules engine;
- an event older than the watermark it arrived under is late: a dead letter.

All of that runs in vigil._native.ShardCore (native/src/); vigil.engine.policy turns
what it finds into records, facts, rule actions and log lines.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from vigil._native import ShardCore
from vigil.base.errors import ConfigError
from vigil.base.streams import Output
from vigil.base.timeutil import to_iso
from vigil.config.settings import Settings
from vigil.engine.measures import compiled
from vigil.engine.policy import Policy
from vigil.engine.state import (  # ShardState here too: stores pickled it as vigil.engine.shard's
    ShardState,
    layout_changes,
    scoring_settings,
    state_layout,
)
from vigil.engine.tenant import TenantState
from vigil.intake.events import Event
from vigil.intake.reader import Tick
from vigil.ops.metrics import ShardFigures
from vigil.rules.engine import RuleEngine

__all__ = ["MEMO_SIZE", "ShardEngine", "ShardState"]

# The most component entries and reason lines the core keeps worded, per cache (emptied
# when full): a 1M-event run meets about 1,300 distinct ones.
MEMO_SIZE = 5_000


class ShardEngine:
    def __init__(
        self, settings: Settings, rules: RuleEngine, state: ShardState | None = None
    ) -> None:
        layout = state_layout(settings)
        changed = layout_changes(state.layout, layout) if state is not None else []
        if changed:
            msg = f"the recovery store does not fit ({'; '.join(changed)}); use a new store"
            raise ConfigError(msg)
        self.settings = settings
        self.layout = layout  # a state read from an older format is saved in this one
        self.scored_with = scoring_settings(settings)
        self.policy = Policy(settings, rules, state.tasks if state is not None else None)
        self.core = ShardCore(
            settings,
            Event,
            Tick,
            to_iso,
            settings.catalogue.full.types,
            MEMO_SIZE,
            compiled(settings),
        )
        if state is not None:
            # Scores kept as the drop window's peaks under other health settings are of
            # another model: a new score below them would be no customer's fall.
            self.core.restore(state, state.scored_with not in ("", self.scored_with))

    def process(self, items: Iterable[Event | Tick]) -> list[Output]:
        found = self.core.process(items)
        out: list[Output] = []
        for item in found:  # health records, and findings for the policy to put in words
            if type(item) is tuple:
                out.append(item)
            else:
                out.extend(self.policy.outputs(item))
        return out

    @property
    def counts(self) -> Counter[str]:
        """The tallies (`name` or `name:label[:label]`) the metrics have not taken yet: the
        policy's, and the core's, taken when asked for rather than after every chunk."""
        taken = self.core.take_counts()
        if taken:  # rarely: duplicates, late events, unknown types
            self.policy.counts.update(taken)
        return self.policy.counts

    def take_type_counts(self) -> dict[str, int]:
        """The events accepted by type since the last call."""
        return self.core.take_type_counts()

    def figures(self) -> ShardFigures:
        """What the shard reports to the metrics after each batch."""
        core = self.core
        return ShardFigures(core.tenant_count, core.zones, core.watermark, core.pending_count)

    # -- what a snapshot saves (vigil.engine.snapshots) ---------------------------------------

    def touch_all(self) -> None:
        self.core.touch_all()

    def take_changed(self) -> set[str]:
        """The tenants changed since the last call: touched, and those whose events were
        applied since their last re-scoring."""
        return set(self.core.take_changed())

    def tenant_ids(self) -> Iterable[str]:
        return self.core.tenant_ids()

    def saved_tenant(self, tenant_id: str) -> TenantState | None:
        return self.core.export_tenant(tenant_id, TenantState)

    def plain_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = self.core.plain_state()
        fields.update(
            layout=self.layout, scored_with=self.scored_with, tasks=self.policy.tasks.open
        )
        return fields

    def seen_day_counts(self) -> dict[int, int]:
        return self.core.seen_day_counts()

    def seen_day(self, day: int) -> list[str]:
        return self.core.seen_day(day)
