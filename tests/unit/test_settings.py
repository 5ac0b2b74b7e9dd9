from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from vigil.base.errors import ConfigError
from vigil.base.timeutil import parse_rfc3339
from vigil.base.zones import zone_of
from vigil.config.kafka_secrets import masked
from vigil.config.settings import (
    DEFAULT_COMPONENTS,
    DeclaredComponent,
    DeclaredSignal,
    Settings,
    load_settings,
    unread_env,
)

REPO = Path(__file__).resolve().parents[2]


class TestDefaultsFile:
    def test_the_shipped_file_equals_the_built_in_defaults(self) -> None:
        assert load_settings(REPO / "config" / "vigil.toml", env={}) == Settings()

    def test_every_setting_is_in_the_shipped_file_under_its_own_section(self) -> None:
        # The file is where operators read what they can set: a setting added to the
        # model and not to the file would exist unseen. A key may be commented out (no
        # default, such as kafka.bootstrap); a table of free keys (kafka.config) is a section,
        # and a table of named entries ([measures.NAME]) has an example, commented out.
        lines = (REPO / "config" / "vigil.toml").read_text().splitlines()
        keys_by_section: dict[str, set[str]] = {}
        section = ""
        for line in lines:
            if header := re.fullmatch(r"(?:# )?\[([a-z0-9_.\"]+)\]", line):
                section = header.group(1)
                keys_by_section.setdefault(section, set())
            elif key := re.match(r"#? ?([a-z0-9_]+) =", line):
                keys_by_section.setdefault(section, set()).add(key.group(1))
        missing = [
            ".".join(path)
            for path in _setting_paths(Settings)
            if ".".join(path) not in keys_by_section
            and path[-1] not in keys_by_section.get(".".join(path[:-1]), set())
            and not any(section.startswith(".".join(path) + ".") for section in keys_by_section)
        ]
        assert not missing


