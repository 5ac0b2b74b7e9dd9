"""The compiled decoder of the common valid event (`vigil._native.Decoder`): decoding
needs neither the engine nor the rules."""

from __future__ import annotations

import threading

import orjson

from vigil._native import Decoder
from vigil.intake.events import (
    DEFAULT_CATALOGUE,
    FEW_ATTRS,
    MAX_EPOCH_MS,
    MAX_ID_LENGTH,
    MIN_EPOCH_MS,
    NO_WATERMARK,
    Catalogue,
    Event,
    compiled_checks,
)

# One decoder per catalogue, shared by a process's partitions.
_DECODERS: dict[bytes, Decoder] = {}
_LOCK = threading.Lock()


def decoder(catalogue: Catalogue = DEFAULT_CATALOGUE) -> Decoder:
    """The compiled decoder of `catalogue` (vigil.intake.reader)."""
    key = catalogue.key()
    with _LOCK:
        found = _DECODERS.get(key)
        if found is None:
            limits = (list(catalogue.segments), MAX_ID_LENGTH, FEW_ATTRS)
            epochs = (MIN_EPOCH_MS, MAX_EPOCH_MS)
            checks = compiled_checks(catalogue)
            found = Decoder(Event, *limits, epochs, checks, orjson.loads, NO_WATERMARK)
            _DECODERS[key] = found
        return found
