#!/usr/bin/env bash
# The paper's procedure and its ablation at Fashion-MNIST scale, with our
# configs (configs/birealnet/*_fmnist.py): every step 4 epochs on the first
# 12,000 training images, evaluated on the 10,000 test images after each
# epoch, once per seed; each seed's binary runs start from that seed's own
# pre-training chain. Resumable run by run: a finished run is skipped, an
# interrupted one continues from its last checkpoint. About 2-2.5 hours per
# seed on 2 idle cores.
#
#   bash tools/reproduce/fashion_mnist.sh                   # seeds 0 1 2
#   bash tools/reproduce/fashion_mnist.sh --seeds "0"       # one seed
#   bash tools/reproduce/fashion_mnist.sh --study           # the magnitude-
#       aware study: magnitude_aware and scaled_sign with 4x the epochs
#   bash tools/reproduce/fashion_mnist.sh --runs "A B"      # these configs
#   bash tools/reproduce/fashion_mnist.sh --collect         # results only
#
# Runs go to $MMBIREAL_WORK_DIRS/seed<N>/<config> (default work root:
# work_dirs in the checkout); point it outside the checkout to keep them
# across fresh clones. The configs' `load_from` paths under work_dirs/ are
# redirected to the same seed's runs.
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
# The magnitude-aware study: the same binary step from the same seed's clip
# checkpoint with 4x the budget.
STUDY=(
    bireal18_16e_1xb64_fmnist
    bireal18_scaled-sign-16e_1xb64_fmnist
)
ALL_RUNS=("${RUNS[@]}" "${STUDY[@]}")
SEEDS=(0 1 2)
collect_only=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --seeds) read -r -a SEEDS <<<"$2"; shift 2 ;;
        --runs) read -r -a RUNS <<<"$2"; shift 2 ;;
        --study) RUNS=("${STUDY[@]}"); shift ;;
        --collect) collect_only=1; shift ;;
        *) echo "error: unknown argument $1; accepted: --seeds \"0 1 2\"," \
               "--study, --runs \"CONFIG ...\", --collect" >&2; exit 2 ;;
    esac
done

config_value() {  # config_value RUN KEY: train_cfg.max_epochs or load_from
    "$PYTHON" -c "from mmengine.config import Config; \
c = Config.fromfile('configs/birealnet/$1.py'); \
print(c.train_cfg.max_epochs if '$2' == 'epochs' else c.get('load_from') or '')"
}

collect() {
    "$PYTHON" tools/reproduce/collect_fashion_mnist.py --work-root "$ROOT" \
        --seeds "${SEEDS[@]}" -- "${ALL_RUNS[@]}"
}

if [[ $collect_only == 0 ]]; then
    for seed in "${SEEDS[@]}"; do
        for run in "${RUNS[@]}"; do
            work="$ROOT/seed$seed/$run"
            done_ckpt="$work/epoch_$(config_value "$run" epochs).pth"
            if [[ -f "$done_ckpt" ]]; then
                echo "[reproduce] seed $seed $run: done ($done_ckpt)"
                continue
            fi
            args=(--cfg-options "randomness.seed=$seed")
            load_from="$(config_value "$run" load_from)"
            if [[ -f "$work/last_checkpoint" ]]; then
                args=(--resume "${args[@]}")  # continue the interrupted run
            elif [[ "$load_from" == work_dirs/* ]]; then
                args+=("load_from=$ROOT/seed$seed/${load_from#work_dirs/}")
            fi
            echo "[reproduce] seed $seed $run: training ${args[*]}"
            "$PYTHON" tools/train.py "configs/birealnet/$run.py" \
                --work-dir "$work" "${args[@]}"
        done
    done
fi
collect
