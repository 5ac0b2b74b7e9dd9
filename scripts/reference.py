"""The reference parts of the docs that are made from the code: the command line (from
the parser), the settings (from the settings model), the event catalogue (from the
catalogue the decoder checks against), and the JSON Schemas of the input and the
outputs (docs/reference/schemas/).

    python scripts/reference.py           # write them
    python scripts/reference.py --check   # exit 1 naming what is out of date (make docs)

In a page, a generated part sits between `<!-- generated: NAME -->` and
`<!-- end of generated: NAME -->`; the text around it is written by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vigil.app.cli import build_parser, command_parsers  # noqa: E402
from vigil.base.records import RECORDS, record_schema  # noqa: E402
from vigil.base.timeutil import format_duration  # noqa: E402
from vigil.config import settings as model  # noqa: E402
from vigil.intake.events import DEFAULT_CATALOGUE, KNOWN_TYPES  # noqa: E402
from vigil.intake.schema import event_schema  # noqa: E402
from vigil.rules.loader import load_rules  # noqa: E402

REFERENCE = ROOT / "docs" / "reference"
SCHEMAS = REFERENCE / "schemas"


# -- the command line -------------------------------------------------------------------


def cli_reference() -> str:
    helps = _command_helps(build_parser())
    parts = []
    for command, parser in command_parsers().items():
        parts.append(f"### `vigil {command}`\n")
        if helps.get(command):
            parts.append(f"{_sentence(helps[command])}\n")
        usage = " ".join(parser.format_usage().split())
        parts.append(f"```\n{usage.removeprefix('usage: ')}\n```\n")
        rows = [row for action in parser._actions if (row := _option_row(action))]
        if rows:
            parts.append("| argument | what | default |\n|---|---|---|")
            parts.append("\n".join(rows) + "\n")
    return "\n".join(parts)


def _command_helps(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, str]:
    helps: dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                name = f"{prefix}{choice.dest}"
                helps[name] = choice.help or ""
                helps.update(_command_helps(action.choices[choice.dest], f"{name} "))
    return helps


def _option_row(action: argparse.Action) -> str | None:
    if isinstance(action, argparse._HelpAction | argparse._VersionAction):
        return None
    metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    if action.option_strings:
        name = ", ".join(action.option_strings)
        if action.nargs != 0:
            name += f" {metavar}"
    else:
        name = metavar
        if action.nargs in ("*", "?"):
            name = f"[{name}]"
    default = action.default
    unset = default is None or default is False or default == argparse.SUPPRESS
    shown = "" if unset else f"`{default}`"
    if action.required:
        shown = "required"
    return f"| `{name}` | {_cell(action.help or '')} | {shown} |"


# -- the settings -----------------------------------------------------------------------


def settings_reference() -> str:
    defaults = model.Settings().model_dump(mode="json")
    parts: list[str] = []
    for section, info in model.Settings.model_fields.items():
        parts.extend(_section(section, info, defaults.get(section)))
    return "\n".join(parts)


# What a declaration table of each section is about, and the model of one declaration.
_DECLARATIONS: dict[str, tuple[str, type[BaseModel]]] = {
    "measures": ("measures.NAME", model.MeasureSettings),
    "signals": ("signals.NAME", model.DeclaredSignal),
    "health.components": ("health.components.NAME", model.DeclaredComponent),
}


def _section(name: str, info: FieldInfo, default: Any) -> Iterator[str]:
    if name in _DECLARATIONS:
        yield from _declaration(name, default)
        return
    cls = _model_of(info.annotation)
    if cls is None:
        return
    yield f"### `[{name}]`\n"
    if cls.__doc__ and cls.__doc__ is not BaseModel.__doc__:
        yield f"{_prose(cls.__doc__)}\n"
    rows, nested = [], []
    for key, field in cls.model_fields.items():
        if _model_of(field.annotation) is not None:
            nested.append((key, field))
            continue
        value = default.get(key) if isinstance(default, dict) else None
        rows.append(_setting_row(key, field, _shown(value)))
    if rows:
        yield "| key | type | default | what |\n|---|---|---|---|"
        yield "\n".join(rows) + "\n"
    if name == "catalogue":
        yield from _table("catalogue.types.TYPE.ATTR", model.AttrSettings)
    for key, field in nested:
        yield from _section(f"{name}.{key}", field, (default or {}).get(key))


def _declaration(name: str, defaults: Any) -> Iterator[str]:
    title, cls = _DECLARATIONS[name]
    named = ", ".join(f"`{n}`" for n in defaults or {})
    yield from _table(title, cls)
    if named:
        yield (
            f"The defaults declare {named}: their values are in `config/vigil.toml`. A "
            f"table of one of those names changes it; another name adds one.\n"
        )
    if cls is model.DeclaredComponent:
        yield from _table("health.components.NAME.mean_of[]", model.MeanPart)


def _table(title: str, cls: type[BaseModel]) -> Iterator[str]:
    yield f"### `[{title}]`\n"
    if cls.__doc__:
        yield f"{_prose(cls.__doc__)}\n"
    yield "| key | type | default | what |\n|---|---|---|---|"
    rows = []
    for key, field in cls.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "required" if field.is_required() else _shown(_plain(default, field))
        rows.append(_setting_row(field.alias or key, field, shown))
    yield "\n".join(rows) + "\n"


def _setting_row(key: str, field: FieldInfo, default: str, kind: str | None = None) -> str:
    kind = kind or _type(field.annotation, field.metadata)
    return f"| `{key}` | {kind} | {default} | {_cell(field.description or '')} |"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    return (
        annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    )


def _plain(value: Any, field: FieldInfo) -> Any:
    if isinstance(value, int) and _is(field.annotation, field.metadata, model._duration):
        return format_duration(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def _shown(value: Any) -> str:
    if value is None or value in ((), [], {}):
        return ""
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _is(annotation: Any, metadata: list[Any], validator: Callable[..., Any]) -> bool:
    """Whether a type (or the type inside an optional) is validated by `validator`."""
    found = [m for m in metadata if getattr(m, "func", None) is validator]
    if found:
        return True
    return any(
        _is(arg, list(getattr(arg, "__metadata__", ())), validator) for arg in get_args(annotation)
    )


def _type(annotation: Any, metadata: list[Any]) -> str:
    if _is(annotation, metadata, model._duration):
        word = 'duration or "off"' if _is(annotation, metadata, model._off) else "duration"
        return word + (", optional" if type(None) in get_args(annotation) else "")
    if _is(annotation, metadata, model._instant):
        return "time (RFC 3339)"
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *extra = get_args(annotation)
        return _type(inner, [*metadata, *extra])
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        said = " or ".join(_type(a, metadata) for a in options)
        return said + (", optional" if len(options) < len(get_args(annotation)) else "")
    if origin is Literal:
        return "one of " + ", ".join(f"`{v}`" for v in get_args(annotation))
    if origin in (tuple, list):
        return f"list of {_type(get_args(annotation)[0], [])}"
    if origin is dict:
        return "table"
    names = {int: "integer", float: "number", bool: "true or false", str: "text"}
    said = names.get(annotation, getattr(annotation, "__name__", str(annotation)))
    return said + _bounds(metadata)


def _bounds(metadata: list[Any]) -> str:
    said = []
    for m in metadata:
        for kind, attr, sign in (
            (Ge, "ge", "≥"),
            (Gt, "gt", ">"),
            (Le, "le", "≤"),
            (Lt, "lt", "<"),
            (MinLen, "min_length", "at least"),
            (MaxLen, "max_length", "at most"),
        ):
            if isinstance(m, kind):
                said.append(f"{sign} {getattr(m, attr)}")
    return f" ({', '.join(said)})" if said else ""


# -- the catalogue ----------------------------------------------------------------------


def catalogue_reference() -> str:
    rows = []
    for kind in sorted(KNOWN_TYPES):
        spec = DEFAULT_CATALOGUE.attrs.get(kind, {})
        attrs = "; ".join(
            f"`{name}` ({check.expected}{'' if required else ', optional'})"
            for name, (required, check) in spec.items()
        )
        rows.append(f"| `{kind}` | {attrs or '—'} |")
    return "| type | attrs |\n|---|---|\n" + "\n".join(rows) + "\n"


# -- the lifecycle pack -----------------------------------------------------------------


def pack_reference() -> str:
    """The plays of the bundled rules on the default signals, and the score drop: one
    row per rule, its condition in words from the settings that declare it."""
    settings = model.Settings()
    rows = ["| signal | condition | play | owner | due | tier |", "|---|---|---|---|---|---|"]
    for rule in load_rules():
        when = rule.when
        if when.fact == "signal" and when.signal is not None:
            names = list(when.signal)
            condition = " or ".join(_condition(settings, name) for name in names)
        elif when.fact == "score_drop":
            names = ["score_drop"]
            condition = (
                f"the score {settings.health.drop_pct:g}% or more below its highest in "
                f"{format_duration(settings.health.drop_window)} (which holds its value "
                f"{format_duration(settings.health.drop_window)} ago)"
            )
        else:
            continue
        if rule.task is not None:
            play = f"{rule.task.playbook}: {_prose(rule.description)}"
            owner, due = f"`{rule.task.owner_role}`", format_duration(rule.task.sla)
        else:
            assert rule.notification is not None
            play = f"an automated nudge on `{rule.notification.channel}`"
            owner, due = "the product", "at once"
        tier = ", ".join(when.segment) if when.segment else "all"
        signal = ", ".join(f"`{name}`" for name in names)
        rows.append(f"| {signal} | {_cell(condition)} | {_cell(play)} | {owner} | {due} | {tier} |")
    return "\n".join(rows) + "\n"


def _condition(settings: model.Settings, name: str) -> str:
    """A declared signal's condition in words: its measure, compared with what, bounded how."""
    signal = settings.signals.declared[name]
    measure = settings.measures[signal.measure]
    said = f"`{signal.measure}` ({_measure(measure)})"
    if signal.per is not None:
        said += f" per `{signal.per}` ({_measure(settings.measures[signal.per])})"
    elif signal.versus == "previous_window":
        said += " over the window before"
        if signal.min_previous:
            said += f" (which held at least {signal.min_previous:g})"
    elif signal.versus == "previous_value":
        said += ", its change from the value before,"
    elif signal.versus == "history":
        said += (
            f" above the p{signal.percentile:g} of the tenant's own past windows over "
            f"{format_duration(signal.history)} (once it has {signal.min_history})"
        )
    if signal.stalled_after is not None:
        said += f" open, without progress for more than {format_duration(signal.stalled_after)}"
    if signal.equals is not None:
        said += f" is `{signal.equals}`"
    bounds = []
    if signal.above is not None:
        bounds.append(f"above {signal.above:g}")
    if signal.below is not None:
        bounds.append(f"below {signal.below:g}")
    if bounds:
        said += (", and " if signal.versus == "history" else " ") + " and ".join(bounds)
    if signal.min_sigma:
        said += f", a change of at least {signal.min_sigma:g} standard errors"
    if signal.running > 1:
        said += f", {signal.running} windows running"
    for other, least in signal.requires.items():
        said += f", with `{other}` ({_measure(settings.measures[other])}) at least {least:g}"
    if signal.min_age:
        said += f", {format_duration(signal.min_age)} or more after the tenant's first event"
    return said


