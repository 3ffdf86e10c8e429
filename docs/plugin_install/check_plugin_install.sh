#!/usr/bin/env bash
# Installed from napari's plugin menu, for real.
#
#   1. build napari-nst's sdist and wheel (python -m build) and check them (twine check)
#   2. serve them from a PEP 503 "simple" index on 127.0.0.1 (python -m http.server)
#   3. make a FRESH napari environment (napari[pyqt5], napari-plugin-manager)
#   4. in a real napari window under Xvfb, open Plugins > Install/Uninstall Plugins...,
#      type napari-nst into the dialog's direct-entry field and press Install (the dialog
#      runs pip in a QProcess; pip finds napari-nst on the local index), check the widget is
#      in the Plugins menu without restarting napari, open it as a dock, then uninstall it
#      from the same dialog and check it is gone (drive_dialog.py does step 4)
#
# Offline-friendly: everything napari-nst needs besides itself comes from the registries pip
# is configured with (pip.conf); napari-nst itself only from the local index.
#
# Usage:  docs/plugin_install/check_plugin_install.sh
# Knobs (environment variables, defaults in brackets):
#   WORK          scratch folder: build tools, sdist/wheel, index, logs [/tmp/napari-nst-plugin-install]
#   FRESH_ENV     the fresh napari environment, deleted and recreated [/tmp/napari-fresh]
#   REUSE_ENV     1: keep FRESH_ENV if it exists (only napari-nst is uninstalled first) [0]
#   PYTHON        interpreter for the venvs [python3.11]
#   SOURCE        head: build from a clean `git archive HEAD`; worktree: from the working tree,
#                 uncommitted edits included [head]
#   PREINSTALL    requirements pip-installed in the fresh env before napari, e.g. torch, so
#                 that the dialog only adds the rest [empty: the dialog's pip brings
#                 torch/torchvision too, as for a napari user who has none]. Not a CPU torch
#                 wheel with PyPI's torchvision: that torchvision is built against CUDA torch,
#                 and `import torchvision` then fails ("operator torchvision::nms does not exist")
#   QT_EXTRA      napari extra bringing the Qt binding [pyqt5]
#   DEPS_INDEXES  indexes for napari-nst's dependencies, given to the dialog's pip as
#                 PIP_EXTRA_INDEX_URL [pip's index-url (or https://pypi.org/simple) + its
#                 configured extra-index-url]
#   PORT          port of the local index; 0 picks a free one [0]
#   OUT_DIR       where screenshots, logs and the JSON report go [this script's folder]
#   INSTALL_TIMEOUT  seconds the dialog's install may take [1200]
#   LOG           a copy of everything this prints [$OUT_DIR/check_plugin_install.log]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(git -C "$HERE" rev-parse --show-toplevel)"
WORK="${WORK:-/tmp/napari-nst-plugin-install}"
FRESH_ENV="${FRESH_ENV:-/tmp/napari-fresh}"
REUSE_ENV="${REUSE_ENV:-0}"
PYTHON="${PYTHON:-python3.11}"
SOURCE="${SOURCE:-head}"
PREINSTALL="${PREINSTALL:-}"
QT_EXTRA="${QT_EXTRA:-pyqt5}"
PORT="${PORT:-0}"
OUT_DIR="${OUT_DIR:-$HERE}"
INSTALL_TIMEOUT="${INSTALL_TIMEOUT:-1200}"

RESULTS=()     # "PASS|FAIL step"
TIMINGS=()     # "step: seconds"
SERVER_PID=""
STEP_T0=0

cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        echo "== stopped the local index (pid $SERVER_PID)"
    fi
}
trap cleanup EXIT INT TERM

say()   { printf '\n== %s\n' "$*"; }
start() { say "$*"; STEP_T0=$(date +%s.%N); }
done_() {  # done_ "label"
    local dt; dt=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$STEP_T0" "$(date +%s.%N)")
    TIMINGS+=("$1: ${dt}s"); echo "   ($1 took ${dt}s)"
}
pass()  { RESULTS+=("PASS  $*"); echo "   PASS: $*"; }
fail()  { RESULTS+=("FAIL  $*"); echo "   FAIL: $*"; }

summary() {
    say "Timings"
    printf '   %s\n' "${TIMINGS[@]}"
    say "Summary"
    printf '   %s\n' "${RESULTS[@]}"
    if printf '%s\n' "${RESULTS[@]}" | grep -q '^FAIL'; then
        echo; echo "RESULT: FAIL"; return 1
    fi
    echo; echo "RESULT: PASS"
}

command -v xvfb-run >/dev/null || { echo "xvfb-run is needed (apt-get install xvfb)"; exit 2; }
mkdir -p "$WORK" "$OUT_DIR"
LOG="${LOG:-$OUT_DIR/check_plugin_install.log}"
exec > >(tee "$LOG") 2>&1
echo "repo=$REPO source=$SOURCE work=$WORK fresh_env=$FRESH_ENV out=$OUT_DIR"

# --------------------------------------------------------------------------- 1. build
start "build tools venv ($WORK/tools-venv: build, twine)"
if [[ ! -x "$WORK/tools-venv/bin/python" ]]; then
    "$PYTHON" -m venv "$WORK/tools-venv"
