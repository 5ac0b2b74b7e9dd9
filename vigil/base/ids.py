"""Deterministic ids and tenant placement: the same input yields the same ids on every
replay, restart and worker count, so consumers can deduplicate on them."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

_SEPARATOR = "\x1f"  # cannot appear in a tenant id that came through JSON unescaped by chance


def stable_id(prefix: str, *parts: object) -> str:
    """`prefix` + 24 hex digits of BLAKE2b over the parts: stable across processes and
    versions of Python (unlike hash())."""
    text = _SEPARATOR.join(str(part) for part in parts)
    return f"{prefix}_{hashlib.blake2b(text.encode(), digest_size=12).hexdigest()}"


def shard_key(shard: int) -> str:
    return f"s{shard:04d}"


def deadletter_id(source: str, position: Mapping[str, Any], raw: str) -> str:
    """One rejected message's id: where it was read and what it held (a pipe's line
    numbers start again in every run; its text tells two runs' messages apart)."""
    where = orjson.dumps(position, option=orjson.OPT_SORT_KEYS).decode()
    return stable_id("dead", source, where, raw)


def health_id(tenant_id: str, ts: str, score: int, zone: str) -> str:
    """A health record's id: a tenant's score is recorded at most once an instant. (The
    compiled engine makes it in native/src/ids.rs.)"""
    return stable_id("health", tenant_id, ts, score, zone)
