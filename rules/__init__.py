"""Declarative rules: the rule file schema, its loader and the durable_rules engine."""

from __future__ import annotations
