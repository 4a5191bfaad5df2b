#!/usr/bin/env bash
# Usage: bash tools/dist_train.sh CONFIG NPROC [train.py arguments...]
# Starts NPROC processes per node with torchrun; on machines without CUDA
# the processes use the gloo backend on the CPU.
set -euo pipefail
if [[ $# -lt 2 ]]; then
    echo "error: expected at least 2 arguments, got $#; usage: bash $0 CONFIG NPROC [train.py arguments...]" >&2
    exit 2
fi
if ! [[ $2 =~ ^[1-9][0-9]*$ ]]; then
    echo "error: NPROC must be a positive number of processes, got '$2'" >&2
    exit 2
fi
CONFIG=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PYTHON=${PYTHON:-python}
TOOLS=$(cd "$(dirname "$0")" && pwd)

# the resume line after Ctrl-C names this command
MMBIREAL_LAUNCH_COMMAND="bash $(printf '%q ' "$0" "$@")"
export MMBIREAL_LAUNCH_COMMAND
# torch.distributed.run, without the agent's traceback after Ctrl-C
PYTHONPATH="$TOOLS/..${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -c 'from mmbireal.utils.launch import torchrun; torchrun()' \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" \
    --master_port="$PORT" \
    "$TOOLS/train.py" "$CONFIG" --launcher pytorch "${@:3}"
