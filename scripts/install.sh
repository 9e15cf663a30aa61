#!/bin/sh
# Installs the project into a virtual environment: `sh scripts/install.sh .venv/bin/python -e '.[dev]'`
# (`make run` and `make test` call it). uv, pip-installed into that environment first, does the install in
# seconds where pip takes a minute; where uv cannot be had (no wheel for this platform, no access to PyPI
# but a local pip mirror) or fails, plain pip does the same install. WALLET_SIM_INSTALLER=pip forces pip.
#
# The Makefile creates the environment without pip (`venv --without-pip`: ensurepip alone takes 4-8 s), so
# uv is installed with the pip of the Python that made it (PYTHON, `pip --python`); the environment gets a
# pip of its own only when that does not work or pip does the install.
set -eu
python="$1"
shift
bin=$(dirname "$python")
outer="${PYTHON:-python3}"
quiet="--quiet --disable-pip-version-check"

ensure_pip() {
    "$python" -m pip --version >/dev/null 2>&1 || "$python" -m ensurepip --default-pip >/dev/null
}

get_uv() {
    [ -x "$bin/uv" ] && return 0
    # shellcheck disable=SC2086  # $quiet is two options
    "$outer" -m pip --python "$python" install $quiet uv >/dev/null 2>&1 && return 0
    # shellcheck disable=SC2086
    ensure_pip && "$python" -m pip install $quiet uv >/dev/null 2>&1
}

if [ "${WALLET_SIM_INSTALLER:-uv}" != pip ]; then
    if get_uv; then
        "$bin/uv" pip install --quiet --python "$python" "$@" && exit 0
        echo "install: uv could not install $*; trying pip" >&2
    else
        echo "install: uv could not be installed; using pip" >&2
    fi
fi
ensure_pip
# shellcheck disable=SC2086
exec "$python" -m pip install $quiet "$@"
