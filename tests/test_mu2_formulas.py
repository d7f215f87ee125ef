"""Each formula of LinVT / μ² on a case small enough to check by hand."""
import math

import pytest
import torch

from rrg_lite.tokenizers.linvt import (
    Attention,
    TextConditionedAggregation,
    avg_pool_tokens,
    fixed_multiscale_pool,
    hard_topk_select,
    pooling_matrix,
)
from rrg_lite.systems.mu2.tokenizer import (
    DynamicMultiScalePooling,
    RelativePositionBias,
    SoftTokenSelection,
    relative_position_index,
)


# ---- relative positional bias: A_ij = q_i·k_j/√d + P_r(i − j) -------------------------------------------------
def test_relative_index_is_clamped_offset():
    # i − j for L = 3: [[0,-1,-2],[1,0,-1],[2,1,0]]; clamp to ±1, shift by +1
    assert relative_position_index(3, 1).tolist() == [[1, 0, 0], [2, 1, 0], [2, 2, 1]]
    assert relative_position_index(3, 2).tolist() == [[2, 1, 0], [3, 2, 1], [4, 3, 2]]


def test_relative_bias_looks_up_one_table_per_head():
    rpb = RelativePositionBias(num_heads=2, max_distance=1)
    with torch.no_grad():
        rpb.table.copy_(torch.tensor([[10.0, 20.0, 30.0], [-1.0, 0.0, 1.0]]))  # entries for i−j = -1, 0, +1
    bias = rpb(3)
    assert bias.shape == (2, 3, 3)
    assert bias[0].tolist() == [[20, 10, 10], [30, 20, 10], [30, 30, 20]]
    assert bias[1].tolist() == [[0, -1, -1], [1, 0, -1], [1, 1, 0]]


def _identity_attention(dim):
    attn = Attention(dim, num_heads=1)
    with torch.no_grad():
        for lin in (attn.q, attn.k, attn.v, attn.out):
            lin.weight.copy_(torch.eye(dim))
            lin.bias.zero_()
    return attn


def test_attention_adds_relative_bias_to_scaled_scores():
    attn = _identity_attention(2)
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # q = k = x
    rpb = RelativePositionBias(num_heads=1, max_distance=1)
    with torch.no_grad():
        rpb.table.copy_(torch.tensor([[0.0, 0.0, math.log(3.0)]]))  # only i − j = +1 gets a bias of ln 3
    weights = attn.scores(x, x, bias=rpb(2))[0, 0]
    s = 1 / math.sqrt(2)
    # row 0: logits [s, 0] ; row 1: logits [0 + ln 3, s]
    row0 = torch.softmax(torch.tensor([s, 0.0]), 0)
    row1 = torch.softmax(torch.tensor([math.log(3.0), s]), 0)
    assert torch.allclose(weights, torch.stack([row0, row1]), atol=1e-6)


def test_attention_key_mask_gives_padded_keys_no_weight():
    attn = _identity_attention(2)
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    w = attn.scores(x, x, key_mask=torch.tensor([[True, True, False]]))
    assert torch.all(w[..., 2] == 0)
    assert torch.allclose(w.sum(-1), torch.ones(1, 1, 3))


# ---- hard top-k vs differentiable soft top-k ----------------------------------------------------------------
def test_hard_topk_keeps_best_in_original_order():
    v = torch.arange(8.0).view(1, 4, 2)  # tokens [0,1], [2,3], [4,5], [6,7]
    tokens, index = hard_topk_select(v, torch.tensor([[0.1, 0.9, 0.5, 0.7]]), k=2)
    assert index.tolist() == [[1, 3]]
    assert tokens.tolist() == [[[2, 3], [6, 7]]]
    # k larger than the number of tokens keeps them all
    assert hard_topk_select(v, torch.zeros(1, 4), k=10)[1].shape == (1, 4)


