"""Reading a run's output files back (the summary, `vigil explain`)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from vigil.base.errors import ConfigError
from vigil.ops.summary import read_jsonl


def test_only_lines_holding_the_bytes_asked_for_are_decoded(tmp_path: Path) -> None:
    path = tmp_path / "health.jsonl"
    path.write_bytes(b'{"tenant_id":"a","n":1}\n{"tenant_id":"b","n":2}\nnot json, not "a"\n')
    assert [r["n"] for r in read_jsonl(path, b'"b"')] == [2]  # the bad line is never decoded


def test_a_last_line_cut_short_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "health.jsonl"
    path.write_bytes(b'{"n":1}\n{"n":2}\n{"n":')
    with caplog.at_level(logging.WARNING, logger="vigil.outputs"):
        assert [r["n"] for r in read_jsonl(path)] == [1, 2]
    [warning] = caplog.records
    assert warning.getMessage().startswith("skipped the last line, cut short")
    assert (warning.file, warning.line) == (str(path), 3)  # type: ignore[attr-defined]


def test_a_bad_line_before_the_end_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(b'{"n":1}\n{"n":\n{"n":3}\n')
    with pytest.raises(ConfigError, match=r"tasks\.jsonl, line 2: not a JSON record"):
        list(read_jsonl(path))


def test_a_last_line_without_a_newline_that_is_whole_is_read(tmp_path: Path) -> None:
    path = tmp_path / "signals.jsonl"
    path.write_bytes(b'{"n":1}\n{"n":2}')
    assert [r["n"] for r in read_jsonl(path)] == [1, 2]


def test_a_message_on_an_output_topic_that_is_not_a_record_is_named() -> None:
    from vigil.app.explain import _decoded

    records = _decoded([b'{"tenant_id":"a"}', b"written by something else"], "cs.health")
    assert next(records) == {"tenant_id": "a"}
    with pytest.raises(ConfigError, match=r"a message on cs\.health is not a JSON record"):
        next(records)
