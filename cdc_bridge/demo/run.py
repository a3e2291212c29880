"""`cdc-bridge demo`: start everything locally, run traffic through the bridge, verify targets.

Steps: start the embedded Kafka broker, private Postgres and MariaDB servers and the Salesforce
emulator; create four source databases with seed rows and two empty target databases; write the
demo's ``routes.toml`` into a run directory and start the bridge in-process
(:class:`cdc_bridge.runtime.Bridge`); generate traffic for ``duration`` seconds while a live
dashboard shows the flow; stop the traffic, wait for the routes to drain, compare every target
with its source and print a pass/fail table. The exit code is 0 only if every target matches.

Two-way: while the databases' traffic runs, simulated reps edit Accounts in the emulator; the
`salesforce` source and the `accounts-to-customers` route bring those edits into the shop's
``customers``, and the table's last rows check them and count echoes (none may come back).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from rich import box
from rich.console import Console
from rich.live import Live
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from cdc_bridge.demo import schema, verify
from cdc_bridge.demo.dashboard import Probe, render
from cdc_bridge.demo.traffic import Traffic

__all__ = ["DemoOptions", "DemoResult", "config_text", "run_demo"]

log = logging.getLogger(__name__)

CONFIG_NAME = "routes.toml"
#: While draining, stop waiting when no source captured and no route applied anything for
#: this long although some route still shows lag (e.g. an informational offset commit that
#: did not arrive): the verification decides.
STALL_AFTER = 15.0


def config_text(mongodb: bool = False) -> str:
    """The demo's routes.toml: as shipped in the package (activity on MariaDB), or with the
    `activity` source on MongoDB (``mongodb``)."""
    text = resources.files("cdc_bridge.demo").joinpath(CONFIG_NAME).read_text(encoding="utf-8")
    if mongodb:
        from cdc_bridge.demo.mongo import mongo_config_text

        return mongo_config_text(text)
    return text


@dataclass
class DemoOptions:
    """What `cdc-bridge demo` was asked to do."""

    duration: float | None = 60.0  # None: --follow (until Ctrl-C)
    rate: float = 20.0  # transactions per second, over all sources
    keep: bool = False  # keep everything running after the verification, until Ctrl-C
    drain_timeout: float = 120.0
    workdir: Path | None = None  # default: a fresh temp dir (removed unless keep)
    live: bool | None = None  # rich Live dashboard; default: when the console is a terminal
    seed: int = 8


@dataclass
class DemoResult:
    exit_code: int
    results: list[verify.CheckResult] = field(default_factory=list)
    drained: bool = False
    stalled: bool = False
    bridge_failed: bool = False
    message: str = ""
    workdir: str = ""


@dataclass
class _Services:
    kafka: Any = None
    pg: Any = None
    maria: Any = None
    emulator: Any = None
    mongo: Any = None  # MongoDBService when a replica set is reachable
    mongo_note: str = ""  # why the fourth source runs where it runs

    def stop(self) -> None:
        for svc in (self.emulator, self.mongo, self.maria, self.pg, self.kafka):
            if svc is not None:
                with contextlib.suppress(Exception):
                    svc.stop()


def _start_services(console: Console) -> _Services:
    """Kafka, Postgres and MariaDB in parallel (each takes a second or more), then Salesforce."""
    from cdc_bridge.testing.salesforce import SalesforceEmulator
    from cdc_bridge.testing.services import start_kafka, start_mariadb, start_postgres

    services = _Services()
    errors: list[BaseException] = []

    def start(attr: str, fn: Any) -> None:
        try:
            setattr(services, attr, fn())
        except BaseException as exc:
            errors.append(exc)

    def mongo() -> Any:
        services.mongo, services.mongo_note = _start_mongodb()
        return services.mongo

    threads = [
        threading.Thread(target=start, args=(attr, fn), daemon=True)
        for attr, fn in (
            ("kafka", start_kafka),
            ("pg", start_postgres),
            ("maria", start_mariadb),
            ("mongo", mongo),
        )
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        services.stop()
        raise errors[0]
    services.emulator = SalesforceEmulator().start()
    console.print(
        f"  Kafka (embedded broker) [cyan]{services.kafka.bootstrap}[/]   "
        f"Postgres [cyan]{services.pg.host}:{services.pg.port}[/]   "
        f"MariaDB [cyan]{services.maria.host}:{services.maria.port}[/]   "
        + (f"MongoDB [cyan]{_redacted(services.mongo.uri)}[/]   " if services.mongo else "")
        + f"Salesforce emulator [cyan]{services.emulator.url}[/]"
    )
    return services


def _redacted(uri: str) -> str:
    try:
        from cdc_bridge.testing._common import redact

        return str(redact(uri))
    except ImportError:  # pragma: no cover
        return uri.split("@")[-1]


def _start_mongodb() -> tuple[Any, str]:
    """A MongoDB replica set for the `activity` source, or None and why the demo uses MariaDB."""
    from cdc_bridge.testing.services import ServiceUnavailable, start_mongodb

    try:
        service = start_mongodb()
    except ServiceUnavailable:
        return None, "activity runs on MariaDB in place of MongoDB (no replica set on this machine)"
    except Exception as exc:  # reachable config but unusable server: say so, keep going
        return None, f"activity runs on MariaDB in place of MongoDB ({exc})"
    return service, "activity runs on MongoDB (change streams of a replica set)"


def _environment(services: _Services, workdir: Path) -> dict[str, str]:
    """The ${VAR}s the demo's routes.toml refers to."""
    auth = services.emulator.auth_config
    return {
        "DEMO_DIR": str(workdir),
        "DEMO_METRICS_PORT": "0",  # any free port; the dashboard shows which
        "DEMO_KAFKA": services.kafka.bootstrap,
        "DEMO_PG_HOST": services.pg.host,
        "DEMO_PG_PORT": str(services.pg.port),
        "DEMO_MARIADB_HOST": services.maria.host,
        "DEMO_MARIADB_PORT": str(services.maria.port),
        **({"DEMO_MONGODB_URI": services.mongo.uri} if services.mongo else {}),
        "DEMO_SF_URL": services.emulator.url,
        "DEMO_SF_CA": services.emulator.ca_file or "",
        "DEMO_SF_PUBSUB": services.emulator.pubsub_endpoint,
        "SF_CLIENT_ID": auth.client_id,
        "SF_CLIENT_SECRET": auth.client_secret,
        "SF_USERNAME": auth.username,
        "SF_PASSWORD": auth.password,
        "SF_SECURITY_TOKEN": auth.security_token,
    }


