"""The `vigil` command line: parse, build settings once, hand over, report errors in one line."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, NoReturn, TypeVar

import orjson

from vigil.base.errors import ConfigError, OutputError, VigilError
from vigil.base.logs import configure, escaped, json_configured
from vigil.base.stopping import Interrupted, StopSignal
from vigil.base.version import VERSION

if TYPE_CHECKING:
    from vigil.config.settings import Settings

log = logging.getLogger("vigil")


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line on stderr and exit code 2, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _given(text: str) -> str:
    """An argparse type: not empty (`--kafka ""`, an unset shell variable, fell back to
    file mode, and `--output ""` wrote into the working folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty: give a value")
    return text


def _path(text: str) -> Path:
    return Path(_given(text))


def _topic(text: str) -> str:
    """An argparse type: a name Kafka takes for a topic."""
    from vigil.config.settings import topic_name

    try:
        return topic_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def _at_least(
    minimum: int, kind: type[int] | type[float] = int, most: tuple[int, str] | None = None
) -> Callable[[str], float]:
    """An argparse type: a number no smaller than `minimum`, and with `most` (the limit,
    why) no larger than it (so a bad one is a usage error)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text}")
        if most is not None and value > most[0]:
            raise argparse.ArgumentTypeError(f"must be at most {most[0]} ({most[1]}), got {text}")
        return value

    return parse


# Worker threads of one process share one interpreter, so they add no throughput (README,
# Scale-out), and Bytewax connects every worker with every other: 256 took 50 s and
# 859 MiB for a 1,000-event file, and 100,000 (a typo) used 23 GiB before the kernel
# killed the run.
MAX_WORKERS = 64


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vigil", description="Streaming rules engine for customer-success telemetry."
    )
    parser.add_argument("--version", action="version", version=f"vigil {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_run(commands)
    _add_simulate(commands)
    _add_calibrate(commands)
    _add_backtest(commands)

    produce = commands.add_parser("produce", help="load a JSON Lines file into the telemetry topic")
    produce.add_argument(
        "--input",
        required=True,
        type=_given,
        metavar="PATH",
        help="JSON Lines file, or - for stdin",
    )
    produce.add_argument(
        "--kafka", required=True, type=_given, metavar="BOOTSTRAP", help="Kafka bootstrap servers"
    )
    produce.add_argument(
        "--topic", type=_topic, help="topic (default: kafka.topics.input, cs.telemetry)"
    )
    produce.add_argument("--config", type=_path, metavar="FILE", help="settings file (TOML)")

    tail = commands.add_parser("tail", help="print the records of a topic")
    tail.add_argument("topic", type=_topic, help="the topic to read, e.g. cs.tasks")
    tail.add_argument(
        "--kafka", required=True, type=_given, metavar="BOOTSTRAP", help="Kafka bootstrap servers"
    )
    tail.add_argument(
        "--from-end", action="store_true", help="only records that arrive from now on"
    )
    tail.add_argument(
        "--max", type=_at_least(0), default=None, metavar="N", help="stop after this many records"
    )
    tail.add_argument(
        "--idle-exit",
        type=_at_least(0, float),
        default=None,
        metavar="SECONDS",
        help="stop after this long without a record (default: never)",
    )
    tail.add_argument("--config", type=_path, metavar="FILE", help="settings file (TOML)")

    explain = commands.add_parser("explain", help="one tenant's timeline from a run's outputs")
    explain.add_argument("tenant", type=_given, help="the tenant_id")
    explain_from = explain.add_mutually_exclusive_group(required=True)
    explain_from.add_argument(
        "--output", type=_path, metavar="DIR", help="the folder `vigil run --output` wrote"
    )
    explain_from.add_argument(
        "--kafka", type=_given, metavar="BOOTSTRAP", help="read the output topics of a Kafka run"
    )
    explain.add_argument(
        "--config", type=_path, metavar="FILE", help="settings file (TOML): the topic names"
    )

    recovery = commands.add_parser("recovery", help="the recovery store")
    recovery_commands = recovery.add_subparsers(
        dest="recovery_command", required=True, parser_class=_Parser
    )
    init = recovery_commands.add_parser("init", help="create an empty recovery store")
    init.add_argument("dir", type=_path, help="the folder to create it in")
    init.add_argument(
        "--partitions", type=_at_least(1), default=1, metavar="N", help="store partitions"
    )

    rules = commands.add_parser("rules", help="rule files")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True, parser_class=_Parser)
    check = rules_commands.add_parser("check", help="validate rule files")
    check.add_argument(
        "paths",
        nargs="*",
        type=_given,
        help="rule files or folders, checked with the bundled rules as vigil run loads them "
        "(default: the settings' rules.paths)",
    )
    check.add_argument(
        "--config",
        type=_path,
        metavar="FILE",
        help="settings: rules.paths and the zone cut-offs rules are checked against",
    )

    topics = commands.add_parser("topics", help="Kafka topics")
    topics_commands = topics.add_subparsers(
        dest="topics_command", required=True, parser_class=_Parser
    )
    create = topics_commands.add_parser(
        "create", help="create the input and output topics that are missing (kafka.create)"
    )
    create.add_argument("--kafka", type=_given, metavar="BOOTSTRAP", help="Kafka bootstrap servers")
    create.add_argument("--config", type=_path, metavar="FILE", help="settings file (TOML)")

    config = commands.add_parser("config", help="settings files")
    config_commands = config.add_subparsers(
        dest="config_command", required=True, parser_class=_Parser
    )
    config_check = config_commands.add_parser("check", help="validate a settings file")
    config_check.add_argument(
        "path",
        nargs="?",
        type=_path,
        metavar="FILE",
        help="settings file (default: built-in defaults)",
    )
    return parser


def command_parsers() -> dict[str, argparse.ArgumentParser]:
    """The parser of each command line, by its words: "run", "rules check", ..."""

    def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        found = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return dict(found[0].choices) if found else {}

    leaves = {}
    for name, parser in subcommands(build_parser()).items():
        nested = subcommands(parser)
        leaves.update({f"{name} {sub}": p for sub, p in nested.items()} or {name: parser})
    return leaves


def _add_run(commands: Any) -> None:
    run = commands.add_parser("run", help="process events from a JSON Lines file or Kafka")
    run.add_argument(
        "--input",
        type=_given,
        metavar="PATH",
        help="JSON Lines file of events (plain or gzip), or - for stdin (file mode)",
    )
    run.add_argument(
        "--output", type=_path, metavar="DIR", help="folder for the output .jsonl files (file mode)"
    )
    run.add_argument(
        "--kafka", type=_given, metavar="BOOTSTRAP", help="Kafka bootstrap servers (Kafka mode)"
    )
    run.add_argument(
        "--until-end",
        action="store_true",
        help="Kafka mode: stop at the end of the input topic instead of tailing it",
    )
    run.add_argument(
        "--config",
        type=_path,
        metavar="FILE",
        help="settings file (TOML); default: built-in defaults",
    )
    run.add_argument(
        "--recovery-dir",
        type=_path,
        metavar="DIR",
        help="keep state and input offsets here to resume",
    )
    run.add_argument(
        "--snapshot-interval",
        type=_given,
        metavar="DURATION",
        help="how often to snapshot, e.g. 10s",
    )
    run.add_argument(
        "--workers",
        type=_at_least(1, most=(MAX_WORKERS, "threads of one process; to scale, run processes")),
        default=1,
        metavar="N",
        help="worker threads in this process",
    )
    run.add_argument(
        "--addresses",
        type=_given,
        metavar="HOST:PORT,...",
        help="host:port of every process of a cluster, comma-separated",
    )
    run.add_argument(
        "--process-id",
        type=_at_least(0),
        default=0,
        metavar="I",
        help="this process's index in --addresses",
    )
    run.add_argument("--quiet", action="store_true", help="print no summary")


def _add_calibrate(commands: Any) -> None:
    cal = commands.add_parser(
        "calibrate", help="check a run's scores, signals and rules against outcomes"
    )
    cal.add_argument(
        "--outputs", type=_path, metavar="DIR", help="the output folder of a file run to check"
    )
    cal.add_argument(
        "--input",
        type=_path,
        metavar="FILE",
        help="or a JSON Lines file of events: Vigil runs on it first (file mode, no sink)",
    )
    cal.add_argument(
        "--config",
        type=_path,
        metavar="FILE",
        help="the settings of that run (TOML); default: built-in defaults",
    )
    cal.add_argument(
        "--outcomes",
        type=_path,
        metavar="FILE",
        help="CSV of tenant_id,outcome,date; outcome events in --input count too",
    )
    cal.add_argument(
        "--horizon",
        default="0d",
        metavar="DURATION",
        help="take each score this long before its outcome, e.g. 30d (default 0d)",
    )
    cal.add_argument(
        "--lookback",
        default="30d",
        metavar="DURATION",
        help="a signal or rule counts as flagging an account if it fired this long before "
        "the score's cutoff (default 30d)",
    )
    cal.add_argument(
        "--report", type=_path, metavar="FILE", help="also write an HTML report with pictures"
    )
    cal.add_argument(
        "--fit",
        type=_path,
        metavar="FILE",
        help="fit the components' weights and scales to the outcomes, and write them as a "
        "settings file (TOML) with the cross-validated AUC they reached",
    )


def _add_backtest(commands: Any) -> None:
    back = commands.add_parser(
        "backtest", help="what candidate rules and settings would have done over a history"
    )
    back.add_argument(
        "--input", type=_path, required=True, metavar="FILE", help="JSON Lines file of events"
    )
    back.add_argument(
        "--config",
        type=_path,
        metavar="FILE",
        help="the current settings (TOML); default: built-in defaults",
    )
    back.add_argument(
        "--candidate-config",
        type=_path,
        metavar="FILE",
        help="the settings to try (default: the current ones)",
    )
    back.add_argument(
        "--candidate-rules",
        type=_path,
        action="append",
        default=[],
        metavar="PATH",
        help="a rule file or folder to try besides the candidate settings' rules (repeatable)",
    )


def _add_simulate(commands: Any) -> None:
    sim = commands.add_parser("simulate", help="write a simulated telemetry stream")
    sim.add_argument(
        "--tenants", type=_at_least(1), default=200, metavar="N", help="how many tenants"
    )
    sim.add_argument(
        "--days", type=_at_least(1), default=28, metavar="D", help="how many days of events"
    )
    sim.add_argument(
        "--seed", type=int, default=7, metavar="S", help="the same seed writes the same stream"
    )
    sim.add_argument(
        "--start",
        default=None,
        metavar="RFC3339",
        help="the first day's midnight (default 2026-03-02T00:00:00Z)",
    )
    sim.add_argument(
        "--output", type=_given, default="-", metavar="PATH", help="file to write, or - for stdout"
    )
    sim.add_argument(
        "--manifest",
        type=_path,
        metavar="FILE",
        help="also write which tenant got which scenario (JSON)",
    )
    sim.add_argument(
        "--limit", type=_at_least(0), default=None, metavar="N", help="stop after this many lines"
    )
    sim.add_argument(
        "--outcomes",
        type=_path,
        metavar="FILE",
        help="also write which tenants churn or renew at the end (CSV: tenant_id,outcome,date)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "run": _run,
        "simulate": _simulate,
        "produce": _produce,
        "tail": _tail,
        "explain": _explain,
        "recovery": _recovery_init,
        "rules": _rules_check,
        "config": _config_check,
        "topics": _topics_create,
        "calibrate": _calibrate,
        "backtest": _backtest,
    }
    try:
        with StopSignal():  # SIGTERM stops a command as Ctrl-C does (`vigil run`: see _run)
            return handlers[args.command](args)
    except VigilError as exc:
        if json_configured():  # `vigil run` with log.format = "json", settings read
            log.error("failed", extra={"error": str(exc)})
        else:
            said = f"vigil {_command_words(args)}: error: {exc}"
            print(escaped(said, keep="\n"), file=sys.stderr)
        return exc.exit_code
    except Interrupted as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0  # e.g. `vigil simulate | head`


def _calibrate(args: argparse.Namespace) -> int:
    from vigil.app.evaluate import calibrate_command  # scikit-learn loads only for this

    return calibrate_command(args)


def _backtest(args: argparse.Namespace) -> int:
    from vigil.app.evaluate import backtest_command

    return backtest_command(args)


def _command_words(args: argparse.Namespace) -> str:
    """The command as typed: "run", "topics create"."""
    sub = getattr(args, f"{args.command}_command", None)
    return f"{args.command} {sub}" if sub else str(args.command)


def _kafka_mode(args: argparse.Namespace, bootstrap: str | None) -> bool:
    """Kafka mode unless the command line names a file or a folder: a replay run beside a
    deployment's settings (which name its broker) must not read and write its topics."""
    files = args.input is not None or args.output is not None
    if files and args.kafka is not None:
        raise ConfigError(
            "--input and --output are for file mode, --kafka for Kafka mode: not both"
        )
    return not files and bootstrap is not None


def _no_idle_flags(args: argparse.Namespace, kafka_mode: bool, store: str | None) -> None:
    """Refuse a flag that would do nothing here, rather than let it seem to work."""
    if args.until_end and not kafka_mode:
        raise ConfigError("--until-end is for Kafka mode: a file run always stops at its end")
    if args.snapshot_interval and store is None:
        raise ConfigError(
            "--snapshot-interval needs a recovery store (--recovery-dir or recovery.dir): "
            "without one nothing is snapshotted"
        )


def _run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.kafka:
        overrides.setdefault("kafka", {})["bootstrap"] = args.kafka
    if args.until_end:
        overrides.setdefault("kafka", {})["tail"] = False
    if args.recovery_dir:
        overrides.setdefault("recovery", {})["dir"] = str(args.recovery_dir)
    if args.snapshot_interval:
        overrides.setdefault("recovery", {})["snapshot_interval"] = args.snapshot_interval
    return overrides


def _run(args: argparse.Namespace) -> int:
    from vigil.app.runner import execute, open_files_for, prepare_recovery_dir
    from vigil.config.settings import UNREAD_ENV, load_settings, unread_env
    from vigil.connectors.stoppable import StoppableSource
    from vigil.flows.health import build_flow
    from vigil.ops.metrics import Metrics
    from vigil.ops.observe import Readiness, StatusServer

    settings = load_settings(args.config, overrides=_run_overrides(args))
    configure(settings.log.level, settings.log.format)
    for variable, setting in unread_env(os.environ):
        log.warning(UNREAD_ENV, extra={"variable": variable, "setting": setting})
    kafka_mode = _kafka_mode(args, settings.kafka.bootstrap)
    _no_idle_flags(args, kafka_mode, settings.recovery.dir)
    addresses = _cluster_addresses(args.addresses, args.process_id)
    metrics, readiness = Metrics(known_types=settings.catalogue.full.types), Readiness()
    if kafka_mode:
        source, sink = _kafka_io(settings, metrics, readiness)
    else:
        _apart(args.output, settings.recovery.dir)
        source, sink = _file_io(args, settings, metrics, readiness)
    stop = StopSignal(graceful=True)
    # Loads and checks the rules. Shards snapshot their state only for a recovery store.
    flow = build_flow(
        settings,
        StoppableSource(source, stop),
        sink,
        metrics,
        snapshots=settings.recovery.dir is not None,
    )
    locks = _lock_folders(settings, args, kafka_mode)  # held until this process ends
    if settings.recovery.dir is not None:  # before the store is marked as this version's
        _check_stored_input(Path(settings.recovery.dir), source, settings, kafka_mode)
    fresh = _prepare_recovery(settings, prepare_recovery_dir)
    if settings.recovery.dir is not None:
        open_files_for(Path(settings.recovery.dir))
    if fresh and not kafka_mode:
        # Every process, as each may have its own --output folder. A shared folder is safe
        # too: no process writes before all have connected, and each empties first.
        sink.start_empty()
    server = None
    port = _metrics_port(settings.metrics.port, kafka_mode, args.process_id)
    if port is not None:
        server = StatusServer(metrics, readiness, settings.metrics.host, port)
    log.info("starting", extra=_start_info(args, settings, kafka_mode, server))
    progress = _progress(args, metrics, source, kafka_mode)
    started = time.perf_counter()
    try:
        with stop:
            execute(
                flow,
                settings.recovery,
                workers=args.workers,
                addresses=addresses,
                process_id=args.process_id,
            )
    # Bytewax wraps what a step raised (a second signal can also come straight through).
    except (Exception, Interrupted) as exc:
        readiness.mark_failed()
        interrupted = _cause(exc, Interrupted)
        if interrupted is not None:  # a second signal: stopped mid-batch, as a kill would
            log.warning("stopped at once", extra={"signal": str(interrupted)})
            return interrupted.exit_code
        cause = _cause(exc, VigilError)
        if cause is None:
            raise
        log.error("stopped", extra={"error": str(cause)})
        if not json_configured():  # a JSON log has just said it
            print(escaped(f"vigil run: error: {cause}", keep="\n"), file=sys.stderr)
        return 1
    finally:
        if progress is not None:
            progress.stop()
        if server is not None:
            server.close()
        for lock in locks:
            lock.close()
    seconds = round(time.perf_counter() - started, 1)
    if stop.exit_code is not None:
        log.warning(
            "stopped", extra={"signal": stop.name, "seconds": seconds, **_resume_hint(settings)}
        )
    else:
        log.info("finished", extra={"seconds": seconds})
    if not args.quiet:
        _print_summary(args, metrics, time.perf_counter() - started, kafka_mode)
    return stop.exit_code or 0


def _metrics_port(configured: int | None, kafka_mode: bool, process_id: int) -> int | None:
    """The port to serve metrics on; 0 binds a free one; None: no endpoint. A file replay
    is a batch job: two side by side must not fight over one port, and Prometheus scrapes
    long-running processes, so it takes whatever port is free unless one is configured."""
    from vigil.config.settings import METRICS_PORT

    if configured is None:
        return METRICS_PORT + process_id if kafka_mode else 0
    return configured + process_id if configured else None


def _check_stored_input(store: Path, source: Any, settings: Any, kafka_mode: bool) -> None:
    """A store that was reading another input is said here, in one line: Bytewax would
    panic on the position of a partition this run does not list."""
    from vigil.app.runner import stored_input_parts
    from vigil.base.words import counted
    from vigil.flows.health import INPUT_STEP_ID

    stored = stored_input_parts(store, INPUT_STEP_ID)
    if not stored or source.resumes_from(stored):
        return
    if kafka_mode:
        held = counted(source.partition_count(), "partition")
        reading = f"topic {source.topic} with {held} (kafka.topics.input)"
    else:
        reading = source.path
    msg = f"recovery store {store} was reading {', '.join(sorted(stored))}, not {reading}"
    raise ConfigError(f"{msg}: resume with that input, or use a new store")


def _apart(output: Path | None, store: str | None) -> None:
    """Refuse an --output that is the recovery store (it was locked twice, and "in use"
    by this run) or inside it (the store then "holds other files" from the next run on);
    checked before the output folder is made."""
    if output is None or store is None:
        return
    store_path = Path(store).resolve()
    if store_path == output.resolve():
        msg = f"--output and the recovery store are the same folder, {store}: give each its own"
        raise ConfigError(msg)
    if store_path in output.resolve().parents:
        msg = f"--output {output} is inside the recovery store {store}: give it its own"
        raise ConfigError(msg)


def _lock_folders(settings: Any, args: argparse.Namespace, kafka_mode: bool) -> list[IO[bytes]]:
    """This process's locks on the recovery store and the output folder (see vigil.base.locks)."""
    from vigil.base.locks import hold

    store = settings.recovery.dir
    locks: list[IO[bytes]] = []
    try:
        if store is not None:
            locks.append(hold(Path(store), args.process_id, "recovery store"))
        if not kafka_mode:
            locks.append(hold(Path(args.output), args.process_id, "output folder"))
    except VigilError:
        for lock in locks:
            lock.close()
        raise
    return locks


def _resume_hint(settings: Any) -> dict[str, str]:
    if settings.recovery.dir is None:
        return {"resume": "no recovery store: the same command starts over"}
    return {
        "resume": f"the same command resumes after the last event read ({settings.recovery.dir})"
    }


def _cluster_addresses(text: str | None, process_id: int) -> list[str] | None:
    """--addresses as host:port items, checked here: a bad one fails deep in Bytewax, and
    a --process-id past the end waits forever for peers that are not listed."""
    if not text:
        if process_id:
            raise ConfigError("--process-id needs --addresses (the cluster's host:port list)")
        return None
    addresses = [item.strip() for item in text.split(",")]
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"--addresses: {address!r} is not host:port")
    if process_id >= len(addresses):
        msg = f"--process-id {process_id} is past the end of --addresses ({len(addresses)} listed)"
        raise ConfigError(msg)
    if twice := sorted({address for address in addresses if addresses.count(address) > 1}):
        # Each process listens on its own; a run waited forever for a peer that is itself.
        raise ConfigError(f"--addresses lists {', '.join(twice)} more than once")
    return addresses


