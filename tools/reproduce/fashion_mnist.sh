#!/usr/bin/env bash
# The paper's procedure and its ablation at Fashion-MNIST scale, with our
# configs (configs/birealnet/*_fmnist.py): every step 4 epochs on the first
# 12,000 training images, evaluated on the 10,000 test images after each
# epoch. Resumable stage by stage: a finished run is skipped, an interrupted
# one continues from its last checkpoint. About 2 hours on 2 CPU cores.
#
#   bash tools/reproduce/fashion_mnist.sh            # run what is missing
#   bash tools/reproduce/fashion_mnist.sh --collect  # only rebuild the results
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
cd "$REPO"
PYTHON=${PYTHON:-python}

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

final_epoch() {  # max_epochs of a config
    "$PYTHON" -c "from mmengine.config import Config; \
print(Config.fromfile('configs/birealnet/$1.py').train_cfg.max_epochs)"
}

if [[ "${1:-}" != "--collect" ]]; then
    for run in "${RUNS[@]}"; do
        work="work_dirs/$run"
        done_ckpt="$work/epoch_$(final_epoch "$run").pth"
        if [[ -f "$done_ckpt" ]]; then
            echo "[reproduce] $run: done ($done_ckpt)"
            continue
        fi
        resume=()
        if [[ -f "$work/last_checkpoint" ]]; then
            resume=(--resume)  # continue the interrupted run
        fi
        echo "[reproduce] $run: training ${resume[*]}"
        "$PYTHON" tools/train.py "configs/birealnet/$run.py" \
            --work-dir "$work" "${resume[@]}"
    done
fi
"$PYTHON" tools/reproduce/collect_fashion_mnist.py "${RUNS[@]}"
