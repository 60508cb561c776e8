#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what dsnot builds and tests with, idempotently: Debian packages, and the Python reference
# peers (safetensors, numpy, tokenizers, ml_dtypes for bfloat16, prometheus_client's exposition parser) in a venv under the repository (.venv, git-ignored).
#
#   scripts/install-deps.sh            install whatever is missing
#   scripts/install-deps.sh --check    exit 0 when everything is present, 1 otherwise (installs nothing)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libopenblas-dev libdnnl-dev liblz4-dev libsystemd-dev libsqlite3-dev lz4 zstd systemd mandoc pkg-config strace curl postgresql)
PY_PACKAGES=("numpy==2.4.6" "safetensors==0.8.0" "tokenizers==0.23.3" "ml_dtypes==0.6.0" "prometheus_client==0.26.0")
VENV=.venv

missing_apt() {
    local p
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

venv_ok() {
    [ -x "$VENV/bin/python" ] && [ -f "$VENV/.deps" ] && [ "$(cat "$VENV/.deps")" = "${PY_PACKAGES[*]}" ]
}

if [ "${1:-}" = "--check" ]; then
    [ -z "$(missing_apt)" ] && venv_ok && exit 0
    exit 1
fi

mapfile -t todo < <(missing_apt)
if [ "${#todo[@]}" -gt 0 ]; then
    echo "install-deps: apt-get install ${todo[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${todo[@]}" >/dev/null
fi

if ! venv_ok; then
    echo "install-deps: creating $VENV with ${PY_PACKAGES[*]}"
    PYTHON=${PYTHON:-python3}
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
    echo "${PY_PACKAGES[*]}" >"$VENV/.deps"
fi
echo "install-deps: all dependencies present"
