"""Shared test helpers (on sys.path via pytest's `pythonpath`): build events, feed them
through the real intake and a shard."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from vigil._native import ShardSplitter
from vigil.base.records import RECORDS
from vigil.base.streams import Output
from vigil.base.timeutil import MS_PER_DAY, MS_PER_HOUR, parse_rfc3339, to_iso
from vigil.config.settings import Settings, load_settings
from vigil.engine.measures import fleet_feeds
from vigil.engine.shard import ShardEngine
from vigil.engine.snapshots import SnapshotWriter, load_state
from vigil.engine.state import ShardState
from vigil.intake.events import DeadLetter, Event
from vigil.intake.reader import Intake, Tick
from vigil.rules.engine import RuleEngine, engine_for
from vigil.rules.loader import load_rules

T0 = parse_rfc3339("2026-03-02T00:00:00Z")  # a Monday: the start of a login window
HOUR = MS_PER_HOUR
DAY = MS_PER_DAY
_ids = itertools.count()


def event(
    tenant: str, kind: str, ts: int, attrs: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """One input event as a producer would send it (ts as RFC 3339)."""
    body: dict[str, Any] = {
        "event_id": extra.pop("event_id", f"e{next(_ids)}"),
        "type": kind,
        "tenant_id": tenant,
        "ts": to_iso(ts),
    }
    if attrs is not None:
        body["attrs"] = attrs
    body.update(extra)
    return body


def clock(ts: int) -> dict[str, Any]:
    """An event of a type outside the catalogue: it moves the watermark, nothing else."""
    return event("clock-tenant", "test.clock", ts)


def sessions(tenant: str, start: int, count: int, spacing: int = HOUR) -> list[dict[str, Any]]:
    return [event(tenant, "user.session", start + n * spacing) for n in range(count)]


def trouble(tenant: str, at: int) -> list[dict[str, Any]]:
    """A failed invoice and two P1 tickets: score 0, red, from the tenant's first step."""
    return [
        event(tenant, "billing.invoice", at, {"invoice_id": "i1", "status": "failed"}),
        event(tenant, "ticket.created", at + 1, {"ticket_id": "k1", "priority": "P1"}),
        event(tenant, "ticket.created", at + 2, {"ticket_id": "k2", "priority": "P1"}),
    ]


