"""JSON Lines in and out: the embedded default, no Kafka needed."""

from __future__ import annotations

import errno
import gzip
import io
import itertools
import logging
import os
import select
import stat
import sys
import zlib
from collections.abc import Callable, Collection
from contextlib import suppress
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar, cast

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from vigil.base.errors import VigilError
from vigil.base.locks import making
from vigil.base.streams import ACTIONS, Written
from vigil.config.settings import MAX_EVENT_BYTES, Settings
from vigil.intake.events import DEFAULT_CATALOGUE, DEFAULT_LIMITS, UTF8_BOM, Catalogue, Limits
from vigil.intake.reader import Chunk, Intake
from vigil.ops.metrics import Metrics

log = logging.getLogger("vigil.input")

T = TypeVar("T")

STDIN = "-"
# Byte order marks of text that is not UTF-8, longest first (UTF-32 LE's begins with
# UTF-16 LE's). Windows PowerShell's `>` writes UTF-16 LE with its mark.
_OTHER_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)
_GZIP_MAGIC = b"\x1f\x8b"
# Resume state of a file partition: byte offset, line number, highest event time, and the
# CRC-32 of the bytes before the offset (None for a pipe; absent from older stores).
FilePosition = tuple[int, int, int | None] | tuple[int, int, int | None, int | None]


class JsonLinesSource(FixedPartitionedSource[Chunk, FilePosition]):
    """One JSON object per line, from a file (gzip-compressed or not), a named pipe or
    standard input (`-`), as one partition. A resumed pipe is read on from wherever its
    writer now starts.

    Every batch is one Chunk, ending with the partition's watermark tick. Blank lines are skipped;
    anything else that is not a valid event becomes a dead letter."""

    def __init__(
        self,
        path: str,
        lateness: int,
        batch_size: int = 1000,
        on_ready: Callable[[], None] | None = None,
        max_future: int | None = None,
        max_bytes: int = MAX_EVENT_BYTES,
        limits: Limits = DEFAULT_LIMITS,
        metrics: Metrics | None = None,
        catalogue: Catalogue = DEFAULT_CATALOGUE,
    ) -> None:
        self.path = path
        self.catalogue = catalogue
        self.part = path  # the partition's name: where a recovery store keeps its position
        self.max_future = max_future
        self.max_bytes = max_bytes
        self.limits = limits
        self.metrics = metrics  # counts the blank lines skipped
        self.lateness = lateness
        self.batch_size = batch_size
        self.on_ready = on_ready
        # Bytes read so far, for progress reports (the file's size is the total).
        self.bytes_read = 0

    @classmethod
    def configured(
        cls,
        path: str,
        settings: Settings,
        on_ready: Callable[[], None] | None = None,
        metrics: Metrics | None = None,
    ) -> JsonLinesSource:
        """The source as the `[input]` and `[catalogue]` settings say."""
        given = settings.input
        return cls(
            path,
            given.allowed_lateness,
            given.batch_size,
            on_ready,
            given.max_future,
            given.max_event_bytes,
            given.limits,
            metrics,
            settings.catalogue.full,
        )

    def list_parts(self) -> list[str]:
        return [self.part]

    def resumes_from(self, stored: Collection[str]) -> bool:
        """Whether a recovery store holding positions of `stored` partitions was reading
        this input. The store names the file as its first run spelled the path (Bytewax
        matches names); another spelling of the same file (relative, from another working
        folder) takes the store's name."""
        if self.part in stored:
            return True
        for part in stored:
            if STDIN not in (part, self.path) and same_file(part, self.path):
                self.part = part
                return True
        return False

    def build_part(
        self, step_id: str, for_part: str, resume_state: FilePosition | None
    ) -> _FilePartition:
        return _FilePartition(self, resume_state)


