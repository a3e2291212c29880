"""The sidecar image, built and run for real with rootful podman (no Docker engine needed).

scripts/container-image.sh builds the image (a local debootstrap base, then
compose/Dockerfile); the tests run it with host networking against the session's private
Postgres and Kafka broker: snapshot + streaming, the image's HEALTHCHECK (/readyz) turning
healthy, SIGTERM (`podman stop`) ending it with exit 0 and a saved position, a second
container resuming from the same state volume with nothing missing, a non-root user and a
read-only root filesystem. Then compose/docker-compose.local.yml is brought up by
docker-compose through podman's API socket. Skipped (with the reason) where podman cannot
run; CI sets CDC_REQUIRE_CONTAINER=1, which turns that skip into a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from cdc_bridge.state import StateStore
from cdc_bridge.testing._process import free_port

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parent.parent
PODMAN_CONF = ROOT / "scripts" / "podman" / "containers.conf"
LOCAL_COMPOSE = ROOT / "compose" / "docker-compose.local.yml"
CAPTURE_TOML = ROOT / "compose" / "local" / "capture.toml"
STATE_DIR = "/var/lib/cdc-bridge"
#: the numbers measured here, written as JSON to $CDC_CONTAINER_REPORT when set
MEASURED: dict[str, Any] = {}


def podman_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(PODMAN_CONF))
    return env


def podman(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, env=podman_env()
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def unusable_reason() -> str | None:
    """Why podman cannot run the image here, or None."""
    if os.geteuid() != 0:
        return "the container tests need root (rootful podman and debootstrap)"
    for tool in ("podman", "runc", "debootstrap", "docker-compose"):
        if shutil.which(tool) is None:
            return (
                f"{tool} is not installed (CDC_SETUP_CONTAINER=1 bash scripts/setup.sh installs it)"
            )
    info = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False, timeout=60)
    if info.returncode != 0:
        return f"podman does not work here: {info.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="session")
def sidecar_image() -> Iterator[str]:
    """The image built by scripts/container-image.sh (cached across runs when current)."""
    reason = unusable_reason()
    if reason is not None:
        if os.environ.get("CDC_REQUIRE_CONTAINER") == "1":
            pytest.fail(f"CDC_REQUIRE_CONTAINER=1 but {reason}")
        pytest.skip(reason)
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "container-image.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        env=podman_env(),
    )
    assert proc.returncode == 0, proc.stderr
    built = json.loads(proc.stdout.strip().splitlines()[-1])
    MEASURED.update(built)
    yield built["image"]
    report = os.environ.get("CDC_CONTAINER_REPORT")
    if report:
        Path(report).write_text(json.dumps(MEASURED, indent=2) + "\n")


def unique(prefix: str) -> str:
    return f"{prefix}{os.getpid()}{uuid.uuid4().hex[:6]}"


@dataclass
class CaptureDb:
    """A source database with a password-protected capture role (scram over TCP)."""

    admin_dsn: str  # superuser DSN of the database
    host: str
    port: int
    dbname: str
    user: str
    password: str

    def execute(self, sql: str, *params: Any) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql, params or None)

    def env(self) -> dict[str, str]:
        """The variables compose/local/capture.toml reads."""
        return {
            "PG_HOST": self.host,
            "PG_PORT": str(self.port),
            "PG_DATABASE": self.dbname,
            "PG_USER": self.user,
            "PG_PASSWORD": self.password,
            "PG_TABLE": "public.items",
        }


@contextlib.contextmanager
def capture_db(postgres: Any, admin_dsn: str, rows: int) -> Iterator[CaptureDb]:
    """Table ``items`` with ``rows`` rows, owned by a new login+replication role whose
    password pg_hba.conf checks for this database (the test server trusts everyone else)."""
    dbname = psycopg.conninfo.conninfo_to_dict(admin_dsn)["dbname"]
    assert isinstance(dbname, str)
    user, password = unique("cdc"), secrets.token_urlsafe(16)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {user} LOGIN REPLICATION PASSWORD '{password}'")
        conn.execute(f'GRANT CREATE ON DATABASE "{dbname}" TO {user}')
        conn.execute("CREATE TABLE items (id integer PRIMARY KEY, note text)")
        conn.execute(f"ALTER TABLE items OWNER TO {user}")
        conn.execute(
            "INSERT INTO items SELECT i, 'row ' || i FROM generate_series(1, %s) i", (rows,)
        )
        hba = Path(conn.execute("SHOW hba_file").fetchone()[0])  # type: ignore[index]
        original = hba.read_text() if os.access(hba, os.W_OK) else None
        if original is not None:
            rule = f"host {dbname} {user} {postgres.host}/32 scram-sha-256\n"
            hba.write_text(rule + original)
            conn.execute("SELECT pg_reload_conf()")
    try:
        if original is not None:  # the password is really checked
            time.sleep(0.2)
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                psycopg.connect(
                    host=postgres.host, port=postgres.port, dbname=dbname, user=user, password="x"
                ).close()
        yield CaptureDb(admin_dsn, postgres.host, postgres.port, dbname, user, password)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            if original is not None:
                hba.write_text(original)
                conn.execute("SELECT pg_reload_conf()")
            for (slot,) in conn.execute(
                "SELECT slot_name FROM pg_replication_slots WHERE database = %s", (dbname,)
            ).fetchall():
                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            conn.execute(f"DROP OWNED BY {user}")
            conn.execute(f"DROP ROLE {user}")


class Topic:
    """Reads a topic from the beginning, all partitions; collects (op, id) of every event."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.events: list[tuple[str, int]] = []
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": unique("ctr-read"),
                "enable.auto.commit": False,
            }
        )
        self._assigned = False

    def _assign(self) -> bool:
        meta = self._consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return False
        self._consumer.assign(
            [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        )
        return True

    def wait(self, done: Callable[[list[tuple[str, int]]], bool], timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._assigned:
                self._assigned = self._assign()
                if not self._assigned:
                    time.sleep(0.5)
                    continue
            for msg in self._consumer.consume(500, timeout=0.5):
                value = msg.value()
                if msg.error() is None and value is not None:
                    payload = orjson.loads(value)["payload"]
                    row = payload["after"] or payload["before"]
                    self.events.append((payload["op"], row["id"]))
            if done(self.events):
                return
        raise AssertionError(
            f"{self.topic}: condition not met in {timeout}s; got {len(self.events)} events"
        )

    def ids(self, *ops: str) -> list[int]:
        return [i for op, i in self.events if op in ops]

    def close(self) -> None:
        self._consumer.close()


def has_ids(n: int, *ops: str) -> Callable[[list[tuple[str, int]]], bool]:
    want = set(range(1, n + 1))
    return lambda events: want <= {i for op, i in events if op in ops}


def run_sidecar(image: str, name: str, volume: str, env: dict[str, str], metrics_port: int) -> None:
    """`podman run` as docs/deployment/container.md shows: host network, read-only root (and
    no tmpfs either, as Docker does it), config read-only, a state volume, secrets in env."""
    args = ["run", "-d", "--name", name, "--network", "host", "--read-only"]
    args += ["--read-only-tmpfs=false"]
    args += ["-v", f"{CAPTURE_TOML}:/etc/cdc-bridge/routes.toml:ro", "-v", f"{volume}:{STATE_DIR}"]
    # `-e NAME` passes the value from podman's environment: the password stays out of argv
    for key in env:
        args += ["-e", key]
    args += ["-e", f"CDC_BRIDGE_HEALTH_URL=http://127.0.0.1:{metrics_port}/readyz", image]
    proc = subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**podman_env(), **env},
    )
    assert proc.returncode == 0, proc.stderr


