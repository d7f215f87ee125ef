"""Analytic parameter counts behind the full-scale memory estimate, checked against meta-device models."""
import pytest
import torch

from rrg_lite.mllm.lm import llama_parameter_count
from rrg_lite.mllm.memory import LLAMA_3_2_1B, estimate_training_memory, lora_parameter_count


@pytest.mark.slow
def test_llama_3_2_1b_count_matches_meta_model():
    from transformers import LlamaConfig, LlamaForCausalLM

    c = LLAMA_3_2_1B
    cfg = LlamaConfig(vocab_size=c["vocab_size"], hidden_size=c["hidden_size"], intermediate_size=c["intermediate_size"],
                      num_hidden_layers=c["num_layers"], num_attention_heads=c["num_heads"],
                      num_key_value_heads=c["num_kv_heads"], tie_word_embeddings=True)
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    assert llama_parameter_count(**c) == sum(p.numel() for p in model.parameters()) == 1_235_814_400


def test_lora_count_by_hand():
    # hidden 8, 2 heads, 1 kv head (kv width 4), 1 layer, r=2 on q and v: q 2*(8+8)=32, v 2*(8+4)=24.
    assert lora_parameter_count(8, 2, 1, 1, 2, targets=("q_proj", "v_proj")) == 56


@pytest.mark.slow
def test_estimate_parts_add_up():
    est = estimate_training_memory()
    assert est["total_gib"] == est["frozen_weights_gib"] + est["trainable_state_gib"] + est["activations_gib"]
    # Frozen bf16 weights of a 1.24 B LM + 87 M ViT: 2 bytes each.
    assert abs(est["frozen_weights_gib"] - 2 * (est["lm_params"] + est["vit_params"]) / 1024 ** 3) < 1e-9
    assert estimate_training_memory(batch_size=2)["activations_gib"] > est["activations_gib"]
