"""The catalogue extended in the settings (`[catalogue]`): event types with their
attributes' checks, and segments, without code; the built-in catalogue as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from support import DAY, HOUR, T0, Harness, clock, event

from vigil.base.errors import ConfigError
from vigil.config.settings import Settings, load_settings
from vigil.intake.events import DEFAULT_CATALOGUE, DeadLetter, Event
from vigil.intake.reader import Intake
from vigil.rules.loader import configured_rules

USAGE: dict[str, Any] = {
    "catalogue": {
        "types": {
            "usage.reported": {
                "units": {"check": "number", "required": True},
                "plan": {"one_of": ["free", "pro"]},
            }
        },
        "segments": ["startup"],
    }
}


def settings(extra: dict[str, Any] | None = None) -> Settings:
    return load_settings(None, env={}, overrides={**USAGE, **(extra or {})})


def usage(attrs: dict[str, Any], segment: str | None = None) -> bytes:
    sent = event("acme", "usage.reported", T0, attrs)
    return orjson.dumps({**sent, "segment": segment} if segment else sent)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "reference"])
class TestDecoding:
    def intake(self, compiled: bool) -> Intake:
        catalogue = settings().catalogue.full
        return Intake("f", "p", 1, HOUR, compiled=compiled, catalogue=catalogue)

    def test_an_added_type_is_checked_as_declared(self, compiled: bool) -> None:
        intake = self.intake(compiled)
        ok = intake.take(usage({"units": 3, "plan": "pro"}, "startup"), {})
        assert isinstance(ok, Event) and ok.segment == "startup"
        missing = intake.take(usage({"plan": "pro"}), {})
        assert isinstance(missing, DeadLetter) and missing.reason == "missing_field"
        assert missing.error == "usage.reported needs attrs.units (a number)"
        wrong = intake.take(usage({"units": 3, "plan": "gold"}), {})
        assert isinstance(wrong, DeadLetter) and wrong.reason == "invalid_field"
        assert "attrs.plan must be free or pro" in wrong.error

    def test_a_segment_outside_the_catalogue_names_the_added_ones(self, compiled: bool) -> None:
        wrong = self.intake(compiled).take(usage({"units": 1}, "huge"), {})
        assert isinstance(wrong, DeadLetter) and wrong.error == (
            "field 'segment' must be smb, mid_market, enterprise or startup, got \"huge\""
        )

    def test_the_built_in_catalogue_is_unchanged(self, compiled: bool) -> None:
        built_in = Intake("f", "p", 1, HOUR, compiled=compiled)
        assert isinstance(built_in.take(usage({"units": 1}, "startup"), {}), DeadLetter)
        assert (
            settings().catalogue.full.attrs["user.session"]
            is DEFAULT_CATALOGUE.attrs["user.session"]
        )


def test_an_added_type_feeds_measures_and_rules_may_name_an_added_segment(
    tmp_path: Path,
) -> None:
    rule = tmp_path / "startups.yaml"
    rule.write_text(
        "rules:\n  - id: startup-usage\n    when: {fact: signal, signal: heavy_use, "
        "segment: startup}\n    cooldown: 1d\n"
        "    notification: {severity: fact, channel: c, title: t, body: b}\n"
    )
    declared = settings(
        {
            "measures": {
                "units": {
                    "kind": "sum",
                    "events": ["usage.reported"],
                    "field": "attrs.units",
                    "window": "1d",
                }
            },
            "signals": {"heavy_use": {"measure": "units", "above": 100}},
            "rules": {"paths": [str(rule)]},
        }
    )
    from vigil.rules.engine import engine_for

    h = Harness(declared, engine_for(configured_rules(declared)))
    reports = [
        {**event("acme", "usage.reported", T0 + n, {"units": 60}), "segment": "startup"}
        for n in range(2)
    ]
    h.feed([*reports, clock(T0 + DAY)])
    assert h.engine.take_type_counts()["usage.reported"] == 2
    assert h.engine.counts["unknown_types"] == 1  # the test clock's event, not the reports
    [raised] = h.signals("heavy_use")
    assert raised["evidence"]["measured"] == 120.0
    assert [n["rule"] for n in h.out["notifications"]] == ["startup-usage"]


@pytest.mark.parametrize(
    ("catalogue", "said"),
    [
        ({"types": {"user.session": {}}}, "types.user.session: a built-in type"),
        (
            {"types": {"x.y": {"n": {"check": "int", "one_of": ["a"]}}}},
            "one_of is for text attributes",
        ),
        ({"types": {"x.y": {"n": {"check": "float"}}}}, "catalogue.types.x.y.n.check"),
    ],
)
def test_a_catalogue_that_would_change_the_contract_is_refused(
    catalogue: dict[str, Any], said: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(None, env={}, overrides={"catalogue": catalogue})
    assert said in str(refused.value)


def test_a_rule_naming_a_segment_nobody_added_is_refused(tmp_path: Path) -> None:
    from vigil.base.errors import RuleError

    rule = tmp_path / "r.yaml"
    rule.write_text(
        "rules:\n  - id: r\n    when: {fact: zone_change, segment: startup}\n    cooldown: 1d\n"
        "    notification: {severity: fact, channel: c, title: t, body: b}\n"
    )
    with pytest.raises(RuleError, match="unknown segment 'startup'"):
        configured_rules(load_settings(None, env={}, overrides={"rules": {"paths": [str(rule)]}}))
    assert configured_rules(settings({"rules": {"paths": [str(rule)]}}))
