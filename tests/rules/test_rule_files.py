from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vigil.base.errors import RuleError
from vigil.config.settings import Settings, ZoneSettings, load_settings
from vigil.rules.loader import load_rules
from vigil.rules.model import zone_scores
from vigil.rules.templates import placeholders, render

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
            (("sla: 8h", "sla: 48"), 14, "a duration needs its unit"),  # not 48 ms
            (("cooldown: 3d", "cooldown: 7"), 7, "a duration needs its unit"),
            (("{score}", "{score.__class__}"), 10, "malformed placeholder"),
            (
                ("{score}", "{arr}"),
                10,
                "task.title uses arr, which a zone_change fact does not carry",
            ),
            (("    cooldown: 3d\n", ""), 2, "cooldown: Field required"),
            (  # YAML's infinity
                (
                    "      segment: enterprise\n",
                    "      segment: enterprise\n      score_below: .inf\n",
                ),
                7,
                "when.score_below: Input should be a finite number",
            ),
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

    def test_a_file_that_cannot_be_rules_is_refused_in_one_line(self, tmp_path: Path) -> None:
        big, latin1 = tmp_path / "big.yaml", tmp_path / "latin1.yaml"
        big.write_bytes(b"#" * (1 << 20) + b"\n")  # an events file named by mistake
        latin1.write_bytes("rules: []  # \u00e9t\u00e9\n".encode("latin-1"))
        with pytest.raises(RuleError) as caught:
            load_rules([big, latin1])
        assert str(caught.value).splitlines() == [
            f"{big}: cannot read: over 1,048,576 bytes, where a settings or rule file has a few KB",
            f"{latin1}: cannot read: not UTF-8 text (byte 13)",
        ]

    def test_a_pipe_is_read(self) -> None:
        """`vigil rules check <(generate-rules)`: a pipe was 'not found'."""
        import os

        read_end, write_end = os.pipe()
        os.write(write_end, GOOD.encode())
        os.close(write_end)
        try:
            assert [rule.id for rule in load_rules([f"/dev/fd/{read_end}"])] == ["ent-red"]
        finally:
            os.close(read_end)

    def test_yaml_syntax_error_has_a_line(self, tmp_path: Path) -> None:
        path = write(tmp_path, GOOD + "  - id: [unclosed\n")
        with pytest.raises(RuleError, match=rf"{path}:\d+: not valid YAML"):
            load_rules([path])

    def test_a_key_given_twice_is_refused_not_overwritten(self, tmp_path: Path) -> None:
        # YAML loaders keep the last of two equal keys: the first cooldown would be lost
        # without a word.
        path = write(
            tmp_path, GOOD.replace("    cooldown: 3d\n", "    cooldown: 3d\n    cooldown: 30d\n")
        )
        with pytest.raises(RuleError) as caught:
            load_rules([path])
        assert str(caught.value) == (
            f"{path}:8: rule 'ent-red': cooldown: key given twice (first at line 7)"
        )

    def test_a_key_given_twice_in_json_or_at_the_top_is_refused(self, tmp_path: Path) -> None:
        text = '{"rules": [], "rules": [{"id": "x"}]}'
        with pytest.raises(
            RuleError, match=r"r.json:1: rules: key given twice \(first at line 1\)"
        ):
            load_rules([write(tmp_path, text, "r.json")])

    def test_nested_aliases_are_walked_once_not_expanded(self, tmp_path: Path) -> None:
        # Ten levels of nine aliases name 9**10 leaves: walking them expanded took hours.
        # A subprocess, so that the old behaviour fails by the time bound, not a hang.
        levels = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
        levels += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 10)]
        path = write(tmp_path, "\n".join(levels) + "\n" + GOOD)
        code = "import sys; from rules.loader import load_rules; load_rules([sys.argv[1]])"
        done = subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 1
        assert f"{path}:10: l9: unknown key" in done.stderr

    @pytest.mark.parametrize(
        ("text", "found"),
        [("", "an empty file"), ("- id: x\n", "a list"), ("7\n", "a single value")],
    )
    def test_a_file_that_is_not_a_mapping_says_what_it_should_be(
        self, tmp_path: Path, text: str, found: str
    ) -> None:
        path = write(tmp_path, text)
        with pytest.raises(RuleError) as caught:
            load_rules([path])
        assert (
            str(caught.value) == f"{path}:1: expected a mapping with a 'rules' list, found {found}"
        )

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
        with pytest.raises(RuleError, match="rule path not found") as absolute:
            load_rules([tmp_path / "missing.yaml"])
        assert "working directory" not in str(absolute.value)

    def test_a_missing_relative_path_says_where_it_was_looked_for(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A settings file elsewhere (/etc/vigil) does not make its paths relative to it.
        monkeypatch.chdir(tmp_path)
        with pytest.raises(RuleError) as caught:
            load_rules(["rules/mine.yaml"])
        assert str(caught.value) == (
            "rule path not found: rules/mine.yaml (a relative path is read from the "
            f"working directory, {tmp_path})"
        )


SIGNAL_RULE = """\
rules:
  - id: spike
    when:
      fact: signal
      signal: error_spike
      severity: high
    cooldown: 1d
    notification:
      severity: fact
      channel: cs-alerts
      title: "{tenant_id}: errors above p95 ({percentile_value})"
      body: "{reasons}"
"""


class TestConditionsThatCanNeverHold:
    """A rule that can never match would load and never fire, silently: refused at load."""

    @pytest.mark.parametrize(
        ("text", "line", "needle"),
        [
            (
                SIGNAL_RULE.replace("error_spike", "error_spikes"),
                5,
                "when.signal.0: unknown signal 'error_spikes': Vigil detects arr_cut, "
                "error_spike, integration_errors, invoice_unpaid, login_drop,",
            ),
            (
                SIGNAL_RULE.replace("error_spike", "onboarding_stalled"),
                4,
                "severity high, but onboarding_stalled signal facts have medium",
            ),
            (
                GOOD.replace("zone: red", "zone: red\n      severity: [low, high]"),
                4,
                "severity low, high, but zone changes into red have critical",
            ),
            (
                GOOD.replace("zone: red", "zone: red\n      from_zone: red"),
                4,
                "zone and from_zone are both red: a zone change leaves its zone",
            ),
            (
                GOOD.replace("zone: red", "score_at_least: 40\n      score_below: 40"),
                4,
                "no score is at least 40 and below 40",
            ),
            (GOOD.replace("zone: red", "zone: none"), 5, "when.zone.0: Input should be"),
        ],
    )
    def test_refused_with_the_reason(
        self, tmp_path: Path, text: str, line: int, needle: str
    ) -> None:
        path = write(tmp_path, text)
        with pytest.raises(RuleError) as caught:
            load_rules([path])
        assert str(caught.value).startswith(f"{path}:{line}: rule "), caught.value
        assert needle in str(caught.value)

    def test_conditions_that_can_hold_still_load(self, tmp_path: Path) -> None:
        texts = [
            SIGNAL_RULE,
            SIGNAL_RULE.replace("severity: high", "severity: [low, high]"),
            GOOD.replace("zone: red", "zone: [red, orange]\n      from_zone: [red, orange]"),
            GOOD.replace("zone: red", "from_zone: none\n      severity: critical"),
            GOOD.replace("zone: red", "score_at_least: 30\n      score_below: 40"),
        ]
        for index, text in enumerate(texts):
            assert load_rules([write(tmp_path, text, f"r{index}.yaml")]), text

    def test_a_template_is_checked_against_the_signals_its_rule_matches(
        self, tmp_path: Path
    ) -> None:
        # percentile_value is an error_spike field: it would say "n/a" for every login drop.
        text = SIGNAL_RULE.replace("error_spike", "[error_spike, login_drop]")
        with pytest.raises(
            RuleError,
            match=r"r.yaml:11: rule 'spike': notification.title uses percentile_value, which "
            r"login_drop "
            r"signal facts do not carry \(every match carries: baseline, fact,",
        ):
            load_rules([write(tmp_path, text)])
        on_any_signal = text.replace("      signal: [error_spike, login_drop]\n", "")
        with pytest.raises(
            RuleError, match="uses percentile_value, which login_drop and onboarding_stalled"
        ):
            load_rules([write(tmp_path, on_any_signal)])


class TestZoneCutOffs:
    """A fact's zone is that of its rounded score, so the run's health.zones decide which
    scores a `zone` condition allows."""

    def test_a_zone_holds_the_whole_scores_its_cut_offs_put_in_it(self) -> None:
        assert zone_scores("green", ZoneSettings()) == list(range(80, 101))
        fractional = ZoneSettings(green=79.5, yellow=60.2, orange=10)
        assert zone_scores("yellow", fractional) == list(range(61, 80))  # 79.5 rounds to 80
        assert zone_scores("red", fractional) == list(range(10))

    @pytest.mark.parametrize(
        ("when", "needle"),
        [
            (
                "zone: red\n      score_at_least: 40",
                "no score in red 0-39 (health.zones) is at least 40",
            ),
            (
                "zone: [green, yellow]\n      score_below: 59.5",
                "no score in green 80-100, yellow 60-79 (health.zones) is below 59.5",
            ),
            (  # scores are whole: at least 79.2 is 80 or more
                "zone: yellow\n      score_at_least: 79.2",
                "no score in yellow 60-79 (health.zones) is at least 79.2",
            ),
            (
                "zone: orange\n      score_at_least: 20\n      score_below: 40",
                "no score in orange 40-59 (health.zones) is at least 20 and below 40",
            ),
        ],
    )
    def test_a_zone_and_a_score_the_cut_offs_rule_out_are_refused(
        self, tmp_path: Path, when: str, needle: str
    ) -> None:
        path = write(tmp_path, GOOD.replace("zone: red", when))
        with pytest.raises(RuleError) as caught:
            load_rules([path], ZoneSettings())
        message = str(caught.value)
        assert message == f"{path}:4: rule 'ent-red': when: this condition can never hold: {needle}"

    def test_the_check_uses_the_cut_offs_it_is_given(self, tmp_path: Path) -> None:
        path = write(tmp_path, GOOD.replace("zone: red", "zone: red\n      score_at_least: 45"))
        assert load_rules([path])  # no cut-offs given: nothing to check against
        assert load_rules([path], ZoneSettings(green=90, yellow=70, orange=50))  # red is 0-49
        with pytest.raises(RuleError, match="no score in red 0-39"):
            load_rules([path], ZoneSettings())

    def test_zone_and_score_that_overlap_load(self, tmp_path: Path) -> None:
        overlapping = [
            "zone: red\n      score_below: 1",  # 0 is red
            "zone: [red, green]\n      score_at_least: 100",  # 100 is green
            "zone: yellow\n      score_at_least: 79",  # 79 is yellow
            "score_at_least: 95",  # no zone: the scores alone bound it
        ]
        for index, when in enumerate(overlapping):
            path = write(tmp_path, GOOD.replace("zone: red", when), f"r{index}.yaml")
            assert load_rules([path], ZoneSettings()), when


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


class TestRulesOfTheSettings:
    """`rules.paths` adds to the bundled rules: a team that adds one file keeps the
    default plays; `replace_bundled` runs its files alone."""

    @staticmethod
    def settings(tmp_path: Path, **rules: object) -> Settings:
        (tmp_path / "ours.yaml").write_text(GOOD)
        given = {"paths": [str(tmp_path / "ours.yaml")], **rules}
        return load_settings(None, env={}, overrides={"rules": given})

    def test_a_file_of_ones_own_adds_to_the_bundled_rules(self, tmp_path: Path) -> None:
        from vigil.rules.loader import configured_rules

        ids = {rule.id for rule in configured_rules(self.settings(tmp_path))}
        bundled = {rule.id for rule in load_rules()}
        assert "onboarding-stalled" in bundled and ids == bundled | {"ent-red"}

    def test_replace_bundled_loads_ones_own_alone(self, tmp_path: Path) -> None:
        from vigil.rules.loader import configured_rules

        alone = self.settings(tmp_path, replace_bundled=True)
        assert [rule.id for rule in configured_rules(alone)] == ["ent-red"]

    def test_a_rule_cannot_take_a_bundled_rules_id(self, tmp_path: Path) -> None:
        from vigil.rules.loader import configured_rules

        settings = self.settings(tmp_path)
        (tmp_path / "ours.yaml").write_text(GOOD.replace("ent-red", "onboarding-stalled"))
        with pytest.raises(RuleError, match="a bundled rule: give yours another id"):
            configured_rules(settings)