def _measure(measure: model.MeasureSettings) -> str:
    what = {
        "count": "count of",
        "sum": f"sum of {measure.field} of",
        "days": "days with",
        "distinct": f"distinct {measure.field} of",
        "top_share": f"the top {measure.field}'s share of",
        "latest": f"latest {measure.field} of",
        "oldest_open": "days the oldest open has been open, of",
        "days_until": f"days until the {measure.field} of",
        "days_since": "days since the latest",
        "states": f"{measure.field} held by {measure.key} of",
        "open_items": "open items of",
        "process": "steps done of",
    }[measure.kind]
    said = f"{what} {', '.join(measure.events)}"
    if measure.where:
        said += " where " + ", ".join(f"{k} = {v}" for k, v in measure.where.items())
    if measure.held_while:
        said += f" while {' or '.join(measure.held_while)}"
    if measure.share_of:
        said += f", as a share of {', '.join(measure.share_of)}"
    if measure.of_fleet:
        said += f", as a share of those the fleet used in {format_duration(measure.of_fleet)}"
    if measure.window:
        kind = "calendar windows of" if measure.calendar else "the last"
        said += f", over {kind} {format_duration(measure.window)}"
    return said


# -- writing ----------------------------------------------------------------------------

GENERATED: dict[str, tuple[str, Callable[[], str]]] = {
    "cli": ("cli.md", cli_reference),
    "settings": ("settings.md", settings_reference),
    "catalogue": ("events.md", catalogue_reference),
    "pack": ("pack.md", pack_reference),
}