def _engine(spec: Any, mongodb: bool) -> str:
    if spec.name == "activity" and mongodb:
        return "MongoDB"
    return "Postgres" if spec.engine == "postgres" else "MariaDB"


def _intro(mongodb: bool = False) -> Table:
    """Sources and targets at a glance."""
    grid = Table.grid(padding=(0, 2))
    for _ in range(4):
        grid.add_column()
    for i, spec in enumerate(schema.SOURCES):
        engine = _engine(spec, mongodb)
        grid.add_row(
            "[bold]sources[/]" if i == 0 else "",
            spec.name,
            f"{engine} db `{spec.database}`",
            ", ".join(t.name for t in spec.tables),
        )
    grid.add_row("", "salesforce", "Salesforce Account", "reps' edits, back to customers")
    return grid


@contextlib.contextmanager
def _log_to_file(path: Path) -> Iterator[None]:
    """Send every log line to ``path`` while the dashboard owns the terminal."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    handler = logging.FileHandler(path, encoding="utf-8")
    try:
        from cdc_bridge.logs import ComponentFilter, TextFormatter

        handler.addFilter(ComponentFilter())
        handler.setFormatter(TextFormatter())
    except ImportError:  # pragma: no cover - logs.py ships with the CLI
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    for h in saved_handlers:
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        for h in saved_handlers:
            root.addHandler(h)
        root.setLevel(saved_level)


class _BridgeThread:
    """The bridge (cdc_bridge.runtime.Bridge) running in a background thread."""

    def __init__(self, config: Any) -> None:
        from cdc_bridge.runtime import Bridge

        self.bridge: Any = Bridge(config)
        self.exit_code: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="bridge", daemon=True)

    def _run(self) -> None:
        try:
            self.exit_code = self.bridge.run()
        except BaseException as exc:
            self.error = exc
            self.exit_code = 1

    def start(self) -> None:
        self.thread.start()

    @property
    def failed(self) -> bool:
        return self.error is not None or bool(getattr(self.bridge, "_failed", []))

    def failure(self) -> str:
        if self.error is not None:
            return f"{type(self.error).__name__}: {self.error}"
        failed = getattr(self.bridge, "_failed", [])
        return ", ".join(failed) if failed else ""

    def stop(self, timeout: float = 60.0) -> None:
        self.bridge.stop()
        self.thread.join(timeout)


def _sources_started(probe: Probe) -> bool:
    """Every database source published its snapshot (the Salesforce source, which takes no
    snapshot, only captures once reps edit Accounts during the traffic)."""
    snap = probe.sample()
    databases = {s.name for s in schema.SOURCES}
    return all(s.captured > 0 for s in snap.sources if s.name in databases)


#: After draining, how long nothing may flow for the two-way sync to count as quiet.
QUIET_S = 3.0


def _echoes(bridge: _BridgeThread, services: _Services) -> verify.Echoes:
    """Echo counters of the Salesforce source, and the events that still flowed during
    ``QUIET_S`` seconds after draining (Salesforce change events published, source events
    captured): a ping-pong between Postgres and Salesforce would keep these above zero."""

    def flowing() -> int:
        captured = sum(ctx.events_emitted for _r, _s, ctx, _p in bridge.bridge._sources)
        return int(services.emulator.bus.published) + int(captured)

    before = flowing()
    time.sleep(QUIET_S)
    after = flowing()
    dropped = sum(
        int(getattr(source, "echo_dropped", 0)) for _r, source, _c, _p in bridge.bridge._sources
    )
    return verify.Echoes(dropped=dropped, after_quiet=after - before, quiet_s=QUIET_S)


def _drained(probe: Probe, idle_for: float, state: dict[str, Any]) -> bool:
    """Sources idle (nothing captured for ``idle_for`` seconds) and every route at lag 0
    with no records applied for ``idle_for`` seconds."""
    snap = probe.sample()
    now = time.monotonic()
    marker = (
        tuple(s.captured for s in snap.sources),
        tuple((r.applied, r.skipped, r.dead) for r in snap.routes),
    )
    if marker != state.get("marker"):
        state["marker"] = marker
        state["since"] = now
        return False
    lag = sum(r.lag or 0 for r in snap.routes)
    return lag == 0 and now - state["since"] >= idle_for


def _outcome(r: verify.CheckResult) -> Text:
    if r.ok:
        outcome = Text(r.note or "match", style="bold green")
        if r.soft_deleted:
            outcome.append(f", {r.soft_deleted} soft-deleted", style="green")
        return outcome
    parts = []
    if r.error:
        parts.append(r.error)
    if r.missing:
        parts.append(f"{r.missing} missing")
    if r.extra:
        parts.append(f"{r.extra} unexpected")
    if r.different:
        parts.append(f"{r.different} different")
    return Text("MISMATCH: " + ", ".join(parts), style="bold red")


def _rows(r: verify.CheckResult) -> str:
    return f"{r.source_rows} = {r.target_rows}" if r.ok else f"{r.source_rows} / {r.target_rows}"


#: Below this many columns the verification table puts each target on its own line.
WIDE = 110


def _verification_table(results: list[verify.CheckResult], width: int = WIDE) -> Table:
    """Every target table against its source; in a narrow terminal (80 columns) the target
    heads its group and table and source share a column, so neither the row counts nor the
    result are cut."""
    table = Table(
        title="verification: every target table against its source table",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=width < WIDE,
    )
    if width < WIDE:
        table.add_column("target: table / object <- source", overflow="fold")
        table.add_column("rows", justify="right", no_wrap=True)
        table.add_column("result", overflow="fold", min_width=22)
        last_target = None
        for r in results:
            c = r.check
            if c.target != last_target:
                table.add_row(Text(c.target, style="bold"), "", "")
                last_target = c.target
            what = c.table if c.sink == "echo" else f"{c.table} <- {c.source}.{c.source_table}"
            where = Padding(what, (0, 0, 0, 2))
            table.add_row(where, _rows(r), _outcome(r))
        return table
    table.add_column("target", no_wrap=True)
    table.add_column("table / object", no_wrap=True)
    table.add_column("source", no_wrap=True)
    table.add_column("rows", justify="right", no_wrap=True)
    table.add_column("result", no_wrap=True)
    last_target = None
    for r in results:
        c = r.check
        table.add_row(
            c.target if c.target != last_target else "",
            c.table,
            f"{c.source}.{c.source_table}",
            _rows(r),
            _outcome(r),
        )
        last_target = c.target
    return table


def _summary_table(results: list[verify.CheckResult]) -> tuple[Table, bool]:
    table = Table(title="targets", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("target", no_wrap=True)
    table.add_column("rows", justify="right")
    table.add_column("verdict")
    all_ok = True
    for target in verify.TARGETS:
        mine = [r for r in results if r.check.target == target]
        ok = bool(mine) and all(r.ok for r in mine)
        all_ok = all_ok and ok
        rows = sum(r.target_rows for r in mine)
        table.add_row(
            target, str(rows), Text("PASS", style="bold green") if ok else Text("FAIL", "bold red")
        )
    return table, all_ok


def _write_report(path: Path, results: list[verify.CheckResult], exit_code: int) -> None:
    """verification.json: the table for machines (CI, tests)."""
    doc = {
        "exit_code": exit_code,
        "checks": [
            {
                "target": r.check.target,
                "table": r.check.table,
                "source": f"{r.check.source}.{r.check.source_table}",
                "source_rows": r.source_rows,
                "target_rows": r.target_rows,
                "missing": r.missing,
                "unexpected": r.extra,
                "different": r.different,
                "soft_deleted": r.soft_deleted,
                "error": r.error,
                "note": r.note,
                "ok": r.ok,
            }
            for r in results
        ],
    }
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))


def run_demo(opts: DemoOptions, console: Console | None = None) -> DemoResult:
    """Run the whole demo; never raises for a failed verification (see ``exit_code``).

    Log lines of every component go to ``demo.log`` in the run directory meanwhile.
    """
    console = console or Console()
    own_dir = opts.workdir is None
    workdir = Path(opts.workdir or tempfile.mkdtemp(prefix="cdc-bridge-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)
    with _log_to_file(workdir / "demo.log"):
        result = _run_demo(opts, console, workdir)
    if own_dir and not opts.keep and result.exit_code == 0:
        shutil.rmtree(workdir, ignore_errors=True)
    elif result.exit_code != 0:
        console.print(f"Run directory kept for inspection: [cyan]{workdir}[/] (logs: demo.log)")
    return result


def _run_demo(opts: DemoOptions, console: Console, workdir: Path) -> DemoResult:
    live_view = console.is_terminal if opts.live is None else opts.live
    log_path = workdir / "demo.log"
    result = DemoResult(exit_code=1, workdir=str(workdir))
    services = _Services()
    bridge: _BridgeThread | None = None
    traffic: Traffic | None = None
    probe: Probe | None = None
    console.rule("[bold]cdc-bridge demo")
    console.print("Starting local services (no external service is used):")
    try:
        services = _start_services(console)
        rng = random.Random(opts.seed)
        mongodb = services.mongo is not None
        seed = schema.create_sources(
            services.pg, services.maria, rng, skip=("activity",) if mongodb else ()
        )
        mongo_traffic: Any = None
        if mongodb:
            from cdc_bridge.demo.mongo import create_activity, state_from_documents

            sessions, views = create_activity(services.mongo.uri, rng)
            seed.ids["sessions"], seed.ids["page_views"] = len(sessions), len(views)
            mongo_traffic = (services.mongo.uri, state_from_documents(sessions, views))
        schema.create_targets(services.pg, services.maria)
        if mongodb:
            from cdc_bridge.demo.mongo import create_mart_tables

            create_mart_tables(str(workdir / "mart.db"))
        fourth = services.mongo_note
        console.print(_intro(mongodb))
        console.print("[bold]targets[/]  " + ", ".join(verify.TARGETS))
        console.print(f"[yellow]{fourth}[/]")

        config_path = workdir / CONFIG_NAME
        config_path.write_text(config_text(mongodb), encoding="utf-8")
        env = _environment(services, workdir)
        from cdc_bridge.config import load_config

        config = load_config(config_path, env={**os.environ, **env})
        console.print(
            f"Config: [cyan]{config_path}[/] ({len(config.sources)} sources, "
            f"{len(config.sinks)} sinks, {len(config.routes)} routes; "
            + (
                "the shipped cdc_bridge/demo/routes.toml with the activity source on MongoDB)"
                if mongodb
                else "the same file ships as cdc_bridge/demo/routes.toml)"
            )
        )
        console.print(f"Logs:   [cyan]{log_path}[/]")
        if not live_view:
            console.print(
                "Progress every 5 s: transactions written -> events captured per source | records "
                "applied by the routes, dead letters, route lag, Salesforce API calls"
            )

        bridge = _BridgeThread(config)
        bridge.start()
        traffic = Traffic(
            services.pg,
            services.maria,
            seed,
            rate=opts.rate,
            duration=opts.duration,
            random_seed=opts.seed,
            mongo=mongo_traffic,
            salesforce=services.emulator,
        )
        where = {s.name: f"{_engine(s, mongodb)} {s.database}" for s in schema.SOURCES}
        where["salesforce"] = "Salesforce Account"
        probe = Probe(
            bridge=bridge.bridge,
            traffic=traffic,
            emulator=services.emulator,
            kafka_bootstrap=services.kafka.bootstrap,
            config=config,
            where=where,
            config_path=str(config_path),
            fourth_source=fourth,
        )
        result = _run_phases(opts, console, live_view, bridge, traffic, probe, services)
        result.workdir = str(workdir)
    except KeyboardInterrupt:
        result.message = "interrupted"
        console.print("[red]interrupted[/]")
    finally:
        if traffic is not None:
            traffic.stop()
        if opts.keep and result.results:
            _keep_running(console, services, workdir)
        if bridge is not None:
            bridge.stop()
            bridge.bridge = None  # drop its Kafka clients (below) before the broker stops
        if probe is not None:
            probe.close()
            probe.bridge = None
        bridge = probe = None
        gc.collect()  # destroys leftover Kafka clients while the broker is still up
        services.stop()
    return result


def _run_phases(
    opts: DemoOptions,
    console: Console,
    live_view: bool,
    bridge: _BridgeThread,
    traffic: Traffic,
    probe: Probe,
    services: _Services,
) -> DemoResult:
    result = DemoResult(exit_code=1)
    live = Live(render(probe.sample()), console=console, refresh_per_second=4, transient=False)
    last_line = 0.0

    def show(phase: str) -> None:
        nonlocal last_line
        probe.phase = phase
        snap = probe.sample()
        if live_view:
            live.update(render(snap))
        elif time.monotonic() - last_line >= 5:
            last_line = time.monotonic()
            console.print(
                f"[{snap.elapsed:5.1f}s] {phase:<9} "
                + " ".join(f"{s.name} {s.written}->{s.captured}" for s in snap.sources)
                + f" | applied {sum(r.applied for r in snap.routes)} DLQ {snap.dead_letters} "
                f"lag {snap.route_lag} SF calls {snap.sf_calls}"
            )

    with live if live_view else contextlib.nullcontext():
        # 1. snapshot: wait until every source published its existing rows
        deadline = time.monotonic() + 90
        while not _sources_started(probe):
            if bridge.failed or time.monotonic() > deadline:
                why = bridge.failure() or "sources did not start within 90 s"
                result.message = f"the bridge did not start: {why} (see the log)"
                result.bridge_failed = True
                break
            show("snapshot")
            time.sleep(0.25)
        if not result.bridge_failed:
            # 2. traffic
            traffic.start()
            try:
                while True:
                    if traffic.wait(0.25) and opts.duration is not None:
                        break
                    if bridge.failed:
                        break
                    show("traffic")
            except KeyboardInterrupt:
                pass  # Ctrl-C ends the traffic phase (--follow) and goes on to verify
            traffic.stop()
            # 3. drain
            deadline = time.monotonic() + opts.drain_timeout
            state: dict[str, Any] = {}
            while not bridge.failed:
                if _drained(probe, 2.0, state):
                    result.drained = True
                    break
                if time.monotonic() > deadline:
                    break
                if time.monotonic() - state["since"] >= STALL_AFTER:
                    result.stalled = True  # nothing moves any more: verify what is there
                    break
                show("draining")
                time.sleep(0.25)
            show("verifying")
    if bridge.failed:
        result.bridge_failed = True
        result.message = f"the bridge failed: {bridge.failure()} (see the log)"
        console.print(f"[bold red]{result.message}[/]")
    elif not result.drained:
        snap = probe.sample()
        behind = [f"{r.name} ({r.lag} records)" for r in snap.routes if r.lag]
        why = (
            f"nothing moved for {STALL_AFTER:.0f} s"
            if result.stalled
            else f"the routes did not drain within {opts.drain_timeout:.0f} s (--drain-timeout)"
        )
        result.message = (
            why
            + (f"; still behind: {', '.join(behind)}" if behind else "")
            + "; verifying what is there"
        )
        console.print(f"[bold yellow]{result.message}[/]")
    else:
        console.print("Traffic stopped; every route drained.")
    if not live_view:  # the live view already shows its last frame
        console.print(render(probe.sample()))

    # 4. verify (a few more tries while anything still moves: Salesforce lookups may wait
    #    for their parent record)
    endpoints = verify.Endpoints(
        pg=services.pg,
        maria=services.maria,
        mart_path=str(Path(probe.config_path).parent / "mart.db"),
        kafka_bootstrap=services.kafka.bootstrap,
        salesforce=services.emulator,
        mongo_uri=services.mongo.uri if services.mongo else None,
        rep_edits=dict(traffic.rep_edits),
        echoes=_echoes(bridge, services) if not bridge.failed else None,
    )
    checks = verify.mongo_checks() if services.mongo else verify.CHECKS
    results = verify.verify_all(endpoints, checks)
    retry_until = time.monotonic() + (20 if result.drained else 0)
    while not all(r.ok for r in results) and time.monotonic() < retry_until:
        time.sleep(2)
        results = verify.verify_all(endpoints, checks)
    result.results = results
    console.print(_verification_table(results, console.width))
    summary, all_ok = _summary_table(results)
    _write_report(
        Path(probe.config_path).parent / "verification.json",
        results,
        0 if all_ok and not result.bridge_failed else 1,
    )
    console.print(summary)
    for r in results:
        for example in r.examples[:5] if not r.ok else []:
            console.print(f"  [red]{r.check.target} / {r.check.table}[/]: {example}")
    sf = services.emulator
    console.print(
        f"Salesforce API calls used: {sf.api_usage} of {sf.daily_limit} per day; "
        f"dead letters: {probe.sample().dead_letters}"
    )
    ok = all_ok and not result.bridge_failed
    if ok:
        console.print("[bold green]Every target matches its source.[/]")
        result.exit_code = 0
    else:
        console.print("[bold red]Some targets do not match their source (see above).[/]")
        result.exit_code = 1
    return result


def _keep_running(console: Console, services: _Services, workdir: Path) -> None:
    """--keep: leave everything up for poking around, until Ctrl-C."""
    console.print(
        "\n[bold]--keep:[/] everything stays up until Ctrl-C.\n"
        f"  psql 'postgresql://postgres@{services.pg.host}:{services.pg.port}/analytics'\n"
        f"  mariadb -h {services.maria.host} -P {services.maria.port} -u root reporting\n"
        f"  sqlite3 {workdir / 'mart.db'}\n"
        + (
            f"  mongosh '{_redacted(services.mongo.uri)}' (database activity)\n"
            if services.mongo
            else ""
        )
        + f"  Kafka bootstrap {services.kafka.bootstrap}, Salesforce emulator {services.emulator.url}"
    )
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(1)
