"""`vigil` end to end: simulate a fleet, run it, check every scenario's outcome."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import orjson
import pytest
from support import (
    CONTRACT,
    DAY,
    HOUR,
    ROOT,
    T0,
    event,
    quiet_env,
    run_vigil,
    scenario_problems,
    sessions,
    vigil_command,
)

from vigil.app.cli import main
from vigil.base.locks import is_lock
from vigil.ops.summary import read_jsonl


@pytest.fixture(scope="module")
def fleet_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, dict[str, str]], str]:
    work = tmp_path_factory.mktemp("fleet")
    events, manifest, out = work / "events.jsonl", work / "manifest.json", work / "out"
    made = run_vigil(
        "simulate",
        "--tenants",
        "120",
        "--days",
        "63",
        "--seed",
        "5",
        "--output",
        str(events),
        "--manifest",
        str(manifest),
    )
    assert made.returncode == 0, made.stderr
    ran = run_vigil("run", "--input", str(events), "--output", str(out))
    assert ran.returncode == 0, ran.stderr
    return out, orjson.loads(manifest.read_bytes()), ran.stdout


@pytest.mark.slow
class TestFleet:
    def test_every_injected_scenario_yields_its_signal_and_task(
        self, fleet_run: tuple[Path, dict[str, dict[str, str]], str]
    ) -> None:
        out, manifest, _ = fleet_run
        signals = list(read_jsonl(out / "signals.jsonl"))
        tasks = list(read_jsonl(out / "tasks.jsonl"))
        notifications = list(read_jsonl(out / "notifications.jsonl"))
        assert scenario_problems(manifest, signals, tasks, notifications) == []

    def test_outputs_follow_the_contract_and_ids_are_unique(
        self, fleet_run: tuple[Path, dict[str, dict[str, str]], str]
    ) -> None:
        out, _, _ = fleet_run
        for stream, fields in CONTRACT.items():
            records = list(read_jsonl(out / f"{stream}.jsonl"))
            assert records, stream
            assert all(fields <= set(r) for r in records), stream
        for stream, key in (
            ("signals", ("signal_id",)),
            ("tasks", ("task_id", "version")),  # a record per change of a task
            ("notifications", ("notification_id",)),
        ):
            ids = [tuple(r[k] for k in key) for r in read_jsonl(out / f"{stream}.jsonl")]
            assert len(ids) == len(set(ids)), stream
        assert all("{" not in r["title"] for r in read_jsonl(out / "tasks.jsonl"))

    def test_the_summary_reports_what_happened(
        self, fleet_run: tuple[Path, dict[str, dict[str, str]], str]
    ) -> None:
        _, _, stdout = fleet_run
        for needle in (
            "events processed",
            "dead letters",
            "late",
            "signals",
            "login_drop",
            "tenants by zone",
            "most at risk:",
        ):
            assert needle in stdout


class TestErrors:
    @pytest.mark.parametrize(
        ("args", "needle"),
        [
            (
                ["run", "--input", "missing.jsonl", "--output", "out"],
                "--input: no such file: missing.jsonl",
            ),
            (
                ["run", "--input", ".", "--output", "out"],
                "--input: . is a folder; give a JSON Lines file",
            ),
            (["rules", "check", "missing.yaml"], "rule path not found: missing.yaml"),
            (
                ["explain", "acme", "--output", "out", "--config", "vigil.toml"],
                "--config names the output topics: it goes with --kafka",
            ),
            (
                ["run", "--input", "e.jsonl", "--output", "o", "--kafka", "127.0.0.1:9"],
                "--input and --output are for file mode, --kafka for Kafka mode: not both",
            ),
            # Flags that did nothing there, without a word.
            (
                ["run", "--input", "e.jsonl", "--output", "o", "--until-end"],
                "--until-end is for Kafka mode: a file run always stops at its end",
            ),
            (
                ["run", "--input", "e.jsonl", "--output", "o", "--snapshot-interval", "5s"],
                "--snapshot-interval needs a recovery store (--recovery-dir or recovery.dir)",
            ),
            (["config", "check", "missing.toml"], "settings file not found: missing.toml"),
            (
                ["run", "--input", "-", "--output", "out", "--addresses", "garbage"],
                "--addresses: 'garbage' is not host:port",
            ),
            (
                [
                    "run",
                    "--input",
                    "-",
                    "--output",
                    "out",
                    "--addresses",
                    "h:1,h:2",
                    "--process-id",
                    "2",
                ],
                "--process-id 2 is past the end of --addresses (2 listed)",
            ),
            (
                ["run", "--input", "-", "--output", "out", "--process-id", "1"],
                "--process-id needs --addresses",
            ),
            (
                ["simulate", "--start", "2999-12-29T00:00:00Z", "--days", "4"],
                "--start and --days: the 4 days from the start do not fit in years 2000-2999",
            ),
            (
                ["simulate", "--days", "1", "--output", "s.jsonl", "--manifest", "no/m.json"],
                "--manifest: cannot write no/m.json: No such file or directory",
            ),
            # Paths Vigil must not write, or cannot reach (the links are made below).
            (["run", "--input", "-", "--output", "/"], "--output / is a system folder (/)"),
            (["run", "--input", "-", "--output", "/etc/v"], "--output /etc/v is a system"),
            (["run", "--input", "-", "--output", "/usr/../tmp"], "system folder (/tmp)"),
            (["run", "--input", "loop", "--output", "o"], "--input: loop is a loop of symbolic"),
            (["run", "--input", "-", "--output", "loop"], "--output: loop is a loop of"),
            (["run", "--input", "-", "--output", "dangling"], "--output: no such file"),
            # The file is opened before Kafka is tried: no 30 s wait for a broker.
            (
                ["produce", "--input", "missing.jsonl", "--kafka", "127.0.0.1:9"],
                "--input: cannot read missing.jsonl: No such file or directory",
            ),
        ],
    )
    def test_one_line_error_and_exit_2(
        self,
        args: list[str],
        needle: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.chdir(tmp_path)
        Path("loop").symlink_to("loop2")
        Path("loop2").symlink_to("loop")
        Path("dangling").symlink_to("nowhere/out")
        assert main(args) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1 and "Traceback" not in err, err

    @pytest.mark.parametrize(
        ("stream", "make", "kind"),
        [
            ("health", Path.mkdir, "a folder"),  # a traceback
            ("tasks", os.mkfifo, "a named pipe"),  # the run hung once its reader had left
            # Failed mid-run; and a link's target was emptied, whatever file it was.
            ("signals", lambda path: path.symlink_to("/dev/null"), "a symbolic link"),
            ("notifications", lambda path: path.symlink_to(path.parent), "a symbolic link"),
        ],
    )
    def test_an_output_that_cannot_be_a_file_is_refused_at_start(
        self,
        stream: str,
        make: Callable[[Path], None],
        kind: str,
        tmp_path: Path,
    ) -> None:
        events = _write_events(tmp_path / "e.jsonl", [event("t", "user.session", T0)])
        out = tmp_path / "out"
        out.mkdir()
        make(out / f"{stream}.jsonl")
        # In a process of its own, bounded: the named pipe hung the run.
        ran = run_vigil("run", "--input", str(events), "--output", str(out), timeout=60)
        assert ran.returncode == 2, ran.stderr
        assert f"--output: {out}/{stream}.jsonl is {kind}: each output is a file" in ran.stderr
        assert ran.stderr.count("\n") == 1, ran.stderr

    @pytest.mark.parametrize(
        ("args", "needle"),
        [
            (["run", "--workers", "many"], "--workers: not a number: 'many'"),
            (["run", "--workers", "0"], "--workers: must be at least 1, got 0"),
            # 100,000 (a typo) took 23 GiB before the kernel killed the run.
            (["run", "--workers", "100000"], "--workers: must be at most 64 (threads of one"),
            (["run", "--process-id", "-1"], "--process-id: must be at least 0, got -1"),
            (["simulate", "--tenants", "0"], "--tenants: must be at least 1, got 0"),
            (["simulate", "--limit", "-3"], "--limit: must be at least 0, got -3"),
            (["tail", "t", "--kafka", "k:1", "--max", "-1"], "--max: must be at least 0, got -1"),
            (
                ["tail", "t", "--kafka", "k:1", "--idle-exit", "-2"],
                "--idle-exit: must be at least 0",
            ),
            (["recovery", "init", "r", "--partitions", "0"], "--partitions: must be at least 1"),
            (["tail", "", "--kafka", "x:1"], "argument topic: '': a Kafka topic name is 1-249"),
            # `--kafka ""` ran in file mode, `--output ""` wrote into the working folder.
            (["run", "--input", "e", "--kafka", ""], "argument --kafka: empty: give a value"),
            (["run", "--input", "e", "--output", " "], "argument --output: empty: give a value"),
            # an empty tenant read every output (in Kafka mode, every topic) to find nothing
            (["explain", "", "--output", "o"], "argument tenant: empty: give a value"),
            (
                ["produce", "--input", "-", "--kafka", "x:1", "--topic", "a/b"],
                "argument --topic: 'a/b': a Kafka topic name",
            ),
        ],
    )
    def test_usage_mistakes_are_one_line_too(
        self, args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as caught:
            main(args)
        assert caught.value.code == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1

    def test_a_settings_file_that_is_not_text(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        config = tmp_path / "settings.toml"
        config.write_bytes(b"\xff\xfe[engine]\n")
        assert main(["config", "check", str(config)]) == 2
        assert f"cannot read settings file {config}: not UTF-8 text (byte 0)" in (
            capsys.readouterr().err
        )

    def test_a_setting_spelt_with_single_underscores_is_said_not_read(self, tmp_path: Path) -> None:
        # The run goes on (a Kubernetes Service named vigil-metrics sets VIGIL_METRICS_PORT
        # on its own), but the lateness the operator meant is not the one in force.
        events = tmp_path / "e.jsonl"
        events.write_text("")
        env = {**quiet_env(), "VIGIL_INPUT_ALLOWED_LATENESS": "2h"}
        args = ("--input", str(events), "--output", str(tmp_path / "out"), "--quiet")
        ran = run_vigil("run", *args, env=env)
        assert ran.returncode == 0, ran.stderr
        said = "environment variable not read: a setting's parts are joined by two underscores"
        assert f"{said} variable=VIGIL_INPUT_ALLOWED_LATENESS" in ran.stderr
        assert "setting=VIGIL_INPUT__ALLOWED_LATENESS" in ran.stderr
        checked = run_vigil("config", "check", env=env)
        assert checked.returncode == 0, checked.stderr
        assert checked.stderr == (
            f"vigil config: warning: {said}: VIGIL_INPUT_ALLOWED_LATENESS "
            "(meant VIGIL_INPUT__ALLOWED_LATENESS?)\n"
        )
        assert '"allowed_lateness": "1h"' in checked.stdout  # the default is what holds

    def test_a_utf16_file_is_refused_before_anything_is_read(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        # PowerShell's `>` writes UTF-16: each of its lines would be a dead letter.
        events = tmp_path / "e.jsonl"
        events.write_text('{"event_id": "a"}\n', encoding="utf-16")
        out = tmp_path / "out"
        assert main(["run", "--input", str(events), "--output", str(out), "--quiet"]) == 2
        assert capsys.readouterr().err == (
            f"vigil run: error: --input: {events} is UTF-16 text (it starts with a UTF-16 "
            "byte order mark) and events are UTF-8: convert it first, e.g. iconv -f UTF-16 "
            "-t UTF-8\n"
        )
        assert not (out / "deadletter.jsonl").exists()

    def test_gzip_on_standard_input_is_read_as_the_file_it_holds(self, tmp_path: Path) -> None:
        # `aws s3 cp s3://bucket/events.jsonl.gz - | vigil run --input -`: every line of
        # compressed bytes was an invalid_json dead letter, and the run "succeeded".
        import gzip

        events = tmp_path / "e.jsonl"
        made = run_vigil("simulate", "--tenants", "20", "--days", "9", "--output", str(events))
        assert made.returncode == 0, made.stderr
        outputs = {}
        for name, stdin in [
            ("plain", events.read_bytes()),
            ("gzip", gzip.compress(events.read_bytes())),
        ]:
            out = tmp_path / name
            ran = subprocess.run(
                vigil_command("run", "--input", "-", "--output", str(out), "--quiet"),
                input=stdin,
                capture_output=True,
                env=quiet_env(),
                cwd=ROOT,
                timeout=120,
            )
            assert ran.returncode == 0, ran.stderr
            # sorted: how a pipe's bytes arrive moves where tenants' records interleave
            outputs[name] = {
                f.name: sorted(f.read_bytes().splitlines()) for f in out.glob("*.jsonl")
            }
        assert outputs["gzip"] == outputs["plain"]
        assert outputs["plain"]["health.jsonl"] and outputs["plain"]["tasks.jsonl"]

    def test_an_output_folder_that_is_or_is_in_the_recovery_store_is_named_as_such(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # It was locked twice by the run, which then said it was in use by itself.
        monkeypatch.chdir(tmp_path)
        Path("e.jsonl").write_text("")
        args = ["run", "--input", "e.jsonl", "--output", "both", "--recovery-dir", "./both/"]
        assert main(args) == 2
        assert capsys.readouterr().err == (
            "vigil run: error: --output and the recovery store are the same folder, both: "
            "give each its own\n"
        )
        # Inside it, the run made the output folder and then refused the store for holding
        # "other files", which every later run said again.
        args = ["run", "--input", "e.jsonl", "--output", "store/out", "--recovery-dir", "store"]
        assert main(args) == 2
        assert capsys.readouterr().err == (
            "vigil run: error: --output store/out is inside the recovery store store: give it "
            "its own\n"
        )
        assert not Path("store").exists()

    def test_an_output_that_is_a_file(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        events = tmp_path / "e.jsonl"
        events.write_text("")
        assert main(["run", "--input", str(events), "--output", str(events)]) == 2
        assert (
            capsys.readouterr().err
            == f"vigil run: error: --output: {events} is a file, not a folder\n"
        )

    def test_unwritable_output(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        events = tmp_path / "e.jsonl"
        events.write_text("")
        blocker = tmp_path / "file"
        blocker.write_text("")
        assert main(["run", "--input", str(events), "--output", str(blocker / "out")]) == 2
        assert "--output: cannot write to" in capsys.readouterr().err

    def test_an_input_that_is_an_output_file_is_refused_not_emptied(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        # A fresh run empties its output files before reading: this input went first.
        out = tmp_path / "o"
        out.mkdir()
        events = out / "health.jsonl"
        line = orjson.dumps(event("acme", "user.session", T0)) + b"\n"
        events.write_bytes(line)
        args = ["run", "--input", str(tmp_path / "." / "o" / "health.jsonl"), "--output", str(out)]
        assert main(args) == 2
        assert events.read_bytes() == line
        said = capsys.readouterr().err
        assert f"is {events.name} of --output {out}, which the run writes" in said, said

    def test_bad_config_stops_before_reading_input(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        config = tmp_path / "bad.toml"
        config.write_text("[engine]\nshards = 0\n")
        assert (
            main(["run", "--input", "-", "--output", str(tmp_path / "o"), "--config", str(config)])
            == 2
        )
        assert "engine.shards = 0" in capsys.readouterr().err

    def test_rules_check_names_file_and_line(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text("rules:\n  - id: x\n    when: {fact: nope}\n    cooldown: 1d\n")
        assert main(["rules", "check", str(bad)]) == 2
        assert f"{bad}:3: rule 'x': when.fact" in capsys.readouterr().err

    def test_rules_check_takes_the_rules_and_zone_cut_offs_of_a_settings_file(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        rules = tmp_path / "mine.yaml"
        rules.write_text(
            "rules:\n  - id: red-but-fine\n    when: {fact: zone_change, zone: red, "
            "score_at_least: 45}\n    cooldown: 1d\n"
            "    notification: {severity: fact, channel: c, title: t, body: b}\n"
        )
        config = tmp_path / "vigil.toml"
        config.write_text(f"[rules]\npaths = [{str(rules)!r}]\n")
        refused = "rule 'red-but-fine': when: this condition can never hold: no score in red 0-39"
        assert main(["rules", "check", "--config", str(config)]) == 2
        assert refused in capsys.readouterr().err
        run = ["run", "--input", "-", "--output", str(tmp_path / "o"), "--config", str(config)]
        assert main(run) == 2  # `vigil run` checks its rules the same way, before any event
        assert refused in capsys.readouterr().err
        config.write_text(config.read_text() + "[health.zones]\norange = 50\nyellow = 70\n")
        assert main(["rules", "check", "--config", str(config)]) == 0
        said = capsys.readouterr().out
        assert " OK in 3 files:" in said  # the two bundled files, and this one
        assert "\n  red-but-fine: when zone_change" in said

    def test_rules_check_lists_the_rules_and_each_signals_fields(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["rules", "check"]) == 0
        out = capsys.readouterr().out
        assert "27 rules OK in 2 files:" in out and "  entered-red: when zone_change" in out
        assert "    login_drop adds: change_pct, measure, measured, previous, ratio" in out
        assert "  zone_change: fact, fact_id, from_zone, reasons," in out

    def test_rules_check_lists_the_signals_a_settings_file_declares(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        config = tmp_path / "vigil.toml"
        config.write_text(
            '[measures.quiet]\nkind = "days_since"\nevents = ["user.session"]\n'
            '[signals.gone_quiet]\nmeasure = "quiet"\nabove = 14\n'
        )
        assert main(["rules", "check", "--config", str(config)]) == 0
        assert "    gone_quiet adds: measure, measured\n" in capsys.readouterr().out


def test_simulate_is_deterministic_and_time_ordered_enough(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert (
        main(["simulate", "--tenants", "20", "--days", "3", "--seed", "1", "--output", str(a)]) == 0
    )
    assert (
        main(["simulate", "--tenants", "20", "--days", "3", "--seed", "1", "--output", str(b)]) == 0
    )
    assert a.read_bytes() == b.read_bytes()
    lines = a.read_bytes().splitlines()
    assert len(lines) > 500


def test_a_simulated_stream_may_end_on_the_last_day_vigil_reads(tmp_path: Path) -> None:
    """Three days from 2999-12-29 end at 3000-01-01, the first instant Vigil refuses (the
    fourth day is refused above): every line but the simulator's own malformed
    ones is an event, none an invalid_ts dead letter."""
    from vigil.intake.events import DeadLetter, decode

    stream = tmp_path / "s.jsonl"
    start = ["--start", "2999-12-29T00:00:00Z", "--days", "3", "--tenants", "40"]
    assert main(["simulate", *start, "--output", str(stream)]) == 0
    decoded = [decode(line, "s", {}, 0) for line in stream.read_bytes().splitlines()]
    reasons = Counter(item.reason for item in decoded if isinstance(item, DeadLetter))
    assert len(decoded) > 1000 and "invalid_ts" not in reasons, reasons
    assert sum(reasons.values()) < len(decoded) / 100


def test_a_result_that_cannot_be_written_is_one_line_and_exit_code_1(tmp_path: Path) -> None:
    """A full disk under stdout or an output file: the command says which, in one line."""
    from support import ROOT, vigil_command

    simulate = ("simulate", "--tenants", "2", "--days", "1")
    events, out = tmp_path / "events.jsonl", tmp_path / "out"
    assert run_vigil(*simulate, "--output", str(events)).returncode == 0
    assert run_vigil("run", "--input", str(events), "--output", str(out)).returncode == 0
    to_stdout = [
        ("rules", "check"),
        ("config", "check"),
        simulate,
        ("run", "--input", str(events), "--output", str(tmp_path / "again")),  # its summary
        ("explain", "tenant-00000", "--output", str(out)),
        ("recovery", "init", str(tmp_path / "store")),
    ]
    for args in to_stdout:
        with open("/dev/full", "wb") as full:
            ran = subprocess.run(
                vigil_command(*args),
                stdout=full,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                env=quiet_env(),
                timeout=120,
            )
        nested = args[0] in ("rules", "config", "recovery")  # said with its subcommand
        command = " ".join(args[:2]) if nested else args[0]
        _stopped_in_one_line(ran, "cannot write to stdout: No space left", command=command)
    kept = tmp_path / "kept.jsonl"
    capped = run_vigil(*simulate, "--output", str(kept), preexec_fn=_files_capped_at(5_000))
    _stopped_in_one_line(capped, f"--output: cannot write {kept}: File too", command="simulate")
    assert kept.stat().st_size == 5_000  # what fitted, and no more
    manifest = run_vigil(*simulate, "--output", str(tmp_path / "s"), "--manifest", "/dev/full")
    _stopped_in_one_line(manifest, "--manifest: cannot write /dev/full: No", command="simulate")


@pytest.mark.slow
def test_explain_tells_a_tenants_story(
    fleet_run: tuple[Path, dict[str, dict[str, str]], str], capsys: pytest.CaptureFixture[str]
) -> None:
    out, manifest, _ = fleet_run
    tenant = next(t for t, info in sorted(manifest.items()) if info["scenario"] == "login_drop")
    assert main(["explain", tenant, "--output", str(out)]) == 0
    story = capsys.readouterr().out
    assert "health " in story and "SIGNAL login_drop" in story
    assert (
        "RULE login-drop -> TASK for csm" in story
        and "RULE login-drop -> NOTIFICATION #cs-alerts" in story
    )
    assert "sessions in the last 30 days" in story  # the reasons are spelled out
    # Time order: the signal comes before the task it caused.
    assert story.index("SIGNAL login_drop") < story.index("RULE login-drop -> TASK")


@pytest.mark.slow
def test_explain_tells_each_tasks_life(
    fleet_run: tuple[Path, dict[str, dict[str, str]], str], capsys: pytest.CaptureFixture[str]
) -> None:
    out, manifest, _ = fleet_run
    tenant = next(t for t, info in sorted(manifest.items()) if info["scenario"] == "renewal")
    assert main(["explain", tenant, "--output", str(out)]) == 0
    story = capsys.readouterr().out
    [task_id] = {
        r["task_id"]
        for r in read_jsonl(out / "tasks.jsonl")
        if r["tenant_id"] == tenant and r["rule"] == "renewal-r120"
    }
    opened = story.index("RULE renewal-r120 -> TASK for csm")
    escalated = story.index(f"TASK {task_id} (v2) ESCALATED to csm_manager (high")
    closed = story.index(f"TASK {task_id} (v4) CLOSED: the renewal moved past this stage")
    assert opened < escalated < closed


def test_explain_of_a_killed_runs_outputs_skips_the_cut_short_last_line(
    fleet_run: tuple[Path, dict[str, dict[str, str]], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def torn(out: Path, tenant: str) -> None:  # what SIGKILL can leave
        path = out / "health.jsonl"
        path.write_bytes(path.read_bytes() + b'{"tenant_id":"' + tenant.encode() + b'","ts":"20')

    told, whole = _explained_from_a_copy(fleet_run, tmp_path, capsys, torn)
    assert told.out == whole  # the same story as from the whole files
    assert "skipped the last line, cut short" in told.err and "health.jsonl" in told.err


def test_explain_tells_records_written_again_once(
    fleet_run: tuple[Path, dict[str, dict[str, str]], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A Kafka run restarted from its store writes what came after the snapshot again,
    # with the same ids (consumers deduplicate on them): explain is such a consumer.
    def written_twice(out: Path, tenant: str) -> None:
        for stream in ("health", "signals", "tasks", "notifications"):
            path = out / f"{stream}.jsonl"
            path.write_bytes(path.read_bytes() * 2)

    told, whole = _explained_from_a_copy(fleet_run, tmp_path, capsys, written_twice)
    assert told.out == whole


def _explained_from_a_copy(
    fleet_run: tuple[Path, dict[str, dict[str, str]], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    spoil: Callable[[Path, str], None],
) -> tuple[Any, str]:
    """What `explain` says of a login_drop tenant from a copy of the fleet run's outputs
    that `spoil` changed (out and err), and what it says from the outputs themselves."""
    import shutil

    out, manifest, _ = fleet_run
    tenant = next(t for t, info in sorted(manifest.items()) if info["scenario"] == "login_drop")
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    spoil(copy, tenant)
    assert main(["explain", tenant, "--output", str(copy)]) == 0
    told = capsys.readouterr()
    assert main(["explain", tenant, "--output", str(out)]) == 0
    return told, capsys.readouterr().out


def test_a_fresh_run_writes_every_file_and_keeps_nothing_of_an_earlier_run(
    tmp_path: Path,
) -> None:
    events, empty, out = tmp_path / "events.jsonl", tmp_path / "empty.jsonl", tmp_path / "out"
    made = run_vigil("simulate", "--tenants", "20", "--days", "9", "--output", str(events))
    assert made.returncode == 0, made.stderr
    assert run_vigil("run", "--input", str(events), "--output", str(out)).returncode == 0
    assert (out / "health.jsonl").stat().st_size > 0
    empty.write_bytes(b"")
    ran = run_vigil("run", "--input", str(empty), "--output", str(out))
    assert ran.returncode == 0, ran.stderr
    files = {path.name: path.read_bytes() for path in out.glob("*.jsonl")}
    assert files == {f"{stream}.jsonl": b"" for stream in CONTRACT}


def test_explain_of_an_unknown_tenant_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", "nobody", "--output", str(tmp_path)]) == 2
    assert "no output about tenant 'nobody'" in capsys.readouterr().err


def test_a_bad_rule_file_in_the_settings_stops_start_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - id: x\n    when: {fact: signal}\n    cooldown: soon\n")
    config = tmp_path / "vigil.toml"
    config.write_text(f'[rules]\npaths = ["{rules}"]\n')
    output = tmp_path / "out"
    assert main(["run", "--input", "-", "--output", str(output), "--config", str(config)]) == 2
    assert f"{rules}:4: rule 'x': cooldown" in capsys.readouterr().err
    assert not (output / "health.jsonl").exists()  # stopped before the dataflow ran


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 200-tenant stream and the outputs of an uninterrupted run of it."""
    work = tmp_path_factory.mktemp("replay")
    events, reference = work / "events.jsonl", work / "reference"
    made = run_vigil("simulate", "--tenants", "200", "--days", "28", "--output", str(events))
    assert made.returncode == 0, made.stderr
    ran = run_vigil("run", "--input", str(events), "--output", str(reference), "--quiet")
    assert ran.returncode == 0, ran.stderr
    return events, reference