def _prepare_recovery(settings: Any, prepare: Any) -> bool:
    """True for a fresh run: no recovery store, one created just now, or one with no
    snapshot yet (`vigil recovery init`'s, or another process's of this cluster)."""
    from vigil.app.runner import has_committed
    from vigil.engine.state import state_layout

    store = settings.recovery.dir
    if store is None:
        return True
    if prepare(Path(store), layout=state_layout(settings)):
        log.info("recovery store created", extra={"dir": store})
        return True
    if not has_committed(Path(store)):
        log.info("recovery store holds no snapshot yet: starting afresh", extra={"dir": store})
        return True
    log.info("resuming from recovery store", extra={"dir": store})
    return False


def _start_info(
    args: argparse.Namespace, settings: Any, kafka_mode: bool, server: Any
) -> dict[str, Any]:
    from vigil.rules.loader import DEFAULT_RULES_DIR, configured_paths, rule_files

    files = rule_files(configured_paths(settings))
    info: dict[str, Any] = {
        "mode": "kafka" if kafka_mode else "file",
        "workers": args.workers,
        "settings": str(args.config or "built-in defaults"),
        "rules": ",".join(
            f"bundled/{path.name}" if path.parent == DEFAULT_RULES_DIR else str(path)
            for path in files
        ),
    }
    if kafka_mode:
        info.update(
            bootstrap=settings.kafka.bootstrap,
            input=settings.kafka.topics.input,
            kafka_config=settings.kafka.masked_config(),
            tail=settings.kafka.tail,
        )
    else:
        info.update(input=args.input, output=str(args.output))
    if server is not None:
        info["metrics"] = f"http://{server.address}/metrics"
    return info


