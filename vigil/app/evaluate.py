"""`vigil calibrate` and `vigil backtest`: a run's scores and alerts checked against
outcomes, and candidate rules and settings replayed over a history."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from vigil.base.errors import ConfigError
from vigil.base.timeutil import format_duration, parse_duration
from vigil.config.settings import load_settings
from vigil.evaluate import backtest, report
from vigil.evaluate.figures import calibrate
from vigil.evaluate.fit import fit, settings_file
from vigil.evaluate.history import cases
from vigil.evaluate.replay import replay
from vigil.intake.outcomes import Outcome, outcome_events, read_outcomes


def _duration(option: str, text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from None


def _outcomes(args: argparse.Namespace) -> list[Outcome]:
    found: list[Outcome] = []
    if args.outcomes is not None:
        found += read_outcomes(args.outcomes)
    if args.input is not None:
        found += outcome_events(args.input)
    if not found:
        raise ConfigError(
            "no outcomes: give --outcomes FILE (CSV: tenant_id,outcome,date), or an --input "
            "with account.churned and account.renewed events"
        )
    return sorted(found, key=lambda o: (o.at, o.tenant_id))


def calibrate_command(args: argparse.Namespace) -> int:
    if (args.outputs is None) == (args.input is None):
        raise ConfigError("give one of --outputs DIR (a run's outputs) or --input FILE (events)")
    horizon = _duration("--horizon", args.horizon)
    lookback = _duration("--lookback", args.lookback)
    settings = load_settings(args.config)
    outcomes = _outcomes(args)
    with tempfile.TemporaryDirectory(prefix="vigil-calibrate-") as scratch:
        out_dir = args.outputs
        if out_dir is None:
            out_dir = Path(scratch)
            replay(args.input, out_dir, args.config, settings.rules.paths)
        found = cases(out_dir, outcomes, horizon, lookback)
    if not any(case.health for case in found):
        raise ConfigError(
            f"none of the {len(found)} accounts with an outcome has a health record by its "
            "cutoff: are the outcomes of these tenants, and after their events?"
        )
    result = calibrate(found, settings)
    fitted = None
    if args.fit is not None:
        try:
            fitted = fit(found, settings)
        except ValueError as exc:
            raise ConfigError(f"--fit: {exc}") from None
        said = (
            f"Outcomes: {len(outcomes)}; horizon {format_duration(horizon)}; "
            f"from {args.input or args.outputs}."
        )
        args.fit.write_text(settings_file(fitted, said), encoding="utf-8")
    said_horizon = format_duration(horizon) if horizon else "0d"
    said_lookback = format_duration(lookback)
    sys.stdout.write(report.text(result, said_horizon, said_lookback, fitted))
    if args.report is not None:
        page = report.page(result, said_horizon, said_lookback, fitted)
        args.report.write_text(page, encoding="utf-8")
    return 0


def backtest_command(args: argparse.Namespace) -> int:
    current_settings = load_settings(args.config)
    candidate_config = args.candidate_config or args.config
    candidate_settings = load_settings(candidate_config)
    candidate_rules = [*candidate_settings.rules.paths, *map(str, args.candidate_rules)]
    with tempfile.TemporaryDirectory(prefix="vigil-backtest-") as scratch:
        now_dir, then_dir = Path(scratch, "current"), Path(scratch, "candidate")
        replay(args.input, now_dir, args.config, current_settings.rules.paths)
        replay(args.input, then_dir, candidate_config, candidate_rules)
        current, candidate = backtest.actions(now_dir), backtest.actions(then_dir)
        diffs = backtest.differences(current, candidate, now_dir, then_dir)
    sys.stdout.write(backtest.text(current, candidate, diffs))
    return 0