def test_engine_compiled_of_an_older_version_is_refused_saying_to_remove_it(
    tmp_path: Path,
) -> None:
    """There is one engine: a settings file that still picks one is told so at start."""
    config = tmp_path / "vigil.toml"
    config.write_text("[engine]\ncompiled = false\n")
    events = tmp_path / "e.jsonl"
    events.write_bytes(orjson.dumps(event("acme", "user.session", T0)) + b"\n")
    ran = run_vigil(
        "run", "--config", str(config), "--input", str(events), "--output", str(tmp_path)
    )
    assert ran.returncode == 2
    assert "engine.compiled: no longer a setting" in ran.stderr and "remove it" in ran.stderr


def _recoverable_run(events: Path, tmp_path: Path) -> tuple[str, ...]:
    return (
        "run",
        "--input",
        str(events),
        "--output",
        str(tmp_path / "out"),
        "--quiet",
        "--recovery-dir",
        str(tmp_path / "store"),
        "--snapshot-interval",
        "200ms",
    )


def _same_outputs(
    out: Path,
    reference: Path,
    streams: tuple[str, ...] = ("health", "signals", "tasks", "notifications", "deadletter"),
) -> None:
    for stream in streams:
        name = f"{stream}.jsonl"
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signals", "exit_code", "logged"),
    [
        ([signal.SIGKILL], -signal.SIGKILL, None),
        ([signal.SIGTERM], 143, "stopped signal=SIGTERM"),
        ([signal.SIGINT], 130, "stopped signal=SIGINT"),
        # A second signal during the clean stop stops at once; the store still resumes.
        ([signal.SIGTERM, signal.SIGTERM], 143, "stopped at once"),
    ],
    ids=["SIGKILL", "SIGTERM", "SIGINT", "SIGTERM-twice"],
)
def test_a_file_run_stopped_and_resumed_writes_exactly_what_an_uninterrupted_run_does(
    replay: tuple[Path, Path],
    tmp_path: Path,
    signals: list[signal.Signals],
    exit_code: int,
    logged: str | None,
) -> None:
    import shutil
    import time

    events, reference = replay
    args = _recoverable_run(events, tmp_path)
    for _ in range(3):  # bounded: see below
        with _mid_run(args, tmp_path) as (first, log):
            for count, stop in enumerate(signals):
                deadline = time.monotonic() + 30
                # The next signal once the first was taken (two at once can merge into one).
                while count and "stop requested" not in log.read_text():
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.005)
                first.send_signal(stop)
            first.wait(30)
        said = log.read_text()
        # A second signal can only come too late: the clean stop was over, its handler
        # gone (killed by SIGTERM's default) or its last line written. Then try again.
        late = len(signals) > 1 and "stopped at once" not in said
        if not late or first.returncode not in (-signal.SIGTERM, exit_code):
            break
        shutil.rmtree(tmp_path / "out")
        shutil.rmtree(tmp_path / "store")
    assert first.returncode == exit_code, said  # stopped mid-run, not finished
    if logged is not None:  # a clean stop: one line that says so, no traceback
        assert logged in said and "Traceback" not in said, said
    _resumes_to_the_reference(args, tmp_path, reference)


