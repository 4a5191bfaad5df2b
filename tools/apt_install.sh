# Install Debian packages as root or through sudo, waiting for a running apt
# (e.g. unattended-upgrades on a fresh VM). Sourced by tools/setup_env.sh and
# .ci/run, so that the apt details live in one place.
#   source tools/apt_install.sh; apt_install [--quiet] PACKAGE...
# Returns 3 without apt-get, 4 without root or sudo, else apt-get's status.
apt_install() {
    local quiet=() sudo=() wait=(-o DPkg::Lock::Timeout=300)
    if [[ "${1:-}" == --quiet ]]; then
        quiet=(-qq)
        shift
    fi
    command -v apt-get >/dev/null 2>&1 || return 3
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || return 4
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get "${wait[@]}" "${quiet[@]}" update &&
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${wait[@]}" \
            "${quiet[@]}" install -y --no-install-recommends "$@"
}
