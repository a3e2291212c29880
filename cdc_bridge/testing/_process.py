"""Process plumbing for the throw-away test servers: ports, temp dirs, spawning, leftovers."""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

#: Every private server lives in a temp dir with this prefix; leftovers are found by it.
DIR_PREFIX = "cdc-test-"
_OWNER_FILE = "owner.pid"
_SERVER_FILE = "server.pid"


class ServiceError(RuntimeError):
    """A test service could not be started or used; the message says why and what to do."""


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a server log (colour codes removed), for error messages."""
    try:
        text = _ANSI.sub("", path.read_text(errors="replace"))
    except OSError:
        return f"(no log at {path})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(log is empty)"


def port_conflict(exc: BaseException) -> bool:
    """True when a startup failed because its port was taken between picking and binding."""
    text = str(exc).lower()
    return "already in use" in text or "address in use" in text or "addrinuse" in text


def _pid_alive(pid: int) -> bool:
    """True for a running process (a zombie, killed but not yet reaped, counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in {"Z", "X"}


def _belongs_to(pid: int, workdir: Path) -> bool:
    """True when process `pid` runs in, or names, `workdir` (guards against pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        if str(workdir) in cmdline:
            return True
        return os.readlink(f"/proc/{pid}/cwd").startswith(str(workdir))
    except (OSError, UnicodeDecodeError):
        return False


def clean_leftovers() -> None:
    """Remove temp dirs (and kill their servers) left behind by test runs that died.

    A dir is a leftover when the process that created it is gone. Its server is killed only
    when that pid still runs a command line naming the dir, so a reused pid is never hit.
    """
    root = Path(tempfile.gettempdir())
    for path in root.glob(f"{DIR_PREFIX}*"):
        try:
            owner = int((path / _OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            # Not fully created yet, or not ours: only reap it when it is old.
            try:
                if time.time() - path.stat().st_mtime < 3600:
                    continue
            except OSError:
                continue
            owner = -1
        if owner > 0 and _pid_alive(owner):
            continue
        try:
            server = int((path / _SERVER_FILE).read_text().strip())
        except (OSError, ValueError):
            server = -1
        if server > 0 and _pid_alive(server) and _belongs_to(server, path):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(server, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(server, signal.SIGKILL)
        shutil.rmtree(path, ignore_errors=True)


def make_workdir(kind: str, owner_user: str | None = None) -> Path:
    """A fresh temp dir for one server, tagged with our pid; chowned to owner_user if given."""
    clean_leftovers()
    path = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{kind}-"))
    (path / _OWNER_FILE).write_text(str(os.getpid()))
    if owner_user is not None and os.geteuid() == 0:
        entry = pwd.getpwnam(owner_user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def record_server_pid(workdir: Path, pid: int) -> None:
    """Remember the server pid so a later run can reap it if we die."""
    (workdir / _SERVER_FILE).write_text(str(pid))


def remove_workdir(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)


def run_as(user: str | None) -> tuple[int | None, int | None, list[int] | None]:
    """(uid, gid, extra groups) for Popen to drop root to `user` (servers refuse root)."""
    if user is None or os.geteuid() != 0:
        return None, None, None
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid, []


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: no orphaned servers after a killed run


def run_checked(
    args: Sequence[str], *, user: str | None, log: Path, what: str, timeout: float = 120
) -> None:
    """Run a setup command (initdb, install-db), raising ServiceError with its output tail."""
    uid, gid, groups = run_as(user)
    with open(log, "ab") as out:
        try:
            proc = subprocess.run(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
                user=uid,
                group=gid,
                extra_groups=groups,
            )
        except FileNotFoundError as exc:
            raise ServiceError(f"{what}: {args[0]} not found ({exc})") from exc
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(
                f"{what} timed out after {timeout}s; log tail:\n{log_tail(log)}"
            ) from exc
    if proc.returncode != 0:
        raise ServiceError(f"{what} failed (exit {proc.returncode}); log tail:\n{log_tail(log)}")


def spawn(
    args: Sequence[str], *, user: str | None, log: Path, cwd: Path
) -> subprocess.Popen[bytes]:
    """Start a server in its own process group, output to `log`.

    The server is killed if the starting thread dies, but only when started from the main
    thread (a worker thread exiting must not take the server with it).
    """
    preexec: Callable[[], None] | None = None
    if threading.current_thread() is threading.main_thread() and Path("/proc").exists():
        preexec = _die_with_parent
    uid, gid, groups = run_as(user)
    with open(log, "ab") as out:
        return subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=preexec,
            user=uid,
            group=gid,
            extra_groups=groups,
        )


def terminate(
    proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 10
) -> None:
    """Stop a server gracefully with `sig`, then SIGKILL its whole process group."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
        os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    kill_group(proc)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the server and every process it started (a simulated machine crash)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    # Wait for the rest of the group (backends) to vanish so a restart finds the data free.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.02)


def wait_until(
    ready: Callable[[], bool],
    *,
    proc: subprocess.Popen[bytes],
    timeout: float,
    what: str,
    log: Path,
) -> None:
    """Poll `ready` until it is true; fail fast with the log tail if the server exits."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        if proc.poll() is not None:
            raise ServiceError(
                f"{what} exited during startup (exit {proc.returncode}); log tail:\n{log_tail(log)}"
            )
        if ready():
            return
        if time.monotonic() > deadline:
            kill_group(proc)
            raise ServiceError(
                f"{what} did not become ready within {timeout}s; log tail:\n{log_tail(log)}"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)