@pytest.mark.slow
def test_a_second_run_on_the_same_store_or_folder_is_refused_while_the_first_goes_on(
    replay: tuple[Path, Path], tmp_path: Path
) -> None:
    import time

    from support import ROOT, quiet_env, vigil_command

    events, reference = replay
    out, store = tmp_path / "out", tmp_path / "store"
    args = ("run", "--input", "-", "--output", str(out), "--quiet", "--recovery-dir", str(store))
    log = tmp_path / "first.log"
    with log.open("wb") as stderr:
        # Fed through a pipe, the first run goes on until the test closes it.
        first = subprocess.Popen(
            vigil_command(*args), stdin=subprocess.PIPE, stderr=stderr, env=quiet_env(), cwd=ROOT
        )
        assert first.stdin is not None
        try:
            locks = [folder / ".vigil-process-0.lock" for folder in (store, out)]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not all(
                lock.exists() and lock.read_text() for lock in locks
            ):
                time.sleep(0.02)
            same_both = run_vigil(*args)
            same_store = run_vigil(*args[:4], str(tmp_path / "elsewhere"), *args[5:])
            same_folder = run_vigil("run", "--input", str(events), "--output", str(out))
            first.stdin.write(events.read_bytes())
            first.stdin.close()
            first.wait(120)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(30)
    in_use = "is in use by another vigil run (pid "
    assert same_both.returncode == 2, same_both.stderr
    assert f"recovery store {store} {in_use}{first.pid} on " in same_both.stderr
    assert same_store.returncode == 2, same_store.stderr
    assert f"recovery store {store} {in_use}" in same_store.stderr
    assert same_folder.returncode == 2, same_folder.stderr
    assert f"output folder {out} {in_use}" in same_folder.stderr
    assert first.returncode == 0, log.read_text()
    # The first run's outputs were left alone (through a pipe, batches end elsewhere: the
    # order of records may differ, not the records).
    for stream in ("health", "signals", "tasks", "notifications"):
        got = (out / f"{stream}.jsonl").read_bytes().splitlines()
        assert sorted(got) == sorted((reference / f"{stream}.jsonl").read_bytes().splitlines())
    again = run_vigil("run", "--input", str(events), "--output", str(out))
    assert again.returncode == 0, again.stderr  # free once the first has ended


