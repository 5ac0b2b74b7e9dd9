"""Vigil's version, with one source: pyproject.toml, as installed."""

from __future__ import annotations

from importlib import metadata

try:
    VERSION = metadata.version("vigil")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    VERSION = "unknown"
