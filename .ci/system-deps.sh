#!/usr/bin/env bash
# Installs the Debian packages the test suite runs for real: caddy (caddy validate/adapt and the
# TLS front in end-to-end tests), systemd (systemd-analyze verify on the unit) and chromium (the
# web UI tests drive it headless through Playwright; no browser is ever downloaded).
# Idempotent and quiet: when every command is already there it does nothing and touches no
# package list; otherwise it runs `apt-get update` once and installs only what is missing.
# Works as root with no stdin (CI); as another user it goes through `sudo -n`.
set -euo pipefail

# command-on-PATH  Debian-package
wanted=(
    "caddy caddy"
    "systemd-analyze systemd"
    "chromium chromium"
)

missing=()
for pair in "${wanted[@]}"; do
    read -r cmd pkg <<<"$pair"
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: missing ${missing[*]} and no apt-get here; install them by hand" >&2
    exit 1
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        as_root=(sudo -n)
    else
        echo "system-deps: missing ${missing[*]}; run this script as root" >&2
        exit 1
    fi
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y
    -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confold)
if ! { "${apt[@]}" update && "${apt[@]}" install --no-install-recommends "${missing[@]}"; } \
    </dev/null >"$log" 2>&1; then
    cat "$log" >&2
    echo "system-deps: installing ${missing[*]} failed" >&2
    exit 1
fi

for pair in "${wanted[@]}"; do
    read -r cmd pkg <<<"$pair"
    if ! command -v "$cmd" >/dev/null 2>&1; then
        echo "system-deps: $pkg installed but '$cmd' is still not on PATH" >&2
        exit 1
    fi
done
