"""Vigil: a streaming rules engine for customer-success telemetry."""

from __future__ import annotations

__version__ = "0.1.0"
