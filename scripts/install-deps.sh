#!/usr/bin/env bash
# install-deps.sh - installs the Debian packages nst needs, if any are missing.
set -euo pipefail
PKGS="build-essential cmake pkg-config libpng-dev libjpeg62-turbo-dev libcjson-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