class TestOverrides:
    def test_environment_wins_over_the_file(self, tmp_path: Path) -> None:
        path = tmp_path / "s.toml"
        path.write_text('[input]\nallowed_lateness = "2h"\n')
        env = {
            "VIGIL_INPUT__ALLOWED_LATENESS": "30m",
            "VIGIL_HEALTH__ZONES__GREEN": "85",
            "OTHER": "x",
        }
        settings = load_settings(path, env=env)
        assert settings.input.allowed_lateness == 30 * 60 * 1000
        assert settings.health.zones.green == 85.0

    def test_an_unknown_section_in_the_environment_is_refused(self) -> None:
        with pytest.raises(ConfigError, match="VIGIL_HEALT__ZONES__GREEN: not a setting"):
            load_settings(None, env={"VIGIL_HEALT__ZONES__GREEN": "85"})

    def test_text_settings_take_the_variable_as_written(self) -> None:
        # Read as TOML literals, a topic named 2026 was a number (refused), a password
        # 0xDEADBEEF became "3735928559", and an RFC 3339 origin a TOML date-time.
        env = {
            "VIGIL_KAFKA__TOPICS__INPUT": "2026",
            "VIGIL_KAFKA__BOOTSTRAP": "1_000",
            "VIGIL_KAFKA__CONFIG__SASL_PASSWORD": "0xDEADBEEF",
            "VIGIL_KAFKA__CONFIG__SESSION_TIMEOUT_MS": "30000",
            "VIGIL_RECOVERY__DIR": "1e5",
            "VIGIL_ENGINE__WINDOW_ORIGIN": "1970-01-12T00:00:00Z",
            "VIGIL_ENGINE__SHARDS": "8",  # numbers, lists and booleans are still typed
            "VIGIL_RULES__PATHS": '["a", "b"]',
            "VIGIL_KAFKA__TAIL": "false",
        }
        settings = load_settings(None, env=env)
        assert settings.kafka.topics.input == "2026"
        assert settings.kafka.bootstrap == "1_000"
        assert settings.kafka.config == {
            "sasl.password": "0xDEADBEEF",
            "session.timeout.ms": "30000",
        }
        assert settings.recovery.dir == "1e5"
        assert settings.engine.window_origin == parse_rfc3339("1970-01-12T00:00:00Z")
        assert (settings.engine.shards, settings.rules.paths) == (8, ("a", "b"))
        assert settings.kafka.tail is False

    def test_a_time_unquoted_in_the_file_is_read_and_needs_its_offset(self, tmp_path: Path) -> None:
        path = tmp_path / "s.toml"
        path.write_text("[engine]\nwindow_origin = 1970-01-12T00:00:00Z\n")
        origin = load_settings(path, env={}).engine.window_origin
        assert origin == parse_rfc3339("1970-01-12T00:00:00Z")
        path.write_text("[engine]\nwindow_origin = 1970-01-12T00:00:00\n")
        with pytest.raises(ConfigError, match="a time needs its offset from UTC"):
            load_settings(path, env={})

    def test_a_setting_spelt_with_single_underscores_is_named_with_its_own_spelling(self) -> None:
        env = {
            "VIGIL_INPUT_ALLOWED_LATENESS": "2h",
            "VIGIL_SIGNALS_ERROR_SPIKE_ABOVE": "3",
            "VIGIL_HEALTH_COMPONENTS_SUPPORT_LOAD_WEIGHT": "20",
            "VIGIL_KAFKA_CONFIG_SASL_PASSWORD": "secret",
            "VIGIL_METRICS_PORT": "0",
            # Not settings: the Bytewax entry point's, a Kubernetes service link, a
            # section alone, a key that does not exist, and the right spelling.
            "VIGIL_INPUT": "events.jsonl",
            "VIGIL_SERVICE_HOST": "10.0.0.1",
            "VIGIL_HEALTH_ZONES": "x",
            "VIGIL_METRICS_SERVICE_HOST": "10.0.0.2",
            "VIGIL_ENGINE__SHARDS": "8",
        }
        assert unread_env(env) == [
            (
                "VIGIL_HEALTH_COMPONENTS_SUPPORT_LOAD_WEIGHT",
                "VIGIL_HEALTH__COMPONENTS__SUPPORT_LOAD__WEIGHT",
            ),
            ("VIGIL_INPUT_ALLOWED_LATENESS", "VIGIL_INPUT__ALLOWED_LATENESS"),
            ("VIGIL_KAFKA_CONFIG_SASL_PASSWORD", "VIGIL_KAFKA__CONFIG__SASL_PASSWORD"),
            ("VIGIL_METRICS_PORT", "VIGIL_METRICS__PORT"),
            ("VIGIL_SIGNALS_ERROR_SPIKE_ABOVE", "VIGIL_SIGNALS__ERROR_SPIKE__ABOVE"),
        ]
        spelt_right = {meant: env[given] for given, meant in unread_env(env)}
        settings = load_settings(None, env=spelt_right)  # each names a real setting
        assert settings.input.allowed_lateness == 2 * 3600 * 1000
        assert settings.signals.error_spike.above == 3
        assert settings.health.components.support_load.weight == 20.0
        assert settings.kafka.config == {"sasl.password": "secret"}