def _progress(args: argparse.Namespace, metrics: Any, source: Any, kafka_mode: bool) -> Any:
    """A progress line for a file replay in a terminal (never with --quiet)."""
    from vigil.ops.progress import Progress

    if kafka_mode or args.quiet or not sys.stderr.isatty():
        return None
    from vigil.connectors.files import is_gzip

    # A pipe has no size, and a gzip file's tells nothing of how much it will decompress to.
    sized = args.input != "-" and Path(args.input).is_file() and not is_gzip(args.input)
    total = Path(args.input).stat().st_size if sized else None
    return Progress(metrics, lambda: source.bytes_read, total).start()


def _file_io(
    args: argparse.Namespace, settings: Any, metrics: Any, readiness: Any
) -> tuple[Any, Any]:
    from vigil.connectors.files import STDIN, JsonLinesSink, JsonLinesSource
    from vigil.flows.health import STREAMS

    if args.input is None or args.output is None:
        raise ConfigError("file mode needs --input and --output (or pass --kafka BOOTSTRAP)")
    if args.input != STDIN:
        _reachable("--input", Path(args.input))
    if args.input != STDIN and Path(args.input).is_dir():
        raise ConfigError(f"--input: {args.input} is a folder; give a JSON Lines file")
    _not_a_system_folder(Path(args.output))
    _writable_dir(args.output)
    for stream in STREAMS:
        _a_file_if_there(Path(args.output) / f"{stream}.jsonl")
    if args.input != STDIN:
        _not_an_output(args.input, Path(args.output), STREAMS)
        _utf8(args.input)
    else:
        _typed_input_hint()
    source = JsonLinesSource.configured(args.input, settings, readiness.mark_ready, metrics)
    return source, JsonLinesSink(args.output, STREAMS, metrics)


