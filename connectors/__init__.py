"""Sources and sinks: how Vigil's dataflow meets files and Kafka. No logic lives here."""

from __future__ import annotations
