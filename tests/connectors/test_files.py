from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from connectors.files import JsonLinesSink, JsonLinesSource
from vigil.events import DeadLetter, Event
from vigil.intake import NO_WATERMARK
from vigil.shard import Tick

HOUR = 3_600_000


def lines(path: Path, count: int) -> Path:
    rows = [
        {"event_id": f"e{n}", "type": "user.session", "tenant_id": "t", "ts": n * HOUR}
        for n in range(count)
    ]
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


class TestSource:
    def test_batches_end_with_a_watermark_tick_and_stop_at_the_end(self, tmp_path: Path) -> None:
        part = JsonLinesSource(
            str(lines(tmp_path / "e.jsonl", 5)), lateness=HOUR, batch_size=2
        ).build_part("in", "x", None)
        [first] = part.next_batch()  # a batch is one chunk
        assert [type(item) for item in first] == [Event, Event, Tick]
        tick = first[-1]
        assert isinstance(tick, Tick)
        # max ts 1 h minus 1 h of lateness
        assert (tick.source, tick.wm, tick.sources) == (str(tmp_path / "e.jsonl"), 0, 1)
        assert tick.read_at > 0
        assert first[0].wm == NO_WATERMARK and first[1].wm == -HOUR  # before e1 the max ts was 0
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
        assert events[0].wm == 3 * HOUR - HOUR  # the max ts before the snapshot was kept
        assert events[0].position["line"] == 5

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

    def test_start_empty_makes_every_file_and_empties_old_ones(self, tmp_path: Path) -> None:
        (tmp_path / "tasks.jsonl").write_bytes(b'{"old":1}\n')
        JsonLinesSink(tmp_path, ["tasks", "health"]).start_empty()
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {
            "tasks.jsonl": b"",
            "health.jsonl": b"",
        }
