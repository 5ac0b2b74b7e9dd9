from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from vigil.connectors.files import JsonLinesSink, JsonLinesSource, OutputChanged, open_output
from vigil.intake.events import DeadLetter, Event
from vigil.intake.reader import NO_WATERMARK, Tick

HOUR = 3_600_000
T0 = 1_772_409_600_000  # 2026-03-02T00:00:00Z


def lines(path: Path, count: int) -> Path:
    rows = [
        {"event_id": f"e{n}", "type": "user.session", "tenant_id": "t", "ts": T0 + n * HOUR}
        for n in range(count)
    ]
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


class TestSource:
    def test_lines_are_decoded_by_the_compiled_decoder(self, tmp_path: Path) -> None:
        from vigil.config.settings import load_settings

        settings = load_settings(None, env={})
        source = JsonLinesSource.configured(str(lines(tmp_path / "e.jsonl", 3)), settings)
        part = source.build_part("in", "x", None)
        assert part.intake.decoder is not None
        [batch] = part.next_batch()
        assert [type(item) for item in batch] == [Event, Event, Event, Tick]

    def test_batches_end_with_a_watermark_tick_and_stop_at_the_end(self, tmp_path: Path) -> None:
        part = JsonLinesSource(
            str(lines(tmp_path / "e.jsonl", 5)), lateness=HOUR, batch_size=2
        ).build_part("in", "x", None)
        [first] = part.next_batch()  # a batch is one chunk
        assert [type(item) for item in first] == [Event, Event, Tick]
        tick = first[-1]
        assert isinstance(tick, Tick)
        # max ts T0 + 1 h minus 1 h of lateness
        assert (tick.source, tick.wm, tick.sources) == (str(tmp_path / "e.jsonl"), T0, 1)
        assert tick.read_at > 0
        assert (
            first[0].wm == NO_WATERMARK and first[1].wm == T0 - HOUR
        )  # before e1 the max ts was T0
        rest = part.next_batch()[0] + part.next_batch()[0]
        assert sum(isinstance(item, Event) for item in rest) == 3
        with pytest.raises(StopIteration):
            part.next_batch()

    def test_resume_continues_after_the_snapshot_with_its_watermark(self, tmp_path: Path) -> None:
        source = JsonLinesSource(str(lines(tmp_path / "e.jsonl", 6)), lateness=HOUR, batch_size=4)
        part = source.build_part("in", "x", None)
        part.next_batch()
        snapshot = part.snapshot()
        resumed = source.build_part("in", "x", snapshot)
        [batch] = resumed.next_batch()
        events = [item for item in batch if isinstance(item, Event)]
        assert [e.event_id for e in events] == ["e4", "e5"]
        assert events[0].wm == T0 + 3 * HOUR - HOUR  # the max ts before the snapshot was kept
        assert events[0].position["line"] == 5

    def test_a_resume_into_another_file_is_refused(self, tmp_path: Path) -> None:
        from vigil.connectors.files import InputChanged

        source = JsonLinesSource(str(lines(tmp_path / "e.jsonl", 6)), lateness=HOUR, batch_size=4)
        part = source.build_part("in", "x", None)
        part.next_batch()
        offset, line, max_ts = part.snapshot()[:3]  # as a store written before its CRC
        part.close()
        assert source.build_part("in", "x", (offset, line, max_ts)).next_batch()  # same file
        lines(tmp_path / "e.jsonl", 2)  # replaced by a shorter one
        with pytest.raises(InputChanged, match=r"ends before byte [\d,]+, where the recovery"):
            source.build_part("in", "x", (offset, line, max_ts))
        lines(tmp_path / "e.jsonl", 600)  # by a longer one: the offset falls inside a line
        (tmp_path / "e.jsonl").write_bytes(b"  " + (tmp_path / "e.jsonl").read_bytes())
        with pytest.raises(InputChanged, match="does not start a line"):
            source.build_part("in", "x", (offset, line, max_ts))

    def test_a_resume_into_a_file_with_a_line_break_at_the_offset_is_refused(
        self, tmp_path: Path
    ) -> None:
        from vigil.connectors.files import InputChanged

        path = lines(tmp_path / "e.jsonl", 6)
        # A line over the size limit, whose rest is skipped unread, but checked too.
        path.write_bytes(b'{"pad": "' + b"x" * 3000 + b'"}\n' + path.read_bytes())
        source = JsonLinesSource(str(path), lateness=HOUR, batch_size=4, max_bytes=1024)
        part = source.build_part("in", "x", None)
        part.next_batch()
        snapshot = part.snapshot()
        part.close()
        grown = path.read_bytes() + path.read_bytes()[:100]
        path.write_bytes(grown)  # the same file, grown: read on
        assert source.build_part("in", "x", snapshot).next_batch()
        # Another export of the same size and shape: one id differs before the offset, or
        # a byte of the line read only up to the limit.
        for changed in (grown.replace(b'"e1"', b'"x1"'), grown.replace(b'x"}', b'y"}', 1)):
            assert len(changed) == len(grown) and changed != grown
            path.write_bytes(changed)
            with pytest.raises(InputChanged, match=r"first [\d,]+ bytes, which the store read"):
                source.build_part("in", "x", snapshot)

    def test_a_resume_at_the_end_of_a_file_without_a_last_newline_is_taken(
        self, tmp_path: Path
    ) -> None:
        path = lines(tmp_path / "e.jsonl", 2)
        path.write_bytes(path.read_bytes().rstrip(b"\n"))
        source = JsonLinesSource(str(path), lateness=HOUR)
        part = source.build_part("in", "x", None)
        part.next_batch()
        resumed = source.build_part("in", "x", part.snapshot())
        with pytest.raises(StopIteration):  # nothing left to read
            resumed.next_batch()
            resumed.next_batch()

    def test_a_gzip_file_reads_as_the_file_it_holds_and_resumes_part_way(
        self, tmp_path: Path
    ) -> None:
        import gzip

        from vigil.connectors.files import InputChanged

        plain = lines(tmp_path / "e.jsonl", 30)
        plain.write_bytes(plain.read_bytes() + b"not json\n")
        packed = tmp_path / "events.bin"  # known by its first bytes, not by its name
        packed.write_bytes(gzip.compress(plain.read_bytes()))
        source = JsonLinesSource(str(packed), lateness=HOUR, batch_size=8)
        expected = _letters_and_ids(_read_all(JsonLinesSource(str(plain), lateness=HOUR)))
        assert _letters_and_ids(_read_all(source)) == expected
        part = source.build_part("in", "x", None)
        part.next_batch()
        snapshot = part.snapshot()
        part.close()
        assert snapshot[0] == len(b"".join(plain.read_bytes().splitlines(keepends=True)[:8]))
        assert _letters_and_ids(_read_all(source, snapshot)) == expected[8:]
        packed.write_bytes(gzip.compress(b"".join(plain.read_bytes().splitlines(True)[:4])))
        with pytest.raises(InputChanged, match="ends before byte"):  # another, shorter file
            source.build_part("in", "x", snapshot)

    def test_a_gzip_file_cut_short_is_one_clear_error_after_the_lines_before(
        self, tmp_path: Path
    ) -> None:
        import gzip

        from vigil.connectors.files import InputUnreadable

        data = gzip.compress(lines(tmp_path / "e.jsonl", 3000).read_bytes())
        cut = tmp_path / "e.jsonl.gz"
        cut.write_bytes(data[: len(data) // 2])  # as a copy or an upload that stopped
        part = JsonLinesSource(str(cut), lateness=HOUR, batch_size=100).build_part("in", "x", None)
        read = 0
        with pytest.raises(InputUnreadable, match=r"cannot read --input .*e\.jsonl\.gz after line"):
            for _ in range(100):  # bounded
                read += sum(isinstance(item, Event) for item in part.next_batch()[0])
        assert 0 < read < 3000

    def test_a_named_pipe_is_read_to_its_end_like_the_file_it_carries(self, tmp_path: Path) -> None:
        """As `vigil run --input <(zcat events.jsonl.gz)` does: the path is a pipe."""
        import os
        import threading

        data = lines(tmp_path / "e.jsonl", 50).read_bytes() + b"not json\n"
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)

        def write() -> None:
            with fifo.open("wb") as pipe:  # blocks until the source opens its end
                for at in range(0, len(data), 700):  # lines arrive split across writes
                    pipe.write(data[at : at + 700])
                    pipe.flush()

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        try:
            got = _read_all(JsonLinesSource(str(fifo), lateness=HOUR, batch_size=8))
        finally:
            writer.join(10)
        expected = [(f"e{n}", n + 1) for n in range(50)] + [("invalid_json", 51)]
        assert _letters_and_ids(got) == expected

    def test_telling_a_gzip_file_leaves_a_named_pipe_unread(self, tmp_path: Path) -> None:
        """`vigil produce --input <(zcat events.jsonl.gz)`: its reader asks is_gzip first,
        which read the pipe's first bytes and closed it; the produce then read nothing."""
        import os
        import threading

        from vigil.connectors.files import is_gzip
        from vigil.connectors.kafka_tools import _open

        data = lines(tmp_path / "e.jsonl", 50).read_bytes()
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)

        read = threading.Event()

        def write() -> None:
            with fifo.open("wb") as pipe:  # blocks until a reader opens its end
                pipe.write(data)
                pipe.flush()
                read.wait(10)  # held open: a reader short of bytes waits 10 s, not forever

        got: list[object] = []

        def produce_reads() -> None:
            got.append(is_gzip(str(fifo)))
            with _open(str(fifo)) as handle:
                got.append(handle.read(len(data)))

        writer = threading.Thread(target=write, daemon=True)
        reader = threading.Thread(target=produce_reads, daemon=True)
        writer.start()
        reader.start()
        reader.join(15)
        read.set()
        writer.join(10)
        if reader.is_alive():  # it waits for a writer that is gone: give it one, at once gone
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        assert got == [False, data]

    @pytest.mark.parametrize(
        ("encoding", "named"),
        [
            ("utf-16", "UTF-16"),  # with its mark, little-endian here, as PowerShell writes
            ("utf-16-be", None),  # no mark: not told apart from other bytes
            ("utf-32", "UTF-32"),
            ("utf-8-sig", None),  # UTF-8 with a mark is read (the mark is skipped)
            ("utf-8", None),
        ],
    )
    def test_text_that_is_not_utf8_is_told_by_its_byte_order_mark(
        self, tmp_path: Path, encoding: str, named: str | None
    ) -> None:
        import gzip

        from vigil.connectors.files import not_utf8

        text = lines(tmp_path / "e.jsonl", 3).read_text()
        plain, packed = tmp_path / "plain.jsonl", tmp_path / "packed.jsonl.gz"
        plain.write_bytes(text.encode(encoding))
        packed.write_bytes(gzip.compress(text.encode(encoding)))
        assert not_utf8(str(plain)) == not_utf8(str(packed)) == named
        big_endian = tmp_path / "be.jsonl"
        big_endian.write_bytes(b"\xfe\xff" + text.encode("utf-16-be"))
        assert not_utf8(str(big_endian)) == "UTF-16"

    def test_blank_lines_are_skipped_and_garbage_is_a_dead_letter(self, tmp_path: Path) -> None:
        path = tmp_path / "e.jsonl"
        path.write_bytes(b"\n  \nnope\n")
        part = JsonLinesSource(str(path), lateness=HOUR).build_part("in", "x", None)
        [[letter, tick]] = part.next_batch()
        assert isinstance(letter, DeadLetter) and letter.position == {"file": str(path), "line": 3}
        assert isinstance(tick, Tick)

    def test_a_byte_order_mark_before_the_first_line_is_ignored(self, tmp_path: Path) -> None:
        path = lines(tmp_path / "e.jsonl", 2)
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
        part = JsonLinesSource(str(path), lateness=HOUR).build_part("in", "x", None)
        [[first, second, _]] = part.next_batch()
        assert isinstance(first, Event) and isinstance(second, Event)
        assert (first.event_id, first.position) == ("e0", {"file": str(path), "line": 1})
        assert part.snapshot()[0] == path.stat().st_size  # a resume starts after the mark too