class Harness:
    """Events -> Intake (watermark, decoding) -> one ShardEngine, like the dataflow does."""

    def __init__(self, settings: Settings | None = None, rules: RuleEngine | None = None) -> None:
        self.settings = settings or Settings()
        self.rules = rules or engine_for(load_rules())
        lateness, catalogue = self.settings.input.allowed_lateness, self.settings.catalogue.full
        self.intake = Intake("test", "p0", 1, lateness, catalogue=catalogue)
        self.engine = ShardEngine(self.settings, self.rules)
        self.out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.position = 0

    def feed(self, events: Iterable[dict[str, Any] | bytes], batch_size: int = 50) -> Harness:
        batch: list[Any] = []
        for item in events:
            raw = item if isinstance(item, bytes) else orjson.dumps(item)
            self.position += 1
            decoded = self.intake.take(raw, {"line": self.position})
            if hasattr(decoded, "reason"):
                self.out["deadletter"].append(decoded.to_record())  # type: ignore[union-attr]
            else:
                batch.append(decoded)
            if len(batch) >= batch_size:
                self._process(batch)
                batch = []
        self._process(batch)
        return self

    def _process(self, batch: list[Any]) -> None:
        batch.append(self.intake.tick())
        # Through the dataflow's splitter (one shard): it notes what the fleet used.
        [items] = ShardSplitter(1, Event, Tick, fleet_feeds(self.settings)).split(batch)
        self._collect(self.engine.process(items))

    def _collect(self, outputs: list[Output]) -> None:
        for stream, record in outputs:
            self.out[stream].append(record)

    def signals(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [s for s in self.out["signals"] if kind is None or s["signal"] == kind]


def restored(engine: ShardEngine) -> ShardState:
    """The shard's whole state, as its recovery store keeps it: the core holds it."""
    return load_state(SnapshotWriter(engine).snapshot())


class Partitions:
    """One shard fed by several source partitions, each through its own intake, as the
    dataflow does with a multi-partition topic; the test picks which partition speaks."""

    def __init__(self, names: Iterable[str], settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.engine = ShardEngine(self.settings, engine_for(load_rules()))
        names = list(names)
        lateness = self.settings.input.allowed_lateness
        self.intakes = {name: Intake("test", name, len(names), lateness) for name in names}

    def read(self, name: str, events: Iterable[dict[str, Any]], idle: bool = False) -> list[Output]:
        """One batch of partition `name`, then its watermark tick (None when `idle`)."""
        intake, batch, out = self.intakes[name], [], []
        for item in events:
            decoded = intake.take(orjson.dumps(item), {"line": 0})
            if isinstance(decoded, DeadLetter):
                out.append(("deadletter", decoded.to_record()))
            else:
                batch.append(decoded)
        tick = intake.tick()
        batch.append(tick._replace(wm=None) if idle else tick)
        return out + self.engine.process(batch)


# The fields of every output record (docs/reference/events.md).
CONTRACT = {stream: set(record.__annotations__) for stream, record in RECORDS.items()}

SCENARIO_OUTCOME = {
    # scenario: (signal it must raise, rule whose task it must get)
    "login_drop": ("login_drop", "login-drop"),
    "onboarding_stalled": ("onboarding_stalled", "onboarding-stalled"),
    "error_spike": ("error_spike", "error-spike"),
    # the lifecycle pack's: an SMB tenant gets the rule's in-app nudge instead of its task
    "renewal": ("renewal_r60", "renewal-r60"),
    "seat_cap": ("seat_cap", "seat-cap"),
    "usage_growth": ("usage_growth", "usage-growth"),
    "low_adoption": ("low_adoption", "low-adoption"),
    "single_user": ("single_user", "single-user"),
    "support_volume": ("support_volume", "support-volume"),
    "p1_unresolved": ("p1_unresolved", "p1-unresolved"),
    "sponsor_departed": ("sponsor_departed", "sponsor-departed"),
    "invoice_unpaid": ("invoice_unpaid", "invoice-unpaid"),
    "nps_drop": ("nps_detractor", "nps-drop"),
    "integration_errors": ("integration_errors", "integration-errors"),
    "downgrade": ("seats_cut", "downgrade"),
}


def scenario_problems(
    manifest: dict[str, dict[str, str]],
    signals: list[dict[str, Any]],
    tasks: list[dict[str, Any]],
    notifications: Iterable[dict[str, Any]] = (),
    too_short: Iterable[str] = (),
) -> list[str]:
    """What a simulated fleet's outputs get wrong: an injected scenario without its signal
    and task (an SMB tenant: its nudge), an at-risk tenant without a zone task, a healthy
    tenant with anything. `too_short`: scenarios the stream was too short to hold."""
    by_signal: dict[str, set[str]] = defaultdict(set)
    by_task: dict[str, set[str]] = defaultdict(set)
    for record in signals:
        by_signal[record["tenant_id"]].add(record["signal"])
    for record in tasks:
        by_task[record["tenant_id"]].add(record["rule"])
    for record in notifications:
        if record["rule"].endswith("-nudge"):  # the SMB touch stands for the rule's task
            by_task[record["tenant_id"]].add(record["rule"].removesuffix("-nudge"))
    problems, seen = [], set()
    for tenant, info in sorted(manifest.items()):
        scenario = info["scenario"]
        if scenario in SCENARIO_OUTCOME:
            signal, rule = SCENARIO_OUTCOME[scenario]
            if signal not in by_signal[tenant] or rule not in by_task[tenant]:
                problems.append(_outcome(tenant, scenario, by_signal, by_task))
            seen.add(scenario)
        elif scenario == "at_risk":
            if not by_task[tenant] & {"entered-orange", "entered-red"}:
                problems.append(f"{tenant} (at_risk): tasks {by_task[tenant]}")
            seen.add(scenario)
        elif by_signal[tenant] or by_task[tenant]:
            problems.append(_outcome(tenant, scenario, by_signal, by_task))
    missing = {*SCENARIO_OUTCOME, "at_risk"} - seen - set(too_short)
    if missing:
        problems.append(f"the fleet had no tenant for {sorted(missing)}")
    return problems


def _outcome(
    tenant: str, scenario: str, signals: dict[str, set[str]], tasks: dict[str, set[str]]
) -> str:
    found = f"signals {sorted(signals[tenant])}, tasks {sorted(tasks[tenant])}"
    return f"{tenant} ({scenario}): {found}"


ROOT = Path(__file__).resolve().parents[1]


def vigil_command(*args: str) -> list[str]:
    """`vigil ARGS` as a process of this interpreter, whatever is on PATH."""
    return [sys.executable, "-m", "vigil.app.cli", *args]


def quiet_env() -> dict[str, str]:
    """This environment, with no metrics endpoint (tests may run side by side)."""
    return {**os.environ, "VIGIL_METRICS__PORT": "0"}


def run_vigil(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs `vigil`; without an `env`, in `quiet_env()`. `preexec_fn` runs in the child."""
    env = env if env is not None else quiet_env()
    return subprocess.run(
        vigil_command(*args),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        preexec_fn=preexec_fn,
    )


def committed_epoch(store: Path) -> int:
    """The last epoch bytewax committed in a recovery store (0 before the first)."""
    import sqlite3

    try:  # read-only: a plain connect would create the file, and Vigil then resume it
        with sqlite3.connect(f"file:{store / 'part-0.sqlite3'}?mode=ro", uri=True) as db:
            row = db.execute("SELECT MAX(commit_epoch) FROM commits").fetchone()
    except sqlite3.Error:  # not created yet, or being written
        return 0
    return int(row[0] or 0)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a running Vigil's /metrics, by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def half_drop() -> Settings:
    """Settings whose login drop is a fall below half a week of at least 10 sessions: what
    the tests of how a signal over calendar windows fires, is ordered and is replayed are
    written for (the default, a near stop, is in test_signals)."""
    overrides = {"signals": {"login_drop": {"below": 0.5, "min_previous": 10, "high_below": 0.2}}}
    return load_settings(None, env={}, overrides=overrides)
