"""How much GPU memory a training step needs, counted analytically (no weights are loaded).

For mixed-precision training with AdamW, per parameter:

* frozen parameter held in bf16:                 2 bytes
* trainable parameter:  bf16/fp32 weight (4) + fp32 gradient (4) + Adam moments m, v (8) = 16 bytes

plus activations. For a decoder layer without activation checkpointing, a common estimate (Korthikanti et al.,
2022) is ``S * B * h * (34 + 5 * a * S / h)`` bytes in 16-bit precision (S tokens, B batch, h hidden, a heads);
with FlashAttention/SDPA the quadratic term is not stored, leaving ``34 * S * B * h``. The LM head adds the
logits ``B * S * V`` in fp32 (4 bytes) twice (logits and their gradient). The estimate is an order of magnitude
guide, not a promise: allocator fragmentation and CUDA context (~0.5–1 GB) come on top.
"""
from __future__ import annotations

from rrg_lite.mllm.lm import llama_parameter_count

LLAMA_3_2_1B = dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_layers=16, num_heads=32,
                    num_kv_heads=8, tie_word_embeddings=True)
M3D_VIT = dict(hidden_size=768, num_layers=12, num_patches=2048)


def m3d_vit_parameter_count(**overrides) -> int:
    """Parameters of M3D-CLIP's MONAI ViT (without its classification head), built on the ``meta`` device:
    shapes only, no memory, no download."""
    import torch

    from rrg_lite.encoders.pretrained import m3d_clip_vit

    with torch.device("meta"):
        enc = m3d_clip_vit(**overrides)
    return sum(p.numel() for n, p in enc.named_parameters() if "classification_head" not in n)


def lora_parameter_count(hidden_size: int, num_heads: int, num_kv_heads: int, num_layers: int, r: int,
                         targets=("q_proj", "k_proj", "v_proj", "o_proj")) -> int:
    """LoRA adds A (r x in) and B (out x r) per targeted projection."""
    kv = hidden_size // num_heads * num_kv_heads
    shapes = {"q_proj": (hidden_size, hidden_size), "k_proj": (hidden_size, kv), "v_proj": (hidden_size, kv),
              "o_proj": (hidden_size, hidden_size)}
    return num_layers * sum(r * (i + o) for i, o in (shapes[t] for t in targets))


def estimate_training_memory(seq_len: int = 2048 + 256, batch_size: int = 1, lora_r: int = 8,
                             projector_params: int = 768 * 2048 + 2048 * 2048 + 2 * 2048, train_encoder: bool = False,
                             lm: dict = LLAMA_3_2_1B, vit: dict = M3D_VIT) -> dict:
    """Bytes for stage-2 (LoRA) training of an M3D-ViT + projector + Llama-3.2-1B model, by part (GiB)."""
    gib = 1024 ** 3
    lm_params = llama_parameter_count(**lm)
    vit_params = m3d_vit_parameter_count()
    lora = lora_parameter_count(lm["hidden_size"], lm["num_heads"], lm["num_kv_heads"], lm["num_layers"], lora_r)
    frozen = lm_params + (0 if train_encoder else vit_params)
    trainable = lora + projector_params + (vit_params if train_encoder else 0)
    s, b, h, v = seq_len, batch_size, lm["hidden_size"], lm["vocab_size"]
    act_lm = lm["num_layers"] * 34 * s * b * h
    logits = 2 * 4 * b * s * v
    n_tok = vit["num_patches"] + 1
    act_vit = (vit["num_layers"] * 34 * n_tok * b * vit["hidden_size"]) if train_encoder else 2 * n_tok * b * vit["hidden_size"]
    out = {
        "lm_params": lm_params, "vit_params": vit_params, "lora_params": lora, "projector_params": projector_params,
        "frozen_weights_gib": 2 * frozen / gib,
        "trainable_state_gib": 16 * trainable / gib,
        "activations_gib": (act_lm + act_vit + logits) / gib,
    }
    out["total_gib"] = out["frozen_weights_gib"] + out["trainable_state_gib"] + out["activations_gib"]
    return out
