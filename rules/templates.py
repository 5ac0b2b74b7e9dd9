"""Rule text templates: `{field}` is replaced by a fact field, `{{`/`}}` are literal braces.

Nothing else is interpreted: no attribute access, indexing, format specs or code, so a
rule file can never run anything (unlike str.format or a template language).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([a-z_][a-z0-9_]*)\}|\{[^}]*\}?|\}")
MISSING = "n/a"


def placeholders(template: str) -> list[str]:
    """Field names used by a template; raises ValueError on a malformed brace."""
    names = []
    for match in _PLACEHOLDER.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        if match.group(1) is None:
            hint = "write {field_name}, or {{ and }} for literal braces"
            msg = f"malformed placeholder {token!r}: {hint}"
            raise ValueError(msg)
        names.append(match.group(1))
    return names


def render(template: str, fields: Mapping[str, Any]) -> str:
    """Substitute fields; a field the fact does not carry renders as 'n/a'."""

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        value = fields.get(match.group(1) or "", None)
        return MISSING if value is None else _text(value)

    return _PLACEHOLDER.sub(substitute, template)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}".removesuffix(".0")
    return str(value)