fi
"$WORK/tools-venv/bin/python" -m pip install -q build twine 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
"$WORK/tools-venv/bin/python" -m pip --version
"$WORK/tools-venv/bin/python" -m build --version
"$WORK/tools-venv/bin/python" -m twine --version | head -n1
done_ "tools venv"

start "source to build ($SOURCE)"
rm -rf "$WORK/src" "$WORK/dist" && mkdir -p "$WORK/src" "$WORK/dist"
if [[ "$SOURCE" == head ]]; then
    git -C "$REPO" archive --format=tar HEAD | tar -x -C "$WORK/src"
    echo "   git archive of $(git -C "$REPO" rev-parse --short HEAD): $(git -C "$REPO" log -1 --format=%s HEAD | cut -c1-80)"
else
    # tracked + untracked-but-not-ignored files, as they are on disk now
    (cd "$REPO" && git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
        [[ -e "$f" ]] && printf '%s\0' "$f"; done | tar --null -T - -cf -) | tar -x -C "$WORK/src"
    echo "   working tree of $REPO (uncommitted edits included)"
fi
done_ "source"

start "python -m build (sdist, then the wheel from the sdist)"
if "$WORK/tools-venv/bin/python" -m build --outdir "$WORK/dist" "$WORK/src" > "$WORK/build.log" 2>&1; then
    tail -n 1 "$WORK/build.log"; pass "python -m build"
else
    tail -n 30 "$WORK/build.log"; fail "python -m build (log: $WORK/build.log)"; summary; exit 1
fi
ls -la "$WORK/dist"
done_ "build"

