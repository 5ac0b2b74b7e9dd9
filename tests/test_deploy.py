"""docker-compose.yml, the Dockerfile and the Prometheus config agree with each other,
with Vigil's defaults and with the docs (there is no Docker engine to run them here)."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from vigil.config.settings import METRICS_PORT

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


SERVICES = {"kafka", "vigil", "prometheus", "alertmanager", "grafana"}


def test_the_stack_has_kafka_vigil_prometheus_alertmanager_and_grafana() -> None:
    services = compose()["services"]
    assert set(services) == SERVICES
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.1")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, single node
    assert services["vigil"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["vigil"]["build"] == "."
    assert (ROOT / "Dockerfile").read_text().count('ENTRYPOINT ["vigil"]') == 1


def test_vigil_makes_its_topics_at_start() -> None:
    from vigil.config.settings import load_settings

    environment = compose()["services"]["vigil"]["environment"]
    settings = load_settings(None, env={k: str(v) for k, v in environment.items()})
    assert settings.kafka.create.at_start
    assert (
        compose()["services"]["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    )


def test_vigil_runs_in_kafka_mode_with_its_recovery_store_on_a_volume() -> None:
    vigil = compose()["services"]["vigil"]
    command = vigil["command"]
    assert command[:3] == ["run", "--kafka", "kafka:9092"]
    store = command[command.index("--recovery-dir") + 1]
    assert any(volume.endswith(f":{store}") for volume in vigil["volumes"])
    assert (
        "kafka:9092" in compose()["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )


def test_settings_and_rules_are_mounted_not_baked_into_the_image() -> None:
    from vigil.config.settings import load_settings

    vigil = compose()["services"]["vigil"]
    config = vigil["command"][vigil["command"].index("--config") + 1]
    assert f"./config/vigil.toml:{config}:ro" in vigil["volumes"]
    environment = {k: str(v) for k, v in vigil["environment"].items()}
    loaded = load_settings(None, env=environment).rules
    [rules] = loaded.paths
    assert f"./rules/default:{rules}:ro" in vigil["volumes"] and loaded.replace_bundled
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY config" not in dockerfile and "--config" not in dockerfile.split("CMD")[-1]


def test_every_file_the_stack_mounts_is_in_the_repository() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), (name, source)


def test_kafka_vigil_prometheus_alertmanager_and_grafana_keep_their_data_on_volumes() -> None:
    stack = compose()
    services = stack["services"]
    where = {
        "kafka": services["kafka"]["environment"]["KAFKA_LOG_DIRS"],
        "prometheus": "/prometheus",
        "alertmanager": "/alertmanager",
        "grafana": "/var/lib/grafana",
        "vigil": "/var/lib/vigil/recovery",
    }
    for name, path in where.items():
        named = [v.split(":")[0] for v in services[name]["volumes"] if v.endswith(f":{path}")]
        assert named and named[0] in stack["volumes"], (name, path)


def test_prometheus_scrapes_vigils_metrics_port() -> None:
    vigil = compose()["services"]["vigil"]
    port = int(vigil["environment"]["VIGIL_METRICS__PORT"])
    assert port == METRICS_PORT
    assert f"127.0.0.1:{port}:{port}" in vigil["ports"]
    prometheus = yaml.safe_load((ROOT / "config" / "prometheus.yml").read_text())
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"vigil:{port}"]
    mounted = compose()["services"]["prometheus"]["volumes"][0]
    assert mounted.startswith("./config/prometheus.yml:")


def test_prometheus_sends_its_alerts_to_alertmanager() -> None:
    prometheus = yaml.safe_load((ROOT / "config" / "prometheus.yml").read_text())
    [target] = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert target == "alertmanager:9093"
    manager = compose()["services"]["alertmanager"]
    assert "./config/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in manager["volumes"]
    config = yaml.safe_load((ROOT / "config" / "alertmanager.yml").read_text())
    receivers = {receiver["name"] for receiver in config["receivers"]}
    routes = [config["route"], *config["route"].get("routes", [])]
    assert all(route["receiver"] in receivers for route in routes)


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (ROOT / "config" / "grafana" / "dashboards" / "vigil.json").read_text()
    )
    return loaded


def test_grafana_provisions_the_dashboard_and_its_prometheus() -> None:
    grafana = compose()["services"]["grafana"]
    provisioning = ROOT / "config" / "grafana" / "provisioning"
    assert "./config/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090" and source["type"] == "prometheus"
    [provider] = yaml.safe_load((provisioning / "dashboards" / "vigil.yml").read_text())[
        "providers"
    ]
    folder = provider["options"]["path"]
    assert f"./config/grafana/dashboards:{folder}:ro" in grafana["volumes"]
    for panel in _dashboard()["panels"]:
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"], panel["title"]


def test_the_dashboard_asks_only_for_what_vigil_serves_and_shows_what_operators_watch() -> None:
    import promql_parser as promql

    served = _served_metrics()
    shown: set[str] = set()
    for panel in _dashboard()["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expression = promql.parse(target["expr"])  # ValueError on a syntax error
            selectors = list(_selectors(expression))
            assert selectors, panel["title"]
            for selector in selectors:
                assert selector.name in served, (panel["title"], selector.name)
                used = {matcher.name for matcher in selector.matchers.matchers}
                assert used <= served[selector.name], (panel["title"], used)
                shown.add(selector.name)
    watched = {
        "vigil_events_total",  # throughput
        "vigil_kafka_consumer_lag_messages",
        "vigil_event_time_lag_seconds",
        "vigil_dead_letters_total",
        "vigil_tenants_by_zone",
        "vigil_signals_total",
        "vigil_actions_total",
    }
    assert watched <= shown, watched - shown


def test_vigils_healthcheck_asks_its_own_health_endpoint() -> None:
    vigil = compose()["services"]["vigil"]
    port = vigil["environment"]["VIGIL_METRICS__PORT"]
    probe = " ".join(vigil["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/healthz" in probe and probe.startswith("CMD python")


def test_host_ports_are_loopback_only() -> None:
    for name, service in compose()["services"].items():
        for mapping in service.get("ports", []):
            assert mapping.startswith("127.0.0.1:"), (name, mapping)


def test_the_docs_give_the_same_commands_and_addresses() -> None:
    page = (ROOT / "docs" / "operations" / "docker.md").read_text()
    assert "docker compose up -d --build" in page
    host_listener = compose()["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    host_bootstrap = re.search(r"HOST://([\w.]+:\d+)", host_listener)
    assert host_bootstrap is not None and f"--kafka {host_bootstrap.group(1)}" in page
    for service in compose()["services"].values():
        for mapping in service.get("ports", []):
            port = mapping.split(":")[1]
            if port != "29092":
                assert f"localhost:{port}" in page, mapping
    # The steps run vigil inside the image: no toolchain on the host, no port clash.
    steps = re.findall(r"(?m)^docker compose .*$", page)
    assert any("exec vigil" in step and "vigil produce" in step for step in steps), steps
    assert any("exec vigil vigil tail cs.tasks" in step for step in steps), steps


def test_the_options_the_shipped_files_name_are_vigils() -> None:
    # The Prometheus config named a --metrics-port that vigil run never had.
    named = {
        (path.name, option)
        for path in sorted((ROOT / "config").rglob("*"))
        if path.is_file()
        for option in re.findall(r"(?<![\w-])--[a-z][a-z-]*", path.read_text())
    }
    named |= {("docker-compose.yml", arg) for arg in compose()["services"]["vigil"]["command"]}
    named = {(where, option) for where, option in named if option.startswith("--")}
    assert {("vigil.toml", "--until-end"), ("docker-compose.yml", "--kafka")} <= named
    from vigil.app.cli import command_parsers

    options = {o for p in command_parsers().values() for a in p._actions for o in a.option_strings}
    assert {(where, option) for where, option in named if option not in options} == set()


def _metric_families() -> dict[str, tuple[str, set[str]]]:
    """Every metric Vigil serves, named as PromQL and the docs write it (a counter with
    `_total`, an Info with `_info`, a histogram by its base name), with its type and the
    labels it can carry."""
    from prometheus_client.metrics import MetricWrapperBase

    from vigil.ops.metrics import Metrics

    metrics = Metrics()
    families = {}
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):  # what prometheus_client keeps of each
            name = metric._name + ("_total" if metric._type == "counter" else "")
            families[name] = (metric._type, set(metric._labelnames))
        elif hasattr(metric, "describe"):  # a collector of Vigil's own: it describes itself
            for family in metric.describe():
                name = family.name + ("_total" if family.type == "counter" else "")
                families[name] = (family.type, set(family._labelnames))
    for family in metrics.registry.collect():  # an Info's keys are labels of its one sample
        if family.type == "info" and family.name.startswith("vigil_"):
            labels = {key for sample in family.samples for key in sample.labels}
            families[f"{family.name}_info"] = ("info", labels)
    return families


def _served_metrics() -> dict[str, set[str]]:
    """Every series name Vigil serves, with the labels it can carry."""
    served: dict[str, set[str]] = {}
    for name, (kind, labels) in _metric_families().items():
        if kind == "histogram":
            served.update(
                {f"{name}_{part}": labels | {"le"} for part in ("bucket", "sum", "count")}
            )
        else:
            served[name] = labels
    return served


def _selectors(node: Any) -> Iterator[Any]:
    """The vector selectors of a parsed PromQL expression, wherever they sit."""
    import promql_parser as promql

    if isinstance(node, promql.VectorSelector):
        yield node
        return
    for child in ("lhs", "rhs", "expr", "param", "vector_selector"):
        if getattr(node, child, None) is not None:
            yield from _selectors(getattr(node, child))
    for argument in getattr(node, "args", None) or ():
        yield from _selectors(argument)


def test_the_alert_rules_parse_and_name_only_what_vigil_serves() -> None:
    import promql_parser as promql

    served = _served_metrics()
    assert "vigil_events_total" in served and "vigil_processing_latency_seconds_bucket" in served
    groups = yaml.safe_load((ROOT / "config" / "vigil-alerts.yml").read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) >= 8
    for rule in rules:
        name = rule["alert"]
        expression = promql.parse(rule["expr"])  # ValueError on a syntax error
        selectors = list(_selectors(expression))
        assert selectors, name
        for selector in selectors:
            if selector.name == "up":  # Prometheus' own, per scrape target
                continue
            assert selector.name in served, (name, selector.name)
            used = {matcher.name for matcher in selector.matchers.matchers}
            assert used <= served[selector.name], (name, selector.name, used)
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), name


def test_prometheus_loads_the_alert_rules_from_where_compose_mounts_them() -> None:
    prometheus = yaml.safe_load((ROOT / "config" / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["vigil-alerts.yml"]  # beside prometheus.yml
    mounts = compose()["services"]["prometheus"]["volumes"]
    assert "./config/vigil-alerts.yml:/etc/prometheus/vigil-alerts.yml:ro" in mounts


def test_every_dependency_is_pinned_within_pyprojects_range_and_installed_so() -> None:
    """constraints.txt (written by `make lock`) keeps CI and the image on tested versions:
    a dependency added to pyproject.toml without re-locking, or a pin outside its range,
    would let pip pick a version no test ran against."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = Version(version)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    declared = [Requirement(text) for text in project["dependencies"]]
    declared += [Requirement(text) for text in project["optional-dependencies"]["test"]]
    declared += [Requirement(text) for text in pyproject["build-system"]["requires"]]
    for requirement in declared:
        pinned = pins.get(canonicalize_name(requirement.name))
        assert pinned is not None, f"{requirement.name} is not in constraints.txt: make lock"
        assert requirement.specifier.contains(pinned, prereleases=True), (requirement, pinned)
    assert "pip" in pins  # the installer too: its resolver decides what -c allows
    pinned = "-c constraints.txt --build-constraint constraints.txt"  # builds: setuptools
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet -c constraints.txt --upgrade pip" in makefile
    assert f"pip install --quiet {pinned} -e '.[test]'" in makefile
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY pyproject.toml README.md constraints.txt" in dockerfile
    assert "pip install --no-cache-dir -c constraints.txt --upgrade pip" in dockerfile
    assert f"pip wheel --no-cache-dir {pinned}" in dockerfile
    assert "--no-index --find-links /wheels -c /tmp/constraints.txt vigil" in dockerfile


