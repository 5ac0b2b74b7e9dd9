"""The compiled decoder of the common valid event (`vigil._native.Decoder`), where built:
decoding needs neither the engine nor the rules."""

from __future__ import annotations

from functools import cache

import orjson

from vigil.events import (
    FEW_ATTRS,
    MAX_EPOCH_MS,
    MAX_ID_LENGTH,
    MIN_EPOCH_MS,
    NO_WATERMARK,
    SEGMENTS,
    Event,
    compiled_checks,
)

try:
    from vigil._native import Decoder
except ImportError:  # built without Rust: vigil/events.py decodes alone
    Decoder = None  # type: ignore[assignment,misc]


@cache
def decoder() -> Decoder | None:
    """The compiled decoder (vigil.intake), where built."""
    if Decoder is None:
        return None
    limits = (sorted(SEGMENTS), MAX_ID_LENGTH, FEW_ATTRS, (MIN_EPOCH_MS, MAX_EPOCH_MS))
    return Decoder(Event, *limits, compiled_checks(), orjson.loads, NO_WATERMARK)