def test_a_run_on_a_named_pipe_no_one_writes_to_yet_stops_on_sigterm(tmp_path: Path) -> None:
    # It waited in the pipe's open for a writer, through SIGTERM (seen between batches).
    import os
    import time

    from support import ROOT, quiet_env, vigil_command

    fifo = tmp_path / "events.pipe"
    os.mkfifo(fifo)
    args = ("run", "--input", str(fifo), "--output", str(tmp_path / "out"), "--quiet")
    log = tmp_path / "run.log"
    with log.open("wb") as stderr:
        run = subprocess.Popen(vigil_command(*args), env=quiet_env(), cwd=ROOT, stderr=stderr)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and "starting" not in log.read_text():
                time.sleep(0.02)
            time.sleep(0.5)  # into the dataflow, where the input is opened
            run.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                run.wait(20)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait(30)
    said = log.read_text()
    assert run.returncode == 143, said
    assert "stopped signal=SIGTERM" in said and "Traceback" not in said, said


def test_input_from_a_terminal_says_how_to_type_it_and_ctrl_d_ends_it(tmp_path: Path) -> None:
    # `vigil run --input -` with nothing piped in waited without a word.
    import os
    import pty

    from support import ROOT, quiet_env, vigil_command

    terminal, its_end = pty.openpty()
    args = ("run", "--input", "-", "--output", str(tmp_path / "out"))
    run = subprocess.Popen(
        vigil_command(*args), stdin=its_end, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=quiet_env(), cwd=ROOT,
    )  # fmt: skip
    os.close(its_end)
    try:
        os.write(terminal, orjson.dumps(event("t", "user.session", T0)) + b"\n")
        os.write(terminal, b"\x04")  # Ctrl-D, at the start of a line
        out, err = run.communicate(timeout=60)
    finally:
        os.close(terminal)
        if run.poll() is None:
            run.kill()
            run.wait(30)
    assert run.returncode == 0, err
    assert b"reading events typed on the terminal: one JSON object a line, Ctrl-D ends" in err
    assert b"events processed  1 in" in out, out


