"""Load rule files (YAML or JSON) and report every problem with file, line and rule id."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import ValidationError

from vigil.base.errors import RuleError
from vigil.config.settings import Settings, ZoneSettings, read_config_file
from vigil.intake.events import DEFAULT_CATALOGUE
from vigil.rules.facts import SIGNAL, fact_fields
from vigil.rules.model import Rule, RuleFile
from vigil.rules.signals import SIGNAL_KINDS, SignalKind, signal_kinds

DEFAULT_RULES_DIR = Path(__file__).resolve().parent / "default"
RULE_SUFFIXES = (".yaml", ".yml", ".json")


def rule_files(paths: Sequence[str | Path]) -> list[Path]:
    """The rule files named by `paths` (files, or folders of *.yaml/*.yml/*.json);
    no paths means the bundled defaults."""
    found: list[Path] = []
    for raw in paths or [DEFAULT_RULES_DIR]:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix in RULE_SUFFIXES)
        elif path.exists():  # a file, or a pipe such as <(generate-rules)
            found.append(path)
        else:
            msg = f"rule path not found: {path}"
            if not path.is_absolute():  # a settings file's folder is not where it is looked for
                msg += f" (a relative path is read from the working directory, {Path.cwd()})"
            raise RuleError(msg)
    if not found:
        msg = f"no rule files (*.yaml, *.yml, *.json) in {', '.join(map(str, paths))}"
        raise RuleError(msg)
    return found


def load_rules(
    paths: Sequence[str | Path] = (),
    zones: ZoneSettings | None = None,
    signals: Mapping[str, SignalKind] = SIGNAL_KINDS,
    segments: Sequence[str] = DEFAULT_CATALOGUE.segments,
) -> list[Rule]:
    """All rules of all files, or RuleError listing every problem found. With `zones`
    (the run's health.zones), a condition on zone and score they rule out is one.
    `signals` and `segments`: those rules may name (of the settings: configured_rules)."""
    rules: list[Rule] = []
    problems: list[str] = []
    first_seen: dict[str, str] = {}
    for path in rule_files(paths):
        loaded, file_problems = _load_file(path, zones, signals, segments)
        problems += file_problems
        for rule, where in loaded:
            if rule.id in first_seen:
                said = f"{where}: rule '{rule.id}': id already used at {first_seen[rule.id]}"
                if first_seen[rule.id].startswith(str(DEFAULT_RULES_DIR)):
                    said += (
                        " (a bundled rule: give yours another id, or set "
                        "rules.replace_bundled = true and keep copies of the bundled rules "
                        "you want)"
                    )
                problems.append(said)
                continue
            first_seen[rule.id] = where
            rules.append(rule)
    if problems:
        raise RuleError("\n".join(problems))
    return rules


def configured_rules(settings: Settings, paths: Sequence[str | Path] | None = None) -> list[Rule]:
    """The rules a run with these settings loads (the bundled ones and `paths`, else
    `rules.paths`): checked against its zones, the signals it declares and its
    catalogue's segments."""
    kinds = signal_kinds(settings.signals.declared)
    given = configured_paths(settings, paths)
    return load_rules(given, settings.health.zones, kinds, settings.catalogue.full.segments)


def configured_paths(settings: Settings, paths: Sequence[str | Path] | None = None) -> list[Path]:
    """The rule paths a run loads: the bundled rules, unless rules.replace_bundled, then
    `paths` (else rules.paths)."""
    given = [Path(p) for p in (settings.rules.paths if paths is None else paths)]
    if settings.rules.replace_bundled and given:
        return given
    return [DEFAULT_RULES_DIR, *given]


def _load_file(
    path: Path,
    zones: ZoneSettings | None,
    signals: Mapping[str, SignalKind],
    segments: Sequence[str],
) -> tuple[list[tuple[Rule, str]], list[str]]:
    try:
        text = read_config_file(path).decode("utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except OSError as exc:
        return [], [f"{path}: cannot read: {exc}"]
    except UnicodeDecodeError as exc:
        return [], [f"{path}: cannot read: not UTF-8 text (byte {exc.start})"]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        return [], [f"{path}{line}: not valid YAML: {getattr(exc, 'problem', exc)}"]
    if twice := _keys_given_twice(path, root, data):
        return [], twice
    try:
        parsed = RuleFile.model_validate(data, context={"signals": signals, "segments": segments})
    except ValidationError as exc:
        return [], [_describe(path, root, data, error) for error in exc.errors()]
    rules_node = _child(root, "rules")
    placed, problems = [], []
    for index, rule in enumerate(parsed.rules):
        rule_node = _child(rules_node, index)
        placed.append((rule, f"{path}:{_line(rule_node)}"))
        problems += _template_problems(path, rule, rule_node, signals)
        problems += _zone_problems(path, rule, rule_node, zones)
    return placed, problems


def _zone_problems(
    path: Path, rule: Rule, rule_node: yaml.Node | None, zones: ZoneSettings | None
) -> list[str]:
    never = rule.when.never_holds_with(zones) if zones is not None else None
    if never is None:
        return []
    line = _line(_child(rule_node, "when"))
    return [f"{path}:{line}: rule '{rule.id}': when: this condition can never hold: {never}"]


def _template_problems(
    path: Path, rule: Rule, rule_node: yaml.Node | None, signals: Mapping[str, SignalKind]
) -> list[str]:
    when = rule.when
    known = ", ".join(sorted(fact_fields(when.fact, when.signal, signals)))
    problems = []
    for (action, name), unknown in rule.unknown_template_fields(signals):
        line = _line(_child(_child(rule_node, action), name))
        problems.append(
            f"{path}:{line}: rule '{rule.id}': {action}.{name} uses {', '.join(unknown)}, which "
            f"{_lacking(when.fact, when.signal, unknown, signals)} not carry "
            f"(every match carries: {known})"
        )
    return problems


def _lacking(
    kind: str, named: Sequence[str] | None, unknown: list[str], signals: Mapping[str, SignalKind]
) -> str:
    """Which facts a rule matches lack `unknown` fields, in words: 'login_drop signal
    facts do' (a signal's evidence is its own), or 'a zone_change fact does'."""
    if kind != SIGNAL:
        return f"a {kind} fact does"
    lacking = [s for s in named or signals if set(unknown) - fact_fields(kind, [s], signals)]
    return f"{' and '.join(lacking)} signal facts do"


# What a rule file holds instead of a mapping, in words.
_FOUND_INSTEAD = {type(None): "an empty file", list: "a list", str: "a string"}


def _keys_given_twice(path: Path, root: yaml.Node | None, data: Any) -> list[str]:
    """A problem for each mapping key given twice: YAML and JSON loaders keep the last,
    so an edit that repeats `cooldown` would drop the first without a word."""
    problems: list[tuple[int, str]] = []
    pending: list[tuple[tuple[Any, ...], yaml.Node | None]] = [((), root)]
    # An alias is its anchor's node again: walk each node once, or a few lines of
    # aliases nested ten deep (a "billion laughs" file) would take hours.
    seen: set[int] = set()
    while pending:
        loc, node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            pending += [((*loc, index), item) for index, item in enumerate(node.value)]
        if not isinstance(node, yaml.MappingNode):
            continue
        first_line: dict[str, int] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue
            line = _line(key)
            if key.value in first_line:
                message = f"key given twice (first at line {first_line[key.value]})"
                problems.append((line, _located(path, line, (*loc, key.value), data, message)))
            else:
                first_line[key.value] = line
                pending.append(((*loc, key.value), value))
    return [problem for _, problem in sorted(problems)]


def _describe(path: Path, root: yaml.Node | None, data: Any, error: Any) -> str:
    loc: tuple[Any, ...] = error["loc"]
    node = root
    for part in loc:  # walk as deep as the YAML goes; the deepest node found has the line
        child = _child(node, part)
        if child is None:
            break
        node = child
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    if not loc:  # the file as a whole is not a mapping: say what it should be
        found = _FOUND_INSTEAD.get(type(data), "a single value")
        message = f"expected a mapping with a 'rules' list, found {found}"
    return _located(path, _line(node), loc, data, message)


def _located(path: Path, line: int, loc: tuple[Any, ...], data: Any, message: str) -> str:
    """'file:line: rule 'id': key.path: message', the rule id when `loc` is inside one."""
    rule_id, key_parts = "", loc
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        key_parts = loc[2:]
        rules = data.get("rules") if isinstance(data, dict) else None
        if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
            rule_id = f" rule '{rules[loc[1]].get('id', '?')}':"
    key = "".join(f" {'.'.join(str(part) for part in key_parts)}:" if key_parts else "")
    return f"{path}:{line}:{rule_id}{key} {message}"


def _child(node: yaml.Node | None, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == part:
                return cast(yaml.Node, value)
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return cast(yaml.Node, node.value[part])
    return None


def _line(node: yaml.Node | None) -> int:
    return 1 if node is None else node.start_mark.line + 1


def describe_rules(rules: Iterable[Rule]) -> list[str]:
    """One line a rule, for `vigil rules check`."""
    lines = []
    for rule in rules:
        acts = [name for name in ("task", "notification") if getattr(rule, name) is not None]
        lines.append(f"{rule.id}: when {rule.when.fact} -> {' + '.join(acts)}")
    return lines
