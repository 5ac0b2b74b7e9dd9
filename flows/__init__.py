"""Bytewax dataflows: wiring only; the logic they call lives in the other `vigil` packages."""

from __future__ import annotations
