#!/usr/bin/env bash
# The paper's procedure and its ablation with our configs, once per seed;
# each seed's binary runs start from that seed's own pre-training chain.
# Resumable run by run, across sessions and fresh clones: a run whose
# finished log is committed (docs/results/<data>/seed<N>/<run>.json) or whose
# last checkpoint and last score are in its work dir is skipped, an
# interrupted one continues from its last checkpoint (one stopped during its
# last validation: from its last epoch's), and a finished run is retrained
# only when a run still to
# do starts from its checkpoint (the collector warns if the retraining's
# scores differ from the committed ones). Each run's log is collected as it
# ends, so committing docs/results keeps it.
#
# Fashion-MNIST (default; configs/birealnet/*_1xb64_fmnist.py): every step 4
# epochs on the first 12,000 training images, evaluated on the 10,000 test
# images after each epoch; about 2-2.5 hours per seed on 2 idle cores.
# ImageNet (--imagenet; configs/birealnet/*_in1k.py, data in data/imagenet):
# the paper's schedules, for GPUs (--gpus N runs tools/dist_train.sh).
#
#   bash tools/reproduce/run_study.sh                   # seeds 0 1 2
#   bash tools/reproduce/run_study.sh --seeds "0"       # one seed
#   bash tools/reproduce/run_study.sh --study           # the magnitude-
#       aware study: magnitude_aware and scaled_sign with 4x the epochs,
#       magnitude_aware with the binary weights' lr x 1 / mean(alpha)
#   bash tools/reproduce/run_study.sh --react           # ReActNet-style
#       training: RSign/RPReLU, distillation, both (two steps each)
#   bash tools/reproduce/run_study.sh --shortcut        # the 1-bit ResNet
#       with the whole procedure (its own pre-training chain), the paper's
#       shortcut ablation like for like
#   bash tools/reproduce/run_study.sh --imagenet --gpus 8 [--study]
#   bash tools/reproduce/run_study.sh --runs "A B"      # these configs
#   bash tools/reproduce/run_study.sh --collect         # results only
#   bash tools/reproduce/run_study.sh --study --dry-run # what would train
#       (with the pre-training it needs) and for how many epochs
#
# Runs go to $MMBIREAL_WORK_DIRS/seed<N>/<config> (default work root:
# work_dirs in the checkout); point it outside the checkout to keep them
# across fresh clones. The configs' `load_from` paths under work_dirs/ are
# redirected to the same seed's runs. Results: docs/results/<data set>/
# (tools/reproduce/collect_study.py).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
cd "$REPO"
PYTHON=${PYTHON:-python}
# always this checkout's code, whatever mmbireal the interpreter has installed
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
ROOT=${MMBIREAL_WORK_DIRS:-work_dirs}
# the paths pass through --cfg-options, whose parser drops spaces and
# splits at commas
if [[ "$ROOT" =~ [[:space:],] ]]; then
    echo "error: MMBIREAL_WORK_DIRS='$ROOT' has a space or comma;" \
        "accepted: a path without them" >&2
    exit 2
fi

# step -> config name: <model>_<role>_<batch>_<data>; in dependency order
# (each pre-training step loads the previous one, the binary runs load them)
fmnist_runs() {
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
    # the same binary step from the same seed's clip checkpoint: 4x budget
    # for both weight gradients; magnitude-aware with lr x 1/mean(alpha)
    STUDY=(
        bireal18_long_1xb64_fmnist
        bireal18_scaled-sign-long_1xb64_fmnist
        bireal18_lr-alpha_1xb64_fmnist
    )
    # ReActNet-style training (#14): each ablation's two steps; the
    # distilled ones learn from the same seed's clip network
    REACT=(  # the full recipe first, then its two ablations
        bireal18-react_step1_1xb64_fmnist
        bireal18-react_step2_1xb64_fmnist
        bireal18-rsign-rprelu_step1_1xb64_fmnist
        bireal18-rsign-rprelu_step2_1xb64_fmnist
        bireal18-distill_step1_1xb64_fmnist
        bireal18-distill_step2_1xb64_fmnist
    )
    # the plain 1-bit ResNet-18 with the whole procedure
    SHORTCUT=(
        binary-resnet18_relu-pre_1xb64_fmnist
        binary-resnet18_leakyclip-pre_1xb64_fmnist
        binary-resnet18_clip-pre_1xb64_fmnist
        binary-resnet18_1xb64_fmnist
    )
    DATA=fashion_mnist
}
imagenet_runs() {
    RUNS=(
        bireal18_relu-pre_8xb32_in1k
        bireal18_leakyclip-pre_8xb32_in1k
        bireal18_clip-pre_8xb32_in1k
        bireal18_8xb16_in1k
        bireal18_bn-retrain_8xb16_in1k
        bireal18_ste_8xb16_in1k
        bireal18_scaled-sign_8xb16_in1k
        bireal18_from-relu_8xb16_in1k
        bireal18_scratch_8xb16_in1k
        binary-resnet18_scratch_8xb16_in1k
    )
    STUDY=(
        bireal18_long_8xb16_in1k
        bireal18_scaled-sign-long_8xb16_in1k
        bireal18_lr-alpha_8xb16_in1k
    )
    REACT=(  # the teacher: an MMPretrain ResNet-34 (see the configs)
        bireal18-react_step1_8xb64_in1k
        bireal18-react_step2_8xb64_in1k
    )
    SHORTCUT=(
        binary-resnet18_relu-pre_8xb32_in1k
        binary-resnet18_leakyclip-pre_8xb32_in1k
        binary-resnet18_clip-pre_8xb32_in1k
        binary-resnet18_8xb16_in1k
    )
    DATA=imagenet
}

