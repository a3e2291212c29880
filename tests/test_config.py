"""The config loader: interpolation, secret files, kind dispatch, plain-English problems with
key paths and lines, secrets kept out of reprs and errors, and a meta-test over the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from cdc_bridge._tomlpos import key_lines
from cdc_bridge.config import (
    BridgeConfig,
    BridgeSection,
    KafkaSection,
    RouteConfigBase,
    SinkConfigBase,
    SourceConfigBase,
    load_config,
    mask_url,
    parse_config,
)
from cdc_bridge.errors import ConfigError
from cdc_bridge.registry import SINK_KINDS, SOURCE_KINDS
from tests import fakekinds

BASE = """\
[kafka]
bootstrap_servers = "localhost:9092"

[[sources]]
name = "orders"
kind = "fake"
dsn = "fake://u:pw@h/db"
"""


@pytest.fixture(autouse=True)
def _kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    fakekinds.register(monkeypatch)


def problems(text: str, **kw: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, **kw)
    return [str(p) for p in info.value.problems]


def test_key_lines_tables_arrays_and_multiline_values() -> None:
    text = """\
# comment
[bridge]
name = "x"

[kafka]
bootstrap_servers = "a"
[kafka.producer]
"sasl.mechanism" = "PLAIN"
linger.ms = 5

[[sources]]
name = "a"
tables = [
  "public.x",   # inner = "not a key"
]
note = \"\"\"
fake = 1
\"\"\"
kind = "fake"

[[sources]]
name = "b"
opts = { a = 1 }

