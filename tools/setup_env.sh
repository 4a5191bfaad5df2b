#!/usr/bin/env bash
# Create or update the mmbireal development environment. Idempotent and fast
# when nothing changed.
#
#   bash tools/setup_env.sh      # create / check the venv
#   source tools/setup_env.sh    # the same, then activate the venv (bash)
#
# What it does:
#   * venv at ${MMBIREAL_VENV:-$HOME/.cache/mmbireal/venv} (must be outside
#     the checkout), created with ${MMBIREAL_PYTHON:-python3.11 or python3};
#   * installs the pinned set of requirements/constraints.txt: torch +
#     torchvision first, then setuptools, mmengine, mmcv-lite, mmpretrain,
#     openmim, the test tools, and this checkout with `pip install -e .`;
#   * links the editable install for MIM (see setup.py:link_editable_install);
#   * installs the Debian package dataset-fashion-mnist if it is missing.
# The pip steps are skipped when the hash of the requirement files, setup.py,
# the version and this script matches the one stored in the venv and the
# installed versions still match the pins. MMBIREAL_FORCE=1 reinstalls;
# MMBIREAL_SKIP_DATASET=1 skips the dataset. MMBIREAL_BENCH=1 also installs
# the deployment benchmark's peer runtimes (requirements/bench.txt; off by
# default: no test needs them).

if [[ "${BASH_SOURCE[0]}" != "${0}" ]]; then
    # Sourced: do the work in a child bash, so that `set -e` / `exit` never
    # touch the caller's shell, then activate the venv here.
    if bash "${BASH_SOURCE[0]}" "$@"; then
        # shellcheck disable=SC1091
        source "$(dirname "${BASH_SOURCE[0]}")/venv_path.sh"
        source "$(mmbireal_venv)/bin/activate"
        return 0
    fi
    echo "[setup_env] failed" >&2
    return 1
fi

set -euo pipefail

