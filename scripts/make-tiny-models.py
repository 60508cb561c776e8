#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# make-tiny-models: tiny random Hugging Face checkpoints + reference logits for the Swift forward-pass tests.
#
# Usage (separate venv, torch is big; the fixtures were written with these pinned versions):
#   python3 -m venv .venv-models
#   .venv-models/bin/pip install torch==2.13.0 transformers==5.24.0 safetensors==0.8.0 numpy
#   .venv-models/bin/python scripts/make-tiny-models.py [OUT_DIR] [NAME...]
# (torch 2.13.0+cpu from a local wheel directory works the same; only CPU fp32 is used.)
# OUT_DIR defaults to Tests/DSnoTCoreTests/Resources/models. Each model gets a folder with
# config.json, model.safetensors and expected.safetensors (`input_ids` int64 [1, T], `logits` float32
# [T, vocab] computed by transformers in float32 with eager attention). The `*_bf16` variant stores
# its weights as bfloat16; its reference logits are computed in float32 from the bf16-rounded weights.
# NAME... regenerates only those folders (the seeds stay those of the full run).
# Fixtures with EXTRA_PREFIXES also store `input_ids_short`/`logits_short` for a prefix of the sequence
# (phi3 longrope: the prefix stays within original_max_position_embeddings, the full sequence does not).
import json
import os
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file

