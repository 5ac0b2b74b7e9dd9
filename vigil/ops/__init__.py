"""What operators see: Prometheus metrics, the HTTP endpoints, the progress line and
a run's summary."""

from __future__ import annotations
