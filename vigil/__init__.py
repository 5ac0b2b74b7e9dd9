"""Vigil: a streaming rules engine for customer-success telemetry."""

from __future__ import annotations

from vigil.base.version import VERSION as __version__

__all__ = ["__version__"]
