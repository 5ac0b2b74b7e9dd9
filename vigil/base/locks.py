"""One `vigil run` at a time per recovery store and per output folder.

Two runs on one recovery store interleave their snapshots, so a later resume can mix
the state of one with the input offsets of the other; a second file run empties the
output files the first is writing. A rolling update that starts the new container
before the old one has stopped does exactly that. So a run holds a lock in each folder
it writes, one per process id (the processes of a cluster share the folders). The lock
is an flock: the kernel drops it when the process ends, even when killed, so it can
never be left behind.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from vigil.base.errors import ConfigError, VigilError

LOCK_PREFIX = ".vigil-process-"
MAKING_LOCK = ".vigil-making.lock"


def is_lock(path: Path) -> bool:
    return path.name.startswith(LOCK_PREFIX) or path.name == MAKING_LOCK


@contextmanager
def making(folder: Path) -> Iterator[None]:
    """Held while a process looks for, or makes, what the processes of a cluster share in
    `folder` (the recovery store): the others wait, then find it whole. Started together,
    both made it (a Bytewax panic: "table parts already exists"), or one read it half made
    and took it for a store to resume (so it kept an earlier run's output records)."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / MAKING_LOCK).open("a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # let go when the file is closed
        yield


class InUse(VigilError):
    """Another running `vigil run` holds the folder."""


def hold(folder: Path, process_id: int, what: str) -> IO[bytes]:
    """Take this process's lock on `folder`, or raise InUse naming the holder. The lock
    lasts until the returned file is closed (or the process ends)."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{what} {folder} is a file, not a folder")
    path = folder / f"{LOCK_PREFIX}{process_id}.lock"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+b")
    except OSError as exc:
        raise InUse(f"cannot lock {what} {folder}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read(200).decode(errors="replace").strip() or "a process"
        handle.close()
        msg = (
            f"{what} {folder} is in use by another vigil run ({holder}); "
            "stop that one first (two runs on it would corrupt it)"
        )
        raise InUse(msg) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}".encode())
    handle.flush()
    return handle
