"""Run a dataflow the way the settings say: workers, processes, recovery."""

from __future__ import annotations

import gc
import re
import resource
import shutil
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from bytewax.dataflow import Dataflow
from bytewax.recovery import NoPartitionsError, RecoveryConfig, init_db_dir
from bytewax.testing import cluster_main, run_main

from vigil.base.errors import ConfigError, VigilError
from vigil.base.locks import is_lock, making
from vigil.config.settings import RecoverySettings
from vigil.engine.state import layout_changes

LAYOUT_FILE = "vigil-layout.json"


def prepare_recovery_dir(
    path: Path, partitions: int = 1, layout: dict[str, Any] | None = None
) -> bool:
    """Create the recovery store if the folder is missing or empty; True if it did.
    An existing store is kept, as that is what a restart resumes from, but only if it was
    written with the same state-shaping settings (`layout`), checked before any event."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"recovery dir {path} is a file, not a folder")
    with making(path):  # the processes of a cluster start together
        return _prepare_store(path, partitions, layout)


def _prepare_store(path: Path, partitions: int, layout: dict[str, Any] | None) -> bool:
    _finish_making(path)
    marker = path / LAYOUT_FILE
    if any(not is_lock(entry) for entry in path.iterdir()):
        if not any(path.glob("part-*.sqlite3")):
            msg = (
                f"recovery dir {path} holds other files and no recovery store "
                "(no part-*.sqlite3): give Vigil an empty or new folder"
            )
            raise ConfigError(msg)
        if layout is not None and marker.exists():
            saved = orjson.loads(marker.read_bytes())
            _check_layout(path, saved, layout)
            if saved != layout:  # an older state format, still read: saved in this one now,
                # so an older Vigil refuses the store instead of failing on its snapshots
                marker.write_bytes(orjson.dumps(layout, option=orjson.OPT_INDENT_2))
        return False
    _make_store(path, partitions, layout)
    return True


# A store is built in MAKING_DIR, renamed MADE_DIR once whole, then its files are moved
# into the store's folder: a run killed at any instant leaves a whole store or none, once
# the next run has discarded a making cut short, or moved the files of a whole one in.
MAKING_DIR = ".vigil-store-making"
MADE_DIR = ".vigil-store-made"


def _make_store(path: Path, partitions: int, layout: dict[str, Any] | None) -> None:
    aside = path / MAKING_DIR
    aside.mkdir()
    init_db_dir(aside, partitions)
    if layout is not None:
        (aside / LAYOUT_FILE).write_bytes(orjson.dumps(layout, option=orjson.OPT_INDENT_2))
    aside.rename(path / MADE_DIR)  # the store is whole from here on
    _finish_making(path)


def _finish_making(path: Path) -> None:
    """Discard a store whose making was cut short, or move a whole one into place."""
    shutil.rmtree(path / MAKING_DIR, ignore_errors=True)
    made = path / MADE_DIR
    if made.is_dir():
        for entry in made.iterdir():
            entry.replace(path / entry.name)
        made.rmdir()


# A run holds every part file of its recovery store open, with SQLite's write-ahead log
# and its index beside each (measured: 910 files open for a 300-part store, any workers),
# plus a few of its own (outputs, sockets, locks).
FILES_PER_PART = 3
OTHER_FILES = 64


def open_files_for(path: Path, parts: int | None = None) -> None:
    """Let this process open the files a run on the store in `path` holds (its `parts`
    part files, counted if not given): the soft limit is raised as far as the hard one
    allows. Past that, a one-line error: the run would end in a Bytewax panic with "Too
    many open files" (1,024 is a common limit: a store of more than 320 parts)."""
    if parts is None:
        parts = sum(1 for _ in path.glob("part-*.sqlite3"))
    needed = FILES_PER_PART * parts + OTHER_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or needed <= soft:
        return
    if hard != resource.RLIM_INFINITY and needed > hard:
        msg = (
            f"recovery store {path} has {parts:,} partitions, and a run holds "
            f"{FILES_PER_PART} files open for each: {needed:,} with its others, more than "
            f"this process may open ({hard:,}, ulimit -Hn); raise that limit, or use a store "
            "of fewer partitions"
        )
        raise ConfigError(msg)
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def stored_input_parts(path: Path, step_id: str) -> set[str]:
    """The input partitions whose positions the recovery store in `path` holds, by name
    (Bytewax's `snaps` table): a run that does not list one of them ends in a Bytewax
    panic, so they are checked before it starts. Empty if the store cannot be read; the
    run then says why, as for any damaged store."""
    rows = _store_rows(path, "SELECT DISTINCT state_key FROM snaps WHERE step_id = ?", step_id)
    return set() if rows is None else {key for (key,) in rows}