def run_env(image_env: dict[str, str], metrics_port: int) -> dict[str, str]:
    return {**image_env, "CAPTURE_METRICS_PORT": str(metrics_port)}


def state_of(container: str) -> dict[str, Any]:
    out = podman("inspect", "--format", "{{json .State}}", container).stdout
    state: dict[str, Any] = json.loads(out)
    return state


def wait_healthy(container: str, timeout: float = 120) -> float:
    """Run the image's health check (podman only schedules it under systemd) until it passes;
    returns the seconds it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        state = state_of(container)
        if state["Status"] != "running":
            logs = podman("logs", container, check=False).stderr
            raise AssertionError(f"{container} is {state['Status']}: {logs[-3000:]}")
        if podman("healthcheck", "run", container, check=False).returncode == 0:
            return time.monotonic() - t0
        time.sleep(0.3)
    logs = podman("logs", container, check=False).stderr
    raise AssertionError(f"{container} not healthy after {timeout}s: {logs[-3000:]}")


def saved_offset(state_db: Path, source: str) -> dict[str, Any] | None:
    store = StateStore(f"sqlite:///{state_db}")
    try:
        return store.load_offset(source)
    finally:
        store.close()


def stop(container: str) -> tuple[int, str]:
    """`podman stop` (SIGTERM, SIGKILL after 60 s): exit code and the container's log."""
    podman("stop", "--time", "60", container, timeout=90)
    state = state_of(container)
    logs = podman("logs", container).stderr
    return int(state["ExitCode"]), logs


