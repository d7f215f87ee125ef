"""Precision and DDP settings of the loop: precision can change between runs in one process, bf16 weights train
with fp32 master copies, gradient checkpointing changes nothing but memory, unused parameters are found."""
import pytest
import torch

from rrg_lite.train.loop import (TrainConfig, enable_gradient_checkpointing, make_accelerator, train,
                                 unused_trainable_parameters)


def test_precision_can_change_between_runs():
    assert make_accelerator(TrainConfig(mixed_precision="bf16")).mixed_precision == "bf16"
    assert make_accelerator(TrainConfig(mixed_precision="no")).mixed_precision == "no"
    assert make_accelerator(TrainConfig(mixed_precision="no")).mixed_precision == "no"


# ------------------------------------------------------------------ fp32 master weights, checkpointing, DDP

def _lm_and_data(n=8):
    from rrg_lite.mllm.lm import tiny_llama
    from rrg_lite.mllm.prompt import MLLMCollator, encode_example
    from rrg_lite.mllm.text import build_word_tokenizer

    texts = ["the lungs are clear .", "a nodule in the right lung .", "no pleural effusion .", "the heart is normal ."]
    tok = build_word_tokenizer(texts)
    lm = tiny_llama(tok, hidden_size=16, num_layers=2, num_heads=2, num_kv_heads=1, seed=0)
    data = [encode_example(tok, "report :", texts[i % 4], num_visual_tokens={}) for i in range(n)]
    return lm, data, MLLMCollator(tok.pad_token_id)


FAST = dict(lr=1e-2, batch_size=4, max_steps=2, progress=False, schedule="constant")


def test_bf16_weights_train_with_fp32_master_copies():
    lm, data, collate = _lm_and_data()
    lm.to(torch.bfloat16)                      # as a checkpoint stored in bf16 loads
    for p in lm.model.layers[0].parameters():
        p.requires_grad_(False)                # a frozen part keeps its dtype (memory)
    train(lm, data, TrainConfig(**FAST, mixed_precision="bf16"), collate_fn=collate)
    assert {p.dtype for p in lm.parameters() if p.requires_grad} == {torch.float32}
    assert {p.dtype for p in lm.model.layers[0].parameters()} == {torch.bfloat16}
    # opting out keeps pure-bf16 weights (what the full profile did before): the test above would fail
    lm2, data, collate = _lm_and_data()
    lm2.to(torch.bfloat16)
    train(lm2, data, TrainConfig(**FAST, mixed_precision="bf16", master_weights="as_is"), collate_fn=collate)
    assert {p.dtype for p in lm2.parameters()} == {torch.bfloat16}
    # without autocast nothing bridges fp32 and bf16 weights: the whole model becomes fp32
    lm3, data, collate = _lm_and_data()
    lm3.to(torch.bfloat16)
    train(lm3, data, TrainConfig(**FAST, mixed_precision="no"), collate_fn=collate)
    assert {p.dtype for p in lm3.parameters()} == {torch.float32}


def test_gradient_checkpointing_gives_the_same_training():
    a, data, collate = _lm_and_data()
    b, _, _ = _lm_and_data()
    train(a, data, TrainConfig(**FAST, mixed_precision="no"), collate_fn=collate)
    train(b, data, TrainConfig(**FAST, mixed_precision="no", gradient_checkpointing=True), collate_fn=collate)
    flag = "is_activation_checkpointing" if hasattr(b, "is_activation_checkpointing") else "is_gradient_checkpointing"
    assert getattr(b, flag) and not getattr(a, flag)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)
    with pytest.raises(ValueError, match="no part of the model supports it"):
        enable_gradient_checkpointing(torch.nn.Linear(2, 2))


def test_hard_topk_score_head_is_found_unused_before_ddp():
    from rrg_lite.mllm.prompt import MLLMCollator
    from rrg_lite.mllm.text import build_word_tokenizer
    from rrg_lite.profiles import load_profile
    from rrg_lite.systems.mu2.ablation import QASample, build_mllm, make_examples, tokens_per_frame

    cfg = load_profile("mu2", "cpu", llm_hidden=32, k=8, num_queries=4)
    feats = torch.randn(2, cfg.num_frames, tokens_per_frame(cfg), cfg.encoder_width)
    samples = [QASample(str(i), "What are the findings in the chest?", "the chest is normal.", "chest", feats[i], 40)
               for i in range(2)]
    tok = build_word_tokenizer([s.question + " " + s.answer for s in samples])
    batch = MLLMCollator(tok.pad_token_id)
    from rrg_lite.train.loop import default_loss

    hard = build_mllm(cfg, "Baseline", tok, seed=0)          # LinVT's hard top-k: its score head gets no gradient
    rng = torch.get_rng_state()
    unused = unused_trainable_parameters(hard, batch(make_examples(hard, samples)), default_loss, "cpu")
    assert torch.equal(rng, torch.get_rng_state())            # the trial backward leaves the RNG as it was
    assert {"projectors.image.score.weight", "projectors.image.score.bias"} <= set(unused), unused
    assert all(p.grad is None for p in hard.parameters())     # and no gradient behind
    soft = build_mllm(cfg, "μ² (SFT)", tok, seed=0)           # DTS: the selection weights get gradients
    unused_soft = unused_trainable_parameters(soft, batch(make_examples(soft, samples)), default_loss, "cpu")
    assert not any(".score." in n for n in unused_soft)
    # the aggregation attention uses only its q/k projections (its v/out weights exist but never compute), so
    # every μ² variant needs find_unused_parameters under DDP: the loop's detection finds them
    assert any("aggregation.aggregate.v." in n for n in unused_soft)
