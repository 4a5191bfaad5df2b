#!/usr/bin/env bash
# Usage: bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py arguments...]
set -euo pipefail
if [[ $# -lt 3 ]]; then
    echo "error: expected at least 3 arguments, got $#; usage: bash $0 CONFIG CHECKPOINT NPROC [test.py arguments...]" >&2
    exit 2
fi
if ! [[ $3 =~ ^[1-9][0-9]*$ ]]; then
    echo "error: NPROC must be a positive number of processes, got '$3'" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
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
    "$TOOLS/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