def _typed_input_hint() -> None:
    """`--input -` with nothing piped in waits for typing: say so, and how it ends."""
    if sys.stdin.isatty():
        log.warning("reading events typed on the terminal: one JSON object a line, Ctrl-D ends")


def _utf8(path: str) -> None:
    """Refuse a file of UTF-16 or UTF-32 text (its every line would be a dead letter)."""
    from vigil.connectors.files import not_utf8, not_utf8_problem

    if encoding := not_utf8(path):
        raise ConfigError(not_utf8_problem(path, encoding))


def _kafka_io(settings: Any, metrics: Any, readiness: Any) -> tuple[Any, Any]:
    from vigil.connectors.kafka import (
        KafkaEventSource,
        KafkaOutputSink,
        check_topics,
        create_topics,
    )

    kafka = settings.kafka
    config = kafka.client_config()
    topics = kafka.topics
    if kafka.create.at_start:
        made = [topic for topic, new in _create_topics(settings, create_topics).items() if new]
        if made:
            log.info("created topics", extra={"topics": ",".join(made)})
    partitions = check_topics(
        config,
        kafka.connect_timeout / 1000,
        read=[topics.input],
        write=list(topics.outputs().values()),
    )
    log.info(
        "connected to Kafka",
        extra={"bootstrap": kafka.bootstrap, "input_partitions": partitions[topics.input]},
    )
    source = KafkaEventSource(
        config,
        topics.input,
        settings.input.allowed_lateness,
        batch_size=settings.input.batch_size,
        tail=kafka.tail,
        connect_timeout=kafka.connect_timeout / 1000,
        idle_after=kafka.idle_after / 1000,
        on_ready=readiness.mark_ready,
        metrics=metrics,
        max_future=settings.input.max_future,
        max_bytes=settings.input.max_event_bytes,
        limits=settings.input.limits,
        catalogue=settings.catalogue.full,
    )
    sink = KafkaOutputSink(config, topics.outputs(), kafka.delivery_timeout / 1000, metrics)
    return source, sink


