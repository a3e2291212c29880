#!/usr/bin/env bash
# Set up a machine for cdc-bridge development and CI: server packages the tests need (installed
# only when their binaries are missing) and .venv with the package and its dev extras.
#
#   bash scripts/setup.sh          # what `just setup` and `.ci/run` run
#   CDC_SETUP_COMPOSE=1 ...        # also install docker-compose (only the compose/ stacks need it)
#   CDC_SETUP_CONTAINER=1 ...      # also podman, runc, debootstrap and docker-compose: the
#                                  # `container` tests build and run the sidecar image (root only)
#   PYTHON=python3.12 ...          # interpreter for the venv (default: python3.11, else python3)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

# ---- system packages (Debian/Ubuntu) --------------------------------------------------------
have_postgres() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && return 0
    command -v initdb >/dev/null && return 0
    command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]
}
have_mariadb() {
    { command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || [ -x /usr/sbin/mysqld ]; } &&
        { command -v mariadb-install-db >/dev/null || command -v mysql_install_db >/dev/null; }
}
have_compose() {
    command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1
}

packages=()
have_postgres || packages+=(postgresql)
have_mariadb || packages+=(mariadb-server)
if [ "${CDC_SETUP_COMPOSE:-0}" = 1 ] || [ "${CDC_SETUP_CONTAINER:-0}" = 1 ]; then
    have_compose || packages+=(docker-compose)
fi
if [ "${CDC_SETUP_CONTAINER:-0}" = 1 ]; then
    # rootful podman builds and runs the image; runc because crun refuses cgroup hybrid
    # hosts (scripts/podman/containers.conf); debootstrap makes the local base image
    for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || packages+=("$tool"); done
fi

if [ ${#packages[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
        log "missing server packages (${packages[*]}) and no apt-get: install them by hand"
        exit 1
    fi
    sudo=()
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || { log "installing ${packages[*]} needs root or sudo"; exit 1; }
        sudo=(sudo)
    fi
    log "installing ${packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# ---- Python virtualenv ----------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
    python=${PYTHON:-}
    if [ -z "$python" ]; then
        if command -v python3.11 >/dev/null; then python=python3.11; else python=python3; fi
    fi
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        { log "$python is older than 3.11: set PYTHON=/path/to/python3.11"; exit 1; }
    log "creating .venv with $("$python" -V 2>&1)"
    "$python" -m venv .venv || {
        rm -rf .venv
        log "'$python -m venv' failed: on Debian install python3-venv (or use PYTHON=...)"
        exit 1
    }
fi
log "installing cdc-bridge[dev] into .venv"
.venv/bin/python -m pip install -q -e '.[dev]'
