"""One root error type, so callers can catch everything Vigil raises on purpose."""

from __future__ import annotations


class VigilError(Exception):
    """Base of every error Vigil raises deliberately; its message is for humans."""

    exit_code = 2  # a command stopped by it exits with this: most are usage errors


class ConfigError(VigilError):
    """A settings file, an environment override or a CLI argument is unusable."""


class OutputError(VigilError):
    """What a command had to write was refused (a full disk, a quota): it ran, but its
    result did not all arrive, so it fails with exit code 1, not the 2 of a usage error."""

    exit_code = 1


class RuleError(VigilError):
    """A rule file is invalid; the message names the file, line and rule id."""


class RuleEvaluationError(VigilError):
    """The rules engine failed while evaluating a fact."""

    rule_id: str = ""
