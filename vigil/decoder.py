"""The compiled decoder of the common valid event (`vigil._native.Decoder`): decoding
needs neither the engine nor the rules."""

from __future__ import annotations

from functools import cache

import orjson

from vigil._native import Decoder
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


@cache
def decoder() -> Decoder:
    """The compiled decoder (vigil.intake)."""
    limits = (sorted(SEGMENTS), MAX_ID_LENGTH, FEW_ATTRS, (MIN_EPOCH_MS, MAX_EPOCH_MS))
    return Decoder(Event, *limits, compiled_checks(), orjson.loads, NO_WATERMARK)