class _FileLines:
    """Lines of a regular file; a batch stops at `count` lines or the end. A line longer
    than `cap` bytes comes back as its first `cap` bytes, and the rest of it is skipped
    without being held in memory (one line can be gigabytes: a JSON array export)."""

    def __init__(self, handle: IO[bytes], cap: int, crc: int = 0) -> None:
        self.handle = handle
        self.cap = cap
        self.crc = crc  # of every byte read: a resume checks it is the same file

    def read(self, count: int) -> tuple[list[bytes], int, bool]:
        """(lines, bytes consumed, at the end)."""
        start = self.handle.tell()
        lines: list[bytes] = []
        readline, cap = self.handle.readline, self.cap
        summed = 0  # lines[:summed] are in self.crc: a batch's in one call, a line's costs more
        at_end = False
        for _ in range(count):
            raw = readline(cap)
            if not raw:
                at_end = True
                break
            lines.append(raw)
            if len(raw) == cap and raw[-1:] != b"\n":
                self.crc = zlib.crc32(b"".join(lines[summed:]), self.crc)
                summed = len(lines)
                self._skip_rest_of_line()
        self.crc = zlib.crc32(b"".join(lines[summed:]), self.crc)
        return lines, self.handle.tell() - start, at_end

    def _skip_rest_of_line(self) -> None:
        while True:
            rest = self.handle.readline(1 << 20)
            self.crc = zlib.crc32(rest, self.crc)
            if not rest or rest[-1:] == b"\n":
                return


class NotUtf8(VigilError):
    """The input is text in another encoding than UTF-8 (its byte order mark says so)."""


def not_utf8_problem(name: str, encoding: str) -> str:
    return (
        f"--input: {name} is {encoding} text (it starts with a {encoding} byte order mark) "
        f"and events are UTF-8: convert it first, e.g. iconv -f {encoding} -t UTF-8"
    )


# Text a PipeDecoder hands out at a time: as much as a plain pipe's read gives, however
# much a compressed stream holds (gzip packs repeated lines a thousandfold).
TEXT_PER_PULL = 1 << 16


