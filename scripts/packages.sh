# Sourced by scripts/test and scripts/mutants-core.
# install_missing TOOL:PACKAGE...: installs (apt) the Debian package of each TOOL that is not
# on PATH, in one apt-get run; nothing when all are there.
install_missing() {
    local need=() t
    for t in "$@"; do
        command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
    done
    if [ ${#need[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
    fi
}
