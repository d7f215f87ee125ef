"""The shared learned-query / cross-attention block (rrg_lite.fusion.attention) on cases small enough to check by hand."""
import math

import pytest
import torch

from rrg_lite.fusion.attention import CrossAttention, CrossAttentionConfig, CrossAttentionLayer, CrossAttentionStack


def _identity(attn: CrossAttention) -> CrossAttention:
    with torch.no_grad():
        for lin in (attn.W_Q, attn.W_K, attn.W_V):
            lin.weight.copy_(torch.eye(lin.weight.shape[0]))
    return attn


# ---- the attention alone -------------------------------------------------------------------------------------
def test_cross_attention_by_hand():
    # D = 2, one head, W = I. q = [1, 0]; k1 = [√2·ln 3, 0], k2 = [0, 1]: q·k/√2 = [ln 3, 0] -> softmax [3/4, 1/4]
    # Z̄ = 3/4·k1 + 1/4·k2 = [0.75·√2·ln 3, 0.25] = [1.16530, 0.25]
    attn = _identity(CrossAttention(2))
    s = math.sqrt(2) * math.log(3)
    q, kv = torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[s, 0.0], [0.0, 1.0]]])
    z, a = attn(q, kv)
    assert torch.allclose(a, torch.tensor([[[[0.75, 0.25]]]]), atol=1e-6)
    assert torch.allclose(z, torch.tensor([[[0.75 * s, 0.25]]]), atol=1e-6)


def test_zero_attention_adds_a_key_that_contributes_nothing():
    # the appended zero key has logit 0: weights e^{ln 3} : e^0 : e^0 = 3 : 1 : 1 -> [3/5, 1/5, 1/5];
    # its value is zero, so Z̄ = 3/5·k1 + 1/5·k2 = [0.6·√2·ln 3, 0.2]
    attn = _identity(CrossAttention(2, zero_attn=True))
    s = math.sqrt(2) * math.log(3)
    z, a = attn(torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[s, 0.0], [0.0, 1.0]]]))
    assert torch.allclose(a, torch.tensor([[[[0.6, 0.2, 0.2]]]]), atol=1e-6)
    assert torch.allclose(z, torch.tensor([[[0.6 * s, 0.2]]]), atol=1e-6)
    # with every real key masked the zero key still takes all the weight: Z̄ = 0, no NaN
    z, a = attn(torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[s, 0.0], [0.0, 1.0]]]), torch.tensor([[False, False]]))
    assert torch.equal(z, torch.zeros(1, 1, 2)) and a[0, 0, 0].tolist() == [0.0, 0.0, 1.0]


def test_masked_keys_get_no_weight_and_all_masked_is_an_error():
    torch.manual_seed(0)
    attn = CrossAttention(8, num_heads=2)
    q, kv = torch.randn(2, 3, 8), torch.randn(2, 4, 8)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    z, a = attn(q, kv, mask)
    assert torch.all(a[0, ..., 2:] == 0)
    assert torch.allclose(z[0], attn(q[:1], kv[:1, :2])[0][0], atol=1e-6)
    with pytest.raises(ValueError, match="every key masked"):
        attn(q, kv, torch.tensor([[False] * 4, [True] * 4]))


def test_keys_of_another_width():
    attn = CrossAttention(8, num_heads=2, kv_dim=5)
    z, a = attn(torch.randn(3, 6, 8), torch.randn(3, 7, 5))
    assert z.shape == (3, 6, 8) and a.shape == (3, 2, 6, 7)
    assert torch.allclose(a.sum(-1), torch.ones(3, 2, 6), atol=1e-6)


# ---- one layer: residual, norms, FFN --------------------------------------------------------------------------
def _one_key_layer(norm: str, ffn: str = "none") -> CrossAttentionLayer:
    layer = CrossAttentionLayer(CrossAttentionConfig(dim=2, norm=norm, ffn=ffn))
    _identity(layer.attn)
    if ffn == "linear":
        with torch.no_grad():
            layer.ffn[0].weight.copy_(torch.eye(2))
            layer.ffn[0].bias.zero_()
    return layer


def test_post_and_pre_norm_by_hand():
    # One key, so the softmax is [1] whatever W_Q, W_K: Z̄ = W_V·(key) = the key (W_V = I).
    # LayerNorm of a 2-vector [a, b], a ≠ b, is [±1, ∓1] (up to ε).
    q, kv = torch.tensor([[[2.0, 0.0]]]), torch.tensor([[[0.0, 4.0]]])
    with torch.no_grad():
        # post: Z = LN(q + key) = LN([2, 4]) = [−1, 1]
        z, a = _one_key_layer("post")(q, kv)
        assert a.tolist() == [[[[1.0]]]]
        assert torch.allclose(z, torch.tensor([[[-1.0, 1.0]]]), atol=1e-4)
        # pre: Z = q + LN_kv(key) = [2, 0] + [−1, 1] = [1, 1] (the residual stream is not normalised)
        assert torch.allclose(_one_key_layer("pre")(q, kv)[0], torch.tensor([[[1.0, 1.0]]]), atol=1e-4)
        # post with a linear FFN W = I: Z = LN(Z' + Z'), Z' = [−1, 1] -> LN([−2, 2]) = [−1, 1]
        assert torch.allclose(_one_key_layer("post", "linear")(q, kv)[0], torch.tensor([[[-1.0, 1.0]]]), atol=1e-4)
        # pre with a linear FFN W = I: Z = Z' + LN(Z') with Z' = [1, 1]: LN of a constant is 0 -> [1, 1]
        assert torch.allclose(_one_key_layer("pre", "linear")(q, kv)[0], torch.tensor([[[1.0, 1.0]]]), atol=1e-3)


