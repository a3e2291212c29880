"""CLI: run the Salesforce emulator standalone (`python -m cdc_bridge.testing.salesforce`)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .auth import AuthConfig
from .emulator import SalesforceEmulator
from .faults import FaultConfig
from .schema import objects_from_json


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m cdc_bridge.testing.salesforce", description=__doc__
    )
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=8443, help="port (0 = any free port)")
    ap.add_argument("--schema", help='JSON file: list of object descriptions or {"objects": [...]}')
    ap.add_argument(
        "--advertised-host",
        help="host name clients use (instance URLs, certificate); e.g. a compose service name",
    )
    ap.add_argument("--http", action="store_true", help="serve plain HTTP instead of HTTPS")
    ap.add_argument(
        "--cert-dir", help="where to write ca.pem/server.pem/server.key (default: a temp dir)"
    )
    ap.add_argument("--daily-limit", type=int, default=15000)
    ap.add_argument("--api-version", default="61.0")
    ap.add_argument(
        "--bulk-delay", type=float, default=0.2, help="seconds before a bulk job starts"
    )
    ap.add_argument("--username", default=AuthConfig.username)
    ap.add_argument("--password", default=AuthConfig.password)
    ap.add_argument("--security-token", default=AuthConfig.security_token)
    ap.add_argument("--client-id", default=AuthConfig.client_id)
    ap.add_argument("--client-secret", default=AuthConfig.client_secret)
    ap.add_argument(
        "--jwt-cert", help="PEM certificate/public key that JWT assertions must be signed with"
    )
    ap.add_argument("--lock-row-probability", type=float, default=0.0)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    objects = []
    if args.schema:
        try:
            with open(args.schema, encoding="utf-8") as fh:
                objects = objects_from_json(json.load(fh))
        except (OSError, ValueError) as exc:
            print(f"error: cannot load --schema {args.schema}: {exc}", file=sys.stderr)
            return 2
    jwt_pem = None
    if args.jwt_cert:
        with open(args.jwt_cert, encoding="utf-8") as fh:
            jwt_pem = fh.read()
    auth = AuthConfig(
        username=args.username,
        password=args.password,
        security_token=args.security_token,
        client_id=args.client_id,
        client_secret=args.client_secret,
        jwt_public_key=jwt_pem,
    )
    faults = FaultConfig(
        lock_row_probability=args.lock_row_probability, latency=args.latency, seed=args.seed
    )
    emu = SalesforceEmulator(
        objects,
        faults=faults,
        daily_limit=args.daily_limit,
        api_version=args.api_version,
        auth=auth,
        bulk_delay=args.bulk_delay,
        host=args.host,
        port=args.port,
        tls=not args.http,
        cert_dir=args.cert_dir,
        advertised_host=args.advertised_host,
    )
    try:
        emu.start()
    except OSError as exc:
        print(
            f"error: cannot listen on {args.host}:{args.port}: {exc} (choose another --port)",
            file=sys.stderr,
        )
        return 2
    info = {
        "url": emu.url,
        "token_url": emu.token_url,
        "ca_file": emu.ca_file,
        "pubsub_endpoint": emu.pubsub_endpoint,
        "username": auth.username,
        "password": auth.password,
        "security_token": auth.security_token,
        "client_id": auth.client_id,
        "client_secret": auth.client_secret,
        "objects": sorted(o.name for o in emu.store.objects.values()),
    }
    print(json.dumps(info), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
