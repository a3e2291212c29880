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
#
# Prints one JSON line on stdout (seconds and MB; "cached": true when nothing was built),
# progress on stderr. Only the base build needs the mirror; the image build needs PyPI.
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
base_s=0
base_cached=true
if [ "${CDC_IMAGE_REBUILD:-0}" = 1 ] || [ "$(label_of "$BASE" org.cdc-bridge.base)" != "$base_hash" ]; then
    base_cached=false
    log "building $BASE from $mirror (debootstrap bookworm minbase + python3)"
    t0=$(now)
    # tmpfs when there is one: dpkg syncs every file, which dominates the build on disk
    parent=/var/tmp
    [ -d /dev/shm ] && [ -w /dev/shm ] && parent=/dev/shm
    rootfs=$(mktemp -d "$parent/cdc-base.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    mkdir -p "$CACHE/debootstrap"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        --cache-dir="$CACHE/debootstrap" bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 ||
        { tail -n 20 "$rootfs.log" >&2; rm -f "$rootfs.log"; die "debootstrap failed"; }
    rm -f "$rootfs.log"
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
    tar --numeric-owner -C "$rootfs" -c . | podman import --quiet \
        --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change "LABEL org.cdc-bridge.base=$base_hash" \
        --change 'CMD ["python3"]' \
        - "$BASE" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
    base_s=$(secs "$t0" "$(now)")
    log "built $BASE in ${base_s}s"
else
    log "$BASE is current (label $base_hash)"
fi

# ---- the sidecar image ------------------------------------------------------------------------
# Everything the Dockerfile copies, plus the base image's id: a change rebuilds the image.
base_id=$(podman image inspect --format '{{.Id}}' "$BASE")
src_hash=$(
    {
        echo "$base_id"
        find compose/Dockerfile .dockerignore pyproject.toml README.md cdc_bridge -type f \
            ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum
    } | sha256sum | cut -c1-16
)
image_s=0
image_cached=true
if [ "${CDC_IMAGE_REBUILD:-0}" = 1 ] || [ "$(label_of "$IMAGE" org.cdc-bridge.source)" != "$src_hash" ]; then
    image_cached=false
    log "building $IMAGE from compose/Dockerfile"
    t0=$(now)
    # --format docker keeps the HEALTHCHECK (OCI image configs have no field for it);
    # --layers=false leaves no intermediate images behind.
    podman build --format docker --pull=never --network host --layers=false \
        --build-arg "PYTHON_IMAGE=$BASE" --label "org.cdc-bridge.source=$src_hash" \
        -f compose/Dockerfile -t "$IMAGE" . >"$CACHE/image-build.log" 2>&1 ||
        { tail -n 30 "$CACHE/image-build.log" >&2; die "podman build failed (log: $CACHE/image-build.log)"; }
    image_s=$(secs "$t0" "$(now)")
    log "built $IMAGE in ${image_s}s"
else
    log "$IMAGE is current (label $src_hash)"
fi

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
base_size=$(podman image inspect --format '{{.Size}}' "$BASE")
printf '{"image": "%s", "base_image": "%s", "base_build_s": %s, "base_cached": %s, "image_build_s": %s, "image_cached": %s, "image_size_mb": %s, "base_size_mb": %s}\n' \
    "$IMAGE" "$BASE" "$base_s" "$base_cached" "$image_s" "$image_cached" \
    "$(awk -v s="$size" 'BEGIN { printf "%.0f", s / 1e6 }')" \
    "$(awk -v s="$base_size" 'BEGIN { printf "%.0f", s / 1e6 }')"