def _with_long_lines(path: Path) -> bytes:
    """Events e0..e3 with a 200 kB line after e0 (longer than a pipe read) and a 3 kB last
    line without a newline."""
    rows = lines(path, 4).read_bytes().splitlines(keepends=True)
    data = rows[0] + b"x" * 200_000 + b"\r\n" + b"".join(rows[1:]) + b"y" * 3_000
    path.write_bytes(data)
    return data


def _read_all(
    source: JsonLinesSource, resume: tuple[int, int, int | None] | None = None
) -> list[Event | DeadLetter | Tick]:
    """Every item of the source's one partition, to its end (bounded)."""
    part = source.build_part("in", "x", resume)
    got: list[Event | DeadLetter | Tick] = []
    try:
        for _ in range(10_000):
            got += part.next_batch()[0]
    except StopIteration:
        return got
    finally:
        part.close()
    raise AssertionError("the source never ended")


def _letters_and_ids(items: list[Event | DeadLetter | Tick]) -> list[tuple[str, int]]:
    return [
        (item.event_id if isinstance(item, Event) else item.reason, int(item.position["line"]))
        for item in items
        if not isinstance(item, Tick)
    ]


class TestLongLines:
    """A line over input.max_event_bytes is a `too_large` dead letter, and is never held
    whole in memory (one line can be gigabytes: a JSON array export)."""

    def test_in_a_file(self, tmp_path: Path) -> None:
        path = tmp_path / "e.jsonl"
        data = _with_long_lines(path)
        source = JsonLinesSource(str(path), lateness=HOUR, batch_size=100, max_bytes=1024)
        part = source.build_part("in", "x", None)
        [batch] = part.next_batch()
        assert _letters_and_ids(batch) == [
            ("e0", 1),
            ("too_large", 2),
            ("e1", 3),
            ("e2", 4),
            ("e3", 5),
            ("too_large", 6),
        ]
        letter = batch[1]
        assert isinstance(letter, DeadLetter)
        assert "over 1,024 bytes (input.max_event_bytes)" in letter.error
        assert letter.raw.startswith("xxx") and letter.raw.endswith("...[truncated]")
        assert part.snapshot()[:2] == (len(data), 6)  # a resume starts after the long lines

    def test_the_reader_returns_at_most_its_cap(self, tmp_path: Path) -> None:
        from vigil.connectors.files import _FileLines

        path = tmp_path / "e.jsonl"
        data = _with_long_lines(path)
        with path.open("rb") as handle:
            got, consumed, at_end = _FileLines(handle, cap=1027).read(100)
        assert got == [line[:1027] for line in data.splitlines(keepends=True)]
        assert consumed == len(data) and at_end

    def test_on_standard_input(self, tmp_path: Path) -> None:
        data = _with_long_lines(tmp_path / "e.jsonl")
        got, consumed = _through_a_pipe(data, batch=lambda: 2, piece=lambda: len(data))
        assert consumed == len(data)
        # A long line is cut unless it arrived whole in one read (which bounds it anyway).
        assert [line[:1027] for line in got] == [
            line[:1027] for line in data.splitlines(keepends=True)
        ]
        assert len(got[1]) == 1027 and max(map(len, got)) <= 1027 + (1 << 16)