def test_layer_parameter_names_are_stable():
    post = CrossAttentionLayer(CrossAttentionConfig(dim=4))
    pre = CrossAttentionLayer(CrossAttentionConfig(dim=4, norm="pre", ffn="none"))
    assert {k.split(".")[0] for k in post.state_dict()} == {"attn", "norm1", "ffn", "norm2"}
    assert {k.split(".")[0] for k in pre.state_dict()} == {"attn", "norm1", "norm_kv"}


def test_attend_to_queries_is_attention_over_keys_and_queries():
    torch.manual_seed(0)
    with_q = CrossAttentionLayer(CrossAttentionConfig(dim=8, num_heads=2, attend_to_queries=True))
    plain = CrossAttentionLayer(CrossAttentionConfig(dim=8, num_heads=2))
    plain.load_state_dict(with_q.state_dict())
    q, kv = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    z, a = with_q(q, kv)
    assert a.shape == (2, 2, 3, 8)                              # 5 keys + 3 queries
    assert torch.allclose(z, plain(q, torch.cat([kv, q], 1))[0], atol=1e-6)


# ---- the stack: depth, learned queries ------------------------------------------------------------------------
@pytest.mark.parametrize("norm", ["post", "pre"])
def test_stack_with_learned_queries_shapes(norm):
    stack = CrossAttentionStack(dim=16, kv_dim=12, num_heads=4, num_layers=2, num_queries=5, norm=norm,
                                zero_attn=True)
    z, attns = stack(torch.randn(3, 9, 12), return_attention=True)
    assert z.shape == (3, 5, 16) and stack.num_queries == 5
    assert len(attns) == 2 and attns[1].shape == (3, 4, 5, 10)              # 9 keys + the zero key
    # the token count is the queries', whatever the number of keys
    assert stack(torch.randn(3, 40, 12)).shape == (3, 5, 16)
    # given queries replace the latents
    assert stack(torch.randn(3, 9, 12), queries=torch.randn(3, 7, 16)).shape == (3, 7, 16)


def test_stack_is_its_layers_in_sequence_with_fixed_keys():
    torch.manual_seed(0)
    stack = CrossAttentionStack(dim=8, num_heads=2, num_layers=2, num_queries=4, final_norm=True, norm="pre")
    kv = torch.randn(2, 6, 8)
    q0 = stack.latents.expand(2, -1, -1)
    z1, _ = stack.layers[0](q0, kv)
    z2, _ = stack.layers[1](z1, kv)                  # layer 2 reads the same keys, not layer 1's output
    assert torch.allclose(stack(kv), stack.final_norm(z2), atol=1e-6)
    # the final LayerNorm makes every output token zero-mean
    assert torch.allclose(stack(kv).mean(-1), torch.zeros(2, 4), atol=1e-5)


def test_gradient_reaches_latents_queries_and_keys():
    stack = CrossAttentionStack(dim=8, num_heads=2, num_layers=2, num_queries=3)
    kv = torch.randn(2, 5, 8, requires_grad=True)
    stack(kv).pow(2).sum().backward()
    assert stack.latents.grad.abs().sum() > 0 and kv.grad.abs().sum() > 0
    given = CrossAttentionStack(dim=8)
    q = torch.randn(2, 3, 8, requires_grad=True)
    given(kv.detach(), queries=q).pow(2).sum().backward()
    assert q.grad.abs().sum() > 0


def test_stack_rejects_bad_inputs_and_options():
    stack = CrossAttentionStack(dim=8, num_queries=2)
    with pytest.raises(ValueError, match=r"x_kv must be \(B, N, 8\), got \(2, 3, 4\)"):
        stack(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"queries must be \(B, N, 8\), got \(2, 3\)"):
        stack(torch.randn(2, 3, 8), queries=torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"batch sizes differ.*\(1, 2, 8\).*\(2, 3, 8\)"):
        stack(torch.randn(2, 3, 8), queries=torch.randn(1, 2, 8))
    with pytest.raises(ValueError, match=r"kv_mask must be bool \(2, 3\)"):
        stack(torch.randn(2, 3, 8), kv_mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match="no queries given"):
        CrossAttentionStack(dim=8)(torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match="norm"):
        CrossAttentionConfig(norm="sandwich")
    with pytest.raises(ValueError, match="ffn"):
        CrossAttentionConfig(ffn="moe")
    with pytest.raises(ValueError, match="multiple of num_heads"):
        CrossAttentionConfig(dim=10, num_heads=3)
    with pytest.raises(ValueError, match="kv_dim == dim"):
        CrossAttentionConfig(dim=8, kv_dim=4, attend_to_queries=True)
    with pytest.raises(ValueError, match="num_queries"):
        CrossAttentionConfig(num_queries=0)
    with pytest.raises(ValueError, match="not both"):
        CrossAttentionStack(CrossAttentionConfig(dim=8), dim=4)
