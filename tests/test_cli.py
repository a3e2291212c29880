"""The real CLI (typer CliRunner): `check` accepts a valid config and rejects each of many
broken ones with a message naming the key path; `--show-config` masks secrets."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cdc_bridge import __version__
from cdc_bridge.cli import app
from tests import fakekinds

VALID = """\
[bridge]
name = "acme"
state = "sqlite:///{state}"

[kafka]
bootstrap_servers = "127.0.0.1:9"
topic_partitions = 3

[kafka.producer]
"sasl.password" = "kafka-secret-pw"

[[sources]]
name = "orders"
kind = "fake"
dsn = "fake://cdc:${{FAKE_PW}}@localhost/shop"
password_file = "pw.txt"
tables = ["public.orders", "public.customers"]

[[sinks]]
name = "crm"
kind = "fakesink"
url = "fake://target"
api_key = "key-secret-123"

[[routes]]
from = "orders.public.customers"
to = "crm"
target_table = "customers"
"""

ENV = {"FAKE_PW": "dsn-secret-pw"}
SECRETS = ("dsn-secret-pw", "file-secret-pw", "kafka-secret-pw", "key-secret-123")


@pytest.fixture(autouse=True)
def _kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    fakekinds.register(monkeypatch)


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "pw.txt").write_text("file-secret-pw\n")
    path = tmp_path / "routes.toml"
    path.write_text(text.replace("{state}", str(tmp_path / "state.db")))
    return path


def valid(tmp_path: Path) -> str:
    return VALID.format(state=tmp_path / "state.db")


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "250", **ENV, **(env or {})})
    return result.exit_code, result.output


def test_version() -> None:
    code, out = run("version")
    assert code == 0
    assert __version__ in out


def test_check_valid_config_exits_0(tmp_path: Path) -> None:
    path = write(tmp_path, valid(tmp_path))
    code, out = run("check", "--config", str(path))
    assert code == 0, out
    assert "config OK" in out
    assert "1 source(s), 1 sink(s), 1 route(s)" in out


def test_show_config_masks_every_secret(tmp_path: Path) -> None:
    path = write(tmp_path, valid(tmp_path))
    code, out = run("check", "--config", str(path), "--show-config")
    assert code == 0, out
    for secret in SECRETS:
        assert secret not in out
    assert 'dsn = "fake://cdc:***@localhost/shop"' in out
    assert 'password = "***"' in out
    assert 'api_key = "***"' in out
    assert '"sasl.password" = "***"' in out
    assert 'target_table = "customers"' in out
    shown = tomllib.loads(out[: out.index("config OK")])  # the output is valid TOML
    assert shown["routes"][0]["from"] == "orders.public.customers"
    assert shown["kafka"]["topic_partitions"] == 3


def _replace(old: str, new: str) -> object:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


# (id, edit of the valid config, env overrides, expected key path, expected words)
BROKEN = [
    (
        "missing-section",
        lambda t: t[: t.index("[kafka]")] + t[t.index("[[sources]]") :],
        {},
        "kafka",
        "missing required section [kafka]",
    ),
    (
        "missing-key",
        _replace('url = "fake://target"\n', ""),
        {},
        "sinks[0].url",
        "required key is missing",
    ),
    (
        "wrong-type",
        _replace("topic_partitions = 3", 'topic_partitions = "three"'),
        {},
        "kafka.topic_partitions",
        "expected an integer, got a string 'three'",
    ),
    (
        "unknown-key-typo",
        _replace("bootstrap_servers =", "bootstrap_server ="),
        {},
        "kafka.bootstrap_server",
        "did you mean 'bootstrap_servers'?",
    ),
    (
        "duplicate-source",
        lambda t: t.replace(
            "[[sinks]]",
            '[[sources]]\nname = "orders"\nkind = "fake"\ndsn = "fake://h/db"\n\n[[sinks]]',
        ),
        {},
        "sources[1].name",
        "duplicate source name 'orders'",
    ),
    (
        "duplicate-route",
        lambda t: (
            t + '\n[[routes]]\nfrom = "orders.public.customers"\nto = "crm"\ntarget_table = "c2"\n'
        ),
        {},
        "routes[1].name",
        "duplicate route name",
    ),
    (
        "dangling-route",
        _replace('to = "crm"', 'to = "crn"'),
        {},
        "routes[0].to",
        "no sink named 'crn'; did you mean 'crm'?",
    ),
    (
        "missing-env-var",
        _replace("${FAKE_PW}", "${NO_SUCH_VAR_XYZ}"),
        {},
        "sources[0].dsn",
        "environment variable NO_SUCH_VAR_XYZ is not set",
    ),
    (
        "bad-dsn-scheme",
        _replace('dsn = "fake://cdc:', 'dsn = "mysql://cdc:'),
        {},
        "sources[0].dsn",
        "expected a fake:// URL",
    ),
    (
        "unknown-kind",
        _replace('kind = "fake"', 'kind = "fakes"'),
        {},
        "sources[0].kind",
        "unknown source kind 'fakes'; did you mean 'fake'?",
    ),
    (
        "bad-toml",
        _replace("topic_partitions = 3", "topic_partitions = = 3"),
        {},
        ":7:",
        "invalid TOML",
    ),
    (
        "secret-file-missing",
        _replace('password_file = "pw.txt"', 'password_file = "missing.txt"'),
        {},
        "sources[0].password_file",
        "cannot read secret file",
    ),
    (
        "invalid-glob",
        _replace('from = "orders.public.customers"', 'from = "orders.public.[cust"'),
        {},
        "routes[0].from",
        "'[' is never closed",
    ),
    (
        "invalid-ops",
        _replace('to = "crm"', 'to = "crm"\nops = ["c", "upsert"]'),
        {},
        "routes[0].ops[1]",
        "must be one of 'c', 'u', 'd', 'r' or 't'",
    ),
    (
        "negative-partitions",
        _replace("topic_partitions = 3", "topic_partitions = -2"),
        {},
        "kafka.topic_partitions",
        "must be at least 1",
    ),
    (
        "unknown-route-key",
        _replace('target_table = "customers"', 'target_tabel = "customers"'),
        {},
        "routes[0].target_tabel",
        "did you mean 'target_table'?",
    ),
    (
        "bad-snapshot-mode",
        _replace("tables = [", 'snapshot = "initally"\ntables = ['),
        {},
        "sources[0].snapshot",
        "did you mean 'initial'?",
    ),
    (
        "bad-bridge-name",
        _replace('name = "acme"', 'name = "ac me"'),
        {},
        "bridge.name",
        "not allowed",
    ),
    (
        "bad-state-url",
        lambda t: t.replace(
            t[t.index('state = "') : t.index("\n", t.index('state = "'))], 'state = "db.sqlite"'
        ),
        {},
        "bridge.state",
        "is not a SQLAlchemy URL",
    ),
    (
        "unknown-section",
        lambda t: t + "\n[metrics]\nport = 9000\n",
        {},
        "metrics",
        "unknown section 'metrics'",
    ),
    (
        "sources-not-array",
        lambda t: t.replace("[[sources]]", "[sources]"),
        {},
        "sources",
        "expected an array of tables",
    ),
]


@pytest.mark.parametrize(
    ("edit", "env", "path", "words"),
    [pytest.param(e, v, p, w, id=i) for i, e, v, p, w in BROKEN],
)
def test_check_rejects_broken_config(
    tmp_path: Path, edit: object, env: dict[str, str], path: str, words: str
) -> None:
    text = edit(valid(tmp_path))  # type: ignore[operator]
    config = write(tmp_path, text)
    code, out = run("check", "--config", str(config), env=env)
    assert code == 2, out
    assert path in out, out
    assert words in out, out
    assert "Traceback" not in out
    for secret in SECRETS:
        assert secret not in out


def test_many_problems_reported_at_once(tmp_path: Path) -> None:
    text = valid(tmp_path).replace("bootstrap_servers =", "bootstrap_server =")
    text = text.replace('to = "crm"', 'to = "crn"').replace("${FAKE_PW}", "${NOPE_X}")
    code, out = run("check", "--config", str(write(tmp_path, text)))
    assert code == 2
    assert "3 problems" in out
    for p in ("kafka.bootstrap_server", "routes[0].to", "sources[0].dsn"):
        assert p in out


def test_missing_config_file(tmp_path: Path) -> None:
    code, out = run("check", "--config", str(tmp_path / "nope.toml"))
    assert code == 2
    assert "cannot read the configuration file" in out


def test_warning_for_route_matching_no_source(tmp_path: Path) -> None:
    text = valid(tmp_path).replace('from = "orders.public.customers"', 'from = "other.x.*"')
    code, out = run("check", "--config", str(write(tmp_path, text)))
    assert code == 0, out
    assert "warning" in out and "routes[0].from" in out and "matches no topic" in out


def test_connect_reports_each_component(tmp_path: Path, kafka: object) -> None:
    bootstrap = kafka.bootstrap  # type: ignore[attr-defined]
    text = valid(tmp_path).replace("127.0.0.1:9", bootstrap)
    text = text.replace('[kafka.producer]\n"sasl.password" = "kafka-secret-pw"\n', "")
    code, out = run("check", "--config", str(write(tmp_path, text)), "--connect")
    assert code == 0, out
    assert out.count("OK") >= 4 + 1  # config OK + kafka, state, source, sink
    assert "empty; `cdc-bridge migrate` (or start) creates the tables" in out

    text = text.replace('url = "fake://target"', 'url = "fake://unreachable"')
    text = text.replace("tables = [", "fail_check = true\ntables = [")
    code, out = run("check", "--config", str(write(tmp_path, text)), "--connect")
    assert code == 1, out
    assert out.count("FAILED") == 2
    assert "fake source check failed" in out
    assert "fake://unreachable" in out
    assert "sink crm (route orders.public.customers-to-crm)" in out


def test_connect_unreachable_kafka_fails(tmp_path: Path) -> None:
    text = valid(tmp_path).replace("127.0.0.1:9", "127.0.0.1:1")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from tests import fakekinds; fakekinds.register(); "
            "from cdc_bridge.cli import main; main(sys.argv[1:])",
            "check",
            "--config",
            str(write(tmp_path, text)),
            "--connect",
            "--timeout",
            "2",
        ],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **ENV},
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "kafka" in result.stdout and "FAILED" in result.stdout
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr


def test_log_format_option_is_validated() -> None:
    code, out = run("--log-format", "xml", "version")
    assert code != 0
    assert "--log-format" in out


def test_migrate_command(tmp_path: Path) -> None:
    path = write(tmp_path, valid(tmp_path))
    code, out = run("migrate", "--config", str(path))
    assert code == 0, out
    from cdc_bridge.state import StateStore

    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    head = store.head_revision()
    store.close()
    assert f"state store migrated: empty -> {head}" in out
    code, out = run("migrate", "--config", str(path))
    assert code == 0, out
    assert f"up to date (revision {head})" in out
    assert (tmp_path / "state.db").exists()


def test_resnapshot_forgets_the_position(tmp_path: Path) -> None:
    """A kind without a resnapshot hook: only the saved position is forgotten."""
    from cdc_bridge.state import StateStore

    path = write(tmp_path, valid(tmp_path))
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}", migrate=True)
    store.save_offset("orders", {"lsn": 7})
    result = CliRunner().invoke(
        app, ["resnapshot", "--config", str(path), "--source", "orders"], input="n\n", env=ENV
    )
    assert result.exit_code == 1, result.output
    assert "Forget the position of source 'orders'? [y/N]" in result.output
    assert store.load_offset("orders") == {"lsn": 7}
    code, out = run("resnapshot", "--config", str(path), "--source", "orders", "--yes")
    assert code == 0, out
    assert (
        out
        == "source orders: saved position forgotten; the next `cdc-bridge start` takes a new snapshot\n"
    )
    assert store.load_offset("orders") is None
    code, out = run("resnapshot", "--config", str(path), "--source", "orders", "--yes")
    assert code == 0 and "source orders: no saved position" in out, out
    code, out = run("resnapshot", "--config", str(path), "--source", "nope", "--yes")
    assert code == 2 and "no source named 'nope' (sources: orders)" in out, out
    store.close()


def test_start_with_bad_producer_property_is_a_config_error(tmp_path: Path) -> None:
    text = valid(tmp_path).replace('"sasl.password" = "kafka-secret-pw"', '"no.such.property" = 1')
    code, out = run("start", "--config", str(write(tmp_path, text)))
    assert code == 2, out
    assert "invalid Kafka producer configuration" in out
    assert "Traceback" not in out


SALESFORCE_SINK = """
[[sinks]]
name = "sf"
kind = "salesforce"
auth = "password"
instance_url = "https://127.0.0.1:1"
client_id = "${SF_CLIENT_ID}"
client_secret = "${SF_CLIENT_SECRET}"
username = "${SF_USERNAME}"
password = "${SF_PASSWORD}"
"""


def test_unset_salesforce_secrets_are_reported_once_each(tmp_path: Path) -> None:
    config = write(tmp_path, valid(tmp_path) + SALESFORCE_SINK)
    code, out = run("check", "--config", str(config))
    assert code == 2, out
    assert "4 problems" in out, out
    for var in ("SF_CLIENT_ID", "SF_CLIENT_SECRET", "SF_USERNAME", "SF_PASSWORD"):
        assert f"environment variable {var} is not set" in out
    assert "needs" not in out, out


def test_salesforce_auth_names_the_missing_keys(tmp_path: Path) -> None:
    text = SALESFORCE_SINK.replace('client_secret = "${SF_CLIENT_SECRET}"\n', "")
    text = text.replace('password = "${SF_PASSWORD}"\n', "")
    config = write(tmp_path, valid(tmp_path) + text)
    code, out = run("check", "--config", str(config), env={"SF_CLIENT_ID": "x", "SF_USERNAME": "u"})
    assert code == 2, out
    assert "1 problem" in out, out
    assert (
        "auth = 'password' needs client_id, client_secret, username and password; "
        "missing: client_secret, password"
    ) in out, out


@pytest.mark.parametrize(
    ("consumer", "path", "words"),
    [
        (
            '"session.timeout.ms" = 2000',
            'kafka.consumer["session.timeout.ms"]',
            "= 3000 (the default)",
        ),
        (
            '"session.timeout.ms" = "6000"\n"heartbeat.interval.ms" = 6000',
            'kafka.consumer["session.timeout.ms"]',
            "heartbeat.interval.ms = 6000:",
        ),
        ('"heartbeat.interval.ms" = 12000', 'kafka.consumer["heartbeat.interval.ms"]', "= 12000:"),
    ],
)
def test_warning_for_session_timeout_not_above_heartbeat(
    tmp_path: Path, consumer: str, path: str, words: str
) -> None:
    text = valid(tmp_path).replace("[[sources]]", f"[kafka.consumer]\n{consumer}\n\n[[sources]]")
    code, out = run("check", "--config", str(write(tmp_path, text)))
    assert code == 0, out
    assert "warning" in out, out
    assert path in out, out
    assert words in out, out
    assert "below a third of the session timeout" in out, out


def test_no_warning_for_sound_consumer_timeouts(tmp_path: Path) -> None:
    consumer = '"session.timeout.ms" = 2000\n"heartbeat.interval.ms" = 500'
    text = valid(tmp_path).replace("[[sources]]", f"[kafka.consumer]\n{consumer}\n\n[[sources]]")
    code, out = run("check", "--config", str(write(tmp_path, text)))
    assert code == 0, out
    assert "warning:" not in out, out