class TestErrors:
    @pytest.mark.parametrize(
        ("toml", "needle"),
        [
            (
                '[input]\nallowed_lateness = "soon"',
                "input.allowed_lateness = 'soon': not a duration",
            ),
            ("[input]\nbogus = 1", "input.bogus: unknown key"),
            (
                "[signals.login_drop]\ndrop_ratio = 0.4",
                "signals.login_drop.drop_ratio: login_drop is declared over "
                "measures.weekly_sessions: set below",
            ),
            # Settings under which a signal or a rule could never fire.
            (
                "[signals.login_drop]\nbelow = 0",
                "signals.login_drop.below = 0: weekly_sessions is a count, and its ratio "
                "to the window before is never below 0: login_drop could never fire",
            ),
            (
                '[measures.hourly_errors]\nwindow = "1d"',
                "signals.error_spike.history (7d) holds 7 whole windows of hourly_errors (1d), "
                "fewer than min_history (24): it could never fire",
            ),
            (
                '[measures.hourly_errors]\nwindow = "5h"\n[signals.error_spike]\nmin_history = 34',
                "holds 33 whole windows of hourly_errors (5h), fewer than min_history (34)",
            ),
            ("[health]\ndrop_pct = 101", "health.drop_pct = 101: Input should be less"),
            (
                '[health.components.adoption]\nlookback = "36h"',
                "health.components.adoption.lookback: no longer a setting: adoption counts "
                'measures.features_30d; set its window (measures.features_30d.window = "30d")',
            ),
            (
                "[health.components.login_trend]\nmin_baseline = 3",
                "health.components.login_trend.min_baseline: renamed min_previous",
            ),
            (
                '[measures.features_30d]\nwindow = "30d"\nbucket = "7h"',
                "the bucket (7h) must divide the window (30d)",
            ),
            (
                '[engine]\nwindow_origin = "2026-03-02T00:00:00+05:30"',
                "engine.window_origin (2026-03-01T18:30:00Z) must fall on a whole "
                "engine.health_step (1h) of UTC, or no window would ever close",
            ),
            (
                "".join(f"[health.components.{name}]\nweight = 0\n" for name in DEFAULT_COMPONENTS),
                "every component's weight is 0, so no tenant could be scored",
            ),
            # TOML's inf stopped a run at its first score (a traceback); two weights of
            # 1e308 add up to inf, which scored every tenant 0.
            (
                "[health.components.login_activity]\nweight = inf",
                "health.components.login_activity.weight = inf: Input should be a finite number",
            ),
            ("[signals.error_spike]\npercentile = nan", "Input should be a finite number"),
            (
                "[health.components.login_activity]\nweight = 1e308\n"
                "[health.components.adoption]\nweight = 1e308",
                "the weights add up to inf: give them as shares",
            ),
            ("[health.zones]\ngreen = 50", "zone cut-offs must fall"),
            ("[health.zones]\norange = 0", "no whole score in red; scores are whole numbers"),
            ("[health.zones]\nyellow = 60.2\norange = 60.1", "no whole score in orange;"),
            ("[health.zones]\ngreen = 60.5\nyellow = 60.2", "no whole score in yellow;"),
            (
                "[health.zones]\ngreen = 0.7\nyellow = 0.6\norange = 0.5",
                "no whole score in yellow or orange; scores are whole numbers 0-100, got "
                "green=0.7 yellow=0.6 orange=0.5. To act on fewer zones, change the rules",
            ),
            # Every shard steps through every step: 100ms steps did not end in 100 s.
            (
                '[engine]\nhealth_step = "100ms"',
                "engine.health_step = '100ms': must be at least 1m",
            ),
            (
                '[measures.hourly_errors]\nwindow = "90m"',
                "must be a whole number of engine.health_step",
            ),
            ("[input\n", "cannot read settings file"),
            (
                '[kafka.topics]\ndeadletter = "cs.telemetry"',
                "input and deadletter name the same topic 'cs.telemetry': each needs its own",
            ),
            (
                '[kafka.topics]\nhealth = "x"\nsignals = "x"\ntasks = "x"',
                "health, signals and tasks name the same topic 'x'",
            ),
            # An empty host bound every interface, an empty bootstrap waited for the connect
            # timeout to fail, an empty dir took the working folder for the store.
            ('[metrics]\nhost = ""', "metrics.host = '': empty: give a value, or leave the key"),
            ('[kafka]\nbootstrap = " "', "kafka.bootstrap = ' ': empty: give a value"),
            ('[recovery]\ndir = ""', "recovery.dir = '': empty: give a value"),
            ('[rules]\npaths = ["mine.yaml", ""]', "rules.paths.1 = '': empty: give a value"),
            # The broker said "Invalid topic" of these, and an empty name failed in the client.
            (
                '[kafka.topics]\ninput = ""',
                "kafka.topics.input = '': a Kafka topic name is 1-249 characters of letters, "
                "digits, '.', '_' and '-' (and not . or ..)",
            ),
            ('[kafka.topics]\ntasks = "cs tasks"', "kafka.topics.tasks = 'cs tasks': a Kafka"),
            ('[kafka.topics]\nhealth = ".."', "kafka.topics.health = '..': a Kafka topic"),
            (f'[kafka.topics]\nsignals = "{"s" * 250}"', "a Kafka topic name is 1-249"),
            # librdkafka took port 99999 as 34463, and waited out the connect timeout on
            # the others.
            ('[kafka]\nbootstrap = "k1:9092,k2:99999"', "'k2:99999': a port is 1-65535"),
            ('[kafka]\nbootstrap = "http://k1:9092"', "'http://k1:9092' is not a broker's"),
            ('[kafka]\nbootstrap = "::1:9092"', "(e.g. kafka-1:9092 or [::1]:9092)"),
            ('[kafka]\nbootstrap = ","', "',' is not a broker's host:port"),
            (  # not 72 milliseconds
                "[signals.onboarding_stalled]\nstalled_after = 72",
                "signals.onboarding_stalled.stalled_after = 72: a duration needs its unit",
            ),
            ("[input]\nmax_depth = 1", "input.max_depth = 1: Input should be greater than"),
            ("[input]\nmax_depth = 201", "input.max_depth = 201: Input should be less than"),
            (
                '[input]\nmax_future = "1h"',
                "input.max_future (1h) must be shorter than input.allowed_lateness (1h)",
            ),
            (
                '[engine]\nforget_tenants_after = "20d"',
                "engine.forget_tenants_after (20d) must be longer than "
                "measures.sessions_4w.window x 2 (56d)",
            ),
            (
                "[engine]\nmax_keys_per_tenant = 4",
                "engine.max_keys_per_tenant (4) must be at least 6, "
                "health.components.adoption.full_at, or the limit could change a score",
            ),
            (
                "[engine]\nmax_keys_per_tenant = 6\n[health.components.onboarding]\nfull_at = 7",
                "must be at least 7, health.components.onboarding.full_at",
            ),
        ],
    )
    def test_errors_name_the_key_the_value_and_the_expectation(
        self, tmp_path: Path, toml: str, needle: str
    ) -> None:
        path = tmp_path / "bad.toml"
        path.write_text(toml)
        with pytest.raises(ConfigError, match=r"bad\.toml") as caught:
            load_settings(path, env={})
        assert needle in str(caught.value)

    def test_zones_one_whole_score_wide_are_accepted_and_each_holds_its_score(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "narrow.toml"
        path.write_text("[health.zones]\ngreen = 2.5\nyellow = 2\norange = 0.5\n")
        zones = load_settings(path, env={}).health.zones
        assert [zone_of(score, zones) for score in (0, 1, 2, 3)] == [
            "red",
            "orange",
            "yellow",
            "green",
        ]

    def test_settings_at_the_edge_of_never_firing_are_accepted(self, tmp_path: Path) -> None:
        path = tmp_path / "edge.toml"
        only_sponsor = "".join(
            f"[health.components.{name}]\nweight = {1 if name == 'sponsor' else 0}\n"
            for name in DEFAULT_COMPONENTS
        )
        path.write_text(
            '[measures.hourly_errors]\nwindow = "5h"\n[signals.error_spike]\nmin_history = 33\n'
            '[engine]\nwindow_origin = "2026-03-02T00:00:00+05:30"\nhealth_step = "30m"\n'
            "[signals.login_drop]\nbelow = 0.01\n[health]\ndrop_pct = 100\n" + only_sponsor
        )
        settings = load_settings(path, env={})
        assert settings.signals.error_spike.min_history == 33
        assert settings.health.components.sponsor.weight == 1

    def test_a_limit_can_be_switched_off(self, tmp_path: Path) -> None:
        path = tmp_path / "s.toml"
        path.write_text('[input]\nmax_future = "off"\n')
        assert load_settings(path, env={}).input.max_future is None
        assert load_settings(None, env={"VIGIL_INPUT__MAX_FUTURE": "off"}).input.max_future is None

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="settings file not found"):
            load_settings(tmp_path / "nope.toml", env={})