E = TypeVar("E", bound=BaseException)


def _cause(exc: BaseException, kind: type[E]) -> E | None:
    """The first `kind` in the chain of causes of what Bytewax raised."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _print_summary(
    args: argparse.Namespace, metrics: Any, elapsed: float, kafka_mode: bool
) -> None:
    from vigil.base.streams import TASKS
    from vigil.ops.summary import RunSummary, format_summary, summarize

    summary = RunSummary() if kafka_mode else summarize(args.output)
    summary.events = int(sum(metrics.by_label("vigil_events_total", "type").values()))
    summary.duplicates = int(metrics.value("vigil_duplicate_events_total"))
    summary.unknown_types = int(metrics.value("vigil_unknown_event_types_total"))
    summary.blank_lines = int(metrics.value("vigil_blank_lines_total"))
    summary.forgotten = int(metrics.value("vigil_tenants_forgotten_total"))
    summary.keys_refused.update(_counts(metrics, "vigil_tenant_keys_refused_total", "map"))
    if kafka_mode:  # no output files to read back: this run's counters say it
        summary.dead_letters.update(_counts(metrics, "vigil_dead_letters_total", "reason"))
        summary.signals.update(_counts(metrics, "vigil_signals_total", "signal"))
        for (rule, stream), count in metrics.actions_by_rule().items():
            if stream == TASKS:
                summary.tasks[rule] += count
            else:
                summary.notifications += count
        summary.zones.update(_counts(metrics, "vigil_tenants_by_zone", "zone"))
    else:  # a file ends where a live run goes on: say what it had not applied yet
        summary.waiting = int(metrics.value("vigil_events_waiting"))
    _say(format_summary(summary, elapsed))


def _counts(metrics: Any, name: str, label: str) -> dict[str, int]:
    return {key: int(value) for key, value in metrics.by_label(name, label).items()}


def _not_an_output(given: str, out: Path, streams: Sequence[str]) -> None:
    """A run empties its output files before it reads: an input among them is lost."""
    from vigil.connectors.files import same_file

    for stream in streams:
        written = out / f"{stream}.jsonl"
        if same_file(given, str(written)):
            msg = f"--input {given} is {written.name} of --output {out}, which the run writes"
            raise ConfigError(f"{msg}: it would be emptied before it is read")


def _a_file_if_there(path: Path) -> None:
    """An output is written as a file, cut back to the last snapshot on resume: a folder
    in its place was a traceback, a named pipe (to stream the records on) hung the run
    once its reader had seen the end of the file emptied at start, and /dev/null failed
    mid-run."""
    if not path.is_symlink() and (not path.exists() or path.is_file()):
        return
    if path.is_symlink():  # whose target a run would empty, whatever it is
        kind = "a symbolic link"
    elif path.is_dir():
        kind = "a folder"
    elif path.is_fifo():
        kind = "a named pipe"
    elif path.is_char_device() or path.is_block_device():
        kind = "a device"
    else:
        kind = "not a regular file"
    msg = (
        f"--output: {path} is {kind}: each output is a file, which a resumed run cuts back "
        "to its last snapshot (to pass records on as they come, follow it with tail -F)"
    )
    raise ConfigError(msg)


def _reachable(option: str, path: Path) -> None:
    """A one-line error for a path that cannot be looked at: missing, a loop of symbolic
    links, behind a folder that may not be read."""
    try:
        path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{option}: no such file: {path}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"{option}: {path} is a loop of symbolic links") from None
        raise ConfigError(f"{option}: cannot reach {path}: {exc.strerror or exc}") from None


# The system's own folders: no output goes in them, nor anywhere under the first ones.
_SYSTEM_TREES: tuple[str, ...] = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64")
_SYSTEM_TREES += ("/libx32", "/proc", "/run", "/sbin", "/sys", "/usr")
_SYSTEM_FOLDERS = ("/", "/home", "/media", "/mnt", "/opt", "/root", "/srv", "/tmp", "/var")


def _not_a_system_folder(path: Path) -> None:
    """Refuse an --output that is the file system's root or a system folder: a run writes
    and empties files named after its streams there."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError):
        return  # the checks after this one say what is wrong with it
    trees = [Path(tree) for tree in _SYSTEM_TREES]
    if str(real) in _SYSTEM_FOLDERS or any(real == t or t in real.parents for t in trees):
        msg = f"--output {path} is a system folder ({real}): give Vigil a folder of its own"
        raise ConfigError(msg)


