#!/usr/bin/env bash
# Install Debian packages unless the commands they provide are all there already.
#   .ci/apt-install.sh LABEL "COMMAND ..." PACKAGE ...
# Idempotent. Needs root and the Debian mirror; exits 1 with the reason when it cannot install.
set -euo pipefail
label=$1 commands=$2
shift 2

missing=""
for cmd in $commands; do
    command -v "$cmd" >/dev/null || missing="$missing $cmd"
done
if [ -z "$missing" ]; then
    echo "$label: $commands already installed"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "$label: need root to apt-get install $* (missing:$missing)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "$@"
echo "$label: installed $*"