log() { echo "[setup_env] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
# shellcheck disable=SC1091
source "$REPO/tools/venv_path.sh"
VENV="$(mmbireal_venv)"
case "$VENV/" in
    "$REPO"/*) die "MMBIREAL_VENV=$VENV is inside the checkout $REPO; use a path outside it" ;;
esac
case "$REPO/" in  # venv --clear empties the folder: never one holding this
    "$VENV"/*) die "MMBIREAL_VENV=$VENV holds the checkout $REPO; use a path outside it" ;;
esac
CONSTRAINTS="$REPO/requirements/constraints.txt"
STATE_FILE="$VENV/.mmbireal-setup-state"
FMNIST_FILE=/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz

# --- dataset (Debian package) ----------------------------------------------
if [[ -z "${MMBIREAL_SKIP_DATASET:-}" && ! -e "$FMNIST_FILE" ]]; then
    # shellcheck disable=SC1091
    source "$REPO/tools/apt_install.sh"
    log "installing dataset-fashion-mnist (apt)"
    apt_rc=0
    apt_install dataset-fashion-mnist || apt_rc=$?
    skip_hint="MMBIREAL_SKIP_DATASET=1 sets up without it; the tests that need the data then skip"
    case "$apt_rc" in
        0) ;;
        3) die "$FMNIST_FILE is missing and installing dataset-fashion-mnist needs Debian's apt-get ($skip_hint)" ;;
        4) die "$FMNIST_FILE is missing and installing dataset-fashion-mnist needs root or sudo ($skip_hint)" ;;
        *) die "installing dataset-fashion-mnist (apt-get, through sudo if not root) failed with status $apt_rc ($skip_hint)" ;;
    esac
    [[ -e "$FMNIST_FILE" ]] || die "dataset-fashion-mnist did not provide $FMNIST_FILE"
fi

# --- venv --------------------------------------------------------------------
mkdir -p "$(dirname "$VENV")"
# Serialise concurrent runs on the same venv (e.g. two checkouts).
exec 9>"$VENV.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi

VPY="$VENV/bin/python"
if [[ -n "${MMBIREAL_PYTHON:-}" ]]; then
    BASE_PY="$MMBIREAL_PYTHON"
elif command -v python3.11 >/dev/null 2>&1; then
    BASE_PY=python3.11
else
    BASE_PY=python3
fi
# the pins are Python 3.11's wheels (torch, numpy...)
want_version=3.11
# a venv is usable when its python runs, has pip (a venv whose ensurepip
# failed, e.g. without Debian's python3.11-venv, has neither) and is 3.11
venv_ok() {
    [[ -x "$VPY" && -e "$VENV/bin/activate" ]] &&
        [[ "$("$VPY" -c 'import sys; print("%d.%d" % sys.version_info[:2])' \
            2>/dev/null)" == "$want_version" ]] &&
        "$VPY" -m pip --version >/dev/null 2>&1
}
if ! venv_ok; then
    command -v "$BASE_PY" >/dev/null 2>&1 || die "no $BASE_PY found; set MMBIREAL_PYTHON to a Python $want_version"
    base_version="$("$BASE_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    [[ "$base_version" == "$want_version" ]] ||
        die "$BASE_PY is Python $base_version; the pinned environment needs $want_version: set MMBIREAL_PYTHON to a Python $want_version"
    # --clear empties the folder: only a venv's own folder, or an empty one
    if [[ -e "$VENV" && ! -e "$VENV/pyvenv.cfg" ]] &&
            [[ -n "$(ls -A "$VENV" 2>/dev/null)" ]]; then
        die "MMBIREAL_VENV=$VENV is a folder that is not a virtual environment; use a new or empty path"
    fi
    log "creating venv $VENV with $("$BASE_PY" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
    # --clear: a broken venv (its base interpreter gone, pip missing after
    # an interrupted or failed creation) is rebuilt
    "$BASE_PY" -m venv --clear "$VENV" ||
        die "creating the venv failed (on Debian/Ubuntu: apt-get install python$want_version-venv)"
    rm -f "$STATE_FILE"
fi

# Hash of everything that decides what gets installed.
state="$(
    {
        echo "repo=$REPO"
        echo "bench=${MMBIREAL_BENCH:-}"
        "$VPY" -c 'import sys; print(sys.version)'
        cd "$REPO"
        sha256sum requirements/*.txt setup.py mmbireal/version.py tools/setup_env.sh
        [[ -e requirements.txt ]] && sha256sum requirements.txt
        true
    } | sha256sum | cut -d' ' -f1
)"

# Do the installed versions still match the pins, and is this checkout the
# editable install? (cheap: no heavy imports)
env_is_current() {
    "$VPY" - "$CONSTRAINTS" "$REPO" <<'PY'
import json
import os
import re
import sys
from importlib import metadata
from urllib.parse import unquote, urlparse

constraints, repo = sys.argv[1:3]
bad = []
with open(constraints, encoding='utf-8') as f:
    for line in f:
        m = re.match(r'\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)',
                     line)
        if not m:
            continue
        name, want = m.groups()
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = None
        if have != want:
            bad.append(f'{name}: {have} != {want}')
try:
    dist = metadata.distribution('mmbireal')
    url = json.loads(dist.read_text('direct_url.json') or '{}')
    src = unquote(urlparse(url.get('url', '')).path)
    if not (url.get('dir_info', {}).get('editable')
            and os.path.realpath(src) == os.path.realpath(repo)):
        bad.append(f'mmbireal: not an editable install of {repo}')
except metadata.PackageNotFoundError:
    bad.append('mmbireal: not installed')
for b in bad:
    print(f'[setup_env] outdated: {b}', file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

if [[ -z "${MMBIREAL_FORCE:-}" && -f "$STATE_FILE" && "$(cat "$STATE_FILE")" == "$state" ]] \
        && env_is_current; then
    log "venv $VENV is up to date"
else
    rm -f "$STATE_FILE"
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_PROGRESS_BAR=off
    pip_install() {
        log "pip install $*"
        "$VPY" -m pip install -q -c "$CONSTRAINTS" "$@"
    }
    # 1. the deep learning stack first (big wheels, nothing else pulls it in
    #    at another version)
    pip_install torch torchvision
    # 2. setuptools < 82 keeps pkg_resources (mim, mmengine `pkg::` paths) and
    #    is the PEP 660 build backend for the editable install below
    pip_install setuptools
    # 3. OpenMMLab stack; mmcv comes from mmcv-lite (never with full mmcv)
    pip_install mmengine mmcv-lite mmpretrain numpy openmim opendatalab openxlab
    # 4. test tools
    pip_install -r "$REPO/requirements/tests.txt"
    # 4b. optional: the benchmark's peer runtimes
    if [[ -n "${MMBIREAL_BENCH:-}" ]]; then
        pip_install -r "$REPO/requirements/bench.txt"
    fi
    # 5. this checkout, editable. An old MIM link must go first so that pip
    #    can never write through it into the checkout.
    if [[ -L "$SITE/mmbireal" ]]; then
        rm -f "$SITE/mmbireal"
    fi
    # --no-build-isolation: build with the pinned setuptools, offline;
    # --use-pep517: PEP 660 editable wheel even if `wheel` is installed.
    pip_install --no-build-isolation --use-pep517 -e "$REPO"
    env_is_current || die "environment does not match $CONSTRAINTS after install"
    echo "$state" >"$STATE_FILE"
    log "venv $VENV is ready"
fi

# --- MIM link (cheap, always checked) ------------------------------------------
# mim finds packages at site-packages/<pkg>, which a PEP 660 editable install
# does not create; setup.py links it to the checkout (and records the link).
"$VPY" - "$REPO" "$SITE" <<'PY'
import sys
import warnings

repo, site = sys.argv[1:3]
sys.path.insert(0, repo)
with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    import setup  # the checkout's setup.py (import-safe)
setup.link_editable_install(site_packages=site, repo_root=repo)
PY
