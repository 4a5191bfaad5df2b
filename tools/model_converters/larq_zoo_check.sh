#!/usr/bin/env bash
# Check tools/model_converters/larq_zoo_to_mmbireal.py against larq-zoo's own
# Keras Bi-Real Net (random weights, randomised BN statistics).
#
#   bash tools/model_converters/larq_zoo_check.sh [OUT_DIR]
#
# 1. Creates (once) a separate venv with TensorFlow 2.15, larq 0.14 and
#    larq-zoo 2.4 at ${MMBIREAL_LARQ_VENV:-$HOME/.cache/mmbireal/larq-venv}:
#    they need numpy<2 and protobuf<3.21, so they cannot share the mmbireal
#    venv. Downloads about 600 MB from PyPI the first time.
# 2. There, tools/model_converters/larq_zoo_reference.py builds larq-zoo's
#    BiRealNet(weights=None), saves its .h5 and its pre-softmax logits on
#    fixed inputs (float32 and float64) in OUT_DIR (default
#    work_dirs/larq_zoo_check).
# 3. In the mmbireal venv ($PYTHON, else the venv tools/setup_env.sh made:
#    ${MMBIREAL_VENV:-$HOME/.cache/mmbireal/venv}),
#    tools/model_converters/larq_zoo_compare.py converts the .h5 and compares
#    the logits; it exits non-zero if the float64 logits, or the float32 ones
#    on inputs with no pre-sign value near 0, differ by more than 1e-4 of the
#    logit range.
# MMBIREAL_LARQ_ARGS passes options to the reference script (e.g.
# "--filters 8 --num-classes 10 --size 32" for a narrow model).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
LARQ_VENV="${MMBIREAL_LARQ_VENV:-$HOME/.cache/mmbireal/larq-venv}"
OUT="${1:-$REPO/work_dirs/larq_zoo_check}"
# not $MMBIREAL_PYTHON: setup_env.sh creates the venv with that interpreter
source "$REPO/tools/venv_path.sh"
PY="${PYTHON:-$(mmbireal_venv)/bin/python}"
log() { echo "[larq_zoo_check] $*" >&2; }

if [[ ! -f "$LARQ_VENV/.ready" ]]; then
    # venv --clear empties the folder: only a venv's own, or an empty one
    if [[ -e "$LARQ_VENV" && ! -e "$LARQ_VENV/pyvenv.cfg" ]] &&
            [[ -n "$(ls -A "$LARQ_VENV" 2>/dev/null)" ]]; then
        log "ERROR: MMBIREAL_LARQ_VENV=$LARQ_VENV is a folder that is not a virtual environment; use a new or empty path"
        exit 1
    fi
    log "creating $LARQ_VENV (TensorFlow 2.15, larq 0.14, larq-zoo 2.4)"
    python3.11 -m venv --clear "$LARQ_VENV"
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_PROGRESS_BAR=off \
        nice -n 5 "$LARQ_VENV/bin/python" -m pip install -q \
        'tensorflow==2.15.*' 'larq==0.14.*' 'larq-zoo==2.4.*' \
        'numpy<2' 'protobuf<3.21' h5py
    touch "$LARQ_VENV/.ready"
fi

mkdir -p "$OUT"
# shellcheck disable=SC2086
nice -n 5 "$LARQ_VENV/bin/python" "$REPO/tools/model_converters/larq_zoo_reference.py" \
    "$OUT" ${MMBIREAL_LARQ_ARGS:-}
PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" \
    "$PY" "$REPO/tools/model_converters/larq_zoo_compare.py" "$OUT"