def outputs() -> dict[Path, str]:
    """Every generated file's path and what it should hold."""
    made: dict[Path, str] = {}
    for name, (page, make) in GENERATED.items():
        path = REFERENCE / page
        text = made.get(path) or path.read_text()
        begin, end = f"<!-- generated: {name} -->\n", f"<!-- end of generated: {name} -->"
        if begin not in text or end not in text:
            sys.exit(f"{path}: no {begin.strip()} ... {end} in it")
        head, rest = text.split(begin, 1)
        made[path] = f"{head}{begin}\n{make()}\n{end}{rest.split(end, 1)[1]}"
    schemas = {"event": event_schema(), **{stream: record_schema(stream) for stream in RECORDS}}
    for name, schema in schemas.items():
        made[SCHEMAS / f"{name}.schema.json"] = json.dumps(schema, indent=2) + "\n"
    return made


def _cell(text: str) -> str:
    return _prose(text).replace("|", "\\|")


def _prose(text: str) -> str:
    return " ".join(text.split())


def _sentence(text: str) -> str:
    text = _prose(text)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    args = parser.parse_args()
    stale = []
    for path, text in outputs().items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path.relative_to(ROOT))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check and stale:
        names = ", ".join(map(str, stale))
        print(f"out of date: {names} (run python scripts/reference.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
