"""Prometheus metrics. Every metric lives in a registry passed in, so tests (and several
runs in one process) each read their own.

Each Vigil process serves its own registry; in a multi-process run Prometheus scrapes
every process and sums (the counters are per process, the gauges are each process's
share: tenants, zones, partitions). No metric has a per-tenant label.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Collection, Iterable, Mapping
from functools import partial
from typing import NamedTuple

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from vigil.base.version import VERSION
from vigil.base.zones import ZONES
from vigil.intake.events import KNOWN_TYPES

log = logging.getLogger("vigil.input")

# A counter's `_created` series (when it was first counted) doubles the samples and says
# nothing a process's start time does not.
disable_created_metrics()  # type: ignore[no-untyped-call]


# Event types outside the catalogue keep their own `type` label up to this many names per
# process; the rest share `type="other"`. A producer that puts ids into its type names
# would otherwise add a Prometheus series for every event.
UNKNOWN_TYPE_LABELS = 20
UNKNOWN_TYPE_LABEL_CHARS = 64
OTHER_TYPES = "other"

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SNAPSHOT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ShardFigures(NamedTuple):
    """What a shard reports after each batch, for the gauges summed over shards."""

    tenants: int
    zones: Mapping[str, int]
    watermark: int | None
    waiting: int  # events accepted, not applied: the watermark has not closed their step


class _EventsByType(Collector):
    """vigil_events_total{type}: events accepted, by event type. Plain sums read when
    Prometheus scrapes: every shard adds its tallies after every batch, and a labelled
    Counter's inc() for each type of each would cost a few percent of the run."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._totals: dict[str, int] = {}
        self._lock = threading.Lock()  # the workers of a process add to the same sums
        registry.register(self)

    def add(self, labelled: Iterable[tuple[str, int]]) -> None:
        with self._lock:
            totals = self._totals
            for label, value in labelled:
                totals[label] = totals.get(label, 0) + value

    def describe(self) -> list[Metric]:
        return [self._family()]

    def collect(self) -> list[Metric]:
        family = self._family()
        with self._lock:
            totals = sorted(self._totals.items())
        for label, value in totals:
            family.add_metric([label], value)
        return [family]

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily(
            "vigil_events", "Events accepted, by event type", labels=["type"]
        )


