"""Vigil run on a history for calibrate and backtest: `vigil run` in file mode, in a
process of its own, writing into a folder of the caller's. Never Kafka: a replay must not
reach a live sink, whatever the settings or the environment say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from vigil.base.errors import ConfigError


def replay(
    events: Path,
    out_dir: Path,
    config: Path | None = None,
    rule_paths: Sequence[str | Path] = (),
) -> None:
    """Run Vigil on `events` into `out_dir`, with the settings file `config` (defaults
    otherwise) and rule files added to its rules."""
    command = [sys.executable, "-m", "vigil.app.cli", "run", "--quiet"]
    command += ["--input", str(events), "--output", str(out_dir)]
    if config is not None:
        command += ["--config", str(config)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_KAFKA__")}
    if rule_paths:
        env["VIGIL_RULES__PATHS"] = json.dumps([str(p) for p in rule_paths])
    ran = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if ran.returncode != 0:
        said = ran.stderr.strip().splitlines()
        raise ConfigError(
            f"running Vigil on {events} failed (exit {ran.returncode}): "
            + (said[-1] if said else "no message")
        )