[[routes]]
from = "a.*"
[[routes.fields]]
src = "x"
"""
    lines = key_lines(text)
    assert lines[("bridge",)] == 2
    assert lines[("bridge", "name")] == 3
    assert lines[("kafka", "producer", "sasl.mechanism")] == 8
    assert lines[("kafka", "producer", "linger", "ms")] == 9
    assert lines[("sources", 0)] == 11
    assert lines[("sources", 0, "tables")] == 13
    assert lines[("sources", 0, "kind")] == 19
    assert ("sources", 0, "fake") not in lines
    assert ("sources", 0, "inner") not in lines
    assert lines[("sources", 1, "name")] == 22
    assert lines[("routes", 0, "fields", 0, "src")] == 28


def test_valid_config_model() -> None:
    cfg = parse_config(BASE)
    assert isinstance(cfg, BridgeConfig)
    assert cfg.bridge.name == "cdc-bridge"
    assert cfg.bridge.state == "sqlite:///./.cdc-bridge/state.db"
    assert isinstance(cfg.sources[0], fakekinds.FakeSourceConfig)
    assert cfg.source("orders").dsn.scheme == "fake"  # type: ignore[attr-defined]
    assert cfg.warnings == []


def test_interpolation() -> None:
    text = BASE.replace('"fake://u:pw@h/db"', '"fake://${USER_X}:${PW_X}@${HOST_X:-localhost}/db"')
    text += 'tables = ["${SCHEMA_X:-public}.t", "lit.$${NOT_A_VAR}"]\n'
    cfg = parse_config(text, env={"USER_X": "cdc", "PW_X": "s3", "SCHEMA_X": ""})
    src = cfg.sources[0]
    assert str(src.dsn) == "fake://cdc:s3@localhost/db"  # type: ignore[attr-defined]
    assert src.tables == ["public.t", "lit.${NOT_A_VAR}"]


def test_missing_variable_names_variable_key_and_line() -> None:
    text = BASE.replace("u:pw", "u:${PG_PW_MISSING}")
    [p] = problems(text, env={}, source_file="routes.toml")
    assert p.startswith("routes.toml:7: sources[0].dsn: environment variable PG_PW_MISSING")


@pytest.mark.parametrize(
    ("value", "words"),
    [("${unclosed", "never closed"), ("${1BAD}", "invalid variable reference")],
)
def test_bad_references(value: str, words: str) -> None:
    [p] = problems(BASE + f'tables = ["{value}"]\n', env={})
    assert "sources[0].tables[0]" in p and words in p


def test_secret_files(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "pw").write_text("  file-secret\n")
    (tmp_path / "secrets" / "kafka").write_text("kafka-secret\n")
    (tmp_path / "routes.toml").write_text(
        BASE.replace(
            "[[sources]]", '[kafka.producer]\n"sasl.password_file" = "secrets/kafka"\n\n[[sources]]'
        )
        + 'password_file = "secrets/pw"\n'
    )
    cfg = load_config(tmp_path / "routes.toml")
    src = cfg.sources[0]
    assert src.password.get_secret_value() == "file-secret"  # type: ignore[attr-defined]
    assert cfg.kafka.producer["sasl.password"] == "kafka-secret"
    for text in (repr(cfg), str(cfg), repr(src), str(cfg.masked())):
        assert "file-secret" not in text
        assert "kafka-secret" not in text
        assert ":pw@" not in text
    masked = cfg.masked()
    assert masked["sources"][0]["password"] == "***"
    assert masked["sources"][0]["dsn"] == "fake://u:***@h/db"
    assert masked["kafka"]["producer"]["sasl.password"] == "***"


def test_secret_file_problems(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    text = BASE + 'password = "x"\npassword_file = "empty"\n'
    [p] = problems(text, base_dir=tmp_path)
    assert "sources[0].password_file: give either 'password' or 'password_file'" in p
    [p] = problems(BASE + 'password_file = "empty"\n', base_dir=tmp_path)
    assert "is empty" in p
    [p] = problems(BASE + 'password_file = "nope"\n', base_dir=tmp_path)
    assert "sources[0].password_file: cannot read secret file" in p
    assert "No such file" in p


def test_secrets_never_in_errors() -> None:
    text = BASE.replace('dsn = "fake://u:pw@h/db"', 'dsn = "mysql://u:topsecret@h/db"')
    text += "password = 12345\n"
    found = problems(text)
    joined = "\n".join(found)
    assert "topsecret" not in joined
    assert "12345" not in joined
    assert "sources[0].password: expected a string, got an integer ***" in joined
    assert "mysql://" in joined


def test_unknown_keys() -> None:
    [p] = problems(BASE + "rowz = 3\n")
    assert "sources[0].rowz: unknown key 'rowz'; did you mean 'rows'?" in p
    [p] = problems(BASE + "zzzz = 3\n")
    assert "unknown key 'zzzz' (known keys: name, kind," in p
    [p] = problems(BASE.replace("bootstrap_servers", "bootstrap_server"))
    assert "did you mean 'bootstrap_servers'?" in p  # and no extra "required key is missing"


def test_union_errors_are_merged() -> None:
    text = BASE + '\n[[sinks]]\nname = "s"\nkind = "fakesink"\nurl = "u"\napi_key = "k"\n'
    [p] = problems(text + '\n[[routes]]\nfrom = 5\nto = "s"\ntarget_table = "t"\n')
    assert p.endswith("routes[0].from: expected a string or an array, got an integer 5")
    [p] = problems(text + '\n[[routes]]\nfrom = ["a.b", 5]\nto = "s"\ntarget_table = "t"\n')
    assert p.endswith("routes[0].from[1]: expected a string, got an integer 5")


SINK = '\n[[sinks]]\nname = "crm"\nkind = "fakesink"\nurl = "u"\napi_key = "k"\n'


def test_routes_use_the_sink_kinds_route_model() -> None:
    text = BASE + SINK + '\n[[routes]]\nfrom = "orders.public.x"\nto = "crm"\n'
    [p] = problems(text)
    assert "routes[0].target_table: required key is missing" in p
    cfg = parse_config(text + 'target_table = "t"\n')
    route = cfg.routes[0]
    assert isinstance(route, fakekinds.FakeRouteConfig)
    assert route.name == "orders.public.x-to-crm"
    assert route.patterns == ["orders.public.x"]


def test_route_to_unavailable_sink_kind_is_not_over_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(
        SINK_KINDS,
        "fakesink",
        fakekinds.KINDS["sink"].__class__("fakesink", "nope.mod:X", "nope.mod:Y"),
    )
    text = BASE + SINK + '\n[[routes]]\nfrom = "orders.*"\nto = "crm"\nsobject = "Account"\n'
    [p] = problems(text)
    assert "sinks[0].kind: sink kind 'fakesink' is not available in this build" in p
    assert "sobject" not in p


def test_duplicates_and_dangling_routes() -> None:
    text = BASE + SINK + SINK
    text += '\n[[routes]]\nfrom = "orders.*"\nto = "crm"\ntarget_table = "t"\n'
    text += '\n[[routes]]\nfrom = "orders.*"\nto = "crm"\ntarget_table = "u"\n'
    text += '\n[[routes]]\nfrom = "orders.*"\nto = "nowhere"\ntarget_table = "u"\n'
    found = problems(text)
    assert any("sinks[1].name: duplicate sink name 'crm' (also sinks[0].name)" in p for p in found)
    assert any("routes[1].name: duplicate route name 'orders.all-to-crm'" in p for p in found)
    assert any("routes[2].to: no sink named 'nowhere'" in p for p in found)
    lines = [int(p.split(":")[1]) for p in found if p.startswith("line") is False and ":" in p]
    assert lines == sorted(lines)


def test_route_pattern_warnings() -> None:
    base = BASE + 'tables = ["public.orders"]\n' + SINK
    route = '\n[[routes]]\nfrom = "{}"\nto = "crm"\ntarget_table = "t"\n'
    for ok in ("orders.public.orders", "orders.public.*", "orders.*", "*"):
        assert parse_config(base + route.format(ok)).warnings == [], ok
    [w] = parse_config(base + route.format("orders.public.items")).warnings
    assert w.path == "routes[0].from" and "matches no topic" in w.message
    [w] = parse_config(base + route.format("dbz.inventory.*")).warnings
    assert "Debezium" in w.message


def test_unknown_and_missing_kinds() -> None:
    [p] = problems(BASE.replace('kind = "fake"', 'kind = "postgress"'))
    assert "unknown source kind 'postgress'; did you mean 'postgres'?" in p
    assert "known kinds:" in p
    [p] = problems(BASE.replace('kind = "fake"\n', ""))
    assert "sources[0].kind: required key is missing; one of:" in p


def test_bad_toml_reports_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + "oops = \n", source_file="r.toml")
    [p] = info.value.problems
    assert p.line == 8 and "invalid TOML" in p.message and str(p).startswith("r.toml:8:")


def test_many_section_problems_at_once() -> None:
    text = """\