# The SigLIP tower of the multimodal fixtures (never run by the engine; copied byte for byte).
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=14)

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
    "qwen3_untied": ("qwen3", dict(LLAMA_BASE, tie_word_embeddings=False, head_dim=32)),
    "qwen3_tied_bf16": ("qwen3", dict(LLAMA_BASE, tie_word_embeddings=True, head_dim=16)),
    # Soft-capping small enough to bind (max |logit| stays below 3), a sliding window of 8 < 24 tokens on
    # layers 0 and 2, full attention on 1 and 3; head_dim and query_pre_attn_scalar differ from hidden/heads.
    "gemma2_tied": (
        "gemma2",
        dict(
            LLAMA_BASE,
            num_hidden_layers=4,
            head_dim=32,
            query_pre_attn_scalar=24,
            sliding_window=8,
            attn_logit_softcapping=5.0,
            final_logit_softcapping=3.0,
            rms_norm_eps=1e-6,
            tie_word_embeddings=True,
        ),
    ),
    "gemma2_untied_bf16": (
        "gemma2",
        dict(LLAMA_BASE, head_dim=16, query_pre_attn_scalar=16, sliding_window=8, tie_word_embeddings=False),
    ),
    # Local layers (window 8) with their own RoPE base, a global layer with linear rope scaling.
    "gemma3_text_tied": (
        "gemma3_text",
        dict(
            LLAMA_BASE,
            num_hidden_layers=3,
            head_dim=32,
            query_pre_attn_scalar=32,
            sliding_window=8,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            rope_parameters={
                "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            },
            tie_word_embeddings=True,
        ),
    ),
    "gemma3_text_untied_bf16": (
        "gemma3_text",
        dict(LLAMA_BASE, head_dim=16, sliding_window=8, sliding_window_pattern=2, tie_word_embeddings=False),
    ),
    # LongRoPE: the 24-token sequence is past original_max_position_embeddings = 16 (long factors); its
    # 12-token prefix is not (short factors). Half of each head is rotated.
    "phi3_longrope": (
        "phi3",
        dict(
            LLAMA_BASE,
            max_position_embeddings=64,
            original_max_position_embeddings=16,
            pad_token_id=0,
            tie_word_embeddings=False,
            rope_parameters={
                "rope_type": "longrope",
                "rope_theta": 10000.0,
                "partial_rotary_factor": 0.5,
                "short_factor": [1.0, 1.1, 1.3, 1.6],
                "long_factor": [1.0, 2.0, 4.5, 9.0],
            },
        ),
    ),
    "phi3_tied_bf16": (
        "phi3",
        dict(
            LLAMA_BASE,
            tie_word_embeddings=True,
            pad_token_id=0,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.75},
        ),
    ),
    # Mixture of experts: 4 experts, top 2. Mixtral with Mistral's window of 8 < 24 tokens.
    "mixtral_untied": (
        "mixtral",
        dict(LLAMA_BASE, intermediate_size=32, num_local_experts=4, num_experts_per_tok=2, sliding_window=8),
    ),
    "mixtral_tied_bf16": (
        "mixtral",
        dict(LLAMA_BASE, intermediate_size=32, num_local_experts=4, num_experts_per_tok=2, tie_word_embeddings=True),
    ),
    # Qwen2-MoE with its shared expert; layer 1 dense (mlp_only_layers); top-k weights not renormalised.
    "qwen2_moe_untied": (
        "qwen2_moe",
        dict(
            LLAMA_BASE,
            num_hidden_layers=3,
            intermediate_size=96,
            moe_intermediate_size=32,
            shared_expert_intermediate_size=48,
            num_experts=4,
            num_experts_per_tok=2,
            norm_topk_prob=False,
            mlp_only_layers=[1],
            tie_word_embeddings=False,
        ),
    ),
    # decoder_sparse_step 2: layers 1 and 3 sparse, 0 and 2 dense; renormalised top-k.
    "qwen2_moe_tied_bf16": (
        "qwen2_moe",
        dict(
            LLAMA_BASE,
            num_hidden_layers=4,
            intermediate_size=96,
            moe_intermediate_size=32,
            shared_expert_intermediate_size=48,
            num_experts=4,
            num_experts_per_tok=2,
            norm_topk_prob=True,
            decoder_sparse_step=2,
            tie_word_embeddings=True,
        ),
    ),
    # Qwen3-MoE: q/k norms, 8 experts top 2 (renormalised); the bf16 one has experts as wide as the hidden
    # states (64) and does not renormalise.
    "qwen3_moe_untied": (
        "qwen3_moe",
        dict(
            LLAMA_BASE,
            head_dim=32,
            moe_intermediate_size=32,
            num_experts=8,
            num_experts_per_tok=2,
            norm_topk_prob=True,
            tie_word_embeddings=False,
        ),
    ),
    "qwen3_moe_tied_bf16": (
        "qwen3_moe",
        dict(
            LLAMA_BASE,
            head_dim=16,
            moe_intermediate_size=64,
            num_experts=4,
            num_experts_per_tok=3,
            norm_topk_prob=False,
            tie_word_embeddings=True,
        ),
    ),
    # Gemma 3 multimodal (Gemma3ForConditionalGeneration): a one-layer SigLIP tower (28×28 images, 14×14
    # patches, 4 tokens per image) and a projector beside the text decoder. save_pretrained writes the
    # decoder as language_model.model.* (the tied fp32 fixture); the bf16 fixture is the module's own
    # state_dict, model.language_model.* with lm_head.weight, so both spellings are covered. The untied
    # text_config sets final_logit_softcapping, which the multimodal class does not apply.
    "gemma3_mm_tied": (
        "gemma3",
        dict(
            text_config=dict(
                LLAMA_BASE,
                num_hidden_layers=3,
                head_dim=32,
                query_pre_attn_scalar=32,
                sliding_window=8,
                layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                rope_parameters={
                    "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                    "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                },
                tie_word_embeddings=True,
            ),
            vision_config=VISION,
            mm_tokens_per_image=4,
            tie_word_embeddings=True,
        ),
    ),
    "gemma3_mm_untied_bf16": (
        "gemma3",
        dict(
            text_config=dict(
                LLAMA_BASE,
                head_dim=16,
                sliding_window=8,
                sliding_window_pattern=2,
                final_logit_softcapping=3.0,
                tie_word_embeddings=False,
            ),
            vision_config=VISION,
            mm_tokens_per_image=4,
            tie_word_embeddings=False,
        ),
    ),
}

