"""The input contract as a JSON Schema, made from the catalogue the decoder checks
against (docs/reference/schemas/event.schema.json is this of the built-in catalogue).

What a schema cannot say, the decoder still checks: the years 2000-2999 of `ts`, the
bounds on size and nesting (input.max_event_bytes, max_depth, max_attrs), and lateness.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vigil.intake.events import (
    DEFAULT_CATALOGUE,
    MAX_ID_LENGTH,
    SCORE_RANGES,
    Catalogue,
    Check,
)

_IDENTIFIER = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH}
_CHECKS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "name": _IDENTIFIER,
    "number": {"type": "number"},
    "int": {"type": "integer"},
    "date": {"type": "string", "format": "date"},
}


def event_schema(catalogue: Catalogue = DEFAULT_CATALOGUE) -> dict[str, Any]:
    """One event: the envelope, and for each type of the catalogue its attributes. A type
    outside the catalogue is counted and not used, so it is valid with any attrs."""
    by_type = [
        {
            "if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
            "then": _then(spec),
        }
        for kind, spec in sorted(catalogue.attrs.items())
        if spec
    ]
    ranges = [
        {
            "if": {
                "properties": {
                    "type": {"const": "survey.response"},
                    "attrs": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                },
                "required": ["type", "attrs"],
            },
            "then": {
                "properties": {
                    "attrs": {"properties": {"score": {"minimum": low, "maximum": high}}}
                }
            },
        }
        for kind, (low, high) in sorted(SCORE_RANGES.items())
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Vigil input event",
        "description": "One Kafka message value, or one line of a JSON Lines file.",
        "type": "object",
        "required": ["event_id", "type", "tenant_id", "ts"],
        "properties": {
            "event_id": _IDENTIFIER,
            "type": {**_IDENTIFIER, "examples": sorted(catalogue.types)},
            "tenant_id": _IDENTIFIER,
            "ts": {
                "description": "RFC 3339 with an offset, or Unix epoch milliseconds; "
                "years 2000-2999",
                "oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}],
            },
            "user_id": {"type": ["string", "null"]},
            "segment": {"enum": [*catalogue.segments, None]},
            "attrs": {"type": ["object", "null"]},
        },
        "allOf": by_type + ranges,
    }


def _then(spec: Mapping[str, tuple[bool, Check]]) -> dict[str, Any]:
    """A type's attributes; with a required one, attrs must hold it (null is as absent)."""
    required = [name for name, (needed, _) in spec.items() if needed]
    attrs: dict[str, Any] = {
        "type": "object" if required else ["object", "null"],
        "properties": {
            name: _check_schema(check, nullable=not needed)
            for name, (needed, check) in spec.items()
        },
    }
    if required:
        attrs["required"] = required
        return {"properties": {"attrs": attrs}, "required": ["attrs"]}
    return {"properties": {"attrs": attrs}}


def _check_schema(check: Check, nullable: bool) -> dict[str, Any]:
    """An optional attribute may be null: read as absent."""
    if check.kind == "one_of":
        return {"enum": [*check.choices, None] if nullable else list(check.choices)}
    schema = dict(_CHECKS[check.kind])
    if nullable:
        schema["type"] = [schema["type"], "null"]
    return schema