def test_the_image_runs_the_compiled_engine_and_holds_no_compiler() -> None:
    build, final = re.split(r"(?m)^FROM ", (ROOT / "Dockerfile").read_text())[1:]
    assert build.startswith("python:${PYTHON} AS build") and final.startswith("python:${PYTHON}")
    assert "COPY native ./native" in build and "--wheel-dir /wheels" in build
    rust = re.search(r"rust-version = \"([\d.]+)\"", (ROOT / "native/Cargo.toml").read_text())
    assert rust is not None and f"ARG RUST={rust.group(1)}" in build
    assert 'python -c "import vigil._native"' in final  # no image with the slow engine
    for tool in ("gcc", "g++", "cargo", "rustup", "apt-get"):
        assert tool not in final, tool


def _docker_ignores(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore's `patterns` leave `path` out of the build context: the
    last pattern that matches decides; `dir/` matches what is under it; `**/` anywhere."""
    ignored = False
    for pattern in patterns:
        keep = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        if pattern.startswith("**/"):
            name = pattern.removeprefix("**/")
            parts = path.split("/")
            hit = (
                any(part == name.rstrip("/") for part in parts[:-1])
                if name.endswith("/")
                else fnmatch.fnmatch(parts[-1], name)
            )
        elif pattern.endswith("/"):
            hit = path.startswith(pattern)
        else:
            hit = fnmatch.fnmatch(path.split("/")[0], pattern) or path == pattern
        if hit:
            ignored = not keep
    return ignored


def test_the_build_context_holds_what_the_image_copies_and_nothing_a_run_leaves() -> None:
    # About 375 MB went to the builder after `make demo` and the tests.
    patterns = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    copied = re.findall(r"(?m)^COPY (?!--from)(.+) \S+$", (ROOT / "Dockerfile").read_text())
    sources = [src for line in copied for src in line.split()]
    for path in tracked:
        wanted = any(path == src or path.startswith(f"{src}/") for src in sources)
        if wanted and not path.endswith(".pyi"):
            assert not _docker_ignores(path, patterns), path
    for left in (
        ".venv/bin/python",
        "native/target/release/lib_native.so",
        "vigil/_native.cpython-311-x86_64-linux-gnu.so",
        "vigil/__pycache__/cli.cpython-311.pyc",
        "vigil.egg-info/PKG-INFO",
        "demo/events.jsonl",
        "tests/test_cli.py",
        ".git/HEAD",
    ):
        assert _docker_ignores(left, patterns), left


def test_the_docs_metrics_table_lists_every_metric_vigil_serves_with_its_labels() -> None:
    served = {name: labels for name, (_, labels) in _metric_families().items()}
    readme = (ROOT / "docs" / "operations" / "running.md").read_text()
    table = readme[readme.index("| metric | what |") :].split("\n\n")[0]
    listed = {}
    for row in table.splitlines()[2:]:
        for name, labels in re.findall(r"`(vigil_\w+)(?:\{([\w,]+)\})?`", row.split("|")[1]):
            listed[name] = set(labels.split(",")) if labels else set()
    assert listed == served


def test_vigil_installs_one_top_level_package() -> None:
    # flows, rules and connectors were installed as top-level packages, where they could
    # clash with anything of the same name.
    from importlib import metadata

    top_level = metadata.distribution("vigil").read_text("top_level.txt") or ""
    assert top_level.split() == ["vigil"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["packages"]["find"]["include"] == ["vigil*"]
    for name in ("flows", "rules", "connectors"):
        link = ROOT / "vigil" / name
        assert link.is_symlink() and link.resolve() == ROOT / name