fmnist_runs
SEEDS=(0 1 2)
collect_only=0 dry_run=0 study=0 react=0 shortcut=0 gpus=0 runs=()
need_value() {  # need_value FLAG [VALUE...]: one line and exit 2 if none
    if [[ $# -lt 2 || -z ${2// /} || $2 == --* ]]; then
        echo "error: $1 takes a value, e.g. $1 \"$3\"" >&2
        exit 2
    fi
}
while [[ $# -gt 0 ]]; do
    case "$1" in
        --seeds)
            need_value "$1" "${2-}" "0 1 2"
            read -r -a SEEDS <<<"$2"
            for seed in "${SEEDS[@]}"; do
                if ! [[ $seed =~ ^[0-9]+$ ]]; then
                    echo "error: --seeds takes whole numbers, e.g." \
                         "--seeds \"0 1 2\"; got '$seed'" >&2
                    exit 2
                fi
            done
            shift 2 ;;
        --runs)
            need_value "$1" "${2-}" "bireal18_1xb64_fmnist"
            read -r -a runs <<<"$2"; shift 2 ;;
        --study) study=1; shift ;;
        --react) react=1; shift ;;
        --shortcut) shortcut=1; shift ;;
        --imagenet) imagenet_runs; shift ;;
        --gpus)
            if ! [[ ${2-} =~ ^[0-9]+$ ]]; then  # also: no value (set -u)
                echo "error: --gpus takes a number of GPUs (0: no" \
                     "launcher), got '${2-}'" >&2
                exit 2
            fi
            gpus=$2; shift 2 ;;
        --collect) collect_only=1; shift ;;
        --dry-run) dry_run=1; shift ;;
        -h|--help)  # the comment at the top of this file
            sed -n '2,/^[^#]/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "error: unknown argument $1; accepted: --seeds \"0 1 2\"," \
               "--study, --react, --shortcut, --imagenet, --gpus N," \
               "--runs \"CONFIG ...\"," \
               "--collect, --dry-run, --help" >&2; exit 2 ;;
    esac
