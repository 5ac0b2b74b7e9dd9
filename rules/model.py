"""The rule file schema: what a CS-ops engineer writes in YAML, validated strictly."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from vigil.base.zones import zone_of
from vigil.config.settings import Duration, ZoneSettings
from vigil.intake.events import DEFAULT_CATALOGUE
from vigil.rules.facts import ZONE_CHANGE, ZONE_SEVERITY, fact_fields, fact_severities
from vigil.rules.signals import SIGNAL_KINDS, SignalKind
from vigil.rules.templates import placeholders

Severity = Literal["info", "low", "medium", "high", "critical"]
Zone = Literal["green", "yellow", "orange", "red"]
FromZone = Literal["green", "yellow", "orange", "red", "none"]  # none: a tenant's first zone
# A fact of a tenant that sent no segment says "unknown".
UNKNOWN_SEGMENT = "unknown"
RULE_ID = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


def _as_tuple(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


def signal_kinds_of(info: ValidationInfo) -> Mapping[str, SignalKind]:
    """The signals rules may name: the built-in ones, and those the settings declare when
    the loader hands them over (`context={"signals": ...}`)."""
    kinds: Mapping[str, SignalKind] = (info.context or {}).get("signals", SIGNAL_KINDS)
    return kinds


def _known_signal(name: str, info: ValidationInfo) -> str:
    kinds = signal_kinds_of(info)
    if name not in kinds:
        msg = f"unknown signal {name!r}: Vigil detects {', '.join(sorted(kinds))}"
        raise ValueError(msg)
    return name


def _known_segment(name: str, info: ValidationInfo) -> str:
    """A segment of the catalogue: the built-in ones, and those the settings add when the
    loader hands them over (`context={"segments": ...}`)."""
    segments = (info.context or {}).get("segments", DEFAULT_CATALOGUE.segments)
    if name not in (*segments, UNKNOWN_SEGMENT):
        raise ValueError(f"unknown segment {name!r}: {', '.join(segments)} or {UNKNOWN_SEGMENT}")
    return name


SignalName = Annotated[str, AfterValidator(_known_signal)]
Segment = Annotated[str, AfterValidator(_known_segment)]
T = TypeVar("T")
# A single value or a list of them in YAML, held as a tuple ("any of").
OneOrMany = Annotated[tuple[T, ...] | None, BeforeValidator(_as_tuple)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # YAML has .inf


class When(_Strict):
    """A condition over one fact; every given key must hold (lists mean any of)."""

    fact: Literal["signal", "zone_change", "score_drop"]
    signal: OneOrMany[SignalName] = None
    severity: OneOrMany[Severity] = None
    zone: OneOrMany[Zone] = None
    from_zone: OneOrMany[FromZone] = None
    segment: OneOrMany[Segment] = None
    score_below: float | None = Field(default=None, ge=0, le=101)
    score_at_least: float | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="after")
    def _fits_the_fact(self, info: ValidationInfo) -> When:
        if self.signal is not None and self.fact != "signal":
            raise ValueError("'signal' can only be used with fact: signal")
        if self.from_zone is not None and self.fact != "zone_change":
            raise ValueError("'from_zone' can only be used with fact: zone_change")
        if never := self._never_holds(signal_kinds_of(info)):
            raise ValueError(f"this condition can never hold: {never}")
        return self

    def _never_holds(self, kinds: Mapping[str, SignalKind]) -> str | None:
        """Why no fact can match, for the conditions whose values rule each other out: a
        rule that silently never fires is worse than one refused at load."""
        possible = fact_severities(self.fact, self.signal, kinds)
        if self.fact == ZONE_CHANGE and self.zone is not None:
            possible &= {ZONE_SEVERITY[zone] for zone in self.zone}  # severity follows zone
        if self.severity is not None and not possible & set(self.severity):
            return (
                f"severity {', '.join(self.severity)}, but {self._facts_named()} have "
                f"{' or '.join(sorted(possible))}"
            )
        if self.zone is not None and len(self.zone) == 1 and self.zone == self.from_zone:
            return f"zone and from_zone are both {self.zone[0]}: a zone change leaves its zone"
        low, high = self.score_at_least, self.score_below
        if low is not None and high is not None and low >= high:
            return f"no score is at least {low:g} and below {high:g}"
        return None

    def never_holds_with(self, zones: ZoneSettings) -> str | None:
        """Why no fact can match under these zone cut-offs: a fact's zone is that of its
        (whole) score, so `zone` bounds the score as `score_below` and `score_at_least` do."""
        if self.zone is None or (self.score_below is None and self.score_at_least is None):
            return None
        low, high = self.score_at_least, self.score_below
        held = {zone: zone_scores(zone, zones) for zone in self.zone}
        if any(
            (low is None or score >= low) and (high is None or score < high)
            for scores in held.values()
            for score in scores
        ):
            return None
        spans = ", ".join(f"{zone} {_span(scores)}" for zone, scores in held.items())
        bounds = []
        if low is not None:
            bounds.append(f"at least {low:g}")
        if high is not None:
            bounds.append(f"below {high:g}")
        return f"no score in {spans} (health.zones) is {' and '.join(bounds)}"

    def _facts_named(self) -> str:
        """The facts this condition can match, in words: 'error_spike signal facts'."""
        if self.fact == "signal" and self.signal is not None:
            return f"{' and '.join(self.signal)} signal facts"
        if self.fact == ZONE_CHANGE and self.zone is not None:
            return f"zone changes into {' or '.join(self.zone)}"
        return f"{self.fact} facts"


def zone_scores(zone: str, zones: ZoneSettings) -> list[int]:
    """The whole scores 0-100 that the scorer puts in `zone` (vigil.base.zones.zone_of)."""
    return [score for score in range(101) if zone_of(score, zones) == zone]


def _span(scores: list[int]) -> str:
    return f"{scores[0]}-{scores[-1]}"  # never empty: the settings refuse an empty zone


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


# What a closed_reason may say besides the opening fact's fields: how long what opened
# the task had not held when it closed.
CLOSE_FIELDS = frozenset({"cleared_for"})


class CloseWhen(_Strict):
    """When a rule's task closes: what opened it no longer holds (`cleared`: the signal's
    measure came back within its bounds; or the tenant's `zone` is one of these) for
    `after`, decided in event time; `reason` is the closed record's `closed_reason`."""

    cleared: bool = False
    zone: OneOrMany[Zone] = None
    after: Duration = 0
    reason: Template

    @model_validator(mode="after")
    def _one_condition(self) -> CloseWhen:
        if self.cleared == (self.zone is not None):
            raise ValueError("close_when needs one of cleared: true or zone")
        return self


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
    close_when: CloseWhen | None = None

    @model_validator(mode="after")
    def _acts(self) -> Rule:
        if self.task is None and self.notification is None:
            raise ValueError("a rule needs a task, a notification or both")
        if self.close_when is not None:
            if self.task is None:
                raise ValueError("close_when is for a rule with a task")
            if self.close_when.cleared and self.when.fact != "signal":
                raise ValueError("close_when: cleared is for rules on signal facts")
        return self

    def unknown_template_fields(
        self, kinds: Mapping[str, SignalKind] = SIGNAL_KINDS
    ) -> list[tuple[tuple[str, str], list[str]]]:
        """(action, field) of each template naming fields that not every fact the rule
        matches carries (they would render as "n/a")."""
        known = fact_fields(self.when.fact, self.when.signal, kinds)
        found = []
        for action in ("task", "notification", "close_when"):
            model = getattr(self, action)
            for name in ("title", "description", "body", "reason"):
                text = getattr(model, name, None) if model is not None else None
                said = known | CLOSE_FIELDS if action == "close_when" else known
                unknown = sorted(set(placeholders(text)) - said) if text else []
                if unknown:
                    found.append(((action, name), unknown))
        return found


class RuleFile(_Strict):
    rules: list[Rule] = Field(min_length=1)
