#!/bin/sh
# Installs the Debian/Ubuntu packages the test suite needs that pip cannot provide. `make test` runs it
# before the tests. As root it installs what is missing with apt-get (and with `sudo -n` when that works
# without a password); otherwise it prints the command to run and fails, so nothing is silently skipped.
#
# To add a package: one more "command package" line in NEEDS (the command that proves it is installed).
set -eu

NEEDS="
chromium chromium
chromedriver chromium-driver
redis-server redis-server
"

missing=""
while read -r command package; do
    [ -n "$command" ] || continue
    command -v "$command" >/dev/null 2>&1 || missing="$missing $package"
done <<END
$NEEDS
END

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root="sudo -n"
else
    echo "system-deps: missing Debian packages:$missing" >&2
    echo "system-deps: install them once as root, then run make test again:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends$missing" >&2
    echo "    (or: sudo sh scripts/system-deps.sh)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: no apt-get here; install these packages with your system's package manager:$missing" >&2
    exit 1
fi
echo "system-deps: installing$missing"
$as_root apt-get update
# shellcheck disable=SC2086  # one word per package
DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y --no-install-recommends $missing
