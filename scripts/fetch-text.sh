#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fetches only the Austen texts of FIXTURES.md (.fixtures/text/calib.txt and eval.txt), checksummed:
# the Debian package r-cran-janeaustenr, unpacked and read with the standard library only. `make run`
# uses it so that the default watch has a calibration text without fetching the model;
# scripts/fixtures.sh builds the same files (and the model) for `make demo` and the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=.fixtures
DL=$ROOT/download
SUMS=scripts/fixtures/SHA256SUMS

verify() { grep ' \.fixtures/text/\(calib\|eval\)\.txt$' "$SUMS" | sha256sum --quiet -c - >/dev/null 2>&1; }

if verify; then
    echo "fetch-text: $ROOT/text/calib.txt and eval.txt present and verified"
    exit 0
fi
mkdir -p "$DL" "$ROOT/text"
RDATA=$DL/deb/usr/lib/R/site-library/janeaustenr/data
if ! [ -f "$RDATA/Rdata.rdb" ]; then
    echo "fetch-text: fetching r-cran-janeaustenr (Debian)"
    (cd "$DL" && apt-get download -q r-cran-janeaustenr 2>/dev/null) || {
        SUDO=""
        [ "$(id -u)" -eq 0 ] || SUDO="sudo"
        $SUDO apt-get update -qq && (cd "$DL" && apt-get download -q r-cran-janeaustenr)
    }
    dpkg-deb -x "$DL"/r-cran-janeaustenr_*_all.deb "$DL/deb"
fi
(cd scripts/fixtures && python3 austen_text.py "../../$RDATA/Rdata.rdx" "../../$RDATA/Rdata.rdb" "../../$ROOT/text")
verify || { echo "fetch-text: checksum mismatch for $ROOT/text/*.txt ($SUMS)" >&2; exit 1; }
echo "fetch-text: $ROOT/text/calib.txt and eval.txt ready"