def test_soft_token_is_softmax_weighted_sum():
    sel = SoftTokenSelection(dim=2, k=1)
    with torch.no_grad():
        sel.selectors.weight.copy_(torch.tensor([[math.log(2.0), 0.0]]))
    v = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])  # scores ln2, 0, 0 → α = [1/2, 1/4, 1/4]
    top, alpha = sel(v)
    assert torch.allclose(alpha, torch.tensor([[[0.5, 0.25, 0.25]]]))
    assert torch.allclose(top, torch.tensor([[[0.5, 0.25]]]))


def test_soft_weights_sum_to_one_per_soft_token():
    torch.manual_seed(0)
    top, alpha = SoftTokenSelection(dim=8, k=5)(torch.randn(3, 12, 8))
    assert alpha.shape == (3, 5, 12) and top.shape == (3, 5, 8)
    assert torch.allclose(alpha.sum(-1), torch.ones(3, 5))
    assert torch.all(alpha > 0)


def test_gradient_reaches_every_token_only_with_soft_selection():
    torch.manual_seed(0)
    v = torch.randn(1, 6, 4, requires_grad=True)
    scores = torch.randn(1, 6, requires_grad=True)
    tokens, index = hard_topk_select(v, scores, k=2)
    tokens.sum().backward()
    touched = (v.grad.abs().sum(-1) > 0)[0]
    assert touched.sum() == 2 and touched[index[0]].all()  # only the kept tokens get gradient
    assert scores.grad is None  # the index is not differentiable: the scorer never learns

    v.grad = None
    sel = SoftTokenSelection(dim=4, k=2)
    top, _ = sel(v)
    (top ** 2).sum().backward()
    assert torch.all(v.grad.abs().sum(-1) > 0)  # every token gets gradient
    assert torch.all(sel.selectors.weight.grad.abs().sum(-1) > 0)  # and every selector W_s^(r)


# ---- multi-scale pooling -----------------------------------------------------------------------------------
def test_avg_pool_tokens_by_hand():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]).view(1, 5, 1)
    assert avg_pool_tokens(x, 1).flatten().tolist() == [1, 2, 3, 4, 5]
    assert avg_pool_tokens(x, 2).flatten().tolist() == [1.5, 3.5, 5.0]  # last group has one token
    assert avg_pool_tokens(x, 4).flatten().tolist() == [2.5, 5.0]
    P = pooling_matrix(5, 2)
    assert P.tolist() == [[0.5, 0.5, 0, 0, 0], [0, 0, 0.5, 0.5, 0], [0, 0, 0, 0, 1]]
    with pytest.raises(ValueError):
        avg_pool_tokens(x, 0)


def test_fixed_multiscale_concatenates_k_plus_half_plus_quarter():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1)
    out = fixed_multiscale_pool(x, (1, 2, 4))
    assert out.flatten().tolist() == [1, 2, 3, 4, 1.5, 3.5, 2.5]


def test_dynamic_pooling_weights_softmax_of_gate():
    x = torch.tensor([0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0]).view(1, 8, 1)
    pool = DynamicMultiScalePooling(dim=1, kernels=(1, 2, 4), hidden=1, gate="token")
    with torch.no_grad():  # g(y) = 1·GELU(y − 7): a gate that only likes large tokens
        pool.gate[0].weight.fill_(1.0), pool.gate[0].bias.fill_(-7.0)
        pool.gate[2].weight.fill_(1.0), pool.gate[2].bias.fill_(0.0)
    out, w = pool(x)
    gelu = torch.nn.functional.gelu
    y1, y2, y4 = x.flatten(), torch.tensor([1.0, 5.0, 9.0, 13.0]), torch.tensor([3.0, 11.0])
    logits = torch.stack([gelu(y - 7).mean() for y in (y1, y2, y4)])
    assert torch.allclose(w[0], logits.softmax(0), atol=1e-6)
    assert torch.allclose(w.sum(-1), torch.ones(1))
    expected = torch.cat([w[0, 0] * y1, w[0, 1] * y2, w[0, 2] * y4])
    assert torch.allclose(out.flatten(), expected, atol=1e-6)


