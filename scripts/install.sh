#!/bin/sh
# Installs the project into the virtual environment of PYTHON: `sh scripts/install.sh .venv/bin/python -e .`
# (`make run` and `make test` call it). With uv, installed into that environment by pip first, the install
# takes seconds where pip takes a minute; where uv cannot be had (no wheel for this platform, no access to
# PyPI but a local pip mirror or cache) or fails, plain pip does the same install.
# WALLET_SIM_INSTALLER=pip forces pip.
set -eu
python="$1"
shift
bin=$(dirname "$python")
pip="$python -m pip install --quiet --disable-pip-version-check"

if [ "${WALLET_SIM_INSTALLER:-uv}" != pip ]; then
    if [ -x "$bin/uv" ] || $pip uv >/dev/null 2>&1; then
        if "$bin/uv" pip install --quiet --python "$python" "$@"; then
            exit 0
        fi
        echo "install: uv could not install $*; trying pip" >&2
    else
        echo "install: uv could not be installed; using pip" >&2
    fi
fi
# shellcheck disable=SC2086  # $pip is a command line
exec $pip "$@"
