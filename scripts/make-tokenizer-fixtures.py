#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Builds the tokenizer test fixtures under Tests/DSnoTCoreTests/Resources/tokenizers/.

Outputs (all committed, so `swift test` needs no Python):
  corpus.txt                 >= 100 KB of varied real text, categories marked in corpus-index.json
  corpus-index.json          [{"name", "start", "end"}] character (code point) ranges of each category
  smollm2/tokenizer.json     SmolLM2-135M's tokenizer (copied from the fixtures folder)
  sp-bpe/tokenizer.json      SentencePiece-style BPE with byte fallback, trained here on Austen text,
                             LLaMA-2 layout (Prepend/Replace normalizer, no pre-tokenizer)
  sp-bpe-metaspace/tokenizer.json   the same model with a Metaspace pre-tokenizer and decoder
  <name>/reference.json      ids from the `tokenizers` package: whole corpus, each category, small cases
  splits.json                Split(Regex) piece end offsets on the corpus for the GPT-2, LLaMA-3, Qwen2 patterns

Usage: .venv-tok/bin/python scripts/make-tokenizer-fixtures.py [FIXTURES_DIR]
FIXTURES_DIR defaults to /work/main/.fixtures (scripts/fixtures.sh puts SmolLM2 and the Austen texts there).
Needs: tokenizers (0.23.3 was used), emoji (2.x; only its emoji table is read).
"""

import ast
import json
import os
import shutil
import sys
import sysconfig

import emoji
import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "DSnoTCoreTests", "Resources", "tokenizers")
FIXTURES = sys.argv[1] if len(sys.argv) > 1 else "/work/main/.fixtures"
STDLIB = sysconfig.get_paths()["stdlib"]

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def austen(calib):
    """Three slices of real prose, line structure kept."""
    return calib[20000:45000] + "\n\n" + calib[1500000:1515000] + "\n\n" + calib[2600000:2610000]


def source_code():
    """Real Python (CPython stdlib, PSF licence) and Swift (this repository, Apache-2.0) source."""
    parts = []
    for rel in ["textwrap.py", "json/decoder.py", "heapq.py"]:
        parts.append(read(os.path.join(STDLIB, rel)))
    swift_dir = os.path.join(ROOT, "Sources", "SafeTensors")
    for name in ["Header.swift", "StrictJSON.swift", "FloatConversion.swift"]:
        parts.append(read(os.path.join(swift_dir, name)))
    return "\n".join(parts)


def numbers():
    """CPython's math test cases: floats, exponents, hex, long digit runs."""
    return read(os.path.join(STDLIB, "test", "math_testcases.txt"))[:9000] + "\n" + read(
        os.path.join(STDLIB, "test", "floating_points.txt")
    )[:3000]


def unicode_text():
    """Real text in several scripts: CPython's CJK codec samples and punycode samples (Arabic, Chinese,
    Czech, Hebrew, Hindi, Japanese, Korean, Russian, Spanish, Vietnamese)."""
    parts = []
    cjk = os.path.join(STDLIB, "test", "cjkencodings")
    for name in ["gb2312-utf8.txt", "big5-utf8.txt", "euc_jp-utf8.txt", "euc_kr-utf8.txt"]:
        parts.append(read(os.path.join(cjk, name)))
    src = read(os.path.join(STDLIB, "test", "test_codecs.py"))
    node = next(n for n in ast.parse(src).body
                if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "punycode_testcases")
    scope = {"punycode_testcases": ast.literal_eval(node.value)}  # a literal list of (str, bytes) pairs
    parts.append("\n".join(s for s, _ in scope["punycode_testcases"]))
    parts.append("Ελληνικά: Η γρήγορη καφέ αλεπού. Ça coûte 12,50 € — naïve café, Straße, Ångström, ½ ⅓ ²³ ٣٤٥ ४२.")
    return "\n".join(parts)


def emoji_text():
    """Emoji from the `emoji` package's table, including ZWJ sequences, skin tones and flags."""
    names = sorted(emoji.EMOJI_DATA.keys())
    zwj = [e for e in names if "\u200d" in e][:120]
    tones = [e for e in names if any(0x1F3FB <= ord(c) <= 0x1F3FF for c in e) and "\u200d" not in e][:60]
    flags = [e for e in names if all(0x1F1E6 <= ord(c) <= 0x1F1FF for c in e)][:60]
    plain = [e for e in names if len(e) == 1][:300]
    lines = []
    for i in range(0, len(plain), 20):
        lines.append("Emoji " + " ".join(plain[i : i + 20]) + "!")
    lines.append("ZWJ: " + " ".join(zwj))
    lines.append("Joined:" + "".join(zwj[:40]) + "end")
    lines.append("Tones: " + "".join(tones))
    lines.append("Flags: " + " ".join(flags) + "".join(flags[:10]))
    return "\n".join(lines)


