"""LLM-RG4's adaptive token fusion (Eq. 5–8) and the interleaved baseline it replaces (Table 4)."""
import pytest
import torch

from rrg_lite.systems.llm_rg4.atf import ATFConfig, AdaptiveTokenFusion, InterleavedTokens
from rrg_lite.systems.llm_rg4.scenarios import SCENARIOS

# D' = 8 (image), 6 (report), D = 12, N = 4 queries, 2 heads; N_I = 9 patch tokens, N_T = 5 report tokens
CFG = ATFConfig(enc_dim=8, text_dim=6, llm_dim=12, num_queries=4, num_heads=2, proj_hidden=16, dropout=0.0)
B, N_I, N_T = 3, 9, 5


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, N_I, 8, generator=g), torch.randn(B, N_I, 8, generator=g),
            torch.randn(B, N_T, 6, generator=g))


def _atf(seed=0):
    torch.manual_seed(seed)
    return AdaptiveTokenFusion(CFG).eval()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_n_tokens_out_in_every_scenario(scenario):
    atf = _atf()
    v_f, v_l, v_t = _inputs()
    out = atf(v_f, v_l if scenario.has_lateral else None, v_t if scenario.has_prior else None)
    assert out.shape == (B, 4, 12)
    assert atf.tokens_for(scenario) == atf.num_tokens == 4 and atf.out_dim == 12


def test_missing_inputs_are_exact_zero_blocks_per_sample():
    atf = _atf()
    v_f, v_l, v_t = _inputs()
    has_lat = torch.tensor([True, False, True])
    has_pri = torch.tensor([False, True, True])                  # sample 0 is mn, 1 is sw, 2 is mw
    with torch.no_grad():
        out, parts = atf(v_f, v_l, v_t, has_lateral=has_lat, has_prior=has_pri, return_parts=True)
    h_o = parts["h_o"]
    assert h_o.shape == (B, 4, 36)                               # [h_f; h_l; h_t] on the feature axis, 3·D
    assert torch.equal(h_o[1, :, 12:24], torch.zeros(4, 12))     # sample 1 has no lateral
    assert torch.equal(h_o[0, :, 24:], torch.zeros(4, 12))       # sample 0 has no prior report
    assert h_o[0, :, 12:24].abs().sum() > 0 and h_o[2, :, 24:].abs().sum() > 0
    # the values of a missing input do not reach the output, even NaN
    v_l2, v_t2 = v_l.clone(), v_t.clone()
    v_l2[1], v_t2[0] = float("nan"), 1e3
    with torch.no_grad():
        out2 = atf(v_f, v_l2, v_t2, has_lateral=has_lat, has_prior=has_pri)
    assert torch.equal(out, out2)
    # ... while those of a present input do
    v_l3 = v_l.clone()
    v_l3[0] += 1.0
    with torch.no_grad():
        assert not torch.allclose(atf(v_f, v_l3, v_t, has_lateral=has_lat, has_prior=has_pri)[0], out[0])
    # a sample of a mixed batch gets what it gets alone, in its own scenario
    with torch.no_grad():
        assert torch.allclose(out[1:2], atf(v_f[1:2], None, v_t[1:2]), atol=1e-6)
        assert torch.allclose(out[0:1], atf(v_f[0:1], v_l[0:1], None), atol=1e-6)


def test_eq8_by_hand_the_fusion_weight_selects_a_block():
    # Linear_o = [0 | I | 0] (no bias), so h'_o = LN(h_l). Without a lateral, h_l = 0 and LN(0) = 0 (β = 0);
    # with one, LN(h_l) = h_l's own LayerNorm (Linear_l ends in a LayerNorm, and LN∘LN = LN up to ε).
    atf = _atf()
    with torch.no_grad():
        w = torch.zeros(12, 36)
        w[:, 12:24] = torch.eye(12)
        atf.fuse[0].weight.copy_(w)
        atf.fuse[0].bias.zero_()
        v_f, v_l, _ = _inputs()
        out, parts = atf(v_f, v_l, has_lateral=torch.tensor([True, False, True]), return_parts=True)
    assert torch.equal(out[1], torch.zeros(4, 12))
    assert torch.allclose(out[0], parts["h_l"][0], atol=1e-3)


def test_lateral_and_prior_are_read_by_the_frontal_query_features():
    atf = _atf()
    v_f, v_l, v_t = _inputs()
    with torch.no_grad():
        _, parts = atf(v_f, v_l, v_t, return_parts=True)
        # Eq. 6: h_l = Linear_l(p_l(v_l, p_f(v_f, V'))) — p_l's queries are p_f's output, not learned ones
        assert atf.p_l.num_queries is None and atf.p_f.num_queries == 4
        assert torch.allclose(parts["q_f"], atf.p_f(v_f))
        assert torch.allclose(parts["h_l"], atf.linear_l(atf.p_l(v_l, queries=parts["q_f"])), atol=1e-6)
        assert torch.allclose(parts["h_t"], atf.linear_t(atf.p_t(v_t, queries=parts["q_f"])), atol=1e-6)
        # so another frontal image changes what is read from the same lateral view
        _, other = atf(v_f.flip(0), v_l, v_t, return_parts=True)
    assert not torch.allclose(other["h_l"], parts["h_l"], atol=1e-4)


