"""The assembled LinVT / μ² tokenizer: flags, interface, fixed output length for any depth, linearity."""
import numpy as np
import pytest
import torch

from rrg_lite.systems.mu2.tokenizer import linvt_tokenizer
from rrg_lite.systems.mu2.tokenizer import (
    ABLATION_VARIANTS,
    FULL_SCALE,
    PAPER_TABLE2,
    Mu2Config,
    Mu2Tokenizer,
    volume_to_frames,
)

TINY = Mu2Config(
    in_dim=12, dim=16, num_heads=2, refiner_layers=1, aggregation_layers=1, k=8, num_queries=5,
    gate_hidden=8, max_frames=8, max_tokens=6, max_frame_distance=4, max_token_distance=4,
)


def _inputs(T=3, N=6, B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(B, T, N, 12, generator=g)
    question = torch.randn(B, 4, 16, generator=g)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])[:B]
    return feats, question, mask


@pytest.mark.parametrize("variant", list(ABLATION_VARIANTS))
def test_every_variant_is_linear_in_its_input_tokens(variant):
    torch.manual_seed(0)
    tok = Mu2Tokenizer(TINY.variant(variant)).eval()
    feats, question, mask = _inputs()
    tokens, d = tok(feats, question, mask, return_details=True)
    assert tokens.shape == (2, 5, 16)
    # linearity principle: tokens = token_weights @ the (projected) input tokens, not the refined ones
    assert torch.allclose(tokens, d["token_weights"] @ d["inputs"], atol=1e-5)
    assert not torch.allclose(tokens, d["token_weights"] @ d["refined"], atol=1e-3)
    assert torch.all(d["token_weights"] >= 0)
    row_sums = d["token_weights"].sum(-1)
    if ABLATION_VARIANTS[variant]["dmtp"]:  # scales are weighted by w_s, rows sum to Σ a_m w_s(m) ≤ 1
        assert torch.all(row_sums <= 1 + 1e-5)
    else:  # convex combinations of the input tokens
        assert torch.allclose(row_sums, torch.ones_like(row_sums), atol=1e-5)
    assert torch.allclose(tok(feats, question, mask), tokens)  # same path with and without details


def test_flags_build_the_right_parts():
    base, full = Mu2Tokenizer(TINY.variant("Baseline")), Mu2Tokenizer(TINY)
    assert hasattr(base, "position") and not hasattr(base, "spatial_bias") and hasattr(base, "score")
    assert hasattr(full, "spatial_bias") and not hasattr(full, "position") and hasattr(full, "selection")
    assert hasattr(full, "pooling") and not hasattr(base, "pooling")
    assert isinstance(linvt_tokenizer(**{k: v for k, v in TINY.as_dict().items()}).config.rpe, bool)
    assert not linvt_tokenizer(**TINY.as_dict()).config.dts
    with pytest.raises(KeyError):
        TINY.variant("+nothing")


@pytest.mark.parametrize("variant", ["Baseline", "μ² (SFT)"])
def test_output_length_does_not_depend_on_depth(variant):
    torch.manual_seed(0)
    tok = Mu2Tokenizer(TINY.variant(variant))
    for T in (1, 2, 5):
        feats, question, mask = _inputs(T=T)
        assert tok(feats, question, mask).shape == (2, TINY.num_queries, TINY.dim)
    assert tok.tokens_for(7, 6) == TINY.num_queries


def test_relative_bias_allows_more_frames_than_absolute_tables():
    feats, question, mask = _inputs(T=TINY.max_frames + 2)
    assert Mu2Tokenizer(TINY).forward(feats, question, mask).shape == (2, 5, 16)
    with pytest.raises(ValueError, match="absolute position tables"):
        Mu2Tokenizer(TINY.variant("Baseline"))(feats, question, mask)


def test_soft_selection_sends_gradient_to_every_input_token():
    torch.manual_seed(0)
    for variant, expect_all in (("+DTS", True), ("Baseline", False)):
        tok = Mu2Tokenizer(TINY.variant(variant))
        feats, question, mask = _inputs(T=2)
        tokens, d = tok(feats, question, mask, return_details=True)
        d["inputs"].retain_grad()
        tokens.pow(2).sum().backward()
        reached = d["inputs"].grad.abs().sum(-1) > 0
        if expect_all:
            assert reached.all()
        else:  # hard top-k: exactly the k kept tokens of each sample
            assert reached.sum(-1).tolist() == [TINY.k, TINY.k]
            assert tok.score.weight.grad is None


def test_bad_inputs_fail_clearly():
    tok = Mu2Tokenizer(TINY)
    with pytest.raises(ValueError, match=r"\(B, T, N, E\)"):
        tok(torch.randn(2, 6, 12))
    with pytest.raises(ValueError, match="width"):
        tok(torch.randn(2, 1, 6, 11))
    with pytest.raises(ValueError, match="LLM width"):
        tok(torch.randn(2, 1, 6, 12), torch.randn(2, 3, 7))


def test_same_seed_same_tokens():
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        outs.append(Mu2Tokenizer(TINY)(*_inputs()))
    assert torch.equal(outs[0], outs[1])


def test_volume_to_frames_pads_the_last_frame():
    vol = np.arange(70 * 2 * 2, dtype=np.float32).reshape(70, 2, 2)
    frames = volume_to_frames(vol, 32)
    assert frames.shape == (3, 32, 2, 2)
    assert np.array_equal(frames.reshape(-1, 2, 2)[:70], vol)
    assert np.all(frames[2, 6:] == vol.min())


def test_full_scale_and_paper_numbers_are_the_papers():
    # §3 Implementation Details: 4 + 4 layers, 8 heads, k = 1024; ViT width 768; Llama-3.2-1B hidden 2048
    c = FULL_SCALE
    assert (c.refiner_layers, c.aggregation_layers, c.num_heads, c.k) == (4, 4, 8, 1024)
    assert (c.in_dim, c.dim, c.pool_kernels) == (768, 2048, (1, 2, 4))
    assert set(ABLATION_VARIANTS) <= set(PAPER_TABLE2)
    assert PAPER_TABLE2["+DTS"]["GREEN"] == 0.299 and PAPER_TABLE2["Baseline"]["GREEN"] == 0.204


def test_the_question_matters_at_any_embedding_scale():
    # LLM input embeddings are small (std ~0.02 at init); the aggregation normalises the question first, so a
    # question steers the tokens as much at that scale as at scale 1
    torch.manual_seed(0)
    tok = Mu2Tokenizer(TINY).eval()
    feats, question, mask = _inputs()
    with torch.no_grad():
        a, b = tok(feats, question, mask), tok(feats, 0.02 * question, mask)
        other = tok(feats, torch.randn_like(question), mask)
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, other, atol=1e-7)  # (the effect is small at init: the last weights start uniform)
