"""One `vigil run` per folder and process id (vigil.base.locks)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vigil.base.errors import ConfigError
from vigil.base.locks import InUse, hold, is_lock


def test_a_second_holder_is_refused_and_told_who_holds_it(tmp_path: Path) -> None:
    first = hold(tmp_path, 0, "recovery store")
    try:
        with pytest.raises(
            InUse, match=rf"recovery store {tmp_path} is in use .*pid {os.getpid()}"
        ):
            hold(tmp_path, 0, "recovery store")
    finally:
        first.close()
    hold(tmp_path, 0, "recovery store").close()  # free again once the first let go


def test_the_processes_of_a_cluster_each_hold_their_own(tmp_path: Path) -> None:
    locks = [hold(tmp_path, process_id, "output folder") for process_id in (0, 1)]
    assert sorted(path.name for path in tmp_path.iterdir() if is_lock(path)) == [
        ".vigil-process-0.lock",
        ".vigil-process-1.lock",
    ]
    for lock in locks:
        lock.close()


def test_a_missing_folder_is_made_and_a_file_is_refused(tmp_path: Path) -> None:
    hold(tmp_path / "new" / "store", 0, "recovery store").close()
    assert (tmp_path / "new" / "store").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        hold(tmp_path / "file", 0, "recovery store")