def test_stdin_and_a_file_read_the_same_lines_however_the_bytes_arrive(tmp_path: Path) -> None:
    import random

    from vigil.connectors.files import _FileLines

    for seed in range(5):  # bounded: 5 streams of 300 lines
        rng = random.Random(seed)
        data = (
            b"".join(
                b"x" * rng.choice([0, 5, 200, 1026, 1027, 1028, 5000, 70_000]) + b"\n"
                for _ in range(300)
            )
            + b"tail without a newline"
        )
        path = tmp_path / f"s{seed}.jsonl"
        path.write_bytes(data)
        with path.open("rb") as handle:
            from_file, file_bytes, _ = _FileLines(handle, cap=1027).read(1_000)
        writes, reads = random.Random(seed + 100), random.Random(seed + 200)
        from_pipe, pipe_bytes = _through_a_pipe(
            data,
            batch=lambda reads=reads: reads.randint(1, 50),
            piece=lambda writes=writes: writes.randint(1, 90_000),  # lines arrive split
        )
        assert pipe_bytes == file_bytes == len(data)
        assert [line[:1027] for line in from_pipe] == from_file, seed


def _pull_all(decoder: Any, stream: bytes, piece: int) -> list[bytes]:
    """Every piece of text `decoder` gives for `stream` pushed `piece` bytes at a time,
    pulled after each push until it gives none (bounded)."""
    got = []
    for at in [*range(0, len(stream), piece), len(stream)]:
        decoder.push(stream[at : at + piece])  # the last push is b"", the end
        for _ in range(10_000):
            text = decoder.pull()
            if not text:
                break
            got.append(text)
    assert decoder.done
    return got