class TestReadingTheFile:
    def test_a_file_far_larger_than_settings_is_refused_not_read_whole(
        self, tmp_path: Path
    ) -> None:
        # --config events.jsonl by mistake, or /dev/zero, was read whole into memory.
        big = tmp_path / "events.jsonl"
        big.write_bytes(b"#" * (1 << 20) + b"\n")
        with pytest.raises(ConfigError) as caught:
            load_settings(big, env={})
        assert str(caught.value) == (
            f"cannot read settings file {big}: over 1,048,576 bytes, where a settings or "
            "rule file has a few KB"
        )

    def test_a_byte_order_mark_before_the_first_line_is_left_out(self, tmp_path: Path) -> None:
        # As Notepad saves: tomllib said "Invalid statement (at line 1, column 1)".
        saved = tmp_path / "vigil.toml"
        saved.write_bytes(b"\xef\xbb\xbf[engine]\r\nshards = 8\r\n")
        assert load_settings(saved, env={}).engine.shards == 8

    def test_a_pipe_is_read(self) -> None:
        """`--config <(envsubst < vigil.toml)`."""
        import os

        read_end, write_end = os.pipe()
        os.write(write_end, b"[engine]\nshards = 8\n")
        os.close(write_end)
        try:
            assert load_settings(Path(f"/dev/fd/{read_end}"), env={}).engine.shards == 8
        finally:
            os.close(read_end)


