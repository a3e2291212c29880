#!/usr/bin/env bash
# Build the sidecar image (compose/Dockerfile) with podman on a machine that reaches Debian's
# package mirror and PyPI but no container registry: the Dockerfile's Python base image is
# made locally with debootstrap (Debian bookworm minbase + python3, a venv at /opt/venv) and
# passed as PYTHON_IMAGE. Both images are cached in podman's image store, labelled with a hash
# of what they were built from, and rebuilt when that changed (or when missing).
#
#   bash scripts/container-image.sh        # needs root, podman, runc, debootstrap
#
# Environment:
#   CDC_IMAGE            image to build (default localhost/cdc-bridge:dev)
#   CDC_BASE_IMAGE       local base image (default localhost/cdc-bridge-base:bookworm)
#   CDC_DEBIAN_MIRROR    mirror for debootstrap (default: the first Debian URI apt uses here)
#   CDC_CACHE_DIR        .deb cache of debootstrap (default /var/cache/cdc-bridge)
#   CDC_IMAGE_REBUILD=1  rebuild both images even when the cached ones are current
#   CDC_WHEELHOUSE=0     let pip in the build stage download from PyPI itself (see below)
#
# While debootstrap runs (so only when the base image is built too), the host's pip (.venv,
# Python 3.11 like the base) builds the wheels of cdc-bridge and its runtime dependencies into
# a temporary wheelhouse; the build stage then installs from it (mounted at build time with a
# pip.conf saying so, nothing of it stays in the image) instead of downloading one package
# after the other. The Dockerfile is unchanged.
#
# Prints one JSON line on stdout (seconds and MB; "cached": true when nothing was built),
# progress on stderr. The base build needs the Debian mirror; the wheels need PyPI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

IMAGE=${CDC_IMAGE:-localhost/cdc-bridge:dev}
BASE=${CDC_BASE_IMAGE:-localhost/cdc-bridge-base:bookworm}
CACHE=${CDC_CACHE_DIR:-/var/cache/cdc-bridge}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/scripts/podman/containers.conf}
# Bump when the base recipe below changes (the label then no longer matches: rebuild).
BASE_RECIPE=1

