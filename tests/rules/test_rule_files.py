from __future__ import annotations

from pathlib import Path

import pytest

from rules.loader import load_rules
from rules.templates import placeholders, render
from vigil.errors import RuleError

GOOD = """\
rules:
  - id: ent-red
    when:
      fact: zone_change
      zone: red
      segment: enterprise
    cooldown: 3d
    task:
      playbook: exec
      title: "{tenant_id} red at {score}"
      description: "{reasons}"
      owner_role: head_of_cs
      priority: critical
      sla: 8h
"""


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


class TestLoading:
    def test_the_bundled_rules_load_and_cover_the_ladder(self) -> None:
        rules = {rule.id: rule for rule in load_rules()}
        assert {
            "login-drop",
            "onboarding-stalled",
            "error-spike",
            "entered-orange",
            "entered-red",
        } <= set(rules)
        ladder = {
            rid: (r.task.owner_role, r.task.sla // 3_600_000) for rid, r in rules.items() if r.task
        }
        assert ladder["login-drop"] == ("csm", 48)
        assert ladder["entered-orange"] == ("csm_manager", 24)
        assert ladder["entered-red"] == ("head_of_cs", 8)

    def test_a_valid_file(self, tmp_path: Path) -> None:
        [rule] = load_rules([write(tmp_path, GOOD)])
        assert rule.when.segment == ("enterprise",) and rule.cooldown == 3 * 86_400_000

    def test_json_rule_files_work_too(self, tmp_path: Path) -> None:
        import json

        import yaml

        path = write(tmp_path, json.dumps(yaml.safe_load(GOOD)), "r.json")
        assert load_rules([path])[0].id == "ent-red"


class TestErrors:
    @pytest.mark.parametrize(
        ("change", "line", "needle"),
        [
            (("zone: red", "zone: purple"), 5, "when.zone"),
            (("priority: critical", "priority: urgent"), 13, "task.priority"),
            (("sla: 8h", "sla: soon"), 14, "not a duration"),
            (("{score}", "{score.__class__}"), 10, "malformed placeholder"),
            (
                ("{score}", "{arr}"),
                10,
                "task.title uses arr, which a zone_change fact does not carry",
            ),
            (("    cooldown: 3d\n", ""), 2, "cooldown: Field required"),
            (
                ("      segment: enterprise\n", "      segment: enterprise\n      colour: blue\n"),
                7,
                "when.colour: unknown key",
            ),
        ],
    )
    def test_errors_give_file_line_and_rule_id(
        self, tmp_path: Path, change: tuple[str, str], line: int, needle: str
    ) -> None:
        path = write(tmp_path, GOOD.replace(*change))
        with pytest.raises(RuleError) as caught:
            load_rules([path])
        message = str(caught.value)
        assert message.startswith(f"{path}:{line}: rule 'ent-red':"), message
        assert needle in message

    def test_yaml_syntax_error_has_a_line(self, tmp_path: Path) -> None:
        path = write(tmp_path, GOOD + "  - id: [unclosed\n")
        with pytest.raises(RuleError, match=rf"{path}:\d+: not valid YAML"):
            load_rules([path])

    def test_duplicate_ids_across_files(self, tmp_path: Path) -> None:
        write(tmp_path, GOOD, "a.yaml")
        write(tmp_path, GOOD, "b.yaml")
        with pytest.raises(
            RuleError, match=r"b.yaml:2: rule 'ent-red': id already used at .*a.yaml:2"
        ):
            load_rules([tmp_path])

    def test_a_rule_without_actions_or_a_missing_path(self, tmp_path: Path) -> None:
        no_action = GOOD.split("    task:")[0]
        with pytest.raises(RuleError, match="needs a task, a notification or both"):
            load_rules([write(tmp_path, no_action)])
        with pytest.raises(RuleError, match="rule path not found"):
            load_rules([tmp_path / "missing.yaml"])


class TestTemplates:
    def test_substitutes_fields_only(self) -> None:
        text = "{tenant_id} fell {drop_pct}% {{literal}} {absent}"
        assert (
            render(text, {"tenant_id": "acme", "drop_pct": 62.0}) == "acme fell 62% {literal} n/a"
        )

    @pytest.mark.parametrize("text", ["{a.b}", "{0}", "{x!r}", "{x:>10}", "{open", "close}"])
    def test_anything_but_a_plain_name_is_refused(self, text: str) -> None:
        with pytest.raises(ValueError, match="malformed placeholder"):
            placeholders(text)

    def test_rendering_never_evaluates(self) -> None:
        assert render("{__class__}", {"x": 1}) == "n/a"
