"""routes.toml -> a typed, validated model (the config contract of DESIGN §5).

This module holds the section models shared by every kind; each source and sink kind
declares its own model next to its code (subclassing the bases here) and is found through
``cdc_bridge.registry``. The loader (TOML parsing, ``${ENV}`` interpolation, secrets from
files, error reporting with key paths) lives here too.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    PrivateAttr,
    SecretStr,
    SerializeAsAny,
    ValidationError,
    field_validator,
)
from pydantic_core import core_schema

from cdc_bridge._tomlpos import Path, key_lines
from cdc_bridge.errors import ConfigError, ConfigProblem

__all__ = [
    "BridgeConfig",
    "BridgeSection",
    "Dsn",
    "KafkaSection",
    "RedactedStr",
    "RouteConfigBase",
    "SinkConfigBase",
    "SourceConfigBase",
    "dsn_with_schemes",
    "format_path",
    "is_secret_field",
    "load_config",
    "mask_secrets",
    "parse_config",
    "secret_dsn_with_schemes",
]


class Section(BaseModel):
    """Base of every config model: unknown keys are errors, fields are documented."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class BridgeSection(Section):
    name: str = Field(
        "cdc-bridge",
        description="Name of this bridge; prefixes consumer groups and dead-letter topics.",
        examples=["acme"],
        pattern=r"^[A-Za-z0-9._-]+$",
    )
    state: str = Field(
        "sqlite:///./.cdc-bridge/state.db",
        description="SQLAlchemy URL of the bridge's state store (positions, offsets, DLQ index).",
        examples=["sqlite:///./.cdc-bridge/state.db", "postgresql+psycopg://cdc@db/cdc_state"],
    )

    @field_validator("state")
    @classmethod
    def _check_state_url(cls, v: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(v)
        except ArgumentError:
            raise ValueError(
                f"{mask_url(v)!r} is not a SQLAlchemy URL; e.g. sqlite:///./.cdc-bridge/state.db "
                "or postgresql://user:pass@host/db"
            ) from None
        return v


class KafkaSection(Section):
    bootstrap_servers: str = Field(
        description="Kafka bootstrap servers, comma-separated host:port.",
        examples=["localhost:9092"],
    )
    topic_partitions: int = Field(
        6, ge=1, description="Partitions of topics the bridge creates.", examples=[6]
    )
    topic_replication_factor: int = Field(
        -1,
        description="Replication factor of created topics; -1 takes the broker default.",
        examples=[3],
    )
    topic_config: dict[str, str] = Field(
        default_factory=dict,
        description="Topic-level configs for created topics (e.g. cleanup.policy, retention.ms).",
        examples=[{"cleanup.policy": "compact,delete"}],
    )
    producer: dict[str, Any] = Field(
        default_factory=dict,
        description="librdkafka producer properties passed through (TLS, SASL, tuning).",
        examples=[{"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}],
    )
    consumer: dict[str, Any] = Field(
        default_factory=dict,
        description="librdkafka consumer properties passed through (TLS, SASL, tuning).",
        examples=[{"session.timeout.ms": 10000}],
    )

    @field_validator("producer", "consumer")
    @classmethod
    def _redact(cls, v: dict[str, Any]) -> dict[str, Any]:
        """Passwords and secrets passed through to librdkafka never show in reprs."""
        return redact_passthrough(v)

    @field_validator("topic_config", mode="before")
    @classmethod
    def _topic_config_as_strings(cls, v: Any) -> Any:
        """Kafka topic configs are strings on the wire; accept TOML numbers and booleans."""
        if isinstance(v, dict):
            return {
                k: (str(x).lower() if isinstance(x, bool) else str(x))
                if isinstance(x, int | float)
                else x
                for k, x in v.items()
            }
        return v


SnapshotMode = Literal["initial", "never", "initial_only", "when_needed"]
OpCode = Literal["c", "u", "d", "r", "t"]
ALL_OPS: list[OpCode] = ["c", "u", "d", "r", "t"]


class SourceConfigBase(Section):
    """Keys every source kind has; kinds subclass this and set ``kind`` to a Literal."""

    name: str = Field(
        description="Source name; the topic prefix (`<name>.<schema>.<table>`).",
        examples=["orders"],
        pattern=r"^[A-Za-z0-9_-]+$",
    )
    kind: str = Field(description="Source kind.", examples=["postgres"])
    tables: list[str] | None = Field(
        None,
        description="Tables to capture as `schema.table` (Postgres) or `database.table`; all when omitted.",
        examples=[["public.orders", "public.customers"]],
    )
    snapshot: SnapshotMode = Field(
        "initial",
        description="initial: snapshot once, then stream; never: stream only; initial_only: snapshot and stop; when_needed: snapshot whenever no usable position exists.",
        examples=["initial"],
    )
    schemas: bool = Field(
        True,
        description="Write key and value with the Connect schema wrapper (JsonConverter schemas.enable).",
        examples=[True],
    )
    tombstones: bool = Field(
        True, description="Follow each delete with a tombstone (null value).", examples=[True]
    )
    skip_ops: list[OpCode] = Field(
        default_factory=list,
        description="Operations not to publish (e.g. truncates).",
        examples=[["t"]],
    )
    decimal_handling: Literal["precise", "string", "double"] = Field(
        "precise",
        description="Decimals as Connect Decimal bytes (precise), strings or doubles.",
        examples=["string"],
    )
    binary_handling: Literal["bytes", "base64", "hex"] = Field(
        "bytes",
        description="Binary columns as Connect bytes (base64 in JSON), base64 or hex strings.",
        examples=["bytes"],
    )


class SinkConfigBase(Section):
    """Keys every sink kind has."""

    name: str = Field(description="Sink name, referenced by routes' `to`.", examples=["crm"])
    kind: str = Field(description="Sink kind.", examples=["database"])


class RouteConfigBase(Section):
    """Keys every route has; each sink kind subclasses this with its own keys."""

    name: str | None = Field(
        None,
        description="Route name (consumer group and DLQ topic suffix); derived from from/to when omitted.",
        examples=["customers-to-crm"],
    )
    from_: str | list[str] = Field(
        alias="from",
        description="Topic name or glob (`shop.public.*`), or a list of them.",
        examples=["orders.public.customers"],
    )
    to: str = Field(description="Name of the sink.", examples=["crm"])
    ops: list[OpCode] = Field(
        default_factory=lambda: list(ALL_OPS),
        description="Operations to apply.",
        examples=[["c", "u", "r"]],
    )
    filter: str | None = Field(
        None,
        description="Expression over before/after/op/source; only matching records are applied.",
        examples=['after.country == "US" and op != "d"'],
    )
    group_id: str | None = Field(
        None,
        description="Kafka consumer group; `<bridge>.<route>` when omitted.",
        examples=["acme.customers-to-crm"],
    )
    batch_size: int = Field(500, ge=1, description="Records per applied batch.", examples=[500])
    linger_ms: int = Field(
        200, ge=0, description="Longest wait to fill a batch, in milliseconds.", examples=[200]
    )

    @field_validator("from_")
    @classmethod
    def _check_patterns(cls, v: str | list[str]) -> str | list[str]:
        for pattern in [v] if isinstance(v, str) else v:
            check_topic_pattern(pattern)
        if isinstance(v, list) and not v:
            raise ValueError("must name at least one topic or glob")
        return v

    @property
    def patterns(self) -> list[str]:
        """``from`` as a list of topic globs."""
        return [self.from_] if isinstance(self.from_, str) else list(self.from_)


# -- helpers for kind models ---------------------------------------------------------------

_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/@:\s]*:)(?P<pw>[^@\s]*)@")
_KV_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<pw>'[^']*'|\S+)", re.IGNORECASE)