class TestSecrets:
    def test_librdkafka_settings_from_the_environment_and_secrets_masked(self) -> None:
        jaas = 'PlainLoginModule required username="cs" password="hunter3";'  # Java's
        env = {
            "VIGIL_KAFKA__CONFIG__SASL_PASSWORD": "hunter2",
            "VIGIL_KAFKA__CONFIG__CLIENT_ID": "cs",
            "VIGIL_KAFKA__CONFIG__SASL_JAAS_CONFIG": jaas,
        }
        settings = load_settings(None, env=env)
        assert settings.kafka.config == {
            "sasl.password": "hunter2",
            "client.id": "cs",
            "sasl.jaas.config": jaas,
        }
        dumped = settings.model_dump(mode="json")["kafka"]["config"]
        assert dumped == {"sasl.password": "***", "client.id": "cs", "sasl.jaas.config": "***"}
        assert "hunter" not in repr(settings.model_dump(mode="json"))

    def test_a_secret_of_the_wrong_type_is_not_quoted_in_the_error(self, tmp_path: Path) -> None:
        path = tmp_path / "s.toml"
        path.write_text('[kafka.config]\n"sasl.password" = ["hunter2"]\n')
        with pytest.raises(ConfigError) as caught:
            load_settings(path, env={})
        assert "kafka.config.sasl.password.str = ***: Input should be" in str(caught.value)
        assert "hunter2" not in str(caught.value)

    @pytest.mark.parametrize(
        ("key", "why"),
        [
            ("acks", "its producers are idempotent with acks=all"),
            ("enable.idempotence", "its producers are idempotent with acks=all"),
            ("auto.offset.reset", "input offsets live in the recovery store"),
            ("bootstrap.servers", "give kafka.bootstrap or --kafka"),
        ],
    )
    def test_a_librdkafka_setting_vigil_sets_itself_is_refused_without_a_secret(
        self, key: str, why: str
    ) -> None:
        # Vigil's clients set these after the user's: a value here was ignored, unsaid.
        env = {
            f"VIGIL_KAFKA__CONFIG__{key.upper().replace('.', '_')}": "1",
            "VIGIL_KAFKA__CONFIG__SASL_PASSWORD": "hunter2",
        }
        with pytest.raises(ConfigError) as caught:
            load_settings(None, env=env)
        said = str(caught.value)
        assert f"{key}: Vigil sets it itself ({why}" in said
        assert "hunter2" not in said and "'sasl.password': '***'" in said

    # What librdkafka 2.16 writes "[redacted]" for in its log of a client's configuration.
    LIBRDKAFKA_SENSITIVE = (
        "sasl.oauthbearer.assertion.private.key.file",
        "sasl.oauthbearer.assertion.private.key.passphrase",
        "sasl.oauthbearer.assertion.private.key.pem",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.config",
        "sasl.password",
        "sasl.username",
        "ssl.ca.pem",
        "ssl.key.location",
        "ssl.key.password",
        "ssl.key.pem",
        "ssl.keystore.password",
    )

    @pytest.mark.parametrize("key", LIBRDKAFKA_SENSITIVE)
    def test_every_property_librdkafka_redacts_is_masked(self, key: str) -> None:
        assert masked({key: "hunter2"}) == {key: "***"}

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("client.id", "cs"),
            ("linger.ms", 5),
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "OAUTHBEARER"),
            ("enable.ssl.certificate.verification", False),
        ],
    )
    def test_what_librdkafka_shows_is_shown(self, key: str, value: Any) -> None:
        assert masked({key: value}) == {key: value}

    def test_a_key_librdkafka_does_not_know_is_masked(self) -> None:
        # Java's sasl.jaas.config holds the password, and is what gets pasted in.
        assert masked({"sasl.jaas.config": "x", "sasl.pasword": "x"}) == {
            "sasl.jaas.config": "***",
            "sasl.pasword": "***",
        }

    @pytest.mark.parametrize(
        "env",
        [
            # Two underscores where librdkafka's dot goes: a nested key, not sasl.password.
            {"VIGIL_KAFKA__CONFIG__SASL__PASSWORD": "hunter2"},
            {"VIGIL_KAFKA__CONFIG": '{"sasl.password": ["hunter2"]}'},
            {"VIGIL_KAFKA__CONFIG__SASL__OAUTHBEARER__CONFIG": "hunter2"},
        ],
    )
    def test_no_error_echoes_a_value_given_under_kafka_config(self, env: dict[str, str]) -> None:
        with pytest.raises(ConfigError) as caught:
            load_settings(None, env=env)
        assert "hunter2" not in str(caught.value) and "***" in str(caught.value)

    def test_a_table_of_settings_from_the_environment_is_json(self) -> None:
        env = {"VIGIL_KAFKA__CONFIG": '{"sasl.password": "hunter2", "client.id": "cs"}'}
        config = load_settings(None, env=env).kafka.config
        assert config == {"sasl.password": "hunter2", "client.id": "cs"}

    @pytest.mark.parametrize("key", ["ssl.key.password", "sasl.oauthbearer.config"])
    def test_config_check_never_prints_a_secret(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, key: str
    ) -> None:
        from vigil.app.cli import main

        variable = f"VIGIL_KAFKA__CONFIG__{key.upper().replace('.', '_')}"
        monkeypatch.setenv(variable, "scope=x secret=s3cret")
        assert main(["config", "check"]) == 0
        out = capsys.readouterr().out
        assert key in out and "s3cret" not in out
        assert out.startswith("settings OK (built-in defaults + VIGIL_* environment):")


