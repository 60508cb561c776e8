#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# swift format lint, plus the import-boundary check of docs/design.md (STYLE.md 2.2): the numeric
# core never imports daemon machinery.
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
swift format lint --strict --recursive Sources Tests Package.swift || status=1

# target → regular expression of forbidden imports
declare -A FORBIDDEN=(
    [DSnoTSupport]='^(public |internal |package )?import (?!(Crypto|Foundation|Dispatch|Synchronization|Glibc)$).*'
    [SafeTensors]='^(public |internal |package )?import (Logging|NIO[A-Za-z]*|DSnoT[A-Za-z]*|CLZ4|CBLAS|CDNNL|CSystemd|GRDB|ServiceLifecycle)$'
    [DSnoTCore]='^(public |internal |package )?import (NIO[A-Za-z]*|ServiceLifecycle|UnixSignals|DSnoTDaemon|DSnoTControlProtocol|DSnoTClient|SparseFormat|GRDB|TOMLKit|CSystemd|CLZ4)$'
    [SparseFormat]='^(public |internal |package )?import (NIO[A-Za-z]*|ServiceLifecycle|DSnoTDaemon|DSnoTCore|GRDB|CSystemd|CBLAS|CDNNL)$'
    [DSnoTControlProtocol]='^(public |internal |package )?import (?!Foundation$).*'
    [DSnoTPipeline]='^(public |internal |package )?import (NIO[A-Za-z]*|ServiceLifecycle|DSnoTDaemon|DSnoTClient|DSnoTControlProtocol|GRDB|TOMLKit|CSystemd)$'
    [DSnoTClient]='^(public |internal |package )?import (DSnoTCore|DSnoTDaemon|SparseFormat|GRDB)$'
    [DSnoTDaemon]='^(public |internal |package )?import ArgumentParser$'
    [dsnotctl]='^(public |internal |package )?import DSnoTDaemon$'
    # The shared test helpers (Tests/DSnoTTestSupport): Foundation only, so every test target can use them.
    [DSnoTTestSupport]='^(public |internal |package )?import (?!Foundation$).*'
)
for target in "${!FORBIDDEN[@]}"; do
    dir="Sources/$target"
    [ -d "$dir" ] || dir="Tests/$target"
    [ -d "$dir" ] || continue
    if hits=$(grep -rPn --include='*.swift' "${FORBIDDEN[$target]}" "$dir"); then
        echo "lint: forbidden import in $target:" >&2
        echo "$hits" >&2
        status=1
    fi
done
[ "$status" -eq 0 ] && echo "lint: ok"
exit "$status"
