"""How a failing recovery store, reported by Bytewax as a bare RuntimeError, is told."""

from __future__ import annotations

import pytest

from vigil.runner import store_failure

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