def test_a_check_across_settings_names_them_without_echoing_the_whole_file(
    tmp_path: Path,
) -> None:
    shipped = (REPO / "config" / "vigil.toml").read_text()
    assert 'forget_tenants_after = "90d"' in shipped
    path = tmp_path / "vigil.toml"
    path.write_text(shipped.replace('forget_tenants_after = "90d"', 'forget_tenants_after = "20d"'))
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    said = str(caught.value)
    assert said == (
        f"{path}: engine.forget_tenants_after (20d) must be longer than "
        "measures.sessions_4w.window x 2 (56d), or a tenant could be forgotten while "
        "its events still count"
    )


def _setting_paths(model: type[BaseModel], above: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The key path of every setting, `("health", "zones", "green")` and so on."""
    paths = []
    for name, field in model.model_fields.items():
        inner = field.annotation
        declaration = next(
            (base for base in (DeclaredComponent, DeclaredSignal) if issubclass(model, base)),
            None,
        )
        if (
            declaration is not None
            and model is not declaration
            and field.default == declaration.model_fields[name].default
        ):
            continue  # a default declaration's entry in the file says the keys it sets
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            paths += _setting_paths(inner, (*above, name))
        else:
            paths.append((*above, name))
    return paths


@pytest.mark.parametrize(
    "bootstrap",
    [
        "localhost",
        "kafka-1:9092,kafka-2:9092,",  # a trailing comma, as librdkafka takes it
        "10.0.0.1:9092, 10.0.0.2:9092",
        "[::1]:9092",
        "SASL_SSL://broker.example.com:9093",
    ],
)
def test_bootstrap_lists_librdkafka_reads_are_taken(bootstrap: str) -> None:
    assert (
        load_settings(None, env={"VIGIL_KAFKA__BOOTSTRAP": bootstrap}).kafka.bootstrap == bootstrap
    )


def test_log_level_and_format_are_taken_in_any_case() -> None:
    # VIGIL_LOG__LEVEL=debug was refused: "Input should be 'DEBUG', 'INFO', ...".
    env = {"VIGIL_LOG__LEVEL": "debug", "VIGIL_LOG__FORMAT": "JSON"}
    log = load_settings(None, env=env).log
    assert (log.level, log.format) == ("DEBUG", "json")


class TestSecretFiles:
    """VIGIL_SECRETS_DIR: a file per setting, named as its variable, as Kubernetes mounts
    a secret's keys; the environment wins over a file."""

    def test_a_setting_is_read_from_its_file(self, tmp_path: Path) -> None:
        (tmp_path / "VIGIL_KAFKA__CONFIG__SASL_PASSWORD").write_text("hunter2")
        (tmp_path / "VIGIL_ENGINE__SHARDS").write_text("8")
        env = {"VIGIL_SECRETS_DIR": str(tmp_path), "VIGIL_ENGINE__SHARDS": "16"}
        settings = load_settings(None, env=env)
        assert settings.kafka.config == {"sasl.password": "hunter2"}
        assert settings.engine.shards == 16

    def test_a_missing_folder_is_one_line(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="does not exist"):
            load_settings(None, env={"VIGIL_SECRETS_DIR": str(tmp_path / "nope")})
