"""SIGTERM and Ctrl-C: the first signal of a run asks for a stop, a second one stops."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable
from pathlib import Path

import pytest

from vigil.base.stopping import Interrupted, StopSignal
from vigil.connectors.files import JsonLinesSource
from vigil.connectors.stoppable import StoppableSource
from vigil.intake.events import Event
from vigil.intake.reader import Chunk


def _send(signum: int) -> None:
    os.kill(os.getpid(), signum)  # handled in this (main) thread before kill returns


def test_during_a_run_the_first_signal_asks_and_the_second_stops() -> None:
    with StopSignal(graceful=True) as stop:
        assert not stop.stopping() and stop.exit_code is None
        _send(signal.SIGTERM)
        assert stop.stopping() and stop.name == "SIGTERM" and stop.exit_code == 143
        with pytest.raises(Interrupted) as second:
            _send(signal.SIGINT)
    assert second.value.exit_code == 130


def test_outside_a_run_ctrl_c_stops_at_once_and_sigterm_keeps_its_default() -> None:
    with StopSignal(), pytest.raises(Interrupted) as stopped:
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # stops even in a C call
        _send(signal.SIGINT)
    assert stopped.value.exit_code == 130
    assert isinstance(stopped.value, KeyboardInterrupt)  # what Ctrl-C handling expects


def test_as_pid_1_sigterm_is_handled_too(monkeypatch: pytest.MonkeyPatch) -> None:
    this_process = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: 1)  # as a container's init: SIG_DFL is ignored
    with StopSignal(), pytest.raises(Interrupted) as stopped:
        os.kill(this_process, signal.SIGTERM)
    assert stopped.value.exit_code == 143


def test_the_handlers_before_are_put_back() -> None:
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    with StopSignal(graceful=True):
        assert signal.getsignal(signal.SIGTERM) != before[signal.SIGTERM]
    assert {signum: signal.getsignal(signum) for signum in before} == before


def test_a_stopped_source_ends_at_its_next_batch_and_keeps_its_position(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        b"".join(
            b'{"event_id": "e%d", "type": "user.session", "tenant_id": "t", "ts": %d}\n'
            % (n, 1_772_000_000_000 + n)
            for n in range(5)
        )
    )
    stop = StopSignal(graceful=True)
    source = StoppableSource(JsonLinesSource(str(path), lateness=0, batch_size=2), stop)
    assert source.list_parts() == [str(path)]
    part = source.build_part("input", str(path), None)
    assert _event_ids(part.next_batch()) == ["e0", "e1"]
    with stop:
        _send(signal.SIGTERM)
    with pytest.raises(StopIteration):
        part.next_batch()
    offset, line, *_ = part.snapshot()
    assert line == 2 and offset == len(path.read_bytes().splitlines(keepends=True)[0]) * 2
    part.close()
    # A new run resumes right there.
    resumed = StoppableSource(JsonLinesSource(str(path), lateness=0, batch_size=10), StopSignal())
    assert _event_ids(resumed.build_part("input", str(path), part.snapshot()).next_batch()) == [
        "e2",
        "e3",
        "e4",
    ]


def _event_ids(batch: Iterable[Chunk]) -> list[str]:
    return [item.event_id for chunk in batch for item in chunk if isinstance(item, Event)]