def test_sidecar_snapshots_streams_stops_on_sigterm_and_resumes(
    sidecar_image: str, kafka: Any, postgres: Any, pg_database: str
) -> None:
    source = unique("ctr")
    volume = unique("cdc-state-")
    containers: list[str] = []
    topic = Topic(kafka.bootstrap, f"{source}.public.items")
    try:
        with capture_db(postgres, pg_database, rows=200) as db:
            env = {
                **db.env(),
                "KAFKA_BOOTSTRAP": kafka.bootstrap,
                "SOURCE_NAME": source,
                "CAPTURE_NAME": source,
                "TOPIC_PARTITIONS": "3",
            }
            podman("volume", "create", volume)

            # 1. first container: snapshot, then streaming
            port = free_port()
            containers.append(f"{source}-1")
            t0 = time.monotonic()
            run_sidecar(sidecar_image, containers[0], volume, run_env(env, port), port)
            wait_healthy(containers[0])
            MEASURED["start_to_ready_s"] = round(time.monotonic() - t0, 1)
            assert state_of(containers[0])["Health"]["Status"] == "healthy"

            # non-root, read-only root filesystem, the state volume writable
            whoami = podman("exec", containers[0], "id", "-u").stdout.strip()
            assert whoami == "10001"
            touch = podman("exec", containers[0], "touch", "/probe", check=False)
            assert touch.returncode != 0 and "Read-only file system" in touch.stderr
            touch = podman("exec", containers[0], "touch", "/tmp/probe", check=False)
            assert touch.returncode != 0 and "Read-only file system" in touch.stderr

            topic.wait(has_ids(200, "r"))
            db.execute("INSERT INTO items SELECT i, 'new ' || i FROM generate_series(201, 300) i")
            db.execute("UPDATE items SET note = 'changed' WHERE id <= 10")
            topic.wait(lambda ev: has_ids(300, "r", "c")(ev) and len(topic.ids("u")) >= 10)
            assert sorted(topic.ids("r")) == list(range(1, 201))  # one snapshot, every row
            assert sorted(topic.ids("c")) == list(range(201, 301))

            # 2. SIGTERM: exit 0 and the position saved in the volume
            code, logs = stop(containers[0])
            assert code == 0, logs[-3000:]
            assert "SIGTERM received" in logs and "final position saved" in logs
            mountpoint = Path(
                podman("volume", "inspect", "--format", "{{.Mountpoint}}", volume).stdout.strip()
            )
            state_db = mountpoint / "state.db"
            assert state_db.stat().st_uid == 10001
            saved = saved_offset(state_db, source)
            assert saved is not None and saved.get("lsn"), saved

            # 3. changes while nothing runs, then a second container on the same volume
            db.execute("INSERT INTO items SELECT i, 'later ' || i FROM generate_series(301, 400) i")
            db.execute("DELETE FROM items WHERE id = 1")
            port = free_port()
            containers.append(f"{source}-2")
            run_sidecar(sidecar_image, containers[1], volume, run_env(env, port), port)
            wait_healthy(containers[1])
            topic.wait(lambda ev: has_ids(400, "r", "c")(ev) and 1 in topic.ids("d"))
            missing = set(range(1, 401)) - set(topic.ids("r", "c"))
            assert missing == set()
            assert len(topic.ids("r")) == 200, "the second container snapshotted again"
            code, logs = stop(containers[1])
            assert code == 0, logs[-3000:]
            # it read the position from the volume (without it, it streams from the slot and
            # warns), and stored its own there
            assert "no stored position was found" not in logs
            resaved = saved_offset(state_db, source)
            assert resaved is not None and resaved["lsn"] > saved["lsn"], (saved, resaved)
    finally:
        topic.close()
        for name in containers:
            podman("rm", "-f", name, check=False)
        podman("volume", "rm", "-f", volume, check=False)