@contextmanager
def _mid_run(
    args: tuple[str, ...], tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """`vigil run` started with `args`, once its recovery store has committed a snapshot
    (a stop before that restarts from scratch, and would pass without restoring state);
    its stderr goes to the log file. Killed on the way out if still running."""
    import time

    from support import ROOT, committed_epoch, quiet_env, vigil_command

    log = tmp_path / "first.log"
    with log.open("wb") as stderr:
        run = subprocess.Popen(vigil_command(*args), env=quiet_env(), cwd=ROOT, stderr=stderr)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and committed_epoch(tmp_path / "store") < 2:
                time.sleep(0.02)
            yield run, log
        finally:
            if run.poll() is None:
                run.kill()
                run.wait(30)


def _files_capped_at(size: int) -> Callable[[], None]:
    """For `preexec_fn`: no file the child writes may grow past `size` bytes; a write past
    it fails (EFBIG), as on a full disk."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return cap


def _resumes_to_the_reference(
    args: tuple[str, ...], tmp_path: Path, reference: Path, env: dict[str, str] | None = None
) -> None:
    again = run_vigil(*args, env=env)
    assert again.returncode == 0, again.stderr
    resumed = [line for line in again.stderr.splitlines() if "resuming input" in line]
    assert resumed and "line=0" not in resumed[0], again.stderr  # from the snapshot, mid-file
    _same_outputs(tmp_path / "out", reference)


@pytest.mark.slow
def test_a_full_disk_stops_the_run_in_one_line_and_the_same_command_resumes(
    replay: tuple[Path, Path], tmp_path: Path
) -> None:
    from support import quiet_env

    events, reference = replay
    args = _recoverable_run(events, tmp_path)
    # The cap binds health.jsonl (8.0 MB in all) and never the store: its database holds
    # the state (1.6 MB), and its write-ahead log stops growing once SQLite checkpoints it
    # at 4 MiB, plus one snapshot (4.5 MB at most, measured under load). At half of
    # health.jsonl the log could reach the cap first on a slow machine. The event ids kept
    # to drop repeats are most of a snapshot: with the default retention, 30 days (the
    # longest signal window), the state is 3.7 MB and the store could bind first; the
    # retention of 8 days keeps the sizes above (the outputs are the same).
    env = {**quiet_env(), "VIGIL_ENGINE__DEDUP_RETENTION": "8d"}
    room = (reference / "health.jsonl").stat().st_size * 85 // 100
    full = run_vigil(*args, env=env, preexec_fn=_files_capped_at(room))
    _stopped_in_one_line(full, f"cannot write {tmp_path / 'out' / 'health.jsonl'}: File too large")
    _resumes_to_the_reference(args, tmp_path, reference, env)  # room again


@pytest.mark.slow
def test_a_recovery_store_that_cannot_grow_stops_the_run_in_one_line_and_the_same_command_resumes(
    replay: tuple[Path, Path], tmp_path: Path
) -> None:
    from support import quiet_env

    events, _ = replay
    # Two weeks of lateness hold half of the stream's four weeks of events in the state
    # before any health record is written, and a snapshot every 20 ms (the store's log
    # grows by each) outgrows the limit while every output file is still small. With
    # 200 ms, a run that read 90,000 events a second wrote 1 MB of health records first.
    env = {**quiet_env(), "VIGIL_INPUT__ALLOWED_LATENESS": "14d"}
    reference = tmp_path / "reference"
    ran = run_vigil("run", "--input", str(events), "--output", str(reference), env=env)
    assert ran.returncode == 0, ran.stderr
    args = (*_recoverable_run(events, tmp_path), "--snapshot-interval", "20ms")
    full = run_vigil(*args, env=env, preexec_fn=_files_capped_at(1_000_000))
    store = tmp_path / "store"
    _stopped_in_one_line(full, f"recovery store {store}: disk I/O error (once that is fixed, ")
    assert (tmp_path / "out" / "health.jsonl").stat().st_size < 1_000_000  # the store failed
    again = run_vigil(*args, env=env)
    assert again.returncode == 0, again.stderr
    _same_outputs(tmp_path / "out", reference)


def test_a_gzip_input_gives_the_outputs_of_the_file_it_holds_and_one_cut_short_one_line(
    replay: tuple[Path, Path], tmp_path: Path
) -> None:
    import gzip

    events, reference = replay
    packed = tmp_path / "events.jsonl.gz"
    packed.write_bytes(gzip.compress(events.read_bytes()))
    ran = run_vigil("run", "--input", str(packed), "--output", str(tmp_path / "out"), "--quiet")
    assert ran.returncode == 0, ran.stderr
    # Dead letters name their source file, which differs.
    _same_outputs(tmp_path / "out", reference, ("health", "signals", "tasks", "notifications"))
    packed.write_bytes(packed.read_bytes()[:-1000])  # an upload that stopped short
    cut = run_vigil("run", "--input", str(packed), "--output", str(tmp_path / "cut"), "--quiet")
    _stopped_in_one_line(cut, f"cannot read --input {packed} after line ")


def test_a_damaged_recovery_store_is_named_in_one_line(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    made = run_vigil("simulate", "--tenants", "5", "--days", "1", "--output", str(events))
    assert made.returncode == 0, made.stderr
    args = _recoverable_run(events, tmp_path)
    assert run_vigil(*args).returncode == 0
    (tmp_path / "store" / "part-0.sqlite3").write_bytes(b"not a database\n" * 100)
    damaged = run_vigil(*args)
    store = tmp_path / "store"
    _stopped_in_one_line(damaged, f"recovery store {store}: file is not a database (the store is")


def _stopped_in_one_line(
    ran: subprocess.CompletedProcess[str], said: str, command: str = "run"
) -> None:
    """The command failed (exit code 1) with `vigil <command>: error: <said>...`, not a
    traceback."""
    assert ran.returncode == 1, ran.stderr
    assert f"vigil {command}: error: {said}" in ran.stderr, ran.stderr
    assert "Traceback" not in ran.stderr, ran.stderr


def test_a_recovery_store_that_is_no_store_stops_the_run_in_one_line(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text(
        '{"event_id": "a", "type": "user.session", "tenant_id": "t", "ts": 1772409600000}\n'
    )
    store = tmp_path / "store"
    store.mkdir()
    (store / "notes.txt").write_text("not a store")
    args = ("run", "--input", str(events), "--output", str(tmp_path / "o"), "--quiet")
    other_files = run_vigil(*args, "--recovery-dir", str(store))
    assert other_files.returncode == 2, other_files.stderr
    assert f"recovery dir {store} holds other files and no recovery store" in other_files.stderr
    assert "Traceback" not in other_files.stderr
    (store / "notes.txt").unlink()
    (store / "part-0.sqlite3").write_bytes(b"")  # a creation cut short
    cut_short = run_vigil(*args, "--recovery-dir", str(store))
    _stopped_in_one_line(cut_short, f"recovery store {store} holds no recovery partitions")


def _open_files_capped_at(soft: int, hard: int) -> Callable[[], None]:
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return cap


def test_a_store_of_many_parts_raises_the_open_files_limit_or_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    # A run holds three files open per part (SQLite, its log and the log's index): with
    # 100 parts and 256 files allowed it ended in a Bytewax panic, "Too many open files".
    events = tmp_path / "e.jsonl"
    _write_events(events, [event("t", "user.session", T0), event("t", "user.session", T0 + DAY)])
    store = tmp_path / "store"
    made = run_vigil("recovery", "init", str(store), "--partitions", "100")
    assert made.returncode == 0, made.stderr
    args = ("run", "--input", str(events), "--output", str(tmp_path / "o"), "--quiet")
    args += ("--recovery-dir", str(store))
    raised = run_vigil(*args, preexec_fn=_open_files_capped_at(256, 4096))
    assert raised.returncode == 0, raised.stderr
    assert (tmp_path / "o" / "health.jsonl").read_text().count("\n") == 1
    refused = run_vigil(*args, preexec_fn=_open_files_capped_at(256, 256))
    assert refused.returncode == 2, refused.stderr
    said = f"vigil run: error: recovery store {store} has 100 partitions, and a run holds 3"
    assert said in refused.stderr and "(256, ulimit -Hn)" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr and "panicked" not in refused.stderr
    no_room = run_vigil(
        "recovery", "init", str(tmp_path / "s2"), "--partitions", "100",
        preexec_fn=_open_files_capped_at(256, 256),
    )  # fmt: skip
    assert no_room.returncode == 2 and "has 100 partitions" in no_room.stderr, no_room.stderr
    assert not (tmp_path / "s2").exists()


def test_a_recovery_store_from_other_settings_stops_start_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text(
        '{"event_id": "a", "type": "user.session", "tenant_id": "t", "ts": 1772409600000}\n'
    )
    args = [
        "run",
        "--input",
        str(events),
        "--output",
        str(tmp_path / "o"),
        "--quiet",
        "--recovery-dir",
        str(tmp_path / "s"),
    ]
    monkeypatch.setenv("VIGIL_METRICS__PORT", "0")
    assert main(args) == 0
    monkeypatch.setenv("VIGIL_ENGINE__SHARDS", "8")
    assert main(args) == 2
    assert "engine.shards was 32 and is now 8" in capsys.readouterr().err


def test_a_recovery_store_from_another_state_format_stops_start_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from vigil.app.runner import LAYOUT_FILE
    from vigil.engine.state import STATE_FORMAT

    events = tmp_path / "e.jsonl"
    events.write_text(
        '{"event_id": "a", "type": "user.session", "tenant_id": "t", "ts": 1772409600000}\n'
    )
    store = tmp_path / "s"
    args = ["run", "--input", str(events), "--output", str(tmp_path / "o"), "--quiet"]
    args += ["--recovery-dir", str(store)]
    monkeypatch.setenv("VIGIL_METRICS__PORT", "0")
    assert main(args) == 0
    marker = store / LAYOUT_FILE
    layout = orjson.loads(marker.read_bytes())
    del layout["state_format"]  # as a store of the version before the format was recorded
    marker.write_bytes(orjson.dumps(layout))
    assert main(args) == 0
    # An older format this version reads is taken, and the store marked as this one's now,
    # so that the older version, which cannot read what this one saves, refuses it.
    assert orjson.loads(marker.read_bytes())["state_format"] == STATE_FORMAT
    marker.write_bytes(orjson.dumps({**layout, "state_format": "0123456789ab"}))
    assert main(args) == 2
    said = capsys.readouterr().err
    assert "another version of Vigil saved its state (format 0123456789ab" in said, said


def test_a_store_resumes_its_input_file_under_another_spelling_of_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bytewax keys the input's position by the path as given: another spelling of it (a
    # relative path, another working folder) used to end in a panic and a traceback.
    events, store, lines = _first_half_of_a_fleet(tmp_path)
    args = ["run", "--output", str(tmp_path / "o"), "--quiet", "--recovery-dir", str(store)]
    monkeypatch.setenv("VIGIL_METRICS__PORT", "0")
    assert main([*args, "--input", str(events)]) == 0
    events.write_bytes(lines)  # grown since: read on from where the store stopped
    monkeypatch.chdir(tmp_path)
    assert main([*args[:-1], "s", "--input", "e.jsonl"]) == 0  # both paths relative now
    assert main(["run", "--input", str(events), "--output", "straight", "--quiet"]) == 0
    # What the first run wrote at the end of the shorter file comes before the rest: the
    # same records, each tenant's in the same order.
    resumed, straight = (_by_tenant(tmp_path / d / "health.jsonl") for d in ("o", "straight"))
    assert resumed == straight and len(straight) == 6
    capsys.readouterr()
    # Another file is refused, named beside the one the store was reading.
    other = tmp_path / "other.jsonl"
    other.write_bytes(events.read_bytes())
    assert main([*args, "--input", str(other)]) == 2
    said = capsys.readouterr().err
    assert f"recovery store {store} was reading {events}, not {other}" in said, said


def test_a_store_resumed_into_another_output_folder_is_refused_not_padded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The output files are cut back to where the store stopped writing them: in an empty
    # folder that was a seek past the end: health.jsonl began with 50 KB of NUL bytes.
    events, store, lines = _first_half_of_a_fleet(tmp_path)
    args = ["run", "--input", str(events), "--quiet", "--recovery-dir", str(store)]
    monkeypatch.setenv("VIGIL_METRICS__PORT", "0")
    assert main([*args, "--output", str(tmp_path / "o")]) == 0
    written = (tmp_path / "o" / "health.jsonl").stat().st_size
    events.write_bytes(lines)
    capsys.readouterr()
    elsewhere = tmp_path / "elsewhere"
    assert main([*args, "--output", str(elsewhere)]) == 1
    said = capsys.readouterr().err
    assert (
        f"vigil run: error: {elsewhere / 'health.jsonl'} holds 0 bytes, fewer than the "
        f"{written:,} the recovery store wrote to it: it is not the output this store was "
        "writing (give --output the folder it wrote, or use a new store)"
    ) in said, said
    assert not (elsewhere / "health.jsonl").exists()
    # The store is as it was: resumed into its own folder, it reads on.
    assert main([*args, "--output", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "health.jsonl").stat().st_size > written


def test_the_summary_quotes_input_without_its_control_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tenant id is input: an escape sequence in it would reach the terminal as is.
    events = tmp_path / "e.jsonl"
    events.write_bytes(
        orjson.dumps(event("ev\x1b[2Jil", "user.session", T0))
        + b"\n"
        + orjson.dumps(event("acme", "user.session", T0 + 2 * HOUR))
        + b"\n"
    )
    monkeypatch.setenv("VIGIL_METRICS__PORT", "0")
    assert main(["run", "--input", str(events), "--output", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "  ev\\x1b[2Jil " in out, out
    assert main(["explain", "ev\x1b[2Jil", "--output", str(tmp_path / "o")]) == 0
    assert "\x1b" not in capsys.readouterr().out


def test_an_address_listed_twice_is_refused_not_waited_on(tmp_path: Path) -> None:
    # Process 0 waited forever for the peer at its own address (bounded here by timeout).
    events = tmp_path / "e.jsonl"
    events.write_text("")
    cluster = ("--addresses", "127.0.0.1:7191,127.0.0.1:7192,127.0.0.1:7191")
    args = ("run", "--input", str(events), "--output", str(tmp_path / "o"), *cluster)
    ran = run_vigil(*args, timeout=60)
    assert ran.returncode == 2
    assert ran.stderr == "vigil run: error: --addresses lists 127.0.0.1:7191 more than once\n"


def test_a_file_named_on_the_command_line_is_read_though_the_settings_name_a_broker(
    tmp_path: Path,
) -> None:
    # Kafka mode took over, ignoring --input and --output: a replay run beside a
    # deployment's settings would have read and written that deployment's topics.
    events = tmp_path / "e.jsonl"
    events.write_bytes(orjson.dumps(event("acme", "user.session", T0)) + b"\n")
    env = {**quiet_env(), "VIGIL_KAFKA__BOOTSTRAP": "127.0.0.1:9"}
    ran = run_vigil("run", "--input", str(events), "--output", str(tmp_path / "o"), env=env)
    assert ran.returncode == 0, ran.stderr
    assert "starting mode=file" in ran.stderr and "events processed  1 " in ran.stdout


def test_with_json_logs_an_error_is_a_json_record_not_a_plain_line(tmp_path: Path) -> None:
    # A pipeline that parses the container's stderr as JSON got "vigil run: error: ..."
    # lines: the only word of a start-up error, and a copy of a run's "stopped" record.
    env = {**quiet_env(), "VIGIL_LOG__FORMAT": "json"}
    utf16 = tmp_path / "utf16.jsonl"
    utf16.write_text('{"event_id": "a"}\n', encoding="utf-16")
    refused = run_vigil("run", "--input", str(utf16), "--output", str(tmp_path / "o"), env=env)
    assert refused.returncode == 2
    [record] = [orjson.loads(line) for line in refused.stderr.splitlines()]
    assert (record["level"], record["event"]) == ("error", "failed")
    assert record["error"].startswith(f"--input: {utf16} is UTF-16 text")
    # Stopped while running: the output folder is not the one the store wrote.
    events, store, _ = _first_half_of_a_fleet(tmp_path)
    args = ("run", "--input", str(events), "--quiet", "--recovery-dir", str(store))
    assert run_vigil(*args, "--output", str(tmp_path / "first"), env=env).returncode == 0
    stopped = run_vigil(*args, "--output", str(tmp_path / "elsewhere"), env=env)
    assert stopped.returncode == 1
    ours = [orjson.loads(line) for line in stopped.stderr.splitlines() if line.startswith("{")]
    [failure] = [record for record in ours if record["level"] == "error"]
    assert failure["event"] == "stopped" and "is not the output this store" in failure["error"]
    assert "vigil run: error:" not in stopped.stderr  # Bytewax's panic lines are its own


def _first_half_of_a_fleet(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """tmp_path/e.jsonl holding the first half of a small fleet's lines, the path for a
    recovery store, and all the lines, to grow the file with."""
    from vigil.intake.simulate import FleetPlan, generate

    lines = [line + b"\n" for line in generate(FleetPlan(tenants=6, days=3, seed=4))[0]]
    events = tmp_path / "e.jsonl"
    events.write_bytes(b"".join(lines[: len(lines) // 2]))
    return events, tmp_path / "s", b"".join(lines)


def _by_tenant(path: Path) -> dict[str, list[bytes]]:
    records: dict[str, list[bytes]] = {}
    for line in path.read_bytes().splitlines():
        records.setdefault(orjson.loads(line)["tenant_id"], []).append(line)
    return records


def test_recovery_init_creates_a_store_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    assert main(["recovery", "init", str(store), "--partitions", "2"]) == 0
    made = sorted(p.name for p in store.iterdir() if not is_lock(p))
    assert made == ["part-0.sqlite3", "part-1.sqlite3"]
    assert main(["recovery", "init", str(store)]) == 2
    assert "already holds a recovery store" in capsys.readouterr().err


def _write_events(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def test_a_run_reports_the_tenants_it_forgot(tmp_path: Path) -> None:
    # "gone" sends on day 0 only, "kept" every day for 70 days; forgotten after 61 days.
    lines = [event("gone", "user.session", T0 + HOUR)]
    lines += [event("kept", "user.session", T0 + d * DAY + 2 * HOUR) for d in range(70)]
    events = _write_events(tmp_path / "events.jsonl", lines)
    env = {**quiet_env(), "VIGIL_ENGINE__FORGET_TENANTS_AFTER": "61d"}
    ran = run_vigil("run", "--input", str(events), "--output", str(tmp_path / "out"), env=env)
    assert ran.returncode == 0, ran.stderr
    assert "tenants forgotten 1 (no event for engine.forget_tenants_after)" in ran.stdout
    assert "forgot tenants that sent nothing" in ran.stderr and "'gone'" in ran.stderr


def test_a_producer_hours_ahead_of_the_clock_does_not_make_on_time_events_late(
    tmp_path: Path,
) -> None:
    """Live events, one of them stamped 8 hours ahead (local time sent as UTC). With the
    default input.max_future it is a "future" dead letter; accepted, it would have moved
    the watermark 7 hours past the clock and every event after it would be late."""
    now = int(time.time() * 1000)
    minute = 60_000
    live = [event("acme", "user.session", now - 50 * minute + n * minute) for n in range(20)]
    skewed = event("acme", "user.session", now + 8 * 60 * minute)
    after = [event("beta", "user.session", now - 20 * minute + n * minute) for n in range(10)]
    events = _write_events(tmp_path / "events.jsonl", [*live, skewed, *after])
    out = tmp_path / "out"
    ran = run_vigil("run", "--input", str(events), "--output", str(out))
    assert ran.returncode == 0, ran.stderr
    letters = list(read_jsonl(out / "deadletter.jsonl"))
    assert [d["reason"] for d in letters] == ["future"], letters
    assert letters[0]["position"]["line"] == 21
    assert "events processed  30 " in ran.stdout, ran.stdout


def test_a_run_reports_the_keys_it_did_not_keep(tmp_path: Path) -> None:
    # A producer that sends a new feature name with every event, against a limit of 6.
    lines = [
        event("acme", "feature.used", T0 + n * HOUR, {"feature": f"page/{n}"}) for n in range(9)
    ]
    lines.append(event("acme", "user.session", T0 + 12 * HOUR))  # the watermark passes them
    events = _write_events(tmp_path / "events.jsonl", lines)
    env = {**quiet_env(), "VIGIL_ENGINE__MAX_KEYS_PER_TENANT": "6"}
    ran = run_vigil("run", "--input", str(events), "--output", str(tmp_path / "out"), env=env)
    assert ran.returncode == 0, ran.stderr
    # Both measures of the features keep their own keys (the share of them too).
    said = (
        "keys not kept     6 (measures.feature_share_30d 3, measures.features_30d 3); "
        "tenants held engine.max_keys_per_tenant of those"
    )
    assert said in ran.stdout, ran.stdout
    # once per map, with the first
    assert ran.stderr.count("new ones are not kept") == 2, ran.stderr
    assert "map=measures.features_30d limit=6 refused=page/6" in ran.stderr, ran.stderr


def test_a_run_says_how_many_events_its_final_watermark_left_unapplied(tmp_path: Path) -> None:
    # Hourly sessions up to 5:30: the watermark ends at 4:30 (1 h lateness), so the steps
    # up to 4:00 are closed and the events at 4:00, 5:00 and 5:30 are still waiting.
    lines = [*sessions("acme", T0, 6), event("acme", "user.session", T0 + 5 * HOUR + HOUR // 2)]
    events = _write_events(tmp_path / "events.jsonl", lines)
    ran = run_vigil("run", "--input", str(events), "--output", str(tmp_path / "a"), env=quiet_env())
    assert ran.returncode == 0, ran.stderr
    assert "events processed  7 " in ran.stdout, ran.stdout
    assert "not applied yet   3 events, after the last step the final watermark" in ran.stdout

    # A lateness longer than the file holds every event back: the run found nothing, and
    # says why rather than looking like a healthy fleet.
    env = {**quiet_env(), "VIGIL_INPUT__ALLOWED_LATENESS": "1d"}
    ran = run_vigil("run", "--input", str(events), "--output", str(tmp_path / "b"), env=env)
    assert ran.returncode == 0, ran.stderr
    assert "not applied yet   7 events" in ran.stdout, ran.stdout
    assert not (tmp_path / "b" / "health.jsonl").read_bytes()

    # A later event moves the watermark past them: only that event is left waiting.
    _write_events(events, [*lines, event("acme", "user.session", T0 + 12 * HOUR)])
    ran = run_vigil("run", "--input", str(events), "--output", str(tmp_path / "c"), env=quiet_env())
    assert ran.returncode == 0, ran.stderr
    assert "not applied yet   1 event, after" in ran.stdout, ran.stdout


@pytest.mark.slow
@pytest.mark.parametrize(("layout", "store"), [("shared", False), ("own", False), ("own", True)])
def test_two_processes_give_one_process_outputs_in_one_folder_or_each_its_own(
    replay: tuple[Path, Path], tmp_path: Path, layout: str, store: bool
) -> None:
    # Only process 0 emptied its folder at start (and with a shared recovery store, only
    # the process that created it): process 1, given a folder of its own, kept an earlier
    # run's records in the files of the streams it does not write.
    from kafka_broker import free_port

    from vigil.flows.health import STREAMS

    events, reference = replay
    folders = [tmp_path / "p0", tmp_path / ("p0" if layout == "shared" else "p1")]
    for folder in folders:
        folder.mkdir(exist_ok=True)
        for stream in STREAMS:  # an earlier run's records
            _earlier_records(folder / f"{stream}.jsonl")
    addresses = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    recovery = ["--recovery-dir", str(tmp_path / "store")] if store else []
    processes = [
        subprocess.Popen(
            vigil_command(
                *("run", "--input", str(events), "--output", str(folder), "--quiet", *recovery),
                *("--addresses", addresses, "--process-id", str(process_id)),
            ),
            env=quiet_env(),
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for process_id, folder in enumerate(folders)
    ]
    try:
        for process in processes:
            _, said = process.communicate(timeout=300)
            assert process.returncode == 0, said
    finally:
        for process in processes:
            process.kill()
    for stream in STREAMS:
        written = b"".join((folder / f"{stream}.jsonl").read_bytes() for folder in set(folders))
        expected = (reference / f"{stream}.jsonl").read_bytes()
        assert sorted(written.splitlines()) == sorted(expected.splitlines()), stream


def _earlier_records(path: Path) -> None:
    """An output file as an earlier run of Vigil left it."""
    from vigil.connectors.files import open_output

    with open_output(path, 0) as handle:
        handle.write(b'{"stale": true}\n')


def test_a_store_made_by_recovery_init_starts_the_outputs_empty(tmp_path: Path) -> None:
    # Its first run counted as a resumed one: a stream with nothing to say kept the
    # records of an earlier run into the same folder.
    events, out, store = tmp_path / "e.jsonl", tmp_path / "out", tmp_path / "store"
    events.write_bytes(orjson.dumps(event("acme", "user.session", T0)) + b"\n")
    out.mkdir()
    _earlier_records(out / "deadletter.jsonl")
    assert run_vigil("recovery", "init", str(store)).returncode == 0
    ran = run_vigil(
        "run", "--input", str(events), "--output", str(out), "--recovery-dir", str(store)
    )
    assert ran.returncode == 0, ran.stderr
    assert "recovery store holds no snapshot yet: starting afresh" in ran.stderr
    assert (out / "deadletter.jsonl").read_bytes() == b""


@pytest.mark.parametrize(
    "command",
    [
        ["config", "check"],
        ["tail", "t", "--kafka", "127.0.0.1:9"],
        ["run", "--kafka", "127.0.0.1:9"],
    ],
)
def test_a_kafka_setting_the_client_refuses_is_one_line_before_anything_connects(
    tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # A misspelt librdkafka property stopped tail, produce and run with a traceback, and
    # `config check` said the settings were OK.
    settings = tmp_path / "vigil.toml"
    settings.write_text('[kafka.config]\n"sasl.pasword" = "hunter2"\n')
    where = ["--config", str(settings)] if command[0] != "config" else [str(settings)]
    assert main([*command, *where]) == 2
    assert capsys.readouterr().err == (
        f"vigil {'config check' if command[0] == 'config' else command[0]}: error: "
        "kafka.config: the Kafka client refuses it: No such "
        'configuration property: "sasl.pasword"\n'
    )


def test_version_is_pyprojects(capsys: pytest.CaptureFixture[str]) -> None:
    # Operators and bug reports ask which version runs; vigil/__init__.py had its own copy
    # of the number, which a release could forget to bump.
    import tomllib

    from support import ROOT

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == f"vigil {declared}\n"


def test_a_simulated_stream_past_the_clock_is_warned_of(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # vigil run made a `future` dead letter of each of its events, without a word here.
    import time as clock

    from vigil.base.timeutil import MS_PER_DAY, to_iso

    ahead = to_iso((int(clock.time() * 1000) // MS_PER_DAY + 10) * MS_PER_DAY)
    out = str(tmp_path / "s.jsonl")
    assert (
        main(["simulate", "--tenants", "2", "--days", "1", "--start", ahead, "--output", out]) == 0
    )
    assert capsys.readouterr().err.startswith("vigil simulate: warning: the stream runs to ")
    assert main(["simulate", "--tenants", "2", "--days", "1", "--output", out]) == 0  # in 2026
    assert capsys.readouterr().err == ""


def test_two_file_replays_at_once_each_serve_their_metrics_on_a_port_of_their_own(
    tmp_path: Path,
) -> None:
    lines = [event("acme", "user.session", T0 + n * HOUR) for n in range(48)]
    events = _write_events(tmp_path / "events.jsonl", lines)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}  # the defaults
    runs = [
        subprocess.Popen(
            vigil_command("run", "--input", str(events), "--output", str(tmp_path / name)),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    said = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], said
    ports = {port for _, err in said for port in re.findall(r"metrics=http://[\d.]+:(\d+)/", err)}
    assert len(ports) == 2 and "9464" not in ports, said


def test_a_kafka_run_serves_metrics_on_the_known_port_and_a_replay_on_a_free_one() -> None:
    from vigil.app.cli import _metrics_port

    assert _metrics_port(None, kafka_mode=True, process_id=1) == 9465
    assert _metrics_port(None, kafka_mode=False, process_id=0) == 0  # the system picks
    assert _metrics_port(9500, kafka_mode=False, process_id=2) == 9502
    assert _metrics_port(0, kafka_mode=True, process_id=0) is None  # no endpoint


def test_the_starting_line_names_the_settings_file_and_every_rule_file(tmp_path: Path) -> None:
    ours = tmp_path / "ours.yaml"
    ours.write_text(
        "rules:\n  - id: ours\n    when: {fact: zone_change, zone: red}\n    cooldown: 1d\n"
        "    notification: {severity: fact, channel: c, title: t, body: b}\n"
    )
    config = tmp_path / "vigil.toml"
    config.write_text(f"[rules]\npaths = [{str(ours)!r}]\n")
    events = _write_events(tmp_path / "events.jsonl", [event("acme", "user.session", T0)])
    ran = run_vigil(
        "run", "--input", str(events), "--output", str(tmp_path / "o"), "--config", str(config)
    )
    assert ran.returncode == 0, ran.stderr
    [starting] = [line for line in ran.stderr.splitlines() if " starting " in line]
    assert f"settings={config}" in starting
    assert f"rules=bundled/core.yaml,bundled/lifecycle.yaml,{ours}" in starting