start "twine check --strict"
if "$WORK/tools-venv/bin/python" -m twine check --strict "$WORK"/dist/*; then
    pass "twine check --strict (sdist and wheel)"
else
    fail "twine check --strict"
fi
done_ "twine check"

say "what the wheel carries"
WHEEL=$(ls "$WORK"/dist/napari_nst-*.whl | head -n1)
SDIST=$(ls "$WORK"/dist/napari_nst-*.tar.gz | head -n1)
if "$WORK/tools-venv/bin/python" - "$WHEEL" <<'EOF'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = z.namelist()
need = ["napari_nst/napari.yaml", "napari_nst/samples/starry_night.jpg",
        "napari_nst/samples/starry_night.pth"]
ep = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
eps = z.read(ep).decode()
print("   files:", len(names), "| entry points:", " ".join(eps.split()))
missing = [n for n in need if n not in names]
ok = not missing and "napari-nst = napari_nst:napari.yaml" in eps
print("   missing:", missing or "nothing")
sys.exit(0 if ok else 1)
EOF
then pass "wheel has napari.yaml, the sample files and the napari.manifest entry point"
else fail "wheel content"; fi

# ----------------------------------------------------------------- 2. the local index
start "PEP 503 index on 127.0.0.1"
INDEX="$WORK/index"
rm -rf "$INDEX" && mkdir -p "$INDEX/simple/napari-nst" "$INDEX/packages"
cp "$WHEEL" "$SDIST" "$INDEX/packages/"
"$WORK/tools-venv/bin/python" - "$INDEX" <<'EOF'
import hashlib, html, pathlib, sys
root = pathlib.Path(sys.argv[1])
links = []
for f in sorted((root / "packages").iterdir()):
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    links.append(f'<a href="../../packages/{html.escape(f.name)}#sha256={digest}" '
                 f'data-requires-python="&gt;=3.11">{html.escape(f.name)}</a><br>')
head = '<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="1.0">'
(root / "simple" / "index.html").write_text(
    f'{head}<title>Simple index</title></head><body>'
    '<a href="napari-nst/">napari-nst</a></body></html>\n')
(root / "simple" / "napari-nst" / "index.html").write_text(
    f'{head}<title>Links for napari-nst</title></head><body><h1>Links for napari-nst</h1>'
    + "\n".join(links) + "</body></html>\n")
print("\n".join("   " + l for l in links))
EOF
if [[ "$PORT" == 0 ]]; then
    PORT=$("$WORK/tools-venv/bin/python" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
fi
"$WORK/tools-venv/bin/python" -m http.server "$PORT" --bind 127.0.0.1 --directory "$INDEX" \
    > "$WORK/http-server.log" 2>&1 &
SERVER_PID=$!
INDEX_URL="http://127.0.0.1:$PORT/simple/"
for _ in $(seq 1 100); do   # until it answers (at most 10 s)
    curl -fsS -o /dev/null "$INDEX_URL" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if curl -fsS "${INDEX_URL}napari-nst/" | grep -q 'napari_nst-'; then
    pass "local index serves napari-nst at $INDEX_URL (pid $SERVER_PID)"
else
    fail "local index at $INDEX_URL"; summary; exit 1
fi
# pip itself, against the local index only
if "$WORK/tools-venv/bin/python" -m pip download -q --no-deps --isolated --index-url "$INDEX_URL" \
        -d "$WORK/pip-download-check" napari-nst >/dev/null 2>&1; then
    pass "pip (isolated, --index-url local only) downloads napari-nst: $(ls "$WORK/pip-download-check")"
else
    fail "pip download from the local index"
fi
rm -rf "$WORK/pip-download-check"
done_ "index"

# -------------------------------------------------------------- 3. fresh napari env
if [[ "$REUSE_ENV" == 1 && -x "$FRESH_ENV/bin/python" ]]; then
    say "reusing $FRESH_ENV (REUSE_ENV=1)"
    "$FRESH_ENV/bin/python" -m pip uninstall -y -q napari-nst 2>/dev/null || true
else
    if [[ -e "$FRESH_ENV" ]]; then
        start "remove the previous $FRESH_ENV"
        rm -rf "$FRESH_ENV"
        done_ "rm -rf previous env"
    fi
    start "fresh venv $FRESH_ENV"
    "$PYTHON" -m venv "$FRESH_ENV"
    done_ "venv"
    if [[ -n "$PREINSTALL" ]]; then
        start "fresh env: pre-install $PREINSTALL"
        # shellcheck disable=SC2086  # a list of requirements
        "$FRESH_ENV/bin/python" -m pip install -q $PREINSTALL 2>&1 \
            | grep -v "is ignored: it is neither a file nor a directory" || true
        done_ "pre-install"
    fi
    start "fresh env: napari[$QT_EXTRA] napari-plugin-manager"
    "$FRESH_ENV/bin/python" -m pip install -q "napari[$QT_EXTRA]" napari-plugin-manager 2>&1 \
        | grep -v "is ignored: it is neither a file nor a directory" || true
    done_ "napari[$QT_EXTRA] + napari-plugin-manager"
fi
"$FRESH_ENV/bin/python" -m pip list 2>/dev/null \
    | grep -iE '^(napari|napari-plugin-manager|npe2|pip|pyqt5|torch|torchvision|app-model) ' \
    | sed 's/^/   /'
if "$FRESH_ENV/bin/python" -c "import napari_nst" 2>/dev/null; then
    fail "napari-nst must not be importable in the fresh env before the dialog installs it"
else
    pass "fresh env has napari + napari-plugin-manager${PREINSTALL:+ + $PREINSTALL}, and no napari-nst"
fi
if [[ -x "$FRESH_ENV/bin/uv" ]] || command -v uv >/dev/null; then
    echo "   note: uv found: napari-plugin-manager will install with 'uv pip' (UV_* variables apply)"
fi

# ------------------------------------------------- 4. the dialog, in a real window
if [[ -z "${DEPS_INDEXES:-}" ]]; then
    main_index=$("$FRESH_ENV/bin/python" -m pip config get global.index-url 2>/dev/null || true)
    extra=$("$FRESH_ENV/bin/python" -m pip config get global.extra-index-url 2>/dev/null || true)
    DEPS_INDEXES="$(echo "${main_index:-https://pypi.org/simple} $extra" | xargs)"
fi
# What the dialog's pip sees (its QProcess inherits this environment):
#   napari-nst's own index first, the usual registries as extra indexes for its dependencies.
export PIP_INDEX_URL="$INDEX_URL"
export PIP_EXTRA_INDEX_URL="$DEPS_INDEXES"
# napari's and napari-nst's settings go to a throw-away folder, not the user's
export NAPARI_CONFIG="$WORK/napari-settings.yaml"
export NAPARI_NST_CONFIG_DIR="$WORK/napari-nst-config"
rm -rf "$NAPARI_CONFIG" "$NAPARI_NST_CONFIG_DIR"
start "drive Plugins > Install/Uninstall Plugins... under Xvfb"
echo "   PIP_INDEX_URL=$PIP_INDEX_URL"
echo "   PIP_EXTRA_INDEX_URL=$PIP_EXTRA_INDEX_URL"
echo "   PIP_FIND_LINKS=${PIP_FIND_LINKS:-} (from the environment, unchanged)"
set +e
xvfb-run -a -s "-screen 0 1366x820x24" \
    "$FRESH_ENV/bin/python" "$HERE/drive_dialog.py" --out-dir "$OUT_DIR" \
    --expect-url "http://127.0.0.1:$PORT/" --install-timeout "$INSTALL_TIMEOUT" \
    2>&1 | tee "$WORK/drive_dialog.log"
rc=${PIPESTATUS[0]}
set -e
done_ "dialog: install, open the widget, uninstall"
if [[ -f "$OUT_DIR/drive_dialog_report.json" ]]; then
    while IFS= read -r line; do RESULTS+=("$line"); done < <(
        "$WORK/tools-venv/bin/python" -c "
import json, sys
r = json.load(open(sys.argv[1]))
for c in r['checks']:
    print(('PASS  ' if c['ok'] else 'FAIL  ') + 'dialog: ' + c['check'])
" "$OUT_DIR/drive_dialog_report.json")
fi
if [[ $rc == 0 ]]; then pass "drive_dialog.py exited 0"; else fail "drive_dialog.py exited $rc (log: $WORK/drive_dialog.log)"; fi
echo "   local index requests:"; grep -E '"GET ' "$WORK/http-server.log" | sed 's/^/     /' || true

summary
