#!/bin/sh
# Installs the Debian packages dfs needs to build and test, when missing.
# As root: one `apt-get update`, then `apt-get install -y`.  Not root: prints
# the exact command and fails.  When everything is present it does nothing
# and touches no network.
set -eu

PKGS="build-essential pkg-config libfuse3-dev fuse3 libssl-dev zlib1g-dev
libcmocka-dev libmicrohttpd-dev clang libclang-rt-14-dev python3 iproute2
procps psmisc curl chromium sqlite3 git rsync make tar e2fsprogs"

missing=""
for p in $PKGS; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        *" installed") ;;
        *) missing="$missing $p" ;;
    esac
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "dfs: missing Debian packages:$missing" >&2
    echo "dfs: install them as root with:" >&2
    echo "    apt-get update && apt-get install -y$missing" >&2
    exit 1
fi

echo "dfs: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