def whitespace_text(calib):
    """Real prose lines re-joined with runs of spaces, tabs, CR/LF, non-breaking and ideographic spaces."""
    lines = [line for line in calib[60000:64000].split("\n") if line]
    seps = ["  ", "\t", "\n\n\n", "   \n", " \t \n", "\r\n", "\u00a0", "\u3000", "        ", "\n \n", " ", "\t\t"]
    out = []
    for i, line in enumerate(lines):
        out.append(line.replace(" ", seps[i % len(seps)], 2))
        out.append(seps[(i * 7) % len(seps)])
    return "".join(out) + "   trailing   \n\n"


def special_text(calib):
    """Chat-style text with special-token strings embedded, plus near misses."""
    prose = [s.strip() for s in calib[80000:84000].split(".") if s.strip()]
    out = []
    for i, sentence in enumerate(prose[:30]):
        out.append(f"<|im_start|>user\n{sentence}.<|im_end|>\n<|im_start|>assistant\n{sentence[::-1]}<|im_end|>")
        if i % 3 == 0:
            out.append(f"<s>{sentence}</s> <|endoftext|>text<|endoftext|> < s> <|im_start |> <unk>")
    return "\n".join(out)


def build_corpus(calib):
    categories = [
        ("prose", austen(calib)),
        ("code", source_code()),
        ("numbers", numbers()),
        ("unicode", unicode_text()),
        ("emoji", emoji_text()),
        ("whitespace", whitespace_text(calib)),
        ("special", special_text(calib)),
    ]
    text, index = "", []
    for name, part in categories:
        start = len(text)
        text += part + "\n"
        index.append({"name": name, "start": start, "end": len(text)})
    return text, index


