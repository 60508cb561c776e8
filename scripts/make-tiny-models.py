#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# make-tiny-models: tiny random Hugging Face checkpoints + reference logits for the Swift forward-pass tests.
#
# Usage (separate venv, torch is big):
#   python3 -m venv .venv-models && .venv-models/bin/pip install torch transformers safetensors numpy
#   .venv-models/bin/python scripts/make-tiny-models.py [OUT_DIR]
# OUT_DIR defaults to Tests/DSnoTCoreTests/Resources/models. Each model gets a folder with
# config.json, model.safetensors and expected.safetensors (`input_ids` int64 [1, T], `logits` float32
# [T, vocab] computed by transformers in float32 with eager attention). The `*_bf16` variant stores
# its weights as bfloat16; its reference logits are computed in float32 from the bf16-rounded weights.
import json
import os
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file

SEQUENCE = [3, 17, 99, 4, 56, 120, 7, 7, 81, 33, 2, 64, 127, 45, 12, 90, 5, 71, 28, 110, 9, 63, 1, 38]

LLAMA_BASE = dict(
    hidden_size=64,
    intermediate_size=128,
    num_attention_heads=4,
    num_key_value_heads=2,
    num_hidden_layers=2,
    vocab_size=128,
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
)

MODELS = {
    "llama_gqa_tied": ("llama", dict(LLAMA_BASE, tie_word_embeddings=True)),
    "llama_gqa_untied": ("llama", dict(LLAMA_BASE, tie_word_embeddings=False, head_dim=32)),
    "llama3_rope": (
        "llama",
        dict(
            LLAMA_BASE,
            tie_word_embeddings=True,
            rope_theta=500000.0,
            rope_scaling=dict(
                rope_type="llama3",
                factor=8.0,
                low_freq_factor=1.0,
                high_freq_factor=4.0,
                original_max_position_embeddings=64,
            ),
        ),
    ),
    "qwen2_bias": ("qwen2", dict(LLAMA_BASE, tie_word_embeddings=False)),
    "mistral_window": ("mistral", dict(LLAMA_BASE, tie_word_embeddings=False, sliding_window=8)),
    "opt_pre_ln": (
        "opt",
        dict(
            hidden_size=64,
            ffn_dim=128,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=128,
            max_position_embeddings=64,
            word_embed_proj_dim=64,
            do_layer_norm_before=True,
            activation_function="relu",
        ),
    ),
    "opt_post_ln_proj": (
        "opt",
        dict(
            hidden_size=64,
            ffn_dim=128,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=128,
            max_position_embeddings=64,
            word_embed_proj_dim=32,
            do_layer_norm_before=False,
            activation_function="relu",
        ),
    ),
}


def randomize(model, seed):
    """Replaces every parameter with seeded noise large enough to make every path matter."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=gen))


def build(name, model_type, params, seed):
    config = transformers.AutoConfig.for_model(model_type, **params)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    model = model.float().eval()
    randomize(model, seed)
    return model


def write(out, name, model, bf16=False):
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    if bf16:
        # Round the parameters only: model.to(bfloat16) would also round buffers such as RoPE's inv_freq.
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
    ids = torch.tensor([SEQUENCE], dtype=torch.int64)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float().contiguous()
    if bf16:
        state = {k: v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
        model.config.dtype = "bfloat16"
        model.config.save_pretrained(folder)
        save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    else:
        model.save_pretrained(folder, safe_serialization=True)
    for extra in ("generation_config.json",):
        path = os.path.join(folder, extra)
        if os.path.exists(path):
            os.remove(path)
    save_file({"input_ids": ids, "logits": logits}, os.path.join(folder, "expected.safetensors"))
    print(f"{name}: vocab {logits.shape[1]}, max |logit| {logits.abs().max().item():.4f}")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "Tests/DSnoTCoreTests/Resources/models"
    torch.set_num_threads(1)
    for seed, (name, (model_type, params)) in enumerate(MODELS.items(), start=1):
        model = build(name, model_type, params, seed)
        write(out, name, model)
        if name == "llama_gqa_tied":
            write(out, name + "_bf16", build(name, model_type, params, seed), bf16=True)
    print("transformers", transformers.__version__, "torch", torch.__version__, "numpy", np.__version__)


if __name__ == "__main__":
    main()