@contextlib.contextmanager
def podman_socket(workdir: Path) -> Iterator[str]:
    """`podman system service` on a private socket; yields DOCKER_HOST for docker-compose."""
    sock = workdir / "podman.sock"
    log = workdir / "podman-service.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{sock}"],
            stdout=subprocess.DEVNULL,
            stderr=out,
            env=podman_env(),
        )
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "podman's API socket never appeared"
            time.sleep(0.1)
        yield f"unix://{sock}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rows_in(url: str, table: str) -> dict[int, str]:
    try:
        with psycopg.connect(url) as conn:
            return dict(conn.execute(f'SELECT id, note FROM "{table}"').fetchall())
    except psycopg.errors.UndefinedTable:
        return {}


def test_local_compose_file_runs_under_podman(
    sidecar_image: str, kafka: Any, postgres: Any, pg_database: str, tmp_path: Path
) -> None:
    """compose/docker-compose.local.yml through docker-compose and podman's API socket: the
    capture sidecar and two sink workers turn healthy (CMD-SHELL health checks), rows reach
    the target database, and `docker-compose stop` ends every container with exit 0."""
    source = unique("cmp")
    project = unique("cdclocal")
    target = unique("tgt")
    target_dsn = postgres.create_database(target)
    url_file = tmp_path / "target_url"
    url_file.write_text(target_dsn.replace("postgresql://", "postgresql+psycopg://", 1) + "\n")
    url_file.chmod(0o644)  # the container's user 10001 reads it
    compose = shutil.which("docker-compose")
    assert compose is not None
    try:
        with (
            capture_db(postgres, pg_database, rows=50) as db,
            podman_socket(tmp_path) as docker_host,
        ):
            env = {
                **podman_env(),
                **db.env(),
                "DOCKER_HOST": docker_host,
                "COMPOSE_PROJECT_NAME": project,
                "CDC_IMAGE": sidecar_image,
                "KAFKA_BOOTSTRAP": kafka.bootstrap,
                "SOURCE_NAME": source,
                "CAPTURE_NAME": source,
                "SINK_NAME": f"{source}-sinks",
                "TOPIC_PARTITIONS": "4",
                "SESSION_TIMEOUT_MS": "2000",  # the test broker delays joins by half of it
                "CAPTURE_METRICS_PORT": str(free_port()),
                "SINK_METRICS_PORT": str(free_port()),
                "SINK2_METRICS_PORT": str(free_port()),
                "TARGET_URL_FILE": str(url_file),
            }

            def dc(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
                proc = subprocess.run(
                    [compose, "-f", str(LOCAL_COMPOSE), *args],
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    env=env,
                )
                assert proc.returncode == 0, proc.stdout + proc.stderr
                return proc

            try:
                dc("up", "-d", "--no-build")
                services = ("capture", "sink-worker-1", "sink-worker-2")
                ids = {s: dc("ps", "-q", s).stdout.strip() for s in services}
                assert all(ids.values()), ids
                for service, cid in ids.items():
                    wait_healthy(cid)
                    assert state_of(cid)["Health"]["Status"] == "healthy", service
                listing = dc("ps").stdout
                assert listing.count("(healthy)") == 3, listing

                db.execute("INSERT INTO items SELECT i, 'new ' || i FROM generate_series(51, 80) i")
                db.execute("UPDATE items SET note = 'changed' WHERE id = 7")
                expected = {i: f"row {i}" for i in range(1, 51)}
                expected |= {i: f"new {i}" for i in range(51, 81)} | {7: "changed"}
                deadline = time.monotonic() + 90
                got: dict[int, str] = {}
                while time.monotonic() < deadline and got != expected:
                    got = rows_in(target_dsn, f"{source}_items")
                    time.sleep(0.5)
                assert got == expected

                dc("stop")
                for service, cid in ids.items():
                    state = state_of(cid)
                    assert state["ExitCode"] == 0, (service, podman("logs", cid).stderr[-3000:])
            finally:
                subprocess.run(
                    [compose, "-f", str(LOCAL_COMPOSE), "down", "-v", "--timeout", "30"],
                    capture_output=True,
                    text=True,
                    timeout=120,
                    env=env,
                )
    finally:
        postgres.drop_database(target)