def train_sentencepiece_bpe(calib, vocab_size=4000):
    """A LLaMA-2-layout SentencePiece BPE (byte fallback) trained on Austen text with `tokenizers`."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=90)
    tok.train_from_iterator([calib[: 1_000_000]], trainer=trainer)
    trained = json.loads(tok.to_str())
    old_vocab = sorted(trained["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for token, _ in old_vocab:
        if token not in vocab:
            vocab[token] = len(vocab)
    added = [
        {"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for t in ["<unk>", "<s>", "</s>"]
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        ]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": trained["model"]["merges"]},
    }


def metaspace_variant(spec):
    """The same model laid out as older conversions do: Metaspace pre-tokenizer and decoder."""
    spec = json.loads(json.dumps(spec))
    spec["normalizer"] = None
    spec["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}
    spec["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"},
        {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True},
    ]}
    return spec


SMALL_CASES = [
    "Hello world", " Hello", "  two leading", "trailing  ", "It's, isn't it? I'LL say 'twas.",
    "x = 12345678 + 3.14159e-10", "\t\ttabs\tand\nnewlines\r\n", "naïve café 東京 Москва",
    "👩‍👩‍👧‍👦 🇫🇷 👍🏽", "<|im_start|>system\nHi<|im_end|>", "<s> hello </s>", "", " ", "\n",
    "Hi <|user|>  there", "<|user|>x\n<|user|>", "e\u0301t\u00e9 Å\u030a", "I'M 'Re 'LL ' s",
]


def merge(base, patch):
    """Recursive dict merge: patch values replace base values, nested dicts merge."""
    out = dict(base)
    for key, value in patch.items():
        out[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def byte_level_split(pattern):
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
    ]}


USER_TOKEN = {"content": "<|user|>", "single_word": False, "lstrip": True, "rstrip": True,
              "normalized": False, "special": False}

# Other real layouts exercised on the same vocabularies (the test applies the same patch to the base file).
VARIANTS = [
    ("llama3-pretokenizer", "smollm2", {"pre_tokenizer": byte_level_split(LLAMA3_PATTERN),
                                        "model": {"ignore_merges": True}}),
    ("qwen2-pretokenizer-nfc", "smollm2", {"normalizer": {"type": "NFC"},
                                           "pre_tokenizer": byte_level_split(QWEN2_PATTERN)}),
    ("gpt2-prefix-space", "smollm2", {"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True,
                                                        "trim_offsets": True, "use_regex": True}}),
    ("metaspace-always-nosplit", "sp-bpe-metaspace", {"pre_tokenizer": {
        "type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": False}}),
    ("digits-contiguous", "smollm2", {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    ]}}),
    ("unk-fused-no-byte-fallback", "sp-bpe", {"model": {"byte_fallback": False, "fuse_unk": True}}),
    ("unk-unfused-no-byte-fallback", "sp-bpe", {"model": {"byte_fallback": False, "fuse_unk": False}}),
    ("strip-added-token", "sp-bpe", {"append_added_tokens": [USER_TOKEN]}),
    ("normalized-added-tokens", "sp-bpe", {"append_added_tokens": [
        {"content": "Marianne", "single_word": False, "lstrip": False, "rstrip": False, "normalized": True,
         "special": False},
        {"content": "the", "single_word": False, "lstrip": False, "rstrip": False, "normalized": True,
         "special": True},
    ]}),
]


def apply_variant(base_spec, patch):
    patch = dict(patch)
    extra = patch.pop("append_added_tokens", [])
    spec = merge(base_spec, patch)
    # Ids as `tokenizers` assigns them (it ignores ids in the file): the vocabulary id when the content is
    # already a token, else the next free id.
    vocab = spec["model"]["vocab"]
    size = max(max(vocab.values()), max(t["id"] for t in spec["added_tokens"])) + 1
    added = list(spec["added_tokens"])
    for token in extra:
        if token["content"] in vocab:
            added.append(dict(token, id=vocab[token["content"]]))
        else:
            added.append(dict(token, id=size))
            size += 1
    spec["added_tokens"] = added
    return spec


def reference(tok, corpus, index):
    ids = tok.encode(corpus, add_special_tokens=False).ids
    categories = []
    for entry in index:
        text = corpus[entry["start"] : entry["end"]]
        categories.append({"name": entry["name"], "ids": tok.encode(text, add_special_tokens=False).ids})
    cases = []
    for text in SMALL_CASES:
        plain = tok.encode(text, add_special_tokens=False).ids
        cases.append({
            "text": text,
            "ids": plain,
            "ids_with_special": tok.encode(text, add_special_tokens=True).ids,
            "decoded": tok.decode(plain, skip_special_tokens=False),
        })
    return {"tokenizers_version": tokenizers.__version__, "corpus_ids": ids,
            "corpus_decoded_equals_corpus": tok.decode(ids, skip_special_tokens=False) == corpus,
            "categories": categories, "cases": cases}


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def main():
    calib = read(os.path.join(FIXTURES, "text", "calib.txt"))
    corpus, index = build_corpus(calib)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "corpus.txt"), "w", encoding="utf-8", newline="") as f:
        f.write(corpus)
    write_json(os.path.join(OUT, "corpus-index.json"), index)

    smol_dir = os.path.join(OUT, "smollm2")
    os.makedirs(smol_dir, exist_ok=True)
    shutil.copyfile(os.path.join(FIXTURES, "smollm2-135m", "tokenizer.json"), os.path.join(smol_dir, "tokenizer.json"))

    sp = train_sentencepiece_bpe(calib)
    specs = {"sp-bpe": sp, "sp-bpe-metaspace": metaspace_variant(sp)}
    for name, spec in specs.items():
        write_json(os.path.join(OUT, name, "tokenizer.json"), spec)

    for name in ["smollm2", "sp-bpe", "sp-bpe-metaspace"]:
        tok = Tokenizer.from_file(os.path.join(OUT, name, "tokenizer.json"))
        ref = reference(tok, corpus, index)
        write_json(os.path.join(OUT, name, "reference.json"), ref)
        print(f"{name}: {len(ref['corpus_ids'])} corpus tokens, lossless={ref['corpus_decoded_equals_corpus']}")

    variants = []
    for name, base, patch in VARIANTS:
        with open(os.path.join(OUT, base, "tokenizer.json"), encoding="utf-8") as f:
            spec = apply_variant(json.load(f), patch)
        tok = Tokenizer.from_str(json.dumps(spec))
        ref = reference(tok, corpus, index)
        del ref["categories"]
        variants.append(dict(ref, name=name, base=base, patch=patch))
        print(f"variant {name}: {len(ref['corpus_ids'])} corpus tokens, lossless={ref['corpus_decoded_equals_corpus']}")
    write_json(os.path.join(OUT, "variants.json"), variants)

    splits = {}
    for name, pattern in [("gpt2", GPT2_PATTERN), ("llama3", LLAMA3_PATTERN), ("qwen2", QWEN2_PATTERN)]:
        pre = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
        splits[name] = {"pattern": pattern, "ends": [end for _, (_, end) in pre.pre_tokenize_str(corpus)]}
    write_json(os.path.join(OUT, "splits.json"), splits)
    print(f"corpus: {len(corpus.encode('utf-8'))} bytes, {len(corpus)} code points")


if __name__ == "__main__":
    main()