def _writable_dir(path: Path) -> None:
    if path.is_symlink() and not path.exists():  # a dangling link, or a loop of them
        _reachable("--output", path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--output: {path} is a file, not a folder")  # not "File exists"
    try:
        path.mkdir(parents=True, exist_ok=True)
        # A file of its own, gone on close: the processes of a cluster sharing one folder
        # probed one name, and one's unlink made the other's fail ("No such file").
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(f"--output: cannot write to {path}: {exc.strerror or exc}") from exc


def _simulate(args: argparse.Namespace) -> int:
    from itertools import islice

    from vigil.base.timeutil import MS_PER_DAY, parse_rfc3339
    from vigil.intake.outcomes import outcomes_csv
    from vigil.intake.simulate import DEFAULT_START, FleetPlan, generate, outcomes
    from vigil.ops.progress import bar, logs_above

    try:
        start = parse_rfc3339(DEFAULT_START if args.start is None else args.start)
    except ValueError as exc:
        raise ConfigError(f"--start: {exc}") from exc
    try:
        plan = FleetPlan(args.tenants, args.days, args.seed, start=start)
    except ValueError as exc:
        raise ConfigError(f"--start and --days: {exc}") from exc
    _future_warning(start + args.days * MS_PER_DAY)
    days = bar(sys.stderr, total=args.days, unit="day") if sys.stderr.isatty() else None
    lines, scenarios = generate(plan, on_day=None if days is None else days.update)
    if args.limit is not None:
        lines = islice(lines, args.limit)
    with ExitStack() as files:
        if days is not None:
            files.enter_context(logs_above(days))
        # Every file is opened before the first line, so a bad path costs no generating.
        out, out_said = sys.stdout.buffer, "cannot write to stdout"
        if args.output != "-":
            out = _create(Path(args.output), "--output", files)
            out_said = f"--output: cannot write {args.output}"
        manifest = None if args.manifest is None else _create(args.manifest, "--manifest", files)
        ends = None if args.outcomes is None else _create(args.outcomes, "--outcomes", files)
        with _writing(out_said):
            for line in lines:
                out.write(line + b"\n")
            out.flush()
            if out is not sys.stdout.buffer:
                out.close()
        if manifest is not None:
            with _writing(f"--manifest: cannot write {args.manifest}"):
                manifest.write(orjson.dumps(scenarios, option=orjson.OPT_INDENT_2))
                manifest.close()
        if ends is not None:
            with _writing(f"--outcomes: cannot write {args.outcomes}"):
                ends.write(outcomes_csv(outcomes(plan)))
                ends.close()
    return 0


def _future_warning(end: int) -> None:
    """Say so when a simulated stream reaches past now: `vigil run` takes such events as
    `future` dead letters (the stream would seem to do nothing)."""
    from vigil.base.timeutil import to_iso

    if end > time.time() * 1000:
        print(
            f"vigil simulate: warning: the stream runs to {to_iso(end)}, past the clock: vigil "
            'run makes dead letters of events dated ahead of it unless input.max_future = "off"',
            file=sys.stderr,
        )


def _create(path: Path, flag: str, files: ExitStack) -> BinaryIO:
    """`path` opened for writing, closed when `files` ends if no one closed it before.
    The caller closes it itself, inside `_writing`, so that an error shows there."""
    try:
        opened = path.open("wb")
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot write {path}: {exc.strerror or exc}") from exc
    files.callback(_close_after_failure, opened)
    return opened


def _close_after_failure(opened: IO[bytes]) -> None:
    # Only a file a failed write left open gets here, and its close fails again on the
    # bytes still buffered: that error is the one already reported.
    with suppress(OSError):
        opened.close()


@contextmanager
def _writing(said: str) -> Iterator[None]:
    """Writing a command's result: a refusal (a full disk, a quota) becomes one line,
    `said: reason`, and exit code 1. A reader that left (`| head`) is no error."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(f"{said}: {exc.strerror or exc}") from exc


def _say(text: str) -> None:
    """Print a line of a command's result, flushed at once so a refusal shows here. It
    may quote input (tenant ids, reasons naming features): no control character but a
    line break or a tab reaches the terminal."""
    with _writing("cannot write to stdout"):
        print(escaped(text, keep="\n\t"), flush=True)


def _settings(command: str, path: Path | None, overrides: dict[str, Any] | None = None) -> Settings:
    """`load_settings`, warning on stderr of the `VIGIL_` variables that are not read."""
    from vigil.config.settings import UNREAD_ENV, load_settings, unread_env

    settings = load_settings(path, overrides=overrides)
    for variable, setting in unread_env(os.environ):
        warning = f"vigil {command}: warning: {UNREAD_ENV}: {variable} (meant {setting}?)"
        print(warning, file=sys.stderr)
    return settings


def _kafka_settings(command: str, args: argparse.Namespace) -> Settings:
    """The settings of a command that talks to Kafka: the Kafka client's own lines (a
    broker away, a retry) and the errors then follow log.level and log.format, as in
    vigil run (unconfigured, the client's lines came out bare, JSON asked or not)."""
    settings = _settings(command, args.config, {"kafka": {"bootstrap": args.kafka}})
    configure(settings.log.level, settings.log.format)
    return settings


def _topics_create(args: argparse.Namespace) -> int:
    from vigil.connectors.kafka import create_topics

    settings = _kafka_settings("topics create", args)
    created = _create_topics(settings, create_topics)
    for topic, made in created.items():
        _say(f"{topic:<24} {'created' if made else 'exists'}")
    return 0


def _create_topics(settings: Settings, create: Callable[..., dict[str, bool]]) -> dict[str, bool]:
    """The input and output topics that are missing, created as kafka.create says."""
    kafka = settings.kafka
    return create(
        kafka.client_config(),
        [kafka.topics.input, *kafka.topics.outputs().values()],
        kafka.create.partitions,
        kafka.create.replication,
        kafka.connect_timeout / 1000,
    )


def _produce(args: argparse.Namespace) -> int:
    from vigil.connectors.kafka_tools import ProduceInterrupted, produce_file

    settings = _kafka_settings("produce", args)
    topic = args.topic or settings.kafka.topics.input
    if args.input != "-":
        _utf8(args.input)
    else:
        _typed_input_hint()
    try:
        count = produce_file(settings.kafka, args.input, topic)
    except ProduceInterrupted as stopped:
        print(f"vigil produce: interrupted: {stopped} by {topic}", file=sys.stderr)
        return 130
    _say(f"produced {count:,} messages to {topic}")
    return 0


def _tail(args: argparse.Namespace) -> int:
    from vigil.connectors.kafka_tools import tail_topic

    settings = _kafka_settings("tail", args)
    for value in tail_topic(
        settings.kafka, args.topic, from_end=args.from_end, limit=args.max, idle_exit=args.idle_exit
    ):
        _say(value.decode("utf-8", errors="replace"))
    return 0


def _explain(args: argparse.Namespace) -> int:
    from vigil.app.explain import from_files, from_topics, render, timeline

    configure()  # a warning about the files read goes to stderr, apart from the story
    if args.kafka is not None:
        kafka = _kafka_settings("explain", args).kafka
        records, where = from_topics(kafka, args.tenant), f"the output topics at {args.kafka}"
    else:
        if args.config is not None:  # the files are named by --output, not by settings
            raise ConfigError("--config names the output topics: it goes with --kafka")
        records, where = from_files(args.output, args.tenant), str(args.output)
    _say(render(timeline(records, args.tenant, where)))
    return 0


def _recovery_init(args: argparse.Namespace) -> int:
    from vigil.app.runner import open_files_for, prepare_recovery_dir

    open_files_for(args.dir, args.partitions)  # a store no run could open is no use
    if not prepare_recovery_dir(args.dir, args.partitions):
        raise ConfigError(f"{args.dir} already holds a recovery store; remove it to start afresh")
    _say(f"recovery store created in {args.dir} ({args.partitions} partitions)")
    return 0


def _rules_check(args: argparse.Namespace) -> int:
    from vigil.base.words import counted
    from vigil.rules.facts import FACT_KINDS, SIGNAL, fact_fields
    from vigil.rules.loader import configured_paths, configured_rules, describe_rules, rule_files
    from vigil.rules.signals import signal_kinds

    settings = _settings("rules", args.config)  # the rules are checked as `vigil run` does
    paths = args.paths or settings.rules.paths
    rules = configured_rules(settings, paths)
    kinds = signal_kinds(settings.signals.declared)
    files = rule_files(configured_paths(settings, paths))
    _say(f"{counted(len(rules), 'rule')} OK in {counted(len(files), 'file')}:")
    for line in describe_rules(rules):
        _say(f"  {line}")
    _say("fields a template can use, by fact:")
    for kind in FACT_KINDS:
        _say(f"  {kind}: {', '.join(sorted(fact_fields(kind, None, kinds)))}")  # every one
        for name, signal in kinds.items() if kind == SIGNAL else ():
            _say(f"    {name} adds: {', '.join(sorted(signal.evidence))}")
    return 0


def _config_check(args: argparse.Namespace) -> int:
    from vigil.config.settings import setting_variables
    from vigil.connectors.kafka import refusal

    settings = _settings("config", args.path)
    if settings.kafka.config and (refused := refusal(settings.kafka.config)):
        raise ConfigError(refused)
    where = str(args.path or "built-in defaults")
    if setting_variables(os.environ):
        where += " + VIGIL_* environment"  # they are in what is printed below
    _say(f"settings OK ({where}):")
    _say(orjson.dumps(settings.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