log() { printf 'container-image: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (rootful podman and debootstrap)"
for tool in podman debootstrap chroot; do
    command -v "$tool" >/dev/null || die "$tool is missing: run CDC_SETUP_CONTAINER=1 bash scripts/setup.sh"
done

# One build at a time (a background build started by .ci/run, a test session, a second run):
# a later caller waits here and then finds the images current.
mkdir -p "$CACHE"
exec 9>"$CACHE/build.lock"
if ! flock -n 9; then
    log "waiting for another build of the images ($CACHE/build.lock)"
    flock 9
fi

label_of() { # image label -> value ("" when the image or label is missing)
    podman image inspect --format "{{index .Labels \"$2\"}}" "$1" 2>/dev/null || true
}

debian_mirror() {
    if [ -n "${CDC_DEBIAN_MIRROR:-}" ]; then
        echo "$CDC_DEBIAN_MIRROR"
        return
    fi
    local uri
    uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' |
        grep -v security | head -n1 || true)
    [ -n "$uri" ] || uri=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' |
        grep -v security | head -n1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# ---- base image: debootstrap bookworm minbase + python3 + /opt/venv ----------------------------
# This machine's extra CA certificates go into the base image: pip in the build stage reaches
# PyPI through the same TLS-inspecting egress as the host does.
mirror=$(debian_mirror)
extra_cas=(/usr/local/share/ca-certificates/*.crt)
[ -e "${extra_cas[0]}" ] || extra_cas=()
base_hash=$(
    {
        echo "recipe=$BASE_RECIPE mirror=$mirror"
        [ ${#extra_cas[@]} -eq 0 ] || cat "${extra_cas[@]}"
    } | sha256sum | cut -c1-16
)
# What the Dockerfile copies (the sources of its COPY lines): a change rebuilds the image (so
# does a new base image).
mapfile -t copied < <(awk '/^COPY / && !/--from/ { for (i = 2; i < NF; i++) print $i }' compose/Dockerfile)
[ ${#copied[@]} -gt 0 ] || die "no COPY lines found in compose/Dockerfile"
src_hash=$(
    find compose/Dockerfile .dockerignore "${copied[@]}" -type f \
        ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum |
        sha256sum | cut -c1-16
)
rebuild=${CDC_IMAGE_REBUILD:-0}
need_base=false
[ "$rebuild" = 1 ] || [ "$(label_of "$BASE" org.cdc-bridge.base)" != "$base_hash" ] && need_base=true
need_image=$need_base
[ "$rebuild" = 1 ] || [ "$(label_of "$IMAGE" org.cdc-bridge.source)" != "$src_hash" ] && need_image=true
if [ "$need_image" = false ] &&
    [ "$(label_of "$IMAGE" org.cdc-bridge.base-id)" != "$(podman image inspect --format '{{.Id}}' "$BASE")" ]; then
    need_image=true
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/cdc-image.XXXXXX")
rootfs=
cleanup() {
    [ -z "$rootfs" ] || rm -rf "$rootfs" "$rootfs.log"
    rm -rf "$work"
}
trap cleanup EXIT

# ---- wheels, built on the host in the background -----------------------------------------------
wheel_pid=
# (only when debootstrap runs too: alone it would just move the same downloads to the host)
if [ "$need_base" = true ] && [ "${CDC_WHEELHOUSE:-1}" = 1 ] && [ -x .venv/bin/python ] &&
    .venv/bin/python -c 'import sys, platform; sys.exit(sys.version_info[:2] != (3, 11) or platform.machine() != "x86_64")'; then
    # from a copy of what the Dockerfile copies: no build/ left in (or reused from) the tree
    mkdir "$work/wheels" "$work/src"
    cp -r "${copied[@]}" "$work/src/"
    find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
    .venv/bin/python -m pip wheel -q --wheel-dir "$work/wheels" "$work/src" "setuptools>=69" wheel \
        >"$work/wheels.log" 2>&1 9>&- &
    wheel_pid=$!
fi

# ---- base image: debootstrap bookworm minbase + python3 + /opt/venv ----------------------------
base_s=0
if [ "$need_base" = true ]; then
    log "building $BASE from $mirror (debootstrap bookworm minbase + python3)"
    t0=$(now)
    # tmpfs when there is one: dpkg syncs every file, which dominates the build on disk
    parent=/var/tmp
    [ -d /dev/shm ] && [ -w /dev/shm ] && parent=/dev/shm
    rootfs=$(mktemp -d "$parent/cdc-base.XXXXXX")
    mkdir -p "$CACHE/debootstrap"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        --cache-dir="$CACHE/debootstrap" bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 ||
        { tail -n 20 "$rootfs.log" >&2; die "debootstrap failed"; }
    chroot "$rootfs" /usr/bin/python3 -m venv /opt/venv
    if [ ${#extra_cas[@]} -gt 0 ]; then
        cp "${extra_cas[@]}" "$rootfs/usr/local/share/ca-certificates/"
        chroot "$rootfs" /usr/sbin/update-ca-certificates >/dev/null 2>&1 ||
            die "update-ca-certificates failed in the base image"
    fi
    # what a slim image leaves out: apt lists and caches, docs, man pages, translations
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/*.log \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
        "$rootfs"/usr/share/locale/*
    old_base=$(podman image inspect --format '{{.Id}}' "$BASE" 2>/dev/null || true)
    tar --numeric-owner -C "$rootfs" -c . | podman import --quiet \
        --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change "LABEL org.cdc-bridge.base=$base_hash" \
        --change 'CMD ["python3"]' \
        - "$BASE" >/dev/null 9>&-
    rm -rf "$rootfs" "$rootfs.log"
    rootfs=
    [ -z "$old_base" ] || podman rmi "$old_base" >/dev/null 2>&1 || true # untagged now
    base_s=$(secs "$t0" "$(now)")
    log "built $BASE in ${base_s}s"
else
    log "$BASE is current (label $base_hash)"
fi

# ---- the sidecar image ------------------------------------------------------------------------
image_s=0
wheels_s=0
if [ "$need_image" = true ]; then
    t0=$(now)
    mounts=()
    if [ -n "$wheel_pid" ]; then
        if wait "$wheel_pid"; then
            printf '[global]\nno-index = true\nfind-links = /wheelhouse\n' >"$work/pip.conf"
            mounts=(-v "$work/wheels:/wheelhouse:ro" -v "$work/pip.conf:/etc/pip.conf:ro")
        else
            log "host wheel build failed, pip downloads in the build instead: $(tail -n 3 "$work/wheels.log")"
        fi
        wheels_s=$(secs "$t0" "$(now)") # the part of the wheel build debootstrap did not hide
    fi
    log "building $IMAGE from compose/Dockerfile${mounts:+ (wheels built on the host)}"
    old_id=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
    base_id=$(podman image inspect --format '{{.Id}}' "$BASE")
    mkdir -p "$CACHE"
    # --format docker keeps the HEALTHCHECK (OCI image configs have no field for it);
    # --layers=false leaves no intermediate images behind.
    podman build --format docker --pull=never --network host --layers=false "${mounts[@]}" \
        --build-arg "PYTHON_IMAGE=$BASE" --label "org.cdc-bridge.source=$src_hash" \
        --label "org.cdc-bridge.base-id=$base_id" \
        -f compose/Dockerfile -t "$IMAGE" . >"$CACHE/image-build.log" 2>&1 9>&- ||
        { tail -n 30 "$CACHE/image-build.log" >&2; die "podman build failed (log: $CACHE/image-build.log)"; }
    image_s=$(secs "$t0" "$(now)")
    log "built $IMAGE in ${image_s}s"
    # the image this one replaced, now untagged: remove it (only if nothing else uses it)
    if [ -n "$old_id" ] && [ "$old_id" != "$(podman image inspect --format '{{.Id}}' "$IMAGE")" ]; then
        podman rmi "$old_id" >/dev/null 2>&1 || true
    fi
else
    log "$IMAGE is current (label $src_hash)"
fi

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
base_size=$(podman image inspect --format '{{.Size}}' "$BASE")
printf '{"image": "%s", "base_image": "%s", "base_build_s": %s, "base_cached": %s, "image_build_s": %s, "wheel_wait_s": %s, "image_cached": %s, "image_size_mb": %s, "base_size_mb": %s}\n' \
    "$IMAGE" "$BASE" "$base_s" "$([ "$need_base" = true ] && echo false || echo true)" "$image_s" "$wheels_s" \
    "$([ "$need_image" = true ] && echo false || echo true)" \
    "$(awk -v s="$size" 'BEGIN { printf "%.0f", s / 1e6 }')" \
    "$(awk -v s="$base_size" 'BEGIN { printf "%.0f", s / 1e6 }')"
