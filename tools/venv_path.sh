# The project venv's path, as every script of tools/ resolves it: sourced
# by them, so that the default lives in one place.
#   source tools/venv_path.sh; VENV="$(mmbireal_venv)"
mmbireal_venv() {
    local venv="${MMBIREAL_VENV:-${HOME:?is not set: set MMBIREAL_VENV to the venv path}/.cache/mmbireal/venv}"
    [[ "$venv" = /* ]] || venv="$PWD/$venv"
    realpath -m "$venv"
}
