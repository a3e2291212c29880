"""routes.toml -> a typed, validated model (the config contract of DESIGN §5).

This module holds the section models shared by every kind; each source and sink kind
declares its own model next to its code (subclassing the bases here) and is found through
``cdc_bridge.registry``. The loader (TOML parsing, ``${ENV}`` interpolation, secrets from
files, error reporting with key paths) lives here too.
"""

from __future__ import annotations

import logging
import os
import re
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path as FsPath
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    PrivateAttr,
    SecretStr,
    SerializeAsAny,
    field_validator,
    model_validator,
)
from pydantic_core import core_schema

from cdc_bridge.errors import ConfigError, ConfigProblem
from cdc_bridge.expressions import ExpressionError, compile_expression
from cdc_bridge.mapping import FieldMapping

_log = logging.getLogger(__name__)

__all__ = [
    "BridgeConfig",
    "BridgeSection",
    "Dsn",
    "IncrementalSnapshotSettings",
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
    metrics: str = Field(
        "127.0.0.1:9464",
        description='host:port serving /metrics (Prometheus), /healthz and /readyz; loopback by default, ":9464" or "0.0.0.0:9464" for every interface, "" to switch it off.',
        examples=["127.0.0.1:9464", "0.0.0.0:9464"],
    )

    @field_validator("metrics")
    @classmethod
    def _check_metrics(cls, v: str) -> str:
        if v:
            from cdc_bridge.metrics import parse_address

            parse_address(v)
        return v

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
    connect_timeout_s: float = Field(
        30.0,
        gt=0,
        description="How long `start` waits for the Kafka cluster to answer before giving up (exit 1); nothing is created on any source database before Kafka answers.",
        examples=[30.0],
    )
    stall_timeout_s: float = Field(
        20.0,
        gt=0,
        description="A source whose records Kafka has confirmed none of for this many seconds is reported stalled (ERROR log, /readyz 503, `cdc-bridge status`); it clears when Kafka confirms again. Topics found gone meanwhile are re-created.",
        examples=[20.0],
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
    """Keys every source kind has; kinds subclass this and set ``kind`` to a Literal.

    Canonical names, the same in every kind (a kind may redeclare one to narrow its type or
    change its default): ``dsn`` (the connection string), ``snapshot_batch_size``,
    ``stream_batch_size``, ``heartbeat_interval_ms``; every duration is in milliseconds and
    named ``*_ms``. ``renamed_keys`` maps a kind's old key names to the canonical ones (with a
    factor for a changed unit): they are still accepted and log a deprecation warning.
    """

    renamed_keys: ClassVar[dict[str, tuple[str, float]]] = {}

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not cls.renamed_keys:
            return data
        out = dict(data)
        for old, (new, factor) in cls.renamed_keys.items():
            if old not in out:
                continue
            if new in out:
                raise ValueError(f"`{old}` is the old name of `{new}`: set only `{new}`")
            value = out.pop(old)
            if factor != 1 and isinstance(value, int | float) and not isinstance(value, bool):
                value = round(value * factor)
            out[new] = value
            _log.warning(
                "sources.%s.%s is deprecated: call it `%s`%s",
                out.get("name", "?"),
                old,
                new,
                f" (in milliseconds: {value})" if factor != 1 else "",
            )
        return out

    @model_validator(mode="after")
    def _position_policy(self) -> SourceConfigBase:
        if self.on_position_lost == "resnapshot" and self.snapshot in ("never", "initial_only"):
            raise ValueError(
                f'on_position_lost = "resnapshot" needs a snapshot mode that may snapshot '
                f'(initial or when_needed), not snapshot = "{self.snapshot}"'
            )
        return self

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
    dsn: SecretStr | None = Field(
        None,
        description="Connection string of the database to capture (never logged); required by the kinds that connect by URL.",
        examples=["postgresql://cdc:${PG_PASSWORD}@db1:5432/shop"],
    )
    snapshot_batch_size: int = Field(
        10_000,
        ge=1,
        description="Rows (documents) read and handed to Kafka per snapshot chunk.",
        examples=[10000],
    )
    stream_batch_size: int = Field(
        5_000,
        ge=1,
        description="Most change events handed to Kafka in one batch while streaming.",
        examples=[5000],
    )
    heartbeat_interval_ms: int = Field(
        10_000,
        ge=0,
        description="How often an idle stream hears from the server and moves its position on (milliseconds).",
        examples=[10000],
    )
    on_position_lost: Literal["fail", "resnapshot"] | None = Field(
        None,
        description='What to do when the database no longer has the stored position (a dropped or invalidated slot, purged binlogs, a resume token out of the oplog): fail with a message, or take a new snapshot and continue. Default: resnapshot under snapshot = "when_needed", else fail.',
        examples=["fail"],
    )
    retry_initial_delay_ms: int = Field(
        500,
        ge=1,
        description="First wait (milliseconds) before reconnecting after a passing failure; doubles per attempt and starts over after a successful reconnect.",
        examples=[500],
    )
    retry_max_delay_ms: int = Field(
        30000,
        ge=1,
        description="Longest wait (milliseconds) between reconnect attempts.",
        examples=[30000],
    )
    retry_max_attempts: int = Field(
        0,
        ge=0,
        description="Reconnect attempts in a row before the source fails; 0 retries for ever.",
        examples=[0],
    )
    checkpoint_interval_ms: int = Field(
        1000,
        ge=10,
        description="How often (milliseconds) the source stores its confirmed position while it runs.",
        examples=[1000],
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


class IncrementalSnapshotSettings(BaseModel):
    """Keys of the sources that take incremental snapshots (Postgres, MySQL/MariaDB, MongoDB):
    one name and one meaning in every kind."""

    signal_table: str | None = Field(
        None,
        description="The signal table (`schema.table` in Postgres, `database.table` in MySQL, "
        "`database.collection` in MongoDB; Debezium's `signal.data.collection`) with fields "
        "`id`, `type`, `data`: a row of type `execute-snapshot` starts an incremental "
        "snapshot, and incremental snapshots write their watermarks into it. Unset: no "
        "incremental snapshots (tables added to `tables` later are then streamed without "
        "their existing rows).",
        examples=["public.debezium_signal"],
    )
    incremental_chunk_size: int = Field(
        1024,
        ge=1,
        description="Rows read per chunk of an incremental snapshot (Debezium's "
        "`incremental.snapshot.chunk.size`).",
        examples=[1024],
    )

    @field_validator("signal_table")
    @classmethod
    def _check_signal(cls, v: str | None) -> str | None:
        if v is not None and (v.count(".") != 1 or not all(v.split("."))):
            raise ValueError(f"{v!r} is not a two-part name (e.g. 'public.debezium_signal')")
        return v


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
        examples=['after.country == "US"'],
    )
    on_filter_exit: Literal["delete", "keep"] = Field(
        "delete",
        description="Table-mirroring sinks (database, salesforce): `delete` keeps the target "
        "equal to the source rows that match `filter` -- a row updated so that it no longer "
        "matches is deleted (or soft-deleted, per the route's delete mode) and deletes are "
        "not filtered; `keep`: the filter selects events, as for topics written by the kafka "
        "sink (a row leaving it keeps its last matching values; pass deletes with "
        '`or op == "d"`).',
        examples=["delete"],
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
    # -- route engine keys (cdc_bridge.routes) -----------------------------------------
    mapping: FieldMapping = Field(
        default_factory=lambda: FieldMapping.model_validate({}),
        description="Field mapping: include/exclude, rename, constants, computed values.",
        examples=[{"exclude": ["password_hash"], "rename": {"email": "email_address"}}],
    )
    max_retries: int = Field(
        3,
        ge=0,
        description="Retries of a failing record before it goes to the dead-letter topic.",
        examples=[3],
    )
    retry_backoff_ms: int = Field(
        500, ge=0, description="First retry delay, doubled each retry.", examples=[500]
    )

    @field_validator("filter")
    @classmethod
    def _parse_filter(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_expression(value)
            except ExpressionError as exc:
                raise ValueError(str(exc)) from None
        return value

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

    @property
    def route_name(self) -> str:
        """The route's name: ``name``, or derived from ``from`` and ``to`` (the one place the
        rule lives: route workers, the loader, status, checks and the dashboard use it)."""
        if self.name:
            return self.name
        raw = "+".join(self.patterns).replace("*", "all") + "-to-" + self.to
        return re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("_") or "route"

    def consumer_group(self, bridge: str) -> str:
        """The route's Kafka consumer group: ``group_id``, else ``<bridge>.<route name>``."""
        return self.group_id or f"{bridge}.{self.route_name}"


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


# -- loading (the machinery lives in cdc_bridge/_loader.py) -------------------------------


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
    from cdc_bridge._loader import parse

    return parse(text, source_file=source_file, env=env, base_dir=base_dir)


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
