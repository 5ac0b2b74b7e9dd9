"""One root error type, so callers can catch everything Vigil raises on purpose."""

from __future__ import annotations


class VigilError(Exception):
    """Base of every error Vigil raises deliberately; its message is for humans."""


class ConfigError(VigilError):
    """A settings file, an environment override or a CLI argument is unusable."""


class RuleError(VigilError):
    """A rule file is invalid; the message names the file, line and rule id."""


class RuleEvaluationError(VigilError):
    """The rules engine failed while evaluating a fact."""

    rule_id: str = ""
