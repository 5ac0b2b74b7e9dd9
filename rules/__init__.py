"""What the rules speak and do: signals and facts (the vocabulary), the rule file schema,
its loader, the durable_rules engine, and the actions that become tasks and
notifications."""

from __future__ import annotations