def has_committed(path: Path) -> bool:
    """Whether the recovery store in `path` has committed a snapshot. One that has not
    (made by `vigil recovery init`, or by a run stopped before its first snapshot) gives
    a run nothing to resume: it starts afresh. True if the store cannot be read: the run
    then says what is wrong with it."""
    rows = _store_rows(path, "SELECT 1 FROM commits LIMIT 1")
    return rows is None or bool(rows)


def _store_rows(path: Path, query: str, *params: Any) -> list[tuple[Any, ...]] | None:
    """The rows `query` gives over every part file of the recovery store in `path`, or
    None if one of them cannot be read."""
    rows: list[tuple[Any, ...]] = []
    for db in sorted(path.glob("part-*.sqlite3")):
        try:  # read-only: a plain connect would create a missing file
            with closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)) as conn:
                rows += conn.execute(query, params).fetchall()
        except sqlite3.Error:
            return None
    return rows


def _check_layout(path: Path, saved: dict[str, Any], layout: dict[str, Any]) -> None:
    changed = layout_changes(saved, layout)
    if changed:
        msg = (
            f"the recovery store in {path} does not fit this run ({'; '.join(changed)}); "
            "use a new store, or the old settings and version"
        )
        raise ConfigError(msg)


def tune_gc() -> None:
    """Vigil holds a large, long-lived heap (tenant state, queues) and makes few cycles:
    move what exists at start out of the collector's way and collect the young
    generation less often, or full collections keep walking all of the state."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def execute(
    flow: Dataflow,
    recovery: RecoverySettings,
    *,
    workers: int = 1,
    addresses: list[str] | None = None,
    process_id: int = 0,
) -> None:
    """Run `flow` to completion (or until it fails) in this process."""
    tune_gc()
    recovery_config = None
    if recovery.dir is not None:
        backup = timedelta(milliseconds=recovery.backup_interval or 0)
        recovery_config = RecoveryConfig(Path(recovery.dir), backup_interval=backup)
    epoch = timedelta(milliseconds=recovery.snapshot_interval)
    try:
        if addresses or workers > 1:
            cluster_main(
                flow,
                addresses or [],
                process_id,
                epoch_interval=epoch,
                recovery_config=recovery_config,
                worker_count_per_proc=workers,
            )
        else:
            run_main(flow, epoch_interval=epoch, recovery_config=recovery_config)
    except NoPartitionsError as exc:
        msg = (
            f"recovery store {recovery.dir} holds no recovery partitions (was its creation "
            "cut short?): remove its part-*.sqlite3 files to start afresh, or use a new folder"
        )
        raise RecoveryStoreError(msg) from exc
    except RuntimeError as exc:
        failure = store_failure(exc, recovery.dir)
        if failure is None:
            raise
        raise failure from exc


class RecoveryStoreError(VigilError):
    """The recovery store cannot be read or written: a full disk, a damaged file."""


# How Bytewax reports a failing store: a bare RuntimeError quoting rusqlite's error, e.g.
# `SqliteFailure(Error { code: DiskFull, extended_code: 13 }, Some("database or disk is full"))`
_SQLITE_FAILURE = re.compile(
    r'SqliteFailure\(Error \{ code: (?P<code>\w+)[^}]*\}, (?:Some\("(?P<text>[^"]*)"\)|None)'
)
_DAMAGED = frozenset({"NotADatabase", "DatabaseCorrupt"})


def store_failure(exc: RuntimeError, store: str | None) -> RecoveryStoreError | None:
    """The store's failure in one line, with what to do; None if `exc` is another error."""
    found = _SQLITE_FAILURE.search(str(exc))
    if store is None or found is None:
        return None
    if found["code"] in _DAMAGED:
        advice = "the store is damaged: use a new one"
    else:
        advice = "once that is fixed, the same command resumes from the last snapshot"
    reason = found["text"] or found["code"]
    return RecoveryStoreError(f"recovery store {store}: {reason} ({advice})")