def mask_url(text: str) -> str:
    """``scheme://user:secret@host`` -> ``scheme://user:***@host`` (also libpq ``password=``)."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}***@", text)
    return _KV_PASSWORD.sub(lambda m: f"{m['head']}***", text)


class RedactedStr(str):
    """A secret handed to a library as a plain string (e.g. librdkafka's ``sasl.password``)
    whose ``repr()`` is ``'***'``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


_SECRET_KEY = re.compile(r"pass(word)?|secret|token|credential|private", re.IGNORECASE)


def redact_passthrough(values: Mapping[str, Any]) -> dict[str, Any]:
    """Wrap secret-looking string values of a pass-through table in :class:`RedactedStr`."""
    return {
        k: RedactedStr(v) if isinstance(v, str) and _SECRET_KEY.search(k) else v
        for k, v in values.items()
    }


class Dsn(str):
    """A connection URL or DSN: a plain ``str`` to drivers, but its password never shows in
    ``repr()``, ``--show-config`` or error messages. Use as a field type (``dsn: Dsn``) or
    through :func:`dsn_with_schemes`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(mask_url(str(self)))

    @property
    def masked(self) -> str:
        return mask_url(str(self))

    @property
    def scheme(self) -> str:
        head, sep, _ = str(self).partition("://")
        return head.lower() if sep else ""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, _source: Any, _handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls,
            core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda v: mask_url(str(v)), when_used="json"
            ),
        )


def dsn_with_schemes(*schemes: str, example: str | None = None) -> Any:
    """A :class:`Dsn` field type that only accepts URLs with one of ``schemes``.

    ``dsn: dsn_with_schemes("postgresql", "postgres") = Field(...)`` turns
    ``mysql://...`` into "expected a postgresql:// URL ..., got a mysql:// URL".
    """
    wanted = tuple(s.lower() for s in schemes)

    def check(v: Dsn) -> Dsn:
        scheme = v.scheme
        base = scheme.split("+", 1)[0]
        if scheme not in wanted and base not in wanted:
            hint = f" such as {example}" if example else ""
            got = f"a {scheme}:// URL" if scheme else "no scheme"
            names = " or ".join(f"{s}://" for s in wanted)
            raise ValueError(f"expected a {names} URL{hint}, got {got}")
        return v

    return Annotated[Dsn, AfterValidator(check)]


def secret_dsn_with_schemes(*schemes: str, example: str | None = None) -> Any:
    """Like :func:`dsn_with_schemes` for a ``SecretStr`` field (libpq keyword DSNs, which
    have no scheme, pass when ``allow_keywords``-style values contain ``=`` and no ``://``)."""
    check = typing.get_args(dsn_with_schemes(*schemes, example=example))[1].func

    def check_secret(v: SecretStr) -> SecretStr:
        raw = v.get_secret_value()
        if "://" in raw or "=" not in raw:
            check(Dsn(raw))
        return v

    return Annotated[SecretStr, AfterValidator(check_secret)]


_TOPIC_CHARS = re.compile(r"^[A-Za-z0-9._\-*?\[\]!]+$")


def check_topic_pattern(pattern: str) -> None:
    """Raise ValueError unless ``pattern`` is a Kafka topic name or a glob over them."""
    if not pattern:
        raise ValueError("a topic pattern must not be empty")
    if not _TOPIC_CHARS.match(pattern):
        bad = sorted({c for c in pattern if not re.match(r"[A-Za-z0-9._\-*?\[\]!]", c)})
        raise ValueError(
            f"invalid topic pattern {pattern!r}: {''.join(bad)!r} cannot appear in Kafka topic "
            "names (use letters, digits, '.', '_', '-' and the globs * ? [...])"
        )
    depth = 0
    for ch in pattern:
        if ch == "[":
            if depth:
                raise ValueError(f"invalid glob {pattern!r}: nested '['")
            depth = 1
        elif ch == "]":
            if not depth:
                raise ValueError(f"invalid glob {pattern!r}: ']' without '['")
            depth = 0
    if depth:
        raise ValueError(f"invalid glob {pattern!r}: '[' is never closed")


def _annotation_has(annotation: Any, target: type) -> bool:
    if annotation is target:
        return True
    if isinstance(annotation, type) and issubclass(annotation, target):
        return True
    if typing.get_origin(annotation) is target:
        return True
    return any(_annotation_has(a, target) for a in typing.get_args(annotation))


def is_secret_field(field: Any) -> bool:
    """True for fields holding secrets: ``SecretStr`` typed or marked ``secret=True``."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return bool(extra.get("secret")) or _annotation_has(field.annotation, SecretStr)


def is_dsn_field(field: Any) -> bool:
    return _annotation_has(field.annotation, Dsn) or any(
        _annotation_has(getattr(m, "__class__", None), Dsn) for m in field.metadata
    )


def mask_secrets(value: Any) -> Any:
    """A JSON-able copy of a config (model or data) with every secret replaced by ``***``."""
    if isinstance(value, BaseModel):
        out: dict[str, Any] = {}
        for name, field in type(value).model_fields.items():
            key = field.alias or name
            v = getattr(value, name)
            if v is not None and is_secret_field(field):
                out[key] = "***"
            else:
                out[key] = mask_secrets(v)
        return out
    if isinstance(value, SecretStr | RedactedStr):
        return "***"
    if isinstance(value, Mapping):
        return {
            k: "***" if isinstance(k, str) and _SECRET_KEY.search(k) else mask_secrets(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    if isinstance(value, str):
        return mask_url(value)
    return value


# -- the top-level model -------------------------------------------------------------------


class BridgeConfig(Section):
    """A whole ``routes.toml``: built by :func:`load_config` / :func:`parse_config`."""

    bridge: BridgeSection = Field(
        default_factory=lambda: BridgeSection.model_validate({}),
        description="This bridge: name and state store.",
    )
    kafka: KafkaSection = Field(description="The Kafka cluster.")
    sources: list[SerializeAsAny[SourceConfigBase]] = Field(
        default_factory=list, description="Capture sources ([[sources]]), one per database."
    )
    sinks: list[SerializeAsAny[SinkConfigBase]] = Field(
        default_factory=list, description="Targets ([[sinks]]) that routes write to."
    )
    routes: list[SerializeAsAny[RouteConfigBase]] = Field(
        default_factory=list, description="Routes ([[routes]]): topics -> sink."
    )

    _source_file: str | None = PrivateAttr(default=None)
    _warnings: list[ConfigProblem] = PrivateAttr(default_factory=list)

    @property
    def source_file(self) -> str | None:
        return self._source_file

    @property
    def warnings(self) -> list[ConfigProblem]:
        """Problems that do not stop the bridge (e.g. a route matching no configured source)."""
        return self._warnings

    def source(self, name: str) -> SourceConfigBase:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(name)

    def sink(self, name: str) -> SinkConfigBase:
        for s in self.sinks:
            if s.name == name:
                return s
        raise KeyError(name)

    def masked(self) -> dict[str, Any]:
        """The resolved config as plain data with every secret shown as ``***``."""
        return mask_secrets(self)


# -- loading -------------------------------------------------------------------------------

TOP_LEVEL = ("bridge", "kafka", "sources", "sinks", "routes")
_ARRAY_SECTIONS = ("sources", "sinks", "routes")


def format_path(path: Iterable[str | int]) -> str:
    """``("sources", 1, "dsn")`` -> ``sources[1].dsn``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_\-]+", part):
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out


def closest(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The choice most like ``word`` (ties: the one closest in length), or None."""
    scored = []
    for choice in choices:
        ratio = difflib.SequenceMatcher(None, word, choice).ratio()
        if ratio >= cutoff:
            scored.append((-ratio, abs(len(choice) - len(word)), choice))
    return min(scored)[2] if scored else None


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = closest(word, choices)
    return f"; did you mean {close!r}?" if close else ""


class _Collector:
    """Gathers problems (by key path) and turns them into ConfigProblems with line numbers."""

    def __init__(self, text: str, source_file: str | None) -> None:
        self.source_file = source_file
        self.lines = key_lines(text)
        self.errors: list[tuple[Path, str]] = []
        self.warnings: list[tuple[Path, str]] = []
        self.tainted: set[Path] = set()  # paths already reported (suppress follow-up errors)

    def error(self, path: Path, message: str) -> None:
        if any(path[: len(t)] == t for t in self.tainted):
            return
        if (path, message) not in self.errors:
            self.errors.append((path, message))

    def warn(self, path: Path, message: str) -> None:
        self.warnings.append((path, message))

    def line_of(self, path: Path) -> int | None:
        for n in range(len(path), 0, -1):
            line = self.lines.get(path[:n])
            if line is not None:
                return line
        return None

    def problem(self, path: Path, message: str) -> ConfigProblem:
        return ConfigProblem(
            format_path(path), message, source_file=self.source_file, line=self.line_of(path)
        )

    def raise_if_any(self) -> None:
        if self.errors:
            problems = [self.problem(p, m) for p, m in self.errors]
            problems.sort(key=lambda p: (p.line is None, p.line or 0))
            n = len(problems)
            where = f" in {self.source_file}" if self.source_file else ""
            raise ConfigError(
                f"{n} problem{'s' if n > 1 else ''} in the configuration{where}:", problems
            )


# ${VAR}, ${VAR:-default}; $${ is a literal ${
_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _interpolate_str(value: str, env: Mapping[str, str], path: Path, out: _Collector) -> str | None:
    failed = False

    def sub(m: re.Match[str]) -> str:
        nonlocal failed
        token = m.group(0)
        if token == "$${":
            return "${"
        if m.group(1) is None:
            failed = True
            out.error(path, "'${' is never closed; write '$${' for a literal '${'")
            return token
        inner = m.group(1)
        name, sep, default = inner.partition(":-")
        if not _VAR_NAME.match(name):
            failed = True
            out.error(
                path,
                f"invalid variable reference '${{{inner}}}'; use ${{NAME}} or ${{NAME:-default}}",
            )
            return token
        got = env.get(name)
        if got is None or (sep and got == ""):
            if sep:
                return default
            failed = True
            out.error(
                path,
                f"environment variable {name} is not set; export it, or give a default with "
                f"${{{name}:-default}}",
            )
            return token
        return got

    result = _REF.sub(sub, value)
    if failed:
        out.tainted.add(path)
        return None
    return result


def _interpolate(data: Any, env: Mapping[str, str], path: Path, out: _Collector) -> Any:
    if isinstance(data, str):
        got = _interpolate_str(data, env, path, out)
        return data if got is None else got
    if isinstance(data, dict):
        return {k: _interpolate(v, env, (*path, k), out) for k, v in data.items()}
    if isinstance(data, list):
        return [_interpolate(v, env, (*path, i), out) for i, v in enumerate(data)]
    return data


def _field_keys(model: type[BaseModel]) -> dict[str, str]:
    """Accepted key (alias or name) -> field name."""
    keys: dict[str, str] = {}
    for name, field in model.model_fields.items():
        keys[name] = name
        if field.alias:
            keys[field.alias] = name
    return keys


def _public_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _read_secret_files(
    data: dict[str, Any], model: type[BaseModel], path: Path, base_dir: FsPath, out: _Collector
) -> dict[str, Any]:
    """``x_file = "path"`` -> ``x = <file content, stripped>`` for fields ``x`` of ``model``.

    Applies to the entry's own keys and to keys of pass-through tables (``[kafka.producer]``
    ``"sasl.password_file"``). A field really named ``..._file`` is left alone.
    """
    keys = _field_keys(model)
    result = dict(data)
    for key, value in data.items():
        if key in keys:
            field = model.model_fields[keys[key]]
            if isinstance(value, dict) and _annotation_has(field.annotation, dict):
                result[key] = _read_passthrough_secrets(value, (*path, key), base_dir, out)
            continue
        if not key.endswith("_file"):
            continue
        target = key[: -len("_file")]
        if target not in keys:
            continue
        if target in data:
            out.error((*path, key), f"give either '{target}' or '{key}', not both")
            del result[key]
            continue
        secret = _read_secret((*path, key), value, base_dir, out)
        del result[key]
        if secret is not None:
            result[target] = secret
            line = out.lines.get((*path, key))
            if line is not None:
                out.lines.setdefault((*path, target), line)
        else:
            out.tainted.add((*path, target))
    return result


def _read_passthrough_secrets(
    data: dict[str, Any], path: Path, base_dir: FsPath, out: _Collector
) -> dict[str, Any]:
    result = dict(data)
    for key, value in data.items():
        if key.endswith("_file") and not key.endswith("."):
            target = key[: -len("_file")]
            secret = _read_secret((*path, key), value, base_dir, out)
            del result[key]
            if secret is not None:
                result[target] = secret
    return result


def _read_secret(path: Path, value: Any, base_dir: FsPath, out: _Collector) -> str | None:
    if not isinstance(value, str) or not value:
        out.error(path, "expected the path of a file holding the secret")
        return None
    file = FsPath(value).expanduser()
    if not file.is_absolute():
        file = base_dir / file
    try:
        secret = file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        out.error(path, f"cannot read secret file '{file}': {reason}")
        return None
    if not secret:
        out.error(path, f"secret file '{file}' is empty")
        return None
    return secret


# -- pydantic errors in plain English ------------------------------------------------------

_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "an array",
    "tuple_type": "an array",
    "set_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "datetime_type": "a date-time",
    "is_instance_of": "a value of another type",
}


def _toml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _show(value: Any, secret: bool) -> str:
    if secret:
        return "***"
    if isinstance(value, str):
        return repr(mask_url(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return ""


def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _is_union(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return origin is typing.Union or origin is types.UnionType


def _resolve_loc(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Path, bool, Path | None]:
    """Pydantic ``loc`` -> (key path without union tags, is it a secret, path of the union)."""
    out: list[str | int] = []
    ann: Any = model
    secret = False
    union_at: Path | None = None
    for part in loc:
        ann = _unwrap(ann)
        if _is_union(ann) and isinstance(part, str):
            members = [a for a in typing.get_args(ann) if a is not type(None)]
            union_at = tuple(out)
            ann = next(
                (m for m in members if part.startswith(getattr(m, "__name__", str(m)).lower())),
                Any,
            )
            if len(members) > 1 or part in ("str", "int", "float", "bool"):
                continue
        if _is_union(ann):
            members = [a for a in typing.get_args(ann) if a is not type(None)]
            ann = members[0] if len(members) == 1 else Any
            ann = _unwrap(ann)
        out.append(part)
        if isinstance(ann, type) and issubclass(ann, BaseModel) and isinstance(part, str):
            field_name = _field_keys(ann).get(part)
            if field_name is None:
                ann = Any
                continue
            field = ann.model_fields[field_name]
            secret = secret or is_secret_field(field)
            ann = field.annotation
        else:
            args = typing.get_args(ann)
            origin = typing.get_origin(ann)
            if origin in (list, tuple, set) and args:
                ann = args[0]
            elif origin is dict and len(args) == 2:
                ann = args[1]
            else:
                ann = Any
    return tuple(out), secret, union_at


def _translate(error: Any, secret: bool, keys: list[str]) -> tuple[str, str | None, str | None]:
    """-> (message, expected, got); ``expected`` set for type errors (merged across unions)."""
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    shown = _show(value, secret)
    got = f"{_toml_type(value)}{' ' + shown if shown else ''}"
    if kind == "missing":
        return "required key is missing", None, None
    if kind in _TYPE_NAMES:
        expected = _TYPE_NAMES[kind]
        return f"expected {expected}, got {got}", expected, got
    if kind in ("literal_error", "enum"):
        options = re.findall(r"'([^']*)'|(\d+)", str(ctx.get("expected", "")))
        opts = [a or b for a, b in options]
        hint = _did_you_mean(str(value), opts) if isinstance(value, str) else ""
        return f"must be one of {ctx.get('expected')}; got {shown or got}{hint}", None, None
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("greater than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {ctx.get(key)}; got {shown or got}", None, None
    if kind == "string_pattern_mismatch":
        return (
            f"{shown or 'value'} has characters that are not allowed (must match "
            f"{ctx.get('pattern')})",
            None,
            None,
        )
    if kind in ("string_too_short", "too_short") and ctx.get("min_length") == 1:
        return "must not be empty", None, None
    if kind in ("value_error", "assertion_error"):
        msg = str(error.get("msg", ""))
        msg = re.sub(r"^(Value error|Assertion failed), ", "", msg)
        return mask_url(msg), None, None
    return mask_url(str(error.get("msg", kind))).rstrip(".").lower(), None, None


def _report_validation(
    exc: ValidationError, model: type[BaseModel], base: Path, out: _Collector
) -> None:
    grouped: dict[Path, list[tuple[str, str | None, str | None]]] = {}
    union_paths: dict[Path, Path] = {}
    errors = exc.errors(include_url=False)
    suggested: set[Path] = set()  # missing keys that an unknown key's hint already names
    for error in errors:
        if error["type"] == "extra_forbidden":
            rel, _, _ = _resolve_loc(model, tuple(error["loc"]))
            parent_model = _model_at(model, rel[:-1])
            if parent_model is not None and rel:
                close = closest(str(rel[-1]), _public_keys(parent_model))
                if close:
                    suggested.add((*base, *rel[:-1], close))
    for error in errors:
        rel, secret, union_at = _resolve_loc(model, tuple(error["loc"]))
        path = (*base, *rel)
        if error["type"] == "extra_forbidden":
            parent_model = _model_at(model, rel[:-1])
            key = str(rel[-1]) if rel else "?"
            keys = _public_keys(parent_model) if parent_model else []
            hint = _did_you_mean(key, keys)
            if not hint and keys:
                hint = f" (known keys: {', '.join(keys)})"
            out.error(path, f"unknown key '{key}'{hint}")
            continue
        if error["type"] == "missing" and path in suggested:
            continue
        grouped.setdefault(path, []).append(_translate(error, secret, _public_keys(model)))
        if union_at is not None:
            union_paths[path] = (*base, *union_at)
    # When a union member went deeper (the input had that member's shape), drop the shallow
    # "expected a string, got an array" complaints of the other members.
    deep_unions = {u for p, u in union_paths.items() if len(p) > len(u)}
    for path, items in grouped.items():
        if path in deep_unions and any(
            len(p) > len(path) and p[: len(path)] == path for p in grouped
        ):
            continue
        typed = [i for i in items if i[1] is not None]
        if len(typed) > 1 and len(typed) == len(items):
            expected = " or ".join(dict.fromkeys(i[1] for i in typed if i[1]))
            out.error(path, f"expected {expected}, got {typed[0][2]}")
        else:
            for message, _, _ in items:
                out.error(path, message)


def _model_at(model: type[BaseModel], rel: Path) -> type[BaseModel] | None:
    ann: Any = model
    for part in rel:
        ann = _unwrap(ann)
        if _is_union(ann):
            members = [a for a in typing.get_args(ann) if a is not type(None)]
            ann = members[0] if members else Any
        if isinstance(ann, type) and issubclass(ann, BaseModel) and isinstance(part, str):
            name = _field_keys(ann).get(part)
            if name is None:
                return None
            ann = ann.model_fields[name].annotation
        elif isinstance(part, int):
            args = typing.get_args(_unwrap(ann))
            ann = args[0] if args else Any
    ann = _unwrap(ann)
    if _is_union(ann):
        members = [a for a in typing.get_args(ann) if a is not type(None)]
        ann = members[0] if members else Any
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _validate(
    model: type[BaseModel],
    data: Any,
    path: Path,
    base_dir: FsPath,
    out: _Collector,
    *,
    ignore_unknown: bool = False,
) -> Any:
    if not isinstance(data, dict):
        out.error(path, f"expected a table, got {_toml_type(data)}")
        return None
    data = _read_secret_files(data, model, path, base_dir, out)
    if ignore_unknown:
        keys = _field_keys(model)
        data = {k: v for k, v in data.items() if k in keys}
    # drop keys whose value could not be resolved (already reported)
    data = {k: v for k, v in data.items() if (*path, k) not in out.tainted}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        _report_validation(exc, model, path, out)
        return None


# -- kinds ---------------------------------------------------------------------------------


def _kind_model(
    table: Mapping[str, Any],
    entry: dict[str, Any],
    path: Path,
    what: str,
    out: _Collector,
    getter: Callable[[Any], Any],
) -> Any:
    """The config model for ``entry['kind']``; reports unknown / unavailable kinds."""
    kind = entry.get("kind")
    known = ", ".join(sorted(table))
    if kind is None:
        out.error((*path, "kind"), f"required key is missing; one of: {known}")
        return None
    if not isinstance(kind, str):
        out.error((*path, "kind"), f"expected a string, got {_toml_type(kind)}; one of: {known}")
        return None
    spec = table.get(kind)
    if spec is None:
        hint = _did_you_mean(kind, table)
        out.error((*path, "kind"), f"unknown {what} kind '{kind}'{hint} (known kinds: {known})")
        return None
    try:
        return getter(spec)
    except ImportError as exc:
        out.error(
            (*path, "kind"),
            f"{what} kind '{kind}' is not available in this build ({exc})",
        )
        return None


def _as_entries(raw: dict[str, Any], section: str, out: _Collector) -> list[Any]:
    value = raw.get(section, [])
    if isinstance(value, list):
        return value
    out.error((section,), f"expected an array of tables ([[{section}]] entries), got a table")
    return []


def _derive_route_name(route: RouteConfigBase) -> str:
    src = "+".join(route.patterns)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{src}-to-{route.to}")


def _source_topic_globs(source: SourceConfigBase) -> list[str]:
    """Topics a source may write: ``name.<table>`` per listed table, else ``name.*``."""
    if source.tables:
        return [f"{source.name}.{t}" for t in source.tables]
    return [f"{source.name}.*"]


def _could_match(pattern: str, topic_glob: str) -> bool:
    if not any(c in topic_glob for c in "*?["):
        return fnmatch.fnmatchcase(topic_glob, pattern)
    # topic_glob is "name.*": the pattern could match if it starts compatibly with "name."
    prefix = topic_glob[:-1]
    literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    return literal.startswith(prefix) or prefix.startswith(literal)


def parse_config(
    text: str,
    *,
    source_file: str | None = None,
    env: Mapping[str, str] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> BridgeConfig:
    """Parse and validate a routes.toml text; raises ConfigError listing every problem.

    ``env`` defaults to ``os.environ``; relative ``*_file`` secret paths resolve against
    ``base_dir`` (default: the config file's directory, else the working directory).
    """
    from cdc_bridge.registry import SINK_KINDS, SOURCE_KINDS

    env = os.environ if env is None else env
    if base_dir is None:
        base_dir = FsPath(source_file).parent if source_file else FsPath.cwd()
    base = FsPath(base_dir)
    out = _Collector(text, source_file)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        line = int(m.group(1)) if m else None
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", msg)
        col = f", column {m.group(2)}" if m else ""
        problem = ConfigProblem("", f"invalid TOML{col}: {msg}", source_file=source_file, line=line)
        where = f" in {source_file}" if source_file else ""
        raise ConfigError(f"cannot parse the configuration{where}:", [problem]) from None

    raw = _interpolate(raw, env, (), out)

    for key in raw:
        if key not in TOP_LEVEL:
            hint = _did_you_mean(key, TOP_LEVEL)
            out.error((key,), f"unknown section '{key}'{hint} (sections: {', '.join(TOP_LEVEL)})")

    bridge = _validate(BridgeSection, raw.get("bridge", {}), ("bridge",), base, out)
    kafka = None
    if "kafka" not in raw:
        out.error(
            ("kafka",),
            "missing required section [kafka]; add it with at least "
            'bootstrap_servers = "host:9092"',
        )
    else:
        kafka = _validate(KafkaSection, raw["kafka"], ("kafka",), base, out)

    sources: list[SourceConfigBase] = []
    names: dict[str, Path] = {}
    for i, entry in enumerate(_as_entries(raw, "sources", out)):
        path: Path = ("sources", i)
        if not isinstance(entry, dict):
            out.error(path, f"expected a table, got {_toml_type(entry)}")
            continue
        _check_duplicate(entry.get("name"), path, names, "source", out)
        model = _kind_model(SOURCE_KINDS, entry, path, "source", out, lambda k: k.config_model())
        if model is not None:
            cfg = _validate(model, entry, path, base, out)
            if cfg is not None:
                sources.append(cfg)

    sinks: list[SinkConfigBase] = []
    sink_kinds: dict[str, Any] = {}
    names = {}
    for i, entry in enumerate(_as_entries(raw, "sinks", out)):
        path = ("sinks", i)
        if not isinstance(entry, dict):
            out.error(path, f"expected a table, got {_toml_type(entry)}")
            continue
        _check_duplicate(entry.get("name"), path, names, "sink", out)
        model = _kind_model(SINK_KINDS, entry, path, "sink", out, lambda k: k.config_model())
        if isinstance(entry.get("name"), str):
            # None: kind unknown or not in this build (reported above); its routes are
            # then checked for the common keys only
            spec = SINK_KINDS.get(str(entry.get("kind"))) if model is not None else None
            sink_kinds.setdefault(entry["name"], spec)
        if model is not None:
            cfg = _validate(model, entry, path, base, out)
            if cfg is not None:
                sinks.append(cfg)

    routes: list[RouteConfigBase] = []
    route_paths: list[Path] = []
    for i, entry in enumerate(_as_entries(raw, "routes", out)):
        path = ("routes", i)
        if not isinstance(entry, dict):
            out.error(path, f"expected a table, got {_toml_type(entry)}")
            continue
        route_model: Any = RouteConfigBase
        loose = False
        to = entry.get("to")
        if isinstance(to, str):
            if to not in sink_kinds:
                hint = _did_you_mean(to, sink_kinds)
                listed = ", ".join(sink_kinds) or "none"
                out.error(
                    (*path, "to"),
                    f"no sink named '{to}'{hint} (configured sinks: {listed})",
                )
                loose = True
            elif sink_kinds[to] is None:
                loose = True  # the sink's kind is unknown; reported there
            else:
                try:
                    route_model = sink_kinds[to].route_model() or RouteConfigBase
                except ImportError:
                    loose = True
        cfg = _validate(route_model, entry, path, base, out, ignore_unknown=loose)
        if cfg is not None:
            if cfg.name is None:
                cfg.name = _derive_route_name(cfg)
            routes.append(cfg)
            route_paths.append(path)

    names = {}
    for cfg, path in zip(routes, route_paths, strict=True):
        _check_duplicate(cfg.name, path, names, "route", out)

    source_entries = raw.get("sources")
    if sources and isinstance(source_entries, list) and len(sources) == len(source_entries):
        # every source is known, so "matches no topic" is meaningful
        globs = [g for s in sources for g in _source_topic_globs(s)]
        for cfg, path in zip(routes, route_paths, strict=True):
            for pattern in cfg.patterns:
                if not any(_could_match(pattern, g) for g in globs):
                    out.warn(
                        (*path, "from"),
                        f"'{pattern}' matches no topic of the configured sources "
                        f"({', '.join(globs)}); fine if another producer (e.g. Debezium) "
                        "writes it",
                    )

    out.raise_if_any()
    assert bridge is not None and kafka is not None
    config = BridgeConfig(bridge=bridge, kafka=kafka, sources=sources, sinks=sinks, routes=routes)
    config._source_file = source_file
    config._warnings = [out.problem(p, m) for p, m in out.warnings]
    return config


def _check_duplicate(
    name: Any, path: Path, seen: dict[str, Path], what: str, out: _Collector
) -> None:
    if not isinstance(name, str):
        return
    if name in seen:
        out.error(
            (*path, "name"),
            f"duplicate {what} name '{name}' (also {format_path((*seen[name], 'name'))}); "
            f"{what} names must be unique",
        )
    else:
        seen[name] = path


def load_config(
    path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None
) -> BridgeConfig:
    """Read and validate ``path`` (a routes.toml); raises ConfigError with every problem."""
    file = FsPath(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read the configuration file '{file}': {exc.strerror or exc}; "
            "pass an existing file with --config"
        ) from None
    return parse_config(text, source_file=str(file), env=env, base_dir=file.parent)
