"""How a failing recovery store, reported by Bytewax as a bare RuntimeError, is told;
and how the processes of a cluster, started together, make one store between them."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from vigil.runner import has_committed, prepare_recovery_dir, store_failure
from vigil.settings import Settings
from vigil.shard import state_layout

# As Bytewax 0.21 words them (seen with a full disk and with a file that is not SQLite).
FULL = (
    "(src/run.rs:167:13) called `Result::unwrap()` on an `Err` value: SqliteFailure(Error "
    '{ code: DiskFull, extended_code: 13 }, Some("database or disk is full"))'
)
DAMAGED = (
    "(src/run.rs:167:13) called `Result::unwrap()` on an `Err` value: SqliteFailure(Error "
    '{ code: NotADatabase, extended_code: 26 }, Some("file is not a database"))'
)
NO_TEXT = "SqliteFailure(Error { code: ReadOnly, extended_code: 8 }, None)"


@pytest.mark.parametrize(
    ("message", "said"),
    [
        (
            FULL,
            "recovery store /s: database or disk is full "
            "(once that is fixed, the same command resumes from the last snapshot)",
        ),
        (
            DAMAGED,
            "recovery store /s: file is not a database (the store is damaged: use a new one)",
        ),
        (
            NO_TEXT,
            "recovery store /s: ReadOnly "
            "(once that is fixed, the same command resumes from the last snapshot)",
        ),
    ],
)
def test_a_store_failure_is_one_line_with_what_to_do(message: str, said: str) -> None:
    failure = store_failure(RuntimeError(message), "/s")
    assert failure is not None and str(failure) == said


def test_other_errors_and_runs_without_a_store_are_left_as_they_are() -> None:
    assert store_failure(RuntimeError("(src/operators.rs:1:1) error in step 'x'"), "/s") is None
    assert store_failure(RuntimeError(FULL), None) is None


def _prepare(store: Path, said: multiprocessing.Queue[str]) -> None:
    """One process's start: make the store or find it, then fresh or resumed."""
    try:
        if prepare_recovery_dir(store, layout=state_layout(Settings())):
            said.put("made")
        else:
            said.put("resumed" if has_committed(store) else "fresh")
    except BaseException as exc:  # a Bytewax panic is no Exception
        said.put(f"failed: {exc}"[:200])


def test_processes_started_together_make_one_store_and_both_start_fresh(tmp_path: Path) -> None:
    # Both made it (a Bytewax panic, "table parts already exists"), or one read it half
    # made, took it for a store to resume, and kept an earlier run's output records: 111
    # of 150 pairs went wrong so.
    context = multiprocessing.get_context("fork")
    outcomes = []
    for attempt in range(20):
        store = tmp_path / f"store-{attempt}"
        said: multiprocessing.Queue[str] = context.Queue()
        processes = [context.Process(target=_prepare, args=(store, said)) for _ in range(2)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=60)
        outcomes.append(sorted(said.get(timeout=5) for _ in processes))
    assert outcomes == [["fresh", "made"]] * 20