class Metrics:
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        known_types: Collection[str] = KNOWN_TYPES,
    ) -> None:
        # The catalogue's types (the settings may add some) are labelled as they are.
        self._known_types = known_types
        self.registry = r = registry or CollectorRegistry()
        # What every Prometheus client serves by default (memory, CPU, open files, start
        # time, Python version), which a registry of one's own leaves out; and the version.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        Info("vigil_build", "Vigil's version", registry=r).info({"version": VERSION})
        self.events = _EventsByType(registry=r)
        self.duplicates = Counter(
            "vigil_duplicate_events_total", "Events dropped as a repeat of an event_id", registry=r
        )
        self.unknown = Counter(
            "vigil_unknown_event_types_total", "Events of a type outside the catalogue", registry=r
        )
        self.dead_letters = Counter(
            "vigil_dead_letters_total", "Rejected input, by reason", ["reason"], registry=r
        )
        self.blank_lines = Counter(
            "vigil_blank_lines_total", "Lines of an input file skipped as blank", registry=r
        )
        self.signals = Counter(
            "vigil_signals_total", "Signals detected, by signal", ["signal"], registry=r
        )
        self.facts = Counter(
            "vigil_facts_total", "Facts posted to the rules engine, by kind", ["kind"], registry=r
        )
        self.actions = Counter(
            "vigil_actions_total",
            "Tasks and notifications emitted, by rule and kind",
            ["rule", "kind"],
            registry=r,
        )
        self.suppressed = Counter(
            "vigil_actions_suppressed_total",
            "Rule firings held back by a cooldown or by the rule's task still open, by rule",
            ["rule"],
            registry=r,
        )
        self.task_changes = Counter(
            "vigil_task_changes_total",
            "Tasks escalated or closed, by rule and the status they went to",
            ["rule", "status"],
            registry=r,
        )
        self.rule_errors = Counter(
            "vigil_rule_evaluation_errors_total",
            "Facts the rules engine failed on, by rule",
            ["rule"],
            registry=r,
        )
        self.delivery_errors = Counter(
            "vigil_kafka_delivery_errors_total",
            "Output messages Kafka did not acknowledge",
            ["topic"],
            registry=r,
        )
        self.input_expired = Counter(
            "vigil_kafka_input_expired_total",
            "Input messages the topic deleted (retention) before Vigil read them",
            ["topic", "partition"],
            registry=r,
        )
        self.tenants = Gauge("vigil_tenants", "Tenants tracked by this process", registry=r)
        self.tenants_forgotten = Counter(
            "vigil_tenants_forgotten_total",
            "Tenants dropped from state after engine.forget_tenants_after with no event",
            registry=r,
        )
        self.keys_refused = Counter(
            "vigil_tenant_keys_refused_total",
            "New keys (features, open tickets, ...) not kept: the tenant held "
            "engine.max_keys_per_tenant of that kind",
            ["map"],
            registry=r,
        )
        self.zones = Gauge(
            "vigil_tenants_by_zone", "Tenants per health zone in this process", ["zone"], registry=r
        )
        self.waiting = Gauge(
            "vigil_events_waiting",
            "Events accepted and held until the watermark closes their step",
            registry=r,
        )
        self.event_time_lag = Gauge(
            "vigil_event_time_lag_seconds",
            "Wall clock minus the stream watermark (event time)",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "vigil_kafka_consumer_lag_messages",
            "Messages behind the end of each input partition",
            ["topic", "partition"],
            registry=r,
        )
        self.partitions_waiting = Gauge(
            "vigil_kafka_partitions_waiting",
            "Input partitions not read for now: more than input.allowed_lateness of event time "
            "ahead of the slowest one this process reads",
            ["topic"],
            registry=r,
        )
        self.latency = Histogram(
            "vigil_processing_latency_seconds",
            "Wall time from reading the input that triggered a task or notification to writing it",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # A shard stops while its state is encoded, at every epoch: what a recovery store
        # costs, and how much it writes (rate() of the bytes).
        self.snapshot_seconds = Histogram(
            "vigil_snapshot_seconds",
            "Wall time to encode one shard's state for the recovery store",
            buckets=SNAPSHOT_BUCKETS,
            registry=r,
        )
        self.snapshot_bytes = Counter(
            "vigil_snapshot_bytes", "Bytes of shard state handed to the recovery store", registry=r
        )
        self._unknown_labels: set[str] = set()
        # Each type's label, for the types with their own label.
        self._type_labels: dict[str, str] = {}
        self._lock = threading.Lock()
        self._shards: dict[str, ShardFigures] = {}
        # Sums over the shards are taken when Prometheus scrapes, not on every batch.
        self.event_time_lag.set_function(self._lag)
        self.tenants.set_function(self._tenants)
        self.waiting.set_function(self._waiting)
        for zone in ZONES:
            self.zones.labels(zone).set_function(partial(self._in_zone, zone))

    # -- fed by the engine shards -------------------------------------------------------

    def record_types(self, counts: dict[str, int]) -> None:
        """Add accepted events by type and reset the tallies."""
        labelled = []
        for kind, value in counts.items():
            label = self._type_labels.get(kind)
            if label is None:
                label = self._type_label(kind)
                if label == kind:  # a type with its own label: there are few of those
                    self._type_labels[kind] = label
            labelled.append((label, value))
        self.events.add(labelled)
        counts.clear()

    def _type_label(self, kind: str) -> str:
        if kind in self._known_types or kind in self._unknown_labels:
            return kind
        if len(kind) > UNKNOWN_TYPE_LABEL_CHARS or kind == OTHER_TYPES:
            return OTHER_TYPES
        with self._lock:  # the workers of a process share the allowance
            if len(self._unknown_labels) >= UNKNOWN_TYPE_LABELS:
                return OTHER_TYPES
            self._unknown_labels.add(kind)
            remaining = UNKNOWN_TYPE_LABELS - len(self._unknown_labels)
        log.info(
            "events of a type outside the catalogue are counted, not used",
            extra={"type": kind, "type_labels_left": remaining},
        )
        return kind

    def record(self, counts: Tally[str]) -> None:
        """Add a shard's tallies (`name` or `name:label[:label]`) and reset them."""
        for key, value in counts.items():
            name, _, labels = key.partition(":")
            if name == "duplicates":
                self.duplicates.inc(value)
            elif name == "unknown_types":
                self.unknown.inc(value)
            elif name == "late":  # a dead letter, counted with the others
                self.dead_letters.labels("late").inc(value)
            elif name == "signal":
                self.signals.labels(labels).inc(value)
            elif name == "fact":
                self.facts.labels(labels).inc(value)
            elif name == "action":
                rule, kind = labels.split(":")
                self.actions.labels(rule, kind).inc(value)
            elif name == "task":
                rule, status = labels.split(":")
                self.task_changes.labels(rule, status).inc(value)
            elif name == "suppressed":
                self.suppressed.labels(labels).inc(value)
            elif name == "rule_error":
                self.rule_errors.labels(labels).inc(value)
            elif name == "tenants_forgotten":
                self.tenants_forgotten.inc(value)
            elif name == "keys_refused":
                self.keys_refused.labels(labels).inc(value)
        counts.clear()

    def record_snapshot(self, seconds: float, size: int) -> None:
        self.snapshot_seconds.observe(seconds)
        self.snapshot_bytes.inc(size)

    def record_shard(self, shard: str, figures: ShardFigures) -> None:
        """A shard's current figures; the gauges show the sums."""
        with self._lock:
            self._shards[shard] = figures

    def _tenants(self) -> float:
        with self._lock:
            return sum(shard.tenants for shard in self._shards.values())

    def _waiting(self) -> float:
        with self._lock:
            return sum(shard.waiting for shard in self._shards.values())

    def _in_zone(self, zone: str) -> float:
        with self._lock:
            return sum(shard.zones.get(zone, 0) for shard in self._shards.values())

    def _lag(self) -> float:
        with self._lock:
            marks = [s.watermark for s in self._shards.values() if s.watermark is not None]
        return time.time() - min(marks) / 1000 if marks else 0.0

    def observe_written(self, read_times: Iterable[float]) -> None:
        """Tasks or notifications just written, given when each one's trigger was read."""
        now = time.time()
        for read_at in read_times:
            if read_at:
                self.latency.observe(max(0.0, now - read_at))

    # -- reading back (summary, tests) ----------------------------------------------------

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def by_label(self, name: str, label: str) -> dict[str, float]:
        """All samples of a counter keyed by one label, e.g. events by type."""
        found: dict[str, float] = {}
        for metric in self.registry.collect():
            for sample in metric.samples:
                if sample.name == name and label in sample.labels:
                    found[sample.labels[label]] = (
                        found.get(sample.labels[label], 0.0) + sample.value
                    )
        return found

    def actions_by_rule(self) -> dict[tuple[str, str], int]:
        """Tasks and notifications emitted, by (rule, kind)."""
        found: dict[tuple[str, str], int] = {}
        for metric in self.registry.collect():
            for sample in metric.samples:
                if sample.name == "vigil_actions_total":
                    found[(sample.labels["rule"], sample.labels["kind"])] = int(sample.value)
        return found
