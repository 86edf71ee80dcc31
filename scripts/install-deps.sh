#!/usr/bin/env bash
# install-deps.sh [PACKAGE...] - installs the Debian packages that are missing: by default
# what nst needs to build (compiler, CMake, PNG, JPEG, WebP, TIFF, GIF, JSON), else the ones named.
set -euo pipefail
PKGS="${*:-build-essential cmake pkg-config libpng-dev libjpeg62-turbo-dev libwebp-dev libtiff-dev libgif-dev libcjson-dev liblapack-dev}"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
