"""The config loader behind :func:`cdc_bridge.config.parse_config`: TOML, ``${VAR}``
interpolation, ``*_file`` secrets, kind dispatch through the registry, cross-checks (names,
routes), and every problem collected with its key path and line.
"""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path as FsPath
from typing import Any

from pydantic import BaseModel, ValidationError

from cdc_bridge._tomlpos import Path, key_lines
from cdc_bridge._validation import (
    did_you_mean,
    field_keys,
    report_validation,
    toml_type,
)
from cdc_bridge.config import (
    BridgeConfig,
    BridgeSection,
    KafkaSection,
    RouteConfigBase,
    SinkConfigBase,
    SourceConfigBase,
    _annotation_has,
    format_path,
)
from cdc_bridge.errors import ConfigError, ConfigProblem
from cdc_bridge.registry import SINK_KINDS, SOURCE_KINDS

__all__ = ["TOP_LEVEL", "parse"]

TOP_LEVEL = ("bridge", "kafka", "sources", "sinks", "routes")


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


def _read_secret_files(
    data: dict[str, Any], model: type[BaseModel], path: Path, base_dir: FsPath, out: _Collector
) -> dict[str, Any]:
    """``x_file = "path"`` -> ``x = <file content, stripped>`` for fields ``x`` of ``model``.

    Applies to the entry's own keys and to keys of pass-through tables (``[kafka.producer]``
    ``"sasl.password_file"``). A field really named ``..._file`` is left alone.
    """
    keys = field_keys(model)
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
        out.error(path, f"expected a table, got {toml_type(data)}")
        return None
    data = _read_secret_files(data, model, path, base_dir, out)
    if ignore_unknown:
        keys = field_keys(model)
        data = {k: v for k, v in data.items() if k in keys}
    # drop keys whose value could not be resolved (already reported)
    dropped = any((*path, k) in out.tainted for k in data)
    data = {k: v for k, v in data.items() if (*path, k) not in out.tainted}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # Whole-entry checks ("auth = 'password' needs ...") would blame the keys dropped
        # above, whose real problem is already reported: keep only per-key problems then.
        report_validation(exc, model, path, _SkipAt(out, path) if dropped else out)
        return None


class _SkipAt:
    """Forwards problems to ``out`` except those at exactly ``path``."""

    def __init__(self, out: _Collector, path: Path) -> None:
        self.out = out
        self.path = path

    def error(self, path: Path, message: str) -> None:
        if path != self.path:
            self.out.error(path, message)


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
        out.error((*path, "kind"), f"expected a string, got {toml_type(kind)}; one of: {known}")
        return None
    spec = table.get(kind)
    if spec is None:
        hint = did_you_mean(kind, table)
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


def parse(
    text: str,
    *,
    source_file: str | None = None,
    env: Mapping[str, str] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> BridgeConfig:
    """See :func:`cdc_bridge.config.parse_config`."""
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
            hint = did_you_mean(key, TOP_LEVEL)
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
            out.error(path, f"expected a table, got {toml_type(entry)}")
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
            out.error(path, f"expected a table, got {toml_type(entry)}")
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
            out.error(path, f"expected a table, got {toml_type(entry)}")
            continue
        route_model: Any = RouteConfigBase
        loose = False
        to = entry.get("to")
        if isinstance(to, str):
            if to not in sink_kinds:
                hint = did_you_mean(to, sink_kinds)
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
                cfg.name = cfg.route_name
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

    if kafka is not None:
        _check_consumer_timeouts(kafka.consumer, out)

    out.raise_if_any()
    assert bridge is not None and kafka is not None
    config = BridgeConfig(bridge=bridge, kafka=kafka, sources=sources, sinks=sinks, routes=routes)
    config._source_file = source_file
    config._warnings = [out.problem(p, m) for p, m in out.warnings]
    return config


# librdkafka's heartbeat default and the session timeout cdc_bridge.kafka gives its consumers
_HEARTBEAT_DEFAULT_MS = 3000
_SESSION_DEFAULT_MS = 10_000


def _check_consumer_timeouts(consumer: Mapping[str, Any], out: _Collector) -> None:
    """Warn when the session times out before a heartbeat is due: every route would lose its
    partitions (a rebalance) every few seconds."""

    def ms(key: str, default: int) -> int | None:
        value = consumer.get(key, default)
        try:
            return int(str(value))
        except ValueError:
            return None  # not a number: librdkafka reports it when the consumer starts

    session = ms("session.timeout.ms", _SESSION_DEFAULT_MS)
    heartbeat = ms("heartbeat.interval.ms", _HEARTBEAT_DEFAULT_MS)
    if session is None or heartbeat is None or session > heartbeat:
        return
    key = "session.timeout.ms" if "session.timeout.ms" in consumer else "heartbeat.interval.ms"
    out.warn(
        ("kafka", "consumer", key),
        f"session.timeout.ms = {session} is not above heartbeat.interval.ms = {heartbeat}"
        f"{' (the default)' if 'heartbeat.interval.ms' not in consumer else ''}: routes will "
        "lose their partitions every few seconds; set heartbeat.interval.ms below a third of "
        f"the session timeout (e.g. {max(1, session // 3 - 1)})",
    )


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
