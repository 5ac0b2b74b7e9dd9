"""How a failing recovery store, reported by Bytewax as a bare RuntimeError, is told;
and how the processes of a cluster, started together, make one store between them."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from vigil.app import runner
from vigil.app.runner import has_committed, prepare_recovery_dir, store_failure
from vigil.config.settings import Settings
from vigil.engine.state import state_layout

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


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, not even `except Exception`."""


def _whole(store: Path, partitions: int) -> bool:
    parts = sorted(p.name for p in store.glob("part-*.sqlite3"))
    leftovers = [p.name for p in store.iterdir() if p.name.startswith(".vigil-store")]
    return (
        len(parts) == partitions
        and (store / runner.LAYOUT_FILE).exists()
        and not leftovers
        and not has_committed(store)  # readable, and fresh
    )


@pytest.mark.parametrize("cut", range(7))
def test_a_store_whose_making_is_cut_short_anywhere_is_whole_at_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: int
) -> None:
    """Killed at any step of the making (the parts made, the layout written, the whole
    store renamed, each file moved in), the next start finds a whole store or makes one.
    A store made in place was left holding no partitions in 4 of 15 kills, refused by
    every later run."""
    steps = iter(range(100))

    def step(real: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if next(steps) == cut:
                raise _Killed
            return real(*args, **kwargs)

        return wrapped

    store = tmp_path / "store"
    monkeypatch.setattr(runner, "init_db_dir", step(runner.init_db_dir))
    monkeypatch.setattr(Path, "write_bytes", step(Path.write_bytes))
    monkeypatch.setattr(Path, "rename", step(Path.rename))
    monkeypatch.setattr(Path, "replace", step(Path.replace))
    with pytest.raises(_Killed):
        prepare_recovery_dir(store, 3, layout=state_layout(Settings()))
    monkeypatch.undo()
    made = prepare_recovery_dir(store, 3, layout=state_layout(Settings()))
    assert _whole(store, 3)
    assert made == (cut < 3)  # before the rename the store did not exist; after it, it did
