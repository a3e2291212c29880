#!/usr/bin/env bash
# The container part on its own (also part of `.ci/run`): install podman, runc, debootstrap and
# docker-compose where missing, build the local base image and the sidecar image (each reused
# when current), run the `container` tests (podman run + docker-compose over podman's API
# socket), then print the numbers: setup, base build, image build, image size, start-to-ready.
#
#   bash scripts/container-test.sh            # or: just container-test
#   bash scripts/container-test.sh -x -k compose      # extra pytest arguments
#   CDC_IMAGE_REBUILD=1 bash scripts/container-test.sh   # ignore the cached images
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

t0=$(now)
CDC_SETUP_CONTAINER=1 bash scripts/setup.sh
t1=$(now)
built=$(bash scripts/container-image.sh)
t2=$(now)
report=$(mktemp)
trap 'rm -f "$report"' EXIT
CDC_REQUIRE_CONTAINER=1 CDC_CONTAINER_REPORT=$report \
    .venv/bin/python -m pytest -q -p no:cacheprovider -m container tests/test_container.py "$@"
t3=$(now)

echo "images: $built"
echo "tests:  $(tr -d '\n ' <"$report")"
echo "container-test: setup $(secs "$t0" "$t1")s, images $(secs "$t1" "$t2")s, tests $(secs "$t2" "$t3")s, total $(secs "$t0" "$t3")s"
