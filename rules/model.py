"""The rule file schema: what a CS-ops engineer writes in YAML, validated strictly."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from rules.templates import placeholders
from vigil.facts import FIELDS_BY_KIND
from vigil.settings import Duration

Severity = Literal["info", "low", "medium", "high", "critical"]
Zone = Literal["green", "yellow", "orange", "red", "none"]
Segment = Literal["smb", "mid_market", "enterprise", "unknown"]
RULE_ID = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


def _as_tuple(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


T = TypeVar("T")
# A single value or a list of them in YAML, held as a tuple ("any of").
OneOrMany = Annotated[tuple[T, ...] | None, BeforeValidator(_as_tuple)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class When(_Strict):
    """A condition over one fact; every given key must hold (lists mean any of)."""

    fact: Literal["signal", "zone_change", "score_drop"]
    signal: OneOrMany[str] = None
    severity: OneOrMany[Severity] = None
    zone: OneOrMany[Zone] = None
    from_zone: OneOrMany[Zone] = None
    segment: OneOrMany[Segment] = None
    score_below: float | None = Field(default=None, ge=0, le=101)
    score_at_least: float | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="after")
    def _fits_the_fact(self) -> When:
        if self.signal is not None and self.fact != "signal":
            raise ValueError("'signal' can only be used with fact: signal")
        if self.from_zone is not None and self.fact != "zone_change":
            raise ValueError("'from_zone' can only be used with fact: zone_change")
        return self


def _template(text: Any) -> Any:
    if isinstance(text, str):
        placeholders(text)  # raises on a malformed placeholder
    return text


Template = Annotated[str, Field(min_length=1), AfterValidator(_template)]


class TaskAction(_Strict):
    playbook: str = Field(min_length=1)
    title: Template
    description: Template
    owner_role: str = Field(min_length=1)
    priority: Literal["low", "medium", "high", "critical"]
    sla: Duration


class NotificationAction(_Strict):
    severity: Severity | Literal["fact"]  # "fact": the severity of the fact that fired
    channel: str = Field(min_length=1)
    title: Template
    body: Template


class Rule(_Strict):
    id: str = Field(pattern=RULE_ID)
    description: str = ""
    when: When
    cooldown: Duration
    task: TaskAction | None = None
    notification: NotificationAction | None = None

    @model_validator(mode="after")
    def _acts(self) -> Rule:
        if self.task is None and self.notification is None:
            raise ValueError("a rule needs a task, a notification or both")
        return self

    def unknown_template_fields(self) -> list[tuple[tuple[str, str], list[str]]]:
        """(action, field) of each template naming fields its fact does not carry."""
        known = FIELDS_BY_KIND[self.when.fact]
        found = []
        for action in ("task", "notification"):
            model = getattr(self, action)
            for name in ("title", "description", "body"):
                text = getattr(model, name, None) if model is not None else None
                unknown = sorted(set(placeholders(text)) - known) if text else []
                if unknown:
                    found.append(((action, name), unknown))
        return found


class RuleFile(_Strict):
    rules: list[Rule] = Field(min_length=1)
