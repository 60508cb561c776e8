# SPDX-License-Identifier: Apache-2.0
"""Writes a random bf16 LLaMA checkpoint of any shape (default: LLaMA-7B's), sharded with an index.

For the scale benchmark: 32 blocks, hidden 4096, MLP 11008, 32 heads, vocab 32000 → 6.74 B
parameters, 13.5 GB. Weights ~ N(0, 0.02²); norms 1. A tokenizer is not written: the benchmark
calibrates from a pre-tokenized `input_ids` file (also written, as `OUTDIR-calib.safetensors`).
Shards hold whole blocks, about --shard-gb each. Deterministic for a seed.
Usage: make-synthetic-llama.py OUTDIR [--blocks 32] [--hidden 4096] [--mlp 11008] [--heads 32]
       [--kv-heads 32] [--vocab 32000] [--shard-gb 2] [--seed 0] [--calib-n 8] [--calib-len 128]
"""
import argparse
import json
import os

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file


def block_tensors(b, a, rng):
    hd = a.hidden // a.heads
    shapes = {
        "self_attn.q_proj.weight": (a.heads * hd, a.hidden),
        "self_attn.k_proj.weight": (a.kv_heads * hd, a.hidden),
        "self_attn.v_proj.weight": (a.kv_heads * hd, a.hidden),
        "self_attn.o_proj.weight": (a.hidden, a.heads * hd),
        "mlp.gate_proj.weight": (a.mlp, a.hidden),
        "mlp.up_proj.weight": (a.mlp, a.hidden),
        "mlp.down_proj.weight": (a.hidden, a.mlp),
    }
    out = {}
    for name, shape in shapes.items():
        out[f"model.layers.{b}.{name}"] = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(ml_dtypes.bfloat16)
    for norm in ("input_layernorm.weight", "post_attention_layernorm.weight"):
        out[f"model.layers.{b}.{norm}"] = np.ones(a.hidden, dtype=ml_dtypes.bfloat16)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("outdir")
    for name, default in [("blocks", 32), ("hidden", 4096), ("mlp", 11008), ("heads", 32), ("kv-heads", 32),
                          ("vocab", 32000), ("seed", 0), ("calib-n", 8), ("calib-len", 128)]:
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--shard-gb", type=float, default=2.0)
    a = p.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    groups, current, size = [], {}, 0
    current["model.embed_tokens.weight"] = (rng.standard_normal((a.vocab, a.hidden), dtype=np.float32) * 0.02).astype(ml_dtypes.bfloat16)
    size += current["model.embed_tokens.weight"].nbytes
    for b in range(a.blocks):
        tensors = block_tensors(b, a, rng)
        nbytes = sum(t.nbytes for t in tensors.values())
        if current and size + nbytes > a.shard_gb * 1e9:
            groups.append(current)
            current, size = {}, 0
        current.update(tensors)
        size += nbytes
    current["model.norm.weight"] = np.ones(a.hidden, dtype=ml_dtypes.bfloat16)
    current["lm_head.weight"] = (rng.standard_normal((a.vocab, a.hidden), dtype=np.float32) * 0.02).astype(ml_dtypes.bfloat16)
    groups.append(current)
    weight_map, total = {}, 0
    for i, tensors in enumerate(groups):
        name = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        save_file(tensors, os.path.join(a.outdir, name), metadata={"format": "pt"})
        for k, v in tensors.items():
            weight_map[k] = name
            total += v.nbytes
        print(f"make-synthetic-llama: wrote {name}")
    with open(os.path.join(a.outdir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": a.hidden,
        "intermediate_size": a.mlp, "num_hidden_layers": a.blocks, "num_attention_heads": a.heads,
        "num_key_value_heads": a.kv_heads, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "max_position_embeddings": 2048, "vocab_size": a.vocab, "tie_word_embeddings": False,
        "hidden_act": "silu", "torch_dtype": "bfloat16",
    }
    with open(os.path.join(a.outdir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    ids = rng.integers(0, a.vocab, size=(a.calib_n, a.calib_len), dtype=np.int64)
    calib = os.path.normpath(a.outdir) + "-calib.safetensors"  # beside the checkpoint, not inside it
    save_file({"input_ids": ids}, calib)
    print(f"make-synthetic-llama: {a.outdir}: {total / 1e9:.2f} GB in {len(groups)} shards")


if __name__ == "__main__":
    main()