def test_padded_prior_tokens_are_not_read():
    atf = _atf()
    v_f, _, v_t = _inputs()
    mask = torch.ones(B, N_T, dtype=torch.bool)
    mask[:, 3:] = False
    with torch.no_grad():
        padded = atf(v_f, v_t=v_t, prior_mask=mask)
        assert torch.allclose(padded, atf(v_f, v_t=v_t[:, :3]), atol=1e-6)


def test_gradient_flow_through_every_branch_that_is_used():
    atf = AdaptiveTokenFusion(CFG)
    v_f, v_l, v_t = _inputs()
    atf(v_f, v_l, v_t, has_lateral=torch.tensor([True, False, False])).pow(2).mean().backward()
    for name in ("p_f.latents", "p_l.layers.0.attn.W_Q.weight", "p_t.layers.0.attn.W_K.weight",
                 "linear_f.0.weight", "linear_l.0.weight", "linear_t.0.weight", "fuse.0.weight"):
        grad = dict(atf.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    # an sn-only batch never touches the lateral and prior branches
    atf.zero_grad(set_to_none=True)
    atf(v_f).sum().backward()
    assert atf.p_l.layers[0].attn.W_Q.weight.grad is None and atf.linear_t[0].weight.grad is None
    assert atf.p_f.latents.grad.abs().sum() > 0


def test_code_defaults_build_at_full_width():
    cfg = ATFConfig()
    assert (cfg.enc_dim, cfg.llm_dim, cfg.num_queries, cfg.num_heads, cfg.proj_hidden) == (768, 4096, 128, 12, 2048)
    assert cfg.perceiver(768).zero_attn and cfg.perceiver(768).ffn == "linear"


def test_atf_rejects_bad_inputs():
    atf = _atf()
    v_f, v_l, v_t = _inputs()
    with pytest.raises(ValueError, match=r"frontal tokens v_f must be \(B, N, 8\), got \(3, 9, 6\)"):
        atf(v_t.new_zeros(3, 9, 6))
    with pytest.raises(ValueError, match=r"prior-report tokens v_t must be \(B, N, 6\), got \(3, 9, 8\)"):
        atf(v_f, v_t=v_l)
    with pytest.raises(ValueError, match="v_l has batch size 2, the frontal tokens 3"):
        atf(v_f, v_l[:2])
    with pytest.raises(ValueError, match=r"has_prior must be 3 booleans.*\(2,\)"):
        atf(v_f, v_t=v_t, has_prior=torch.tensor([True, False]))
    with pytest.raises(ValueError, match="has_lateral marks 1 sample"):
        atf(v_f, has_lateral=torch.tensor([True, False, False]))
    with pytest.raises(ValueError, match=r"prior_mask must be bool \(3, 5\)"):
        atf(v_f, v_t=v_t, prior_mask=torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="unknown scenario"):
        atf.tokens_for("xx")
    with pytest.raises(ValueError, match="multiple of num_heads"):
        ATFConfig(enc_dim=10, num_heads=3)
    with pytest.raises(ValueError, match="num_queries"):
        ATFConfig(num_queries=0)


# ---- the interleaved baseline ----------------------------------------------------------------------------------
def test_interleaved_token_counts_grow_with_the_inputs():
    torch.manual_seed(0)
    inter = InterleavedTokens(CFG, text_tokens=N_T).eval()
    # N = 4 per image, N_T = 5 per prior report: sn 4, sw 4 + 5, mn 4 + 4, mw 4 + 4 + 5
    assert [inter.tokens_for(s) for s in SCENARIOS] == [4, 9, 8, 13]
    assert inter.tokens_for("mw", text_tokens=100) == 108
    v_f, v_l, v_t = _inputs()
    for s in SCENARIOS:
        tokens, mask = inter(v_f, v_l if s.has_lateral else None, v_t if s.has_prior else None)
        assert tokens.shape == (B, inter.tokens_for(s), 12) and bool(mask.all())
    # LLaVA-style, every patch token projected: sn N_I = 9, mw 9 + 9 + 5
    llava = InterleavedTokens(CFG, compress_images=False, text_tokens=N_T)
    assert llava.tokens_for("sn", image_tokens=N_I) == 9 and llava.tokens_for("mw", image_tokens=N_I) == 23
    assert llava(v_f, v_l, v_t)[0].shape == (B, 23, 12)
    with pytest.raises(ValueError, match="pass image_tokens"):
        llava.tokens_for("sn")


def test_interleaved_mixed_batch_drops_missing_inputs():
    torch.manual_seed(0)
    inter = InterleavedTokens(CFG, text_tokens=N_T).eval()
    v_f, v_l, v_t = _inputs()
    has_lat = torch.tensor([True, False, False])
    has_pri = torch.tensor([True, True, False])                   # mw, sw, sn
    v_l = v_l.clone()
    v_l[1] = float("nan")                                         # a missing view's values never matter
    with torch.no_grad():
        tokens, mask = inter(v_f, v_l, v_t, has_lateral=has_lat, has_prior=has_pri)
        alone, _ = inter(v_f[1:2], None, v_t[1:2])
    assert mask.sum(1).tolist() == [13, 9, 4] and tokens.shape == (B, 13, 12)
    assert torch.allclose(tokens[1, :9], alone[0], atol=1e-6)     # sw: [frontal; prior], lateral removed
    assert torch.equal(tokens[2, 4:], torch.zeros(9, 12))         # padding after the real tokens is zero
    assert not torch.isnan(tokens).any()