[bridge]
name = "bad name"
stat = "x"

[kafka]
bootstrap_servers = 9092
topic_partitions = 0
topic_config = { "retention.ms" = 1000, "cleanup.policy" = "compact" }
"""
    found = problems(text, source_file="r.toml")
    assert found == [
        "r.toml:2: bridge.name: 'bad name' has characters that are not allowed (must match ^[A-Za-z0-9._-]+$)",
        "r.toml:3: bridge.stat: unknown key 'stat'; did you mean 'state'?",
        "r.toml:6: kafka.bootstrap_servers: expected a string, got an integer 9092",
        "r.toml:7: kafka.topic_partitions: must be at least 1; got 0",
    ]


def test_topic_config_numbers_become_strings() -> None:
    cfg = parse_config(
        BASE.replace(
            '"localhost:9092"',
            '"localhost:9092"\ntopic_config = { "retention.ms" = 1000, "x" = true }',
        )
    )
    assert cfg.kafka.topic_config == {"retention.ms": "1000", "x": "true"}


def test_mask_url() -> None:
    assert mask_url("postgresql://u:p%40ss@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_url("host=h password=secret user=u") == "host=h password=*** user=u"
    assert mask_url("mongodb://a:b@h1,h2/?replicaSet=rs") == "mongodb://a:***@h1,h2/?replicaSet=rs"
    assert mask_url("kafka:9092") == "kafka:9092"


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read the configuration file"):
        load_config("/nonexistent/routes.toml")


# -- meta-tests over the registry ---------------------------------------------------------


def _models() -> list[Any]:
    params = [
        pytest.param(m, id=m.__name__)
        for m in (BridgeSection, KafkaSection, SourceConfigBase, SinkConfigBase, RouteConfigBase)
    ]
    for table, what in ((SOURCE_KINDS, "source"), (SINK_KINDS, "sink")):
        for name, kind in sorted(table.items()):
            loaders = [("config", kind.config_model)]
            if kind.route_config:
                loaders.append(("route", kind.route_model))
            for part, load in loaders:
                params.append(pytest.param(load, id=f"{what}-{name}-{part}"))
    return params


@pytest.mark.parametrize("model", _models())
def test_every_field_has_description_and_example(model: Any) -> None:
    if not isinstance(model, type):
        try:
            model = model()
        except ImportError as exc:
            pytest.skip(f"kind not on this branch yet: {exc}")
    assert issubclass(model, BaseModel)
    for name, field in model.model_fields.items():
        assert field.description, f"{model.__name__}.{name} has no description"
        assert field.examples, f"{model.__name__}.{name} has no example"
    assert model.model_config.get("extra") == "forbid"


@pytest.mark.parametrize("model", _models())
def test_secret_fields_never_in_repr(model: Any) -> None:
    """Every SecretStr field of every model stays hidden in repr and masked()."""
    if not isinstance(model, type):
        try:
            model = model()
        except ImportError as exc:
            pytest.skip(f"kind not on this branch yet: {exc}")
    from pydantic import SecretStr

    from cdc_bridge.config import is_secret_field, mask_secrets

    secret_fields = [n for n, f in model.model_fields.items() if is_secret_field(f)]
    if not secret_fields:
        return
    value = SecretStr("needle-secret-value")
    values = {n: f.examples[0] for n, f in model.model_fields.items() if f.examples}
    obj = model.model_construct(**{**values, **{n: value for n in secret_fields}})
    assert "needle-secret-value" not in repr(obj)
    assert "needle-secret-value" not in str(mask_secrets(obj))


def test_secret_dsn_with_schemes() -> None:
    from pydantic import BaseModel as _BM
    from pydantic import ValidationError

    from cdc_bridge.config import secret_dsn_with_schemes

    class M(_BM):
        dsn: secret_dsn_with_schemes("postgresql", "postgres")  # type: ignore[valid-type]

    assert M(dsn="postgresql://u:p@h/db").dsn.get_secret_value() == "postgresql://u:p@h/db"  # type: ignore[attr-defined]
    assert M(dsn="host=h password=p dbname=x").dsn.get_secret_value().startswith("host=")  # type: ignore[attr-defined]
    assert M(dsn="postgresql+psycopg://h/db")
    with pytest.raises(ValidationError) as info:
        M(dsn="mysql://u:hunter2@h/db")
    assert "expected a postgresql:// or postgres:// URL, got a mysql:// URL" in str(info.value)
    assert "hunter2" not in info.value.errors()[0]["msg"]  # the loader never echoes secret input