BF16 = {
    "llama_gqa_tied_bf16",
    "qwen3_tied_bf16",
    "gemma2_untied_bf16",
    "gemma3_text_untied_bf16",
    "phi3_tied_bf16",
    "mixtral_tied_bf16",
    "qwen2_moe_tied_bf16",
    "qwen3_moe_tied_bf16",
    "gemma3_mm_untied_bf16",
}
# A one-token prefix leaves k of the E experts of every sparse block with no token at all.
EXTRA_PREFIXES = {"phi3_longrope": 12, "mixtral_untied": 1, "qwen2_moe_untied": 1, "qwen3_moe_untied": 1}
# transformers 5 holds experts fused in memory (state_dict names differ from the Hub layout); its
# save_pretrained writes the Hub layout (one 2-D weight per expert projection), so these save through it.
MOE = {"mixtral", "qwen2_moe", "qwen3_moe"}
# A fixture's seed is its position in MODELS, except for these: the MoE and the multimodal gemma3 fixtures
# were added on parallel branches at the same positions, and each keeps the seed it was written with.
SEEDS = {"gemma3_mm_tied": 16, "gemma3_mm_untied_bf16": 17}
# What a multimodal checkpoint ships beside its weights (the pipeline copies them to every output).
MULTIMODAL_COMPANIONS = {
    "preprocessor_config.json": json.dumps(
        {
            "do_normalize": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": [0.5, 0.5, 0.5],
            "image_processor_type": "Gemma3ImageProcessor",
            "image_std": [0.5, 0.5, 0.5],
            "processor_class": "Gemma3Processor",
            "rescale_factor": 0.00392156862745098,
            "size": {"height": 28, "width": 28},
        },
        indent=2,
    )
    + "\n",
    "processor_config.json": json.dumps({"image_seq_length": 4, "processor_class": "Gemma3Processor"}, indent=2)
    + "\n",
    "chat_template.jinja": "{{ bos_token }}{% for message in messages %}<start_of_turn>{{ message['role'] }}\n"
    "{{ message['content'] }}<end_of_turn>\n{% endfor %}",
    "added_tokens.json": json.dumps({"<image_soft_token>": 262144}, indent=2) + "\n",
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
    if model_type == "gemma3":
        model = transformers.AutoModelForImageTextToText.from_config(config, attn_implementation="eager")
    else:
        model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    model = model.float().eval()
    randomize(model, seed)
    return model


def write(out, name, model, bf16=False, prefix=None):
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
    expected = {"input_ids": ids, "logits": logits}
    if prefix is not None:
        short = ids[:, :prefix].clone()
        with torch.no_grad():
            expected["input_ids_short"] = short
            expected["logits_short"] = model(input_ids=short).logits[0].float().contiguous()
    if bf16 and model.config.model_type in MOE:
        # Parameters only (buffers such as RoPE's inv_freq are not saved); the values are bf16 already.
        with torch.no_grad():
            for p in model.parameters():
                p.data = p.data.to(torch.bfloat16)
        model.save_pretrained(folder, safe_serialization=True)
    elif bf16:
        tied = model.config.tie_word_embeddings
        state = {
            k: v.to(torch.bfloat16).contiguous()
            for k, v in model.state_dict().items()
            if not (tied and k == "lm_head.weight")
        }
        model.config.dtype = "bfloat16"
        if model.config.model_type == "gemma3":
            model.config.architectures = [type(model).__name__]  # as save_pretrained writes it
        model.config.save_pretrained(folder)
        save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    else:
        model.save_pretrained(folder, safe_serialization=True)
    for extra in ("generation_config.json",):
        path = os.path.join(folder, extra)
        if os.path.exists(path):
            os.remove(path)
    if model.config.model_type == "gemma3":
        for file, text in MULTIMODAL_COMPANIONS.items():
            with open(os.path.join(folder, file), "w") as f:
                f.write(text)
        # The folder must load back as the same class with the same logits (either tensor spelling).
        again = transformers.AutoModelForImageTextToText.from_pretrained(
            folder, dtype=torch.float32, attn_implementation="eager"
        ).eval()
        assert type(again).__name__ == "Gemma3ForConditionalGeneration", type(again).__name__
        with torch.no_grad():
            reloaded = again(input_ids=ids).logits[0].float()
        assert torch.equal(reloaded, logits), (reloaded - logits).abs().max()
    save_file(expected, os.path.join(folder, "expected.safetensors"))
    print(f"{name}: vocab {logits.shape[1]}, max |logit| {logits.abs().max().item():.4f}")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "Tests/DSnoTCoreTests/Resources/models"
    only = set(sys.argv[2:])
    torch.set_num_threads(1)
    for seed, (name, (model_type, params)) in enumerate(MODELS.items(), start=1):
        if only and name not in only and name + "_bf16" not in only:
            continue
        seed = SEEDS.get(name, seed)
        if not name.endswith("_bf16") and (not only or name in only):
            write(out, name, build(name, model_type, params, seed), prefix=EXTRA_PREFIXES.get(name))
        if name.endswith("_bf16"):
            write(out, name, build(name, model_type, params, seed), bf16=True, prefix=EXTRA_PREFIXES.get(name))
        elif name + "_bf16" in BF16 and (not only or name + "_bf16" in only):
            write(out, name + "_bf16", build(name, model_type, params, seed), bf16=True)
    print("transformers", transformers.__version__, "torch", torch.__version__, "numpy", np.__version__)


if __name__ == "__main__":
    main()