class PipeDecoder:
    """The text of a pipe: bytes read are pushed in, text is pulled out. A pipe's first
    bytes cannot be peeked at before it is read, as a file's are, so they are looked at
    here: gzip (`aws s3 cp s3://.../events.jsonl.gz - | vigil run --input -`) is
    decompressed, member after member as zcat does, TEXT_PER_PULL bytes at a time at
    most; text with a UTF-16 or UTF-32 byte order mark is refused (NotUtf8). zlib.error,
    or EOFError for a gzip stream cut short, say the pipe is unreadable."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.raw = b""  # pushed, not decoded yet
        self.ended = False  # the pipe's end was pushed
        self.kind_known = False  # whether the first bytes were gzip's is decided
        self.gunzip: zlib._Decompress | None = None
        self.in_member = False  # inside a gzip member: its end is still to come
        self.text_head: bytes | None = b""  # the first bytes of text, until there are 4

    def push(self, chunk: bytes) -> None:
        """Bytes read from the pipe; b"" at its end."""
        self.raw += chunk
        self.ended = self.ended or not chunk

    @property
    def done(self) -> bool:
        """The end was pushed, and all text pulled."""
        return self.ended and not self.raw and not self.in_member and not self.text_head

    def pull(self) -> bytes:
        """Text decoded from what was pushed; b"" when that gives none (yet)."""
        if not self.kind_known:
            if len(self.raw) < 4 and not self.ended:  # a gzip header, or a 4-byte mark
                return b""
            self.kind_known = True
            if self.raw.startswith(_GZIP_MAGIC):
                self.gunzip = _gzip_member()
        if self.gunzip is None:
            text, self.raw = self.raw, b""
        else:
            text = self._inflate(self.gunzip)
        if self.text_head is None:
            return text
        self.text_head += text
        if len(self.text_head) < 4 and not (self.ended and not self.raw):
            return b""
        text, self.text_head = self.text_head, None
        if encoding := _marked_encoding(text):
            raise NotUtf8(not_utf8_problem(self.name, encoding))
        return text

    def _inflate(self, gunzip: zlib._Decompress) -> bytes:
        text, room = [], TEXT_PER_PULL
        while room > 0:
            if not self.in_member:
                self.raw = self.raw.lstrip(b"\0")  # gzip allows NUL padding after a member
                if not self.raw:
                    break
                self.in_member = True
            out = gunzip.decompress(self.raw, room)  # what is left over waits for the next pull
            text.append(out)
            room -= len(out)
            if gunzip.eof:  # a member ended: another may follow
                self.raw, self.in_member = gunzip.unused_data, False
                self.gunzip = gunzip = _gzip_member()
            else:
                self.raw = gunzip.unconsumed_tail
                if not out and not self.raw:
                    break  # the member goes on in bytes not read yet
        inflated = b"".join(text)
        if self.ended and not self.raw and self.in_member and not inflated:
            raise EOFError("Compressed file ended before the end-of-stream marker was reached")
        return inflated


class _DecodedPipe(io.RawIOBase):
    """A pipe read through a PipeDecoder, for line-by-line readers (vigil produce)."""

    def __init__(self, handle: IO[bytes], name: str) -> None:
        self.handle = handle
        self.decoder = PipeDecoder(name)
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending and not self.decoder.done:
            self.pending = self.decoder.pull()
            if not self.pending:
                self.decoder.push(os.read(self.handle.fileno(), 1 << 16))
        count = min(len(buffer), len(self.pending))
        buffer[:count], self.pending = self.pending[:count], self.pending[count:]
        return count

    def close(self) -> None:
        self.handle.close()
        super().close()


def pipe_text(handle: IO[bytes], name: str) -> IO[bytes]:
    """The text of a pipe (standard input, a named pipe, a shell's <(...)), decompressed
    when it is gzip, NotUtf8 raised when it is UTF-16 or UTF-32; closing it closes `handle`."""
    return io.BufferedReader(_DecodedPipe(handle, name), 1 << 16)


def _gzip_member() -> zlib._Decompress:
    return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # 16+: with a gzip header


class _PipeLines:
    """Lines of a pipe (stdin) without blocking a batch on a quiet writer: a batch ends
    with what has arrived, so a live `... | vigil run --input -` keeps flowing. Lines
    longer than `cap` are cut as in _FileLines."""

    def __init__(self, fd: int, cap: int, name: str, wait: float = 0.2) -> None:
        self.fd = fd
        self.decoder = PipeDecoder(name)
        self.cap = cap
        self.wait = wait
        self.pending = b""
        self.eof = False
        self.skipping = False  # inside a line already cut at `cap`: drop up to its end

    def read(self, count: int) -> tuple[list[bytes], int, bool]:
        """(lines, bytes consumed, at the end)."""
        consumed = 0
        decoder = self.decoder
        if not decoder.done and b"\n" not in self.pending:
            text = decoder.pull()  # what the decoder holds first: a read may bring a lot
            if not text and not decoder.ended:
                readable, _, _ = select.select([self.fd], [], [], self.wait)
                if readable:
                    with suppress(BlockingIOError):  # a named pipe is read without waiting
                        decoder.push(os.read(self.fd, 1 << 16))
                        text = decoder.pull()
            self.pending += text
            self.eof = decoder.done
        if self.skipping:
            end = self.pending.find(b"\n")
            dropped = len(self.pending) if end < 0 else end + 1
            consumed += dropped
            self.pending = self.pending[dropped:]
            self.skipping = end < 0 and not self.eof
        *lines, self.pending = self.pending.split(b"\n")
        lines = [line + b"\n" for line in lines]
        if len(self.pending) >= self.cap and len(lines) < count:  # cut: keep the head only
            consumed += len(self.pending) - self.cap
            lines.append(self.pending[: self.cap])
            self.pending, self.skipping = b"", True
        elif self.eof and self.pending:  # a last line without its newline
            lines.append(self.pending)
            self.pending = b""
        keep, rest = lines[:count], lines[count:]
        self.pending = b"".join(rest) + self.pending
        consumed += sum(map(len, keep))
        return keep, consumed, self.eof and not self.pending and not self.skipping


class InputChanged(VigilError):
    """The input file is not the one the recovery store was reading."""


class InputUnreadable(VigilError):
    """The input file cannot be read on (an I/O error, a gzip file cut short)."""


def same_file(one: str, other: str) -> bool:
    """Whether two paths name one file; False if either cannot be found."""
    try:
        return os.path.samefile(one, other)
    except OSError:  # one of them is gone, or was named from another working folder
        return False


def is_gzip(path: str) -> bool:
    """A gzip-compressed file, known by its first two bytes (whatever its name). Only a
    regular file is looked at: reading a named pipe or a shell's <(zcat ...) would take
    those bytes from whoever reads it next."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with Path(path).open("rb") as handle:
            return handle.read(2) == _GZIP_MAGIC
    except OSError:
        return False


def not_utf8(path: str) -> str | None:
    """The encoding a file's byte order mark names when it is not UTF-8, else None. Every
    line of such a file would be a dead letter; a regular file only, as for is_gzip."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with Path(path).open("rb") as handle:
            start = handle.read(4)
            if start[:2] == _GZIP_MAGIC:  # the text it holds starts after the header
                handle.seek(0)
                start = gzip.GzipFile(fileobj=handle).read(4)
    except (OSError, EOFError, zlib.error):
        return None  # the read proper says what is wrong with it
    return _marked_encoding(start)


def _marked_encoding(start: bytes) -> str | None:
    """The encoding that a byte order mark at `start` names, when it is not UTF-8."""
    return next((name for mark, name in _OTHER_BOMS if start.startswith(mark)), None)


def _prefix_crc(handle: IO[bytes], offset: int) -> int | None:
    """The CRC-32 of the file's first `offset` bytes; None if it holds fewer."""
    handle.seek(0)
    crc, left = 0, offset
    while left:
        chunk = handle.read(min(left, 1 << 20))
        if not chunk:
            return None
        crc, left = zlib.crc32(chunk, crc), left - len(chunk)
    return crc


def _same_prefix(handle: IO[bytes], offset: int, crc: int, path: str, part: str) -> None:
    """Go to where the recovery store stopped reading, in a file that starts with the bytes
    the store read: another file with a line break at the offset would be read on from
    its middle, unsaid. Leaves the file at the offset."""
    found = _prefix_crc(handle, offset)
    if found is None:
        _seek_to_line(handle, offset, path)  # shorter than the offset: it says so
    if found != crc:
        msg = (
            f"--input {path} is not the file the recovery store was reading ({part}): its "
            f"first {offset:,} bytes, which the store read, differ (give the store's file, "
            "or use a new store)"
        )
        raise InputChanged(msg)


def _seek_to_line(handle: IO[bytes], offset: int, path: str) -> None:
    """Go to where the recovery store stopped reading, which is the start of a line (or
    the end) of the same file, or a file that has grown since. Anything else is another
    file: reading on would decode from the middle of a line, or silently read nothing.
    Offsets count uncompressed bytes, so a gzip file is decompressed up to there."""
    if offset == 0:
        return
    handle.seek(offset - 1)
    before = handle.read(1)  # the last byte the store read
    if not before:
        msg = (
            f"--input {path} ends before byte {offset:,}, where the recovery store stopped "
            "reading it: it is not the file the store was reading (use a new store)"
        )
        raise InputChanged(msg)
    if before != b"\n" and handle.read(1):  # neither the start of a line nor the end
        msg = (
            f"byte {offset:,} of --input {path}, where the recovery store stopped reading, "
            "does not start a line: the file changed since (use a new store)"
        )
        raise InputChanged(msg)
    handle.seek(offset)


def _open_input(path: str) -> IO[bytes]:
    """The input file, open to read. A named pipe is opened without waiting for its
    writer (a blocking open waited through SIGTERM, since a stop is only seen between
    batches): until one comes, a pipe has nothing to read, and _PipeLines waits for
    data a batch at a time."""
    if stat.S_ISFIFO(os.stat(path).st_mode):
        return os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb", buffering=0)
    return Path(path).open("rb")


class _FilePartition(StatefulSourcePartition[Chunk, FilePosition]):
    def __init__(self, source: JsonLinesSource, resume: FilePosition | None) -> None:
        offset, self.line, max_ts, crc = (*resume, None)[:4] if resume else (0, 0, None, 0)
        # Named as the store names the file, so that ticks and dead letters name it alike
        # across a resume under another spelling of its path (see resumes_from).
        name = "stdin" if source.path == STDIN else source.part
        self.source = source
        self.intake = Intake(
            name,
            name,
            1,
            source.lateness,
            max_ts,
            source.max_future,
            source.max_bytes,
            limits=source.limits,
            catalogue=source.catalogue,
        )
        self.batch_size = source.batch_size
        self.handle: IO[bytes] | None = None
        self.lines: _FileLines | _PipeLines
        # A line of up to max_bytes, its line break, and one byte more to tell it is longer.
        cap = source.max_bytes + 3
        if source.path == STDIN:
            self.lines = _PipeLines(sys.stdin.fileno(), cap, "stdin")
        else:
            handle: IO[bytes] = _open_input(source.path)
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                # A named pipe, or a shell's <(zcat events.jsonl.gz): read as stdin is.
                self.lines = _PipeLines(handle.fileno(), cap, source.path)
            else:
                if is_gzip(source.path):  # decompressed as read; offsets count its lines' bytes
                    handle.close()
                    handle = cast(IO[bytes], gzip.open(source.path, "rb"))  # noqa: SIM115
                try:
                    if crc is None:  # a store written before it kept the CRC
                        self._unless_unreadable(_seek_to_line, handle, offset, source.path)
                    else:
                        self._unless_unreadable(
                            _same_prefix, handle, offset, crc, source.path, source.part
                        )
                except VigilError:
                    handle.close()
                    raise
                self.lines = _FileLines(handle, cap, crc or 0)
            self.handle = handle
        if offset:
            log.info("resuming input", extra={"input": name, "line": self.line, "offset": offset})
        self.offset = offset
        self.done = False

    def next_batch(self) -> list[Chunk]:
        if self.done:
            raise StopIteration
        if self.source.on_ready is not None:
            self.source.on_ready()
        lines, consumed, self.done = self._unless_unreadable(self.lines.read, self.batch_size)
        self.offset += consumed
        if self.line == 0 and lines:
            lines[0] = lines[0].removeprefix(UTF8_BOM)  # some Windows tools start a file so
        first = self.line
        batch, self.line = self.intake.take_lines(lines, self.line)
        if self.source.metrics is not None:
            self.source.metrics.blank_lines.inc(self.line - first - len(batch))
        self.source.bytes_read = self.offset
        batch.append(self.intake.tick())
        return [batch]

    def _unless_unreadable(self, read: Callable[..., T], *args: Any) -> T:
        """`read(*args)`, with a read error (a bad disk, a gzip file cut short or corrupt)
        turned into one line naming the input and where it stopped."""
        try:
            return read(*args)
        except (OSError, EOFError, zlib.error) as exc:
            where = f"after line {self.line:,}" if self.line else "at its start"
            msg = f"cannot read --input {self.source.path} {where}: {exc}"
            raise InputUnreadable(msg) from exc

    def snapshot(self) -> FilePosition:
        log.debug("snapshot", extra={"input": self.intake.source, "line": self.line})
        crc = self.lines.crc if isinstance(self.lines, _FileLines) else None
        return (self.offset, self.line, self.intake.max_ts, crc)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


# Output lines serialized and written at a time (see _JsonLinesPart.write_batch).
LINES_PER_WRITE = 1000


class JsonLinesSink(FixedPartitionedSink[Written, int]):
    """Writes `(stream, (records, read_at))` items to DIR/<stream>.jsonl, one partition
    per stream.

    A fresh run starts each file empty; a resumed run truncates it to the snapshot's
    offset, so output written after the last snapshot is written again, not twice."""

    def __init__(self, directory: Path, streams: list[str], metrics: Metrics | None = None) -> None:
        self.directory = directory
        self.streams = sorted(streams)
        self.metrics = metrics

    def start_empty(self) -> None:
        """For a fresh run: every stream's file exists and is empty before any record.
        Bytewax builds a partition only when its first record comes, so without this a
        stream with nothing to say would keep the file of an earlier run in DIR."""
        for stream in self.streams:
            open_output(self.directory / f"{stream}.jsonl", 0).close()

    def list_parts(self) -> list[str]:
        return self.streams

    def part_fn(self, item_key: str) -> int:
        return self.streams.index(item_key)

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _JsonLinesPart:
        timed = self.metrics if for_part in ACTIONS else None
        return _JsonLinesPart(self.directory / f"{for_part}.jsonl", resume_state or 0, timed)


class OutputError(VigilError):
    """An output file cannot be written (disk full, permissions): the run stops, since
    going on would lose what it cannot write."""

    def __init__(self, path: Path, error: OSError) -> None:
        super().__init__(f"cannot write {path}: {error.strerror or error}")


class OutputChanged(VigilError):
    """A resumed run's output file is not the one its recovery store was writing."""


# The output files a folder's runs made, by device and inode: a fresh run empties only
# these (a file of the same name that Vigil did not make is refused, not truncated).
MADE_FILE = ".vigil-outputs.json"


def open_output(path: Path, offset: int) -> IO[bytes]:
    """An output file open to write at `offset` (a resume's), made if missing. It is never
    a symbolic link's target, and it is opened (and emptied, at offset 0) only if a run
    of Vigil made it. The folder's lock is held meanwhile: the processes of a cluster may
    share it."""
    aside = path.with_name(f".{path.name}.making")
    with making(path.parent):
        aside.unlink(missing_ok=True)  # left by a making cut short
        made = _made_files(path.parent)
        try:
            fd = _open_made(path, made)
        except FileNotFoundError:
            fd = _make(path, aside, made)
        if offset == 0:
            os.ftruncate(fd, 0)
    return os.fdopen(fd, "r+b")


_FLAGS = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC


def _make(path: Path, aside: Path, made: dict[str, list[int]]) -> int:
    """Made as `aside` and recorded before it takes its own name, so that a run killed at
    any instant leaves no file of that name that Vigil made unrecorded."""
    try:
        fd = os.open(aside, _FLAGS | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise OutputError(path, exc) from exc
    try:
        identity = os.fstat(fd)
        made[path.name] = [identity.st_dev, identity.st_ino]
        _write_made(path.parent, made)
        os.link(aside, path)  # unlike a rename, never over a file made meanwhile
        aside.unlink()
    except OSError as exc:
        os.close(fd)
        raise OutputError(path, exc) from exc
    return fd


def _open_made(path: Path, made: dict[str, list[int]]) -> int:
    try:
        fd = os.open(path, _FLAGS)
    except FileNotFoundError:
        raise  # open_output makes it
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW's word for a link
            msg = f"{path} is a symbolic link: Vigil writes its outputs itself, not through links"
            raise OutputChanged(msg) from None
        raise OutputError(path, exc) from exc
    identity = os.fstat(fd)
    if made.get(path.name) != [identity.st_dev, identity.st_ino]:
        os.close(fd)
        msg = (
            f"{path} exists and Vigil did not make it ({MADE_FILE} in its folder records the "
            "files Vigil makes): it is left as it is; give --output a folder of its own, or "
            "move the file"
        )
        raise OutputChanged(msg)
    return fd


def _made_files(folder: Path) -> dict[str, list[int]]:
    try:
        made = orjson.loads((folder / MADE_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return made if isinstance(made, dict) else {}


def _write_made(folder: Path, made: dict[str, list[int]]) -> None:
    aside = folder / f"{MADE_FILE}.{os.getpid()}"
    aside.write_bytes(orjson.dumps(made))
    aside.replace(folder / MADE_FILE)


class _JsonLinesPart(StatefulSinkPartition[Written, int]):
    def __init__(self, path: Path, offset: int, metrics: Metrics | None) -> None:
        self.path = path
        if offset and not path.exists():
            self._not_the_output(0, offset)
        self.handle = open_output(path, offset)
        try:
            self._cut_back_to(offset)
        except OSError as exc:
            raise OutputError(path, exc) from exc
        except VigilError:
            self.handle.close()
            raise
        self.metrics = metrics  # set for tasks and notifications: their latency is measured

    def _cut_back_to(self, offset: int) -> None:
        """Drop what was written after the store's snapshot, so it is written again, not
        twice. The file must reach that far and end a line there: a seek past the end of
        another file (another --output folder) would pad it with NUL bytes."""
        if offset:
            size = self.handle.seek(0, os.SEEK_END)
            if size < offset:
                self._not_the_output(size, offset)
            self.handle.seek(offset - 1)
            if self.handle.read(1) != b"\n":
                self._not_the_output(size, offset)
        self.handle.seek(offset)
        self.handle.truncate()

    def _not_the_output(self, size: int, offset: int) -> NoReturn:
        if size < offset:
            found = f"{self.path} holds {size:,} bytes, fewer than the {offset:,} the recovery "
            found += "store wrote to it"
        else:
            found = f"byte {offset:,} of {self.path}, where the recovery store stopped writing "
            found += "it, does not end a line"
        advice = "give --output the folder it wrote, or use a new store"
        raise OutputChanged(f"{found}: it is not the output this store was writing ({advice})")

    def write_batch(self, values: list[Written]) -> None:
        # Written a slice at a time: a midnight step re-scores every tenant, and its
        # records serialized whole would hold as many lines again in memory, twice.
        records = itertools.chain.from_iterable(records for records, _ in values)
        try:
            while lines := [orjson.dumps(r) for r in itertools.islice(records, LINES_PER_WRITE)]:
                lines.append(b"")  # the last line's newline
                self.handle.write(b"\n".join(lines))
            self.handle.flush()
        except OSError as exc:
            raise OutputError(self.path, exc) from exc
        if self.metrics is not None:
            self.metrics.observe_written(read_at for records, read_at in values for _ in records)

    def snapshot(self) -> int:
        return self.handle.tell()

    def close(self) -> None:
        self.handle.close()
