"""The settings: their model, defaults, checks and sources (file, environment)."""

from __future__ import annotations
