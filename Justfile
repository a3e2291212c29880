# cdc-bridge tasks. `just --list` shows them; the README and docs/ quote them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Install missing server packages and .venv with the dev extras (same script as .ci/run).
setup:
    bash scripts/setup.sh

# Run the test suite; extra pytest args: `just test -k kafka` or CI_ARGS="-x" just test.
[positional-arguments]
test *ARGS:
    [ -x .venv/bin/python ] || bash scripts/setup.sh
    .venv/bin/python -m pytest -q ${CI_ARGS:-} "$@"

# Formatting, lint and type checks.
lint:
    .venv/bin/ruff format --check .
    .venv/bin/ruff check .
    .venv/bin/mypy

# Run every benchmark in bench/ (each prints one JSON line and a human line).
bench:
    #!/usr/bin/env bash
    set -euo pipefail
    shopt -s nullglob
    files=(bench/[!_]*.py)
    if [ ${#files[@]} -eq 0 ]; then echo "no benchmarks in bench/"; exit 0; fi
    for f in "${files[@]}"; do echo "== $f"; .venv/bin/python "$f"; done

# Start/stop time of the embedded test servers (Kafka, Postgres, MariaDB).
bench-service-startup *ARGS:
    .venv/bin/python bench/service_startup.py {{ARGS}}

# Encode + produce throughput of the envelope and Kafka layer (embedded broker).
bench-encode *ARGS:
    .venv/bin/python bench/encode_produce.py {{ARGS}}

# Speed of the local Salesforce emulator (single upsert latency, collections and bulk throughput).
bench-sfemu *ARGS:
    .venv/bin/python bench/salesforce_emulator.py {{ARGS}}

# Salesforce change events (emulator, Pub/Sub API) -> source -> Kafka: events/s, API calls per 10k.
bench-sfsource *ARGS:
    .venv/bin/python bench/salesforce_to_kafka.py {{ARGS}}

# MongoDB change documents -> Debezium records, in-process (Extended JSON writer + envelope).
bench-mongodb-convert *ARGS:
    .venv/bin/python bench/mongodb_convert.py {{ARGS}}

# Kafka topic -> Postgres upserts through a route worker (rows/s; embedded broker and Postgres).
bench-db *ARGS:
    .venv/bin/python bench/kafka_to_db.py {{ARGS}}

# Postgres -> Kafka: rows/s commit->ack, p50/p99 latency at a steady 5,000 rows/s, peak RSS.
bench-pg *ARGS:
    .venv/bin/python bench/pg_to_kafka.py {{ARGS}}

# MySQL/MariaDB binlog -> broker ack throughput and p99 latency at 5,000 rows/s (private MariaDB).
bench-mysql *ARGS:
    .venv/bin/python bench/mysql_to_kafka.py {{ARGS}}

# Regenerate the configuration reference from the config models, then build the docs site into site/.
docs:
    .venv/bin/python -m cdc_bridge docs config --write docs/reference/configuration.md
    NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict

# Preview the docs site at http://127.0.0.1:8000 (rebuilds on save).
docs-serve:
    NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs serve

# Kafka -> route -> Salesforce sink -> emulator: records/s and API calls per 10k, Collections and Bulk.
bench-sf *ARGS:
    .venv/bin/python bench/kafka_to_salesforce.py {{ARGS}}

# What a pip user gets: wheel + sdist, the wheel in a clean venv, --help, check, a 10 s demo (`--no-demo` skips it).
wheel-check *ARGS:
    bash scripts/wheel-check.sh {{ARGS}}

# Validate compose/docker-compose.yml and lint compose/Dockerfile (no Docker engine needed).
compose-check:
    docker-compose -f compose/docker-compose.yml config -q
    .venv/bin/hadolint compose/Dockerfile

# Whole pipeline locally (4 sources, 6 targets) under traffic, then verified: `just demo --duration 30`.
[positional-arguments]
demo *ARGS:
    [ -x .venv/bin/python ] || bash scripts/setup.sh
    .venv/bin/python -m cdc_bridge demo "$@"

# Build the sidecar image with podman (local debootstrap base) and run the `container` tests.
[positional-arguments]
container-test *ARGS:
    bash scripts/container-test.sh "$@"