def _through_a_pipe(
    data: bytes, batch: Callable[[], int], piece: Callable[[], int]
) -> tuple[list[bytes], int]:
    """`data` read by the stdin reader (cap 1027) as a thread writes it into a real pipe,
    `piece()` bytes at a time, more than a pipe holds; (lines, bytes consumed)."""
    import os
    import threading

    from vigil.connectors.files import _PipeLines

    read_end, write_end = os.pipe()

    def write() -> None:
        with os.fdopen(write_end, "wb", buffering=0) as pipe:
            at = 0
            while at < len(data):
                at += pipe.write(data[at : at + piece()]) or 0

    writer = threading.Thread(target=write)
    writer.start()
    reader, got, consumed = _PipeLines(read_end, cap=1027, name="pipe"), [], 0
    try:
        for _ in range(10_000):  # bounded
            lines_read, size, at_end = reader.read(batch())
            got += lines_read
            consumed += size
            if at_end:
                return got, consumed
        raise AssertionError("the reader never came to the end of the pipe")
    finally:
        writer.join(10)
        os.close(read_end)


class TestPipeText:
    """A pipe cannot be peeked at before it is read, so its first bytes are looked at as
    they arrive: `aws s3 cp s3://.../events.jsonl.gz - | vigil run --input -` made a dead
    letter of every line of compressed bytes."""

    @staticmethod
    def _compressed(text: bytes) -> bytes:
        """Two gzip members and the NUL padding gzip allows after one (as `cat a.gz b.gz`
        and tape-blocked writers give)."""
        import gzip

        half = len(text) // 2
        cut = text.index(b"\n", half) + 1
        return gzip.compress(text[:cut]) + b"\0" * 7 + gzip.compress(text[cut:])

    def test_gzip_on_a_pipe_reads_as_the_text_it_holds_however_the_bytes_arrive(
        self, tmp_path: Path
    ) -> None:
        import random

        from vigil.connectors.files import _FileLines

        path = lines(tmp_path / "e.jsonl", 400)
        with path.open("rb") as handle:
            from_file, _, _ = _FileLines(handle, cap=1027).read(1_000)
        packed = self._compressed(path.read_bytes())
        for seed in range(4):  # bounded: the first pieces as short as 1 byte
            sizes = random.Random(seed)
            got, consumed = _through_a_pipe(
                packed, batch=lambda: 50, piece=lambda sizes=sizes: sizes.randint(1, 3_000)
            )
            assert got == from_file, seed
            assert consumed == path.stat().st_size  # bytes of text, as for a gzip file

    def test_a_gzip_pipe_cut_short_and_text_in_utf16_are_told(self) -> None:
        import gzip

        from vigil.connectors.files import NotUtf8, PipeDecoder

        packed = gzip.compress(b'{"event_id": "a"}\n' * 100)
        for stream in [packed[:-4], b"\x1f\x8b"]:  # short of the gzip trailer; a bare header
            with pytest.raises(EOFError, match="ended before the end-of-stream marker"):
                _pull_all(PipeDecoder("stdin"), stream, piece=len(stream))
        for stream in ['{"a": 1}\n'.encode("utf-16"), gzip.compress("{}\n".encode("utf-16"))]:
            with pytest.raises(NotUtf8, match=r"--input: stdin is UTF-16 text \(it starts"):
                _pull_all(PipeDecoder("stdin"), stream, piece=1)
        # anything else passes as it is, the shortest too
        assert _pull_all(PipeDecoder("stdin"), b"{}", piece=1) == [b"{}"]

    def test_a_highly_compressed_pipe_is_handed_out_a_bounded_piece_at_a_time(self) -> None:
        """6 KB of gzip held 4 MB of repeated lines: decompressed at once, a batch of
        1,000 lines split and joined again all of it each time (38 s against 8 s for the
        same lines plain), and the lines of a larger one could fill memory."""
        import gzip

        from vigil.connectors.files import TEXT_PER_PULL, PipeDecoder

        text = b'{"a":1}\n' * 500_000
        packed = gzip.compress(text)
        assert len(packed) < 20_000
        pieces = _pull_all(PipeDecoder("stdin"), packed, piece=len(packed))
        assert b"".join(pieces) == text
        assert max(map(len, pieces)) <= TEXT_PER_PULL
        assert len(pieces) >= len(text) // TEXT_PER_PULL

    def test_pipe_text_reads_lines_from_a_real_pipe(self, tmp_path: Path) -> None:
        """What `vigil produce --input -` reads."""
        import os
        import threading

        from vigil.connectors.files import pipe_text

        text = lines(tmp_path / "e.jsonl", 300).read_bytes()
        read_end, write_end = os.pipe()

        def write() -> None:
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(self._compressed(text))

        writer = threading.Thread(target=write)
        writer.start()
        try:
            with pipe_text(os.fdopen(read_end, "rb"), "stdin") as handle:
                got = list(handle)
        finally:
            writer.join(10)
        assert got == text.splitlines(keepends=True)


