from __future__ import annotations

import tracemalloc

import orjson

from vigil.base.jsonbytes import dumps_to_keep


def test_kept_json_is_the_same_bytes() -> None:
    record = {"tenant_id": "t-1", "ts": 1, "attrs": {"feature": "é"}, "ids": ["a"] * 50}
    assert dumps_to_keep(record) == orjson.dumps(record)
    assert type(dumps_to_keep(record)) is bytes


def test_kept_json_holds_little_more_than_its_length() -> None:
    """orjson's own result holds its whole buffer: 4 KiB for these 40-byte lines (3.13)."""
    line = {"event_id": "e", "tenant_id": "t"}
    length = len(orjson.dumps(line))
    tracemalloc.start()
    try:
        held = [dumps_to_keep({**line, "n": n}) for n in range(1000)]
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(held) == 1000 and size < 1000 * (length + 100), size
