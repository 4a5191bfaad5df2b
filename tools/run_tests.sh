#!/usr/bin/env bash
# Run the test suite inside the project venv (created / updated first by
# tools/setup_env.sh). Extra arguments go to pytest; without a test path the
# whole `tests` folder runs. Tests run in one pytest-xdist worker per core (at
# most 8; `-n 0` runs them in this process). Exit status: pytest's.
#
#   bash tools/run_tests.sh                  # all tests
#   bash tools/run_tests.sh -k packaging -x  # pytest options
#   bash tools/run_tests.sh tests/test_tools/test_packaging.py
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then  # its exec would end the shell
    echo "run it as: bash tools/run_tests.sh" >&2
    return 1
fi
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
bash "$REPO/tools/setup_env.sh"

source "$REPO/tools/venv_path.sh"
VENV="$(mmbireal_venv)"
# behave like an activated venv for subprocesses (mim, python, ...)
export VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH"
unset PYTHONHOME

cd "$REPO"
targets=(tests)
workers=(-n "$(( $(nproc) < 8 ? $(nproc) : 8 ))" --dist worksteal)
for arg in "$@"; do
    # an explicit test path (file, dir or node id) replaces the default
    if [[ "$arg" != -* && -e "${arg%%::*}" ]]; then
        targets=()
    fi
    # so does an explicit worker count
    if [[ "$arg" == -n* || "$arg" == --numprocesses* ]]; then
        workers=()
    fi
done
# -rs: the summary names each skipped test and why (what this machine did not run)
exec "$VENV/bin/python" -m pytest -q -rs "${workers[@]}" "${targets[@]}" "$@"
