"""Bytewax dataflows: wiring only; the logic they call lives in `vigil`."""

from __future__ import annotations
