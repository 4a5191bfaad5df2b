#!/usr/bin/env bash
# The paper's procedure and its ablation at Fashion-MNIST scale, with our
# configs (configs/birealnet/*_fmnist.py): every step 4 epochs on the first
# 12,000 training images, evaluated on the 10,000 test images after each
# epoch. Resumable stage by stage: a finished run is skipped, an interrupted
# one continues from its last checkpoint. About 2-2.5 hours on 2 idle cores.
#
#   bash tools/reproduce/fashion_mnist.sh            # run what is missing
#   bash tools/reproduce/fashion_mnist.sh --collect  # only rebuild the results
#
# Runs go to $MMBIREAL_WORK_DIRS (default: work_dirs in the checkout); point
# it outside the checkout to keep them across fresh clones. The configs'
# `load_from` paths under work_dirs/ are redirected there.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
cd "$REPO"
PYTHON=${PYTHON:-python}
# always this checkout's code, whatever mmbireal the interpreter has installed
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
ROOT=${MMBIREAL_WORK_DIRS:-work_dirs}

# In dependency order: each pre-training step loads the previous one.
RUNS=(
    bireal18_relu-pre_1xb64_fmnist
    bireal18_leakyclip-pre_1xb64_fmnist
    bireal18_clip-pre_1xb64_fmnist
    bireal18_1xb64_fmnist
    bireal18_bn-retrain_1xb64_fmnist
    bireal18_ste_1xb64_fmnist
    bireal18_scaled-sign_1xb64_fmnist
    bireal18_from-relu_1xb64_fmnist
    bireal18_scratch_1xb64_fmnist
    binary-resnet18_scratch_1xb64_fmnist
)

config_value() {  # config_value RUN KEY: train_cfg.max_epochs or load_from
    "$PYTHON" -c "from mmengine.config import Config; \
c = Config.fromfile('configs/birealnet/$1.py'); \
print(c.train_cfg.max_epochs if '$2' == 'epochs' else c.get('load_from') or '')"
}

if [[ "${1:-}" != "--collect" ]]; then
    for run in "${RUNS[@]}"; do
        work="$ROOT/$run"
        done_ckpt="$work/epoch_$(config_value "$run" epochs).pth"
        if [[ -f "$done_ckpt" ]]; then
            echo "[reproduce] $run: done ($done_ckpt)"
            continue
        fi
        args=()
        load_from="$(config_value "$run" load_from)"
        if [[ -f "$work/last_checkpoint" ]]; then
            args=(--resume)  # continue the interrupted run
        elif [[ "$load_from" == work_dirs/* ]]; then
            args=(--cfg-options "load_from=$ROOT/${load_from#work_dirs/}")
        fi
        echo "[reproduce] $run: training ${args[*]}"
        "$PYTHON" tools/train.py "configs/birealnet/$run.py" \
            --work-dir "$work" "${args[@]}"
        # keep the small logs in the checkout after every run
        "$PYTHON" tools/reproduce/collect_fashion_mnist.py \
            --work-root "$ROOT" "${RUNS[@]}" >/dev/null
    done
fi
"$PYTHON" tools/reproduce/collect_fashion_mnist.py --work-root "$ROOT" \
    "${RUNS[@]}"
