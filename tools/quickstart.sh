#!/usr/bin/env bash
# From a fresh machine to a trained 1-bit network and its test accuracy:
# sets up the pinned environment (tools/setup_env.sh), then trains Bi-Real-18
# on Fashion-MNIST with configs/birealnet/bireal18_1xb64-quick_fmnist.py and
# prints its top-1 accuracy on the 10,000-image test split.
# Extra arguments go to tools/train.py (e.g. --resume after an interruption).
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then  # its set -e would stay
    echo "run it as: bash tools/quickstart.sh" >&2
    return 1
fi
set -euo pipefail
if [[ "${1-}" == -h || "${1-}" == --help ]]; then  # the comment above
    sed -n '2,/^[^#]/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    exit 0
fi
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
bash "$REPO/tools/setup_env.sh"
source "$REPO/tools/venv_path.sh"
VENV="$(mmbireal_venv)"
cd "$REPO"
"$VENV/bin/python" tools/train.py \
    configs/birealnet/bireal18_1xb64-quick_fmnist.py \
    --work-dir work_dirs/quickstart "$@"
