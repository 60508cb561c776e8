#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Regenerates man/dsnotctl.1 from dsnotctl's argument parser with swift-argument-parser's
# generate-manual (the `generate-manual` package plugin builds that tool; this script then runs it on
# the built dsnotctl with a fixed date, so the output only changes when the commands do).
# dsnotd(8) and dsnotd.toml(5) are hand-written mdoc.
#   scripts/regenerate-man.sh [--bin DIR] [--output DIR]   (defaults: the debug build, man/)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=""
OUT=man
while [ $# -gt 0 ]; do
    case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --output) OUT=$2; shift 2 ;;
    *) echo "regenerate-man: unknown argument $1" >&2; exit 2 ;;
    esac
done
DATE=2026-11-29
if [ -z "$BIN" ]; then
    swift build --product dsnotctl >/dev/null
    BIN=$(swift build --show-bin-path)
fi
# The plugin builds the tool as generate-manual-tool next to the debug products.
find_tool() {
    local tool
    tool="$(swift build --show-bin-path)/generate-manual-tool"
    [ -x "$tool" ] && echo "$tool"
    return 0
}
TOOL=$(find_tool)
if [ -z "$TOOL" ]; then
    # The plugin builds the tool (and the package, in debug); its own output is not used.
    swift package plugin generate-manual --configuration debug >/dev/null 2>&1
    TOOL=$(find_tool)
fi
[ -n "$TOOL" ] || { echo "regenerate-man: generate-manual was not built" >&2; exit 1; }
mkdir -p "$OUT"
RAW=$(mktemp -d)
trap 'rm -rf "$RAW"' EXIT
"$TOOL" "$BIN/dsnotctl" --date "$DATE" --section 1 --output-directory "$RAW"
# Post-processing, so that `mandoc -T lint` is clean: one sentence per line, no .Pp right before .It
# (the generator leaves one after an option whose value type lists no values); the generator's
# EXIT STATUS section is replaced by the hand-written tail (exit status, JSON output, environment,
# files, examples, see also).
python3 - "$RAW/dsnotctl.1" man/dsnotctl.tail.mdoc "$OUT/dsnotctl.1" <<'PY'
import re, sys
lines = open(sys.argv[1], encoding="utf-8").read().split("\n")
cut = lines.index('.Sh "EXIT STATUS"')
lines = lines[:cut]
out = []
for i, line in enumerate(lines):
    if line == ".Pp" and i + 1 < len(lines) and lines[i + 1].startswith(".It "):
        continue
    if not line.startswith("."):
        line = re.sub(r"([a-z0-9)`'])\. +(?=[A-Z])", "\\1.\n", line)
    out.append(line)
tail = open(sys.argv[2], encoding="utf-8").read()
open(sys.argv[3], "w", encoding="utf-8").write("\n".join(out) + "\n" + tail)
PY
echo "regenerate-man: $OUT/dsnotctl.1"