def test_literal_dmtp_gate_is_constant_because_pooling_keeps_the_mean():
    torch.manual_seed(0)
    pool = DynamicMultiScalePooling(dim=6, kernels=(1, 2, 4), hidden=5, gate="mean")
    _, w = pool(torch.randn(3, 16, 6))  # 16 is a multiple of 1, 2 and 4: every ȳ_s is the same vector
    assert torch.allclose(w, torch.full((3, 3), 1 / 3), atol=1e-6)


# ---- text-conditioned aggregation: outputs are convex combinations of the visual tokens --------------------
def test_aggregation_outputs_are_convex_combinations():
    torch.manual_seed(0)
    tta = TextConditionedAggregation(dim=6, num_heads=2, num_layers=2, num_queries=4)
    visual = torch.eye(6).expand(2, 6, 6)  # token m = basis vector e_m, so an output row *is* its weights
    question = torch.randn(2, 3, 6)
    tokens, weights = tta(visual, question)
    assert torch.allclose(tokens, weights, atol=1e-6)
    assert torch.all(weights >= 0) and torch.allclose(weights.sum(-1), torch.ones(2, 4))
    # linearity: doubling the visual tokens doubles the output when the attention weights are held fixed
    visual2 = torch.randn(2, 6, 6)
    tokens2, weights2 = tta(visual2, question)
    assert torch.allclose(tokens2, weights2 @ visual2, atol=1e-6)


def test_aggregation_reads_the_question_and_ignores_padding():
    torch.manual_seed(0)
    tta = TextConditionedAggregation(dim=8, num_heads=2, num_layers=1, num_queries=3)
    visual = torch.randn(1, 10, 8)
    q1, q2 = torch.randn(1, 4, 8), torch.randn(1, 4, 8)
    assert not torch.allclose(tta(visual, q1)[0], tta(visual, q2)[0])  # the question changes the tokens
    mask = torch.tensor([[True, True, False, False]])
    q3 = q1.clone()
    q3[:, 2:] = 100.0  # only padding differs
    assert torch.allclose(tta(visual, q1, mask)[0], tta(visual, q3, mask)[0], atol=1e-6)
    empty = torch.zeros(1, 4, dtype=torch.bool)  # an empty question = no text update, not NaN
    assert torch.allclose(tta(visual, q1, empty)[0], tta(visual, None)[0], atol=1e-6)


# ---- the refiner factorises attention: within a frame, then across frames per token position --------------
def test_refiner_layer_attends_within_frames_then_across_positions():
    from rrg_lite.tokenizers.linvt import RefinerLayer

    torch.manual_seed(0)
    layer = RefinerLayer(dim=4, num_heads=1)
    x = torch.randn(1, 3, 5, 4)
    y = x.clone()
    # change token position 2 of frame 1 (not by a constant shift, which LayerNorm would remove)
    y[0, 1, 2] += torch.tensor([1.0, -2.0, 0.5, 3.0])
    with torch.no_grad():
        layer.mlp[2].weight.zero_(), layer.mlp[2].bias.zero_()
        layer.temporal.out.weight.zero_(), layer.temporal.out.bias.zero_()
        changed = (layer(x) - layer(y)).abs().sum(-1)[0] > 1e-6
    assert changed[1].all() and not changed[[0, 2]].any()  # spatial only: the change stays in its frame
    with torch.no_grad():
        layer.temporal.out.weight.copy_(torch.eye(4))
        layer.spatial.out.weight.zero_(), layer.spatial.out.bias.zero_()
        changed = (layer(x) - layer(y)).abs().sum(-1)[0] > 1e-6
    assert changed[:, 2].all() and not changed[:, [0, 1, 3, 4]].any()  # temporal only: same position, all frames