done
ALL_RUNS=("${RUNS[@]}" "${STUDY[@]}" "${REACT[@]}" "${SHORTCUT[@]}")
if [[ ${#runs[@]} -gt 0 ]]; then
    TRAIN=("${runs[@]}")
elif [[ $study == 1 || $react == 1 || $shortcut == 1 ]]; then
    TRAIN=()
    [[ $study == 1 ]] && TRAIN+=("${STUDY[@]}")
    [[ $react == 1 ]] && TRAIN+=("${REACT[@]}")
    [[ $shortcut == 1 ]] && TRAIN+=("${SHORTCUT[@]}")
else
    TRAIN=("${RUNS[@]}")
fi

start_points() {  # start_points RUN: its load_from, then model.teacher_ckpt
    # (one interpreter for both; -W: mmengine's import of pkg_resources
    # warns, which says nothing here)
    "$PYTHON" -W ignore::UserWarning -c "from mmengine.config import Config; \
c = Config.fromfile('configs/birealnet/$1.py'); \
print(c.get('load_from') or '-'); print(c.model.get('teacher_ckpt') or '-')"
}

max_epochs() {  # max_epochs RUN
    "$PYTHON" -W ignore::UserWarning -c "from mmengine.config import Config; \
print(Config.fromfile('configs/birealnet/$1.py').train_cfg.max_epochs)"
}

train() {  # train CONFIG ARGS...
    if [[ $gpus -gt 0 ]]; then
        PYTHON="$PYTHON" bash tools/dist_train.sh "$1" "$gpus" "${@:2}"
    else
        "$PYTHON" tools/train.py "$@"
    fi
}

# the table shows seeds 0-2 (and any other trained), whichever this call
# trains: the others' logs are committed
read -r -a TABLE_SEEDS <<<"$(printf '%s\n' 0 1 2 "${SEEDS[@]}" | sort -nu |
    tr '\n' ' ')"
collect() {  # -W as in start_points (the collector does not import mmbireal,
    # whose import silences that warning)
    "$PYTHON" -W "ignore:pkg_resources is deprecated:UserWarning" \
        tools/reproduce/collect_study.py --work-root "$ROOT" \
        --out "docs/results/$DATA" --seeds "${TABLE_SEEDS[@]}" "$@" \
        -- "${ALL_RUNS[@]}"
}

if [[ $collect_only == 0 ]]; then
    for seed in "${SEEDS[@]}"; do
        # finished runs are skipped (their logs are committed under
        # docs/results); a finished run is retrained only when a run still
        # to do starts from its checkpoint and the checkpoint is gone
        # its own statement: set -e stops on a planner error (inside
        # `read <<<"$(...)"` it would be an empty plan)
        plan="$(collect --todo "$seed" --want "${TRAIN[*]}")"
        read -r -a todo <<<"$plan"
        echo "[reproduce] seed $seed: ${#todo[@]} runs to train:" \
            "${todo[*]:-none}"
        if [[ $dry_run == 1 ]]; then
            epochs=0
            for run in "${todo[@]}"; do
                epochs=$((epochs + $(max_epochs "$run")))
            done
            echo "[reproduce] seed $seed: $epochs epochs in all (dry run:" \
                "nothing trained)"
            continue
        fi
        for run in "${todo[@]}"; do
            work="$ROOT/seed$seed/$run"
            args=(--cfg-options "randomness.seed=$seed")
            points="$(start_points "$run")"  # set -e stops on its error
            { read -r load_from; read -r teacher; } <<<"$points"
            [[ "$load_from" == - ]] && load_from=''
            [[ "$teacher" == - ]] && teacher=''
            if [[ "$teacher" == work_dirs/* ]]; then  # this seed's teacher
                args+=("model.teacher_ckpt=$ROOT/seed$seed/${teacher#work_dirs/}")
            fi
            # an interrupted run continues (the planner's rule, one place)
            resume="$(collect --resume-point "$work")"
            if [[ -n "$resume" ]]; then
                args=(--resume "$resume" "${args[@]}")
            elif [[ "$load_from" == work_dirs/* ]]; then
                args+=("load_from=$ROOT/seed$seed/${load_from#work_dirs/}")
            fi
            if [[ "$run" == *_lr-alpha_* ]]; then  # 1 / mean alpha at start
                mult=$("$PYTHON" tools/analysis_tools/binary_weight_stats.py \
                    "configs/birealnet/$run.py" \
                    "$ROOT/seed$seed/${load_from#work_dirs/}" --inverse-mean)
                args+=("optim_wrapper.paramwise_cfg.binary_lr_mult=$mult")
            fi
            echo "[reproduce] seed $seed $run: training ${args[*]}"
            rc=0
            train "configs/birealnet/$run.py" --work-dir "$work" \
                "${args[@]}" || rc=$?
            if [[ $rc != 0 ]]; then
                # keep the failed run's log too; the status stays the run's
                collect >/dev/null || true
                echo "[reproduce] seed $seed $run $( ((rc == 130)) &&
                    echo stopped || echo failed); the same run_study.sh" \
                    "command resumes the study from it" >&2
                [[ $rc == 130 ]] && exit 130  # Ctrl-C
                exit 1
            fi
            # the run's log is in docs/results now (tables to /dev/null,
            # warnings still on stderr)
            collect >/dev/null
        done
    done
fi
[[ $dry_run == 1 ]] || collect