class TestSink:
    def test_one_file_per_stream_and_a_resume_truncates_to_the_snapshot(
        self, tmp_path: Path
    ) -> None:
        sink = JsonLinesSink(tmp_path, ["tasks", "health"])
        assert sink.part_fn("health") == 0 and sink.part_fn("tasks") == 1
        part = sink.build_part("out", "tasks", None)
        part.write_batch([([{"n": 1}], 0.0)])
        offset = part.snapshot()
        part.write_batch([([{"n": 2}, {"n": 2.5}], 0.0)])
        part.close()
        resumed = sink.build_part("out", "tasks", offset)
        resumed.write_batch([([{"n": 3}], 0.0)])
        resumed.close()
        assert (tmp_path / "tasks.jsonl").read_bytes() == b'{"n":1}\n{"n":3}\n'

    @pytest.mark.parametrize(
        ("written", "said"),
        [
            (None, "holds 0 bytes, fewer than the 8 the recovery store wrote to it"),
            (b'{"n":1', "holds 6 bytes, fewer than the 8"),
            (b'{"other":1}\n', "byte 8 of .*, where the recovery store stopped writing it, does"),
        ],
    )
    def test_a_resume_into_a_file_the_store_did_not_write_is_refused(
        self, tmp_path: Path, written: bytes | None, said: str
    ) -> None:
        path = tmp_path / "tasks.jsonl"
        if written is not None:
            open_output(path, 0).close()  # a file Vigil made, which changed since
            path.write_bytes(written)
        sink = JsonLinesSink(tmp_path, ["tasks"])
        with pytest.raises(OutputChanged, match=said):
            sink.build_part("out", "tasks", len(b'{"n":1}\n'))
        assert path.exists() is (written is not None)  # not made, nor padded with NULs
        assert written is None or path.read_bytes() == written

    def test_start_empty_makes_every_file_and_empties_those_it_made(self, tmp_path: Path) -> None:
        sink = JsonLinesSink(tmp_path, ["tasks", "health"])
        sink.start_empty()
        (tmp_path / "tasks.jsonl").write_bytes(b'{"old":1}\n')
        sink.start_empty()
        assert {p.name: p.read_bytes() for p in tmp_path.glob("*.jsonl")} == {
            "tasks.jsonl": b"",
            "health.jsonl": b"",
        }

    def test_a_file_vigil_did_not_make_is_never_emptied(self, tmp_path: Path) -> None:
        sink = JsonLinesSink(tmp_path, ["tasks", "health"])
        sink.start_empty()
        (tmp_path / "tasks.jsonl").unlink()
        (tmp_path / "tasks.jsonl").write_bytes(b"mine\n")  # another file of the same name
        with pytest.raises(OutputChanged, match=r"tasks\.jsonl exists and Vigil did not make it"):
            sink.start_empty()
        with pytest.raises(OutputChanged, match=r"tasks\.jsonl exists and Vigil did not make it"):
            sink.build_part("out", "tasks", 5)
        assert (tmp_path / "tasks.jsonl").read_bytes() == b"mine\n"

    def test_an_output_that_is_a_link_is_refused_and_its_target_left_alone(
        self, tmp_path: Path
    ) -> None:
        target = tmp_path / "precious"
        target.write_bytes(b"keep\n")
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "tasks.jsonl").symlink_to(target)
        sink = JsonLinesSink(tmp_path / "out", ["tasks"])
        with pytest.raises(OutputChanged, match="is a symbolic link"):
            sink.start_empty()
        assert target.read_bytes() == b"keep\n"


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


@pytest.mark.parametrize(("cut", "call"), [("_write_made", 1), ("link", 1), ("unlink", 2)])
def test_an_output_whose_making_is_cut_short_is_taken_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: str, call: int
) -> None:
    """A run killed between making a file and recording it left one that every later run
    refused as not made by Vigil. Cut at each step after the file is made."""
    import vigil.connectors.files as files

    target = files if cut == "_write_made" else files.os if cut == "link" else Path
    real, calls = getattr(target, cut), iter(range(1, 10))

    def killed(*args: Any, **kwargs: Any) -> Any:
        if next(calls) == call:
            raise _Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(target, cut, killed)
    with pytest.raises(_Killed):
        open_output(tmp_path / "tasks.jsonl", 0)
    monkeypatch.undo()
    with open_output(tmp_path / "tasks.jsonl", 0) as handle:
        handle.write(b"{}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".vigil-making.lock",
        ".vigil-outputs.json",
        "tasks.jsonl",
    ]
    JsonLinesSink(tmp_path, ["tasks"]).start_empty()  # recorded: emptied
    assert (tmp_path / "tasks.jsonl").read_bytes() == b""
