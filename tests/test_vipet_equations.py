"""ViPET-VLM's equations (Eq. 3–12) on cases small enough to check by hand."""
import math

import pytest
import torch

from rrg_lite.systems.vipet.alignment import (
    attention_alignment_loss,
    final_loss,
    high_suv_mask,
    random_roi_like,
    roi_attention_share,
    roi_components,
    token_roi_fraction,
    token_roi_mask,
    visual_attention_map,
)
from rrg_lite.systems.vipet.fusion import CrossAttention, FusionConfig, PetCtFusion, one_way_clip_loss, pool_tokens
from rrg_lite.train.contrastive import info_nce


# ---- Eq. 5–8: PET-query cross-attention fusion ------------------------------------------------------------------
def _hand_fusion(norm="post"):
    """D = 3, one head, W_Q = W_K = I, FFN = ReLU with identity weights; W_V chosen so that Z̄ = [2, 1, 2].

    V_PET = [1, 0, 0]; CT tokens k1 = [s, 0, 0], k2 = [0, 1, 0] with s = √3·ln 3, so Q Kᵀ/√3 = [ln 3, 0] and the
    softmax is [3/4, 1/4]. W_V maps k1 -> [8/3, 0, 8/3] and k2 -> [0, 4, 0]: Z̄ = 3/4·[8/3,0,8/3] + 1/4·[0,4,0].
    """
    fusion = PetCtFusion(FusionConfig(dim=3, ffn_dim=3, activation="relu", norm=norm))
    block = fusion.blocks[0]
    s = math.sqrt(3) * math.log(3)
    with torch.no_grad():
        block.attn.W_Q.weight.copy_(torch.eye(3))
        block.attn.W_K.weight.copy_(torch.eye(3))
        w_v = torch.zeros(3, 3)                     # nn.Linear: y = x Wᵀ, so column j is the image of e_j
        w_v[:, 0] = torch.tensor([8 / 3, 0.0, 8 / 3]) / s
        w_v[:, 1] = torch.tensor([0.0, 4.0, 0.0])
        block.attn.W_V.weight.copy_(w_v)
        for lin in (block.ffn[0], block.ffn[2]):
            lin.weight.copy_(torch.eye(3))
            lin.bias.zero_()
    v_pet = torch.tensor([[[1.0, 0.0, 0.0]]])
    v_ct = torch.tensor([[[s, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    return fusion, v_pet, v_ct


def test_fusion_eq5_to_8_by_hand():
    fusion, v_pet, v_ct = _hand_fusion("post")
    z, (attn,) = fusion(v_pet, v_ct, return_attention=True)
    assert torch.allclose(attn, torch.tensor([[[[0.75, 0.25]]]]), atol=1e-6)           # Eq. 5–6
    z_bar, _ = fusion.blocks[0].attn(v_pet, v_ct)
    assert torch.allclose(z_bar, torch.tensor([[[2.0, 1.0, 2.0]]]), atol=1e-5)
    # Eq. 7: LN([1,0,0] + [2,1,2]) = LN([3,1,2]) = ([3,1,2] − 2)/√(2/3) = [√1.5, −√1.5, 0]
    # Eq. 8: FFN(Z') = ReLU(Z') = [√1.5, 0, 0]; LN(√1.5·[2, −1, 0]) = [5, −4, −1]/√14
    assert torch.allclose(z, torch.tensor([[[5.0, -4.0, -1.0]]]) / math.sqrt(14), atol=1e-4)


def test_post_and_pre_norm_differ():
    fusion, v_pet, v_ct = _hand_fusion("post")
    pre = PetCtFusion(FusionConfig(dim=3, ffn_dim=3, activation="relu", norm="pre"))
    pre.load_state_dict(fusion.state_dict(), strict=False)   # same W_Q/W_K/W_V/FFN; pre has an extra LN for K/V
    with torch.no_grad():
        z_post, z_pre = fusion(v_pet, v_ct), pre(v_pet, v_ct)
    assert z_post.shape == z_pre.shape == (1, 1, 3)
    assert not torch.allclose(z_post, z_pre, atol=1e-3)
    # pre-norm keeps the residual stream un-normalised: Z = Z' + FFN(LN(Z')), so its mean is not 0
    assert abs(float(z_pre.mean())) > 1e-2 and abs(float(z_post.mean())) < 1e-5
    torch.manual_seed(0)
    a, b = torch.randn(2, 5, 8), torch.randn(2, 7, 8)
    torch.manual_seed(1)
    f_post = PetCtFusion(dim=8, num_heads=2)
    torch.manual_seed(1)
    f_pre = PetCtFusion(dim=8, num_heads=2, norm="pre")
    assert not torch.allclose(f_post(a, b), f_pre(a, b), atol=1e-3)


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("heads,layers", [(1, 1), (4, 2)])
def test_fusion_shapes_keep_the_pet_grid(norm, heads, layers):
    fusion = PetCtFusion(FusionConfig(dim=16, num_heads=heads, num_layers=layers, norm=norm))
    v_pet, v_ct = torch.randn(2, 6, 16), torch.randn(2, 9, 16)
    z, attns = fusion(v_pet, v_ct, return_attention=True)
    assert z.shape == (2, 6, 16) and fusion.num_output_tokens(6, 9) == 6
    assert len(attns) == layers and attns[0].shape == (2, heads, 6, 9)
    assert torch.allclose(attns[0].sum(-1), torch.ones(2, heads, 6), atol=1e-6)


def test_ct_as_query_is_the_same_block_with_roles_swapped():
    torch.manual_seed(0)
    ct_query = PetCtFusion(dim=8, num_heads=2, query="ct")
    pet_query = PetCtFusion(dim=8, num_heads=2)
    pet_query.load_state_dict(ct_query.state_dict())
    v_pet, v_ct = torch.randn(2, 5, 8), torch.randn(2, 3, 8)
    z = ct_query(v_pet, v_ct)
    assert z.shape == (2, 3, 8) and ct_query.num_output_tokens(5, 3) == 3
    assert torch.allclose(z, pet_query(v_ct, v_pet), atol=1e-6)


def test_concatenation_controls():
    v_pet, v_ct = torch.randn(2, 4, 8), torch.randn(2, 6, 8)
    tokens = PetCtFusion(dim=8, mode="concat_tokens")
    z, attns = tokens(v_pet, v_ct, return_attention=True)
    assert z.shape == (2, 10, 8) and attns == [] and tokens.num_output_tokens(4, 6) == 10
    # concat_tokens has no mixing: a PET token's output does not depend on the CT tokens
    assert torch.allclose(tokens(v_pet, torch.randn(2, 6, 8))[:, :4], z[:, :4])
    feats = PetCtFusion(dim=8, mode="concat_features")
    assert feats(v_pet, v_ct[:, :4]).shape == (2, 4, 8)
    with pytest.raises(ValueError, match=r"\(2, 4, 8\).*\(2, 6, 8\)"):
        feats(v_pet, v_ct)                       # tokens are paired by position: grids must match


def test_padded_ct_keys_get_no_attention():
    fusion = PetCtFusion(dim=8)
    v_pet, v_ct = torch.randn(1, 2, 8), torch.randn(1, 3, 8)
    mask = torch.tensor([[True, True, False]])
    z, (attn,) = fusion(v_pet, v_ct, ct_mask=mask, return_attention=True)
    assert torch.all(attn[..., 2] == 0)
    assert torch.allclose(z, fusion(v_pet, v_ct[:, :2]), atol=1e-6)


def test_fusion_rejects_bad_shapes_and_options():
    fusion = PetCtFusion(dim=8)
    with pytest.raises(ValueError, match=r"v_ct must be \(B, N, 8\), got \(2, 3, 4\)"):
        fusion(torch.randn(2, 3, 8), torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"batch sizes differ.*\(2, 3, 8\).*\(1, 3, 8\)"):
        fusion(torch.randn(2, 3, 8), torch.randn(1, 3, 8))
    with pytest.raises(ValueError, match=r"ct_mask must be bool \(2, 3\)"):
        fusion(torch.randn(2, 3, 8), torch.randn(2, 3, 8), ct_mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="mode"):
        FusionConfig(mode="sum")
    with pytest.raises(ValueError, match="divisible|multiple"):
        FusionConfig(dim=10, num_heads=3)
    with pytest.raises(ValueError, match="not both"):
        PetCtFusion(FusionConfig(dim=8), dim=4)


def test_cross_attention_gradient_reaches_both_modalities():
    attn = CrossAttention(4, num_heads=2)
    q, kv = torch.randn(1, 3, 4, requires_grad=True), torch.randn(1, 5, 4, requires_grad=True)
    z, a = attn(q, kv)
    z.sum().backward()
    assert a.shape == (1, 2, 3, 5)
    assert q.grad.abs().sum() > 0 and kv.grad.abs().sum() > 0


# ---- Eq. 3, 4, 9: one-directional InfoNCE ------------------------------------------------------------------------
def test_one_way_clip_loss_by_hand():
    # unit rows v1 = [1, 0], v2 = [0.6, 0.8]; t1 = [1, 0], t2 = [0, 1]; τ = 1
    # image 1: −log(e¹ / (e¹ + e⁰)) = log(1 + e⁻¹);  image 2: −log(e^0.8 / (e^0.6 + e^0.8)) = log(1 + e^-0.2)
    v = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(-0.2))) / 2      # 0.45570
    assert one_way_clip_loss(v, t, temperature=1.0).item() == pytest.approx(expected, abs=1e-6)
    # text→image would give (log(1 + e^-0.4) + log(1 + e^-0.8)) / 2 = 0.44206: the paper's loss is one-way
    assert info_nce(v, t, 1.0, symmetric=True).item() != pytest.approx(expected, abs=1e-3)
    # Eq. 9 on fused tokens: Z_cross (B, N, D) is mean-pooled first (sample 2: mean of [1.2, 1.6] and [0, 0])
    z = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[1.2, 1.6], [0.0, 0.0]]])
    assert torch.allclose(pool_tokens(z), torch.tensor([[1.0, 0.0], [0.6, 0.8]]))
    assert one_way_clip_loss(z, t, temperature=1.0).item() == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(2, 3\)"):
        one_way_clip_loss(z, torch.randn(2, 3))


# ---- the ROI: SUV threshold, voxels -> tokens ---------------------------------------------------------------------
def _roi_volume():
    """4×4×4 mask, 2×2×2 patches -> grid 2×2×2, token t = (i·2 + j)·2 + k for patch (i, j, k)."""
    m = torch.zeros(4, 4, 4, dtype=torch.bool)
    m[0, 0, 0] = True           # patch (0,0,0) = token 0: 1 voxel of 8
    m[0, 0:2, 2:4] = True       # patch (0,0,1) = token 1: 4 of 8
    m[2:4, 0, 0] = True         # patch (1,0,0) = token 4: 2 of 8
    m[2:4, 2:4, 2:4] = True     # patch (1,1,1) = token 7: 8 of 8
    return m


def test_voxel_mask_to_tokens_by_hand():
    m = _roi_volume()
    frac = token_roi_fraction(m, 2)
    assert frac.tolist() == [1 / 8, 4 / 8, 0, 0, 2 / 8, 0, 0, 1.0]
    assert torch.nonzero(token_roi_mask(m, 2)).flatten().tolist() == [0, 1, 4, 7]              # any voxel
    assert torch.nonzero(token_roi_mask(m, 2, rule=0.25)).flatten().tolist() == [1, 4, 7]
    assert torch.nonzero(token_roi_mask(m, 2, rule=0.5)).flatten().tolist() == [1, 7]
    assert torch.nonzero(token_roi_mask(m, (2, 2, 2), rule=1.0)).flatten().tolist() == [7]
    batched = token_roi_mask(torch.stack([m, torch.zeros_like(m)]), 2)
    assert batched.shape == (2, 8) and batched[1].sum() == 0
    # anisotropic patches: (1, 4, 4) -> grid 4×1×1, one token per slice
    assert token_roi_fraction(m, (1, 4, 4)).tolist() == [5 / 16, 0, 1 / 16 + 4 / 16, 1 / 16 + 4 / 16]


def test_high_suv_mask_thresholds_at_or_above():
    suv = torch.tensor([[[0.5, 2.49], [2.5, 9.0]]])
    assert high_suv_mask(suv).tolist() == [[[False, False], [True, True]]]
    assert high_suv_mask(suv, threshold=5).sum() == 1


def test_roi_mapping_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"\(2, 2, 2\).*\(4, 4, 5\)"):
        token_roi_mask(torch.zeros(4, 4, 5, dtype=torch.bool), 2)
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        token_roi_mask(torch.zeros(4, 4, dtype=torch.bool), 2)
    with pytest.raises(ValueError, match="rule"):
        token_roi_mask(_roi_volume(), 2, rule=0.0)
    with pytest.raises(ValueError, match="rule"):
        token_roi_mask(_roi_volume(), 2, rule="majority")


def test_roi_components_on_the_token_grid():
    roi = token_roi_mask(_roi_volume(), 2)                                 # tokens 0, 1, 4, 7 on a 2×2×2 grid
    labels = roi_components(roi, (2, 2, 2))
    # 0–1 share a face (k differs), 0–4 share a face (i differs); 7 = (1,1,1) touches none of them by a face
    assert labels.tolist() == [1, 1, 0, 0, 1, 0, 0, 2]
    # with corners counted (26-neighbourhood), 7 touches 0, 1 and 4
    assert roi_components(roi, (2, 2, 2), connectivity=3).tolist() == [1, 1, 0, 0, 1, 0, 0, 1]
    with pytest.raises(ValueError, match=r"\(8,\).*\(2, 2, 3\)"):
        roi_components(roi, (2, 2, 3))


# ---- Eq. 10: the visual attention map ------------------------------------------------------------------------
# Sequence [img0, img1, txt0, txt1], causal attention, 1 layer, 1 head (rows sum to one).
A_HAND = torch.tensor([[1.0, 0.0, 0.0, 0.0],
                       [0.5, 0.5, 0.0, 0.0],
                       [0.2, 0.6, 0.2, 0.0],
                       [0.1, 0.3, 0.2, 0.4]])


def test_visual_attention_map_by_hand():
    att = A_HAND.view(1, 1, 1, 4, 4)                                       # (L, B, H, S, S)
    mv = visual_attention_map(att, image_index=(0, 2), text_index=(2, 4))
    # mean over text rows 2, 3 of columns 0, 1: [(0.2 + 0.1)/2, (0.6 + 0.3)/2]
    assert torch.allclose(mv, torch.tensor([[0.15, 0.45]]))
    # the same from a list of (B, H, S, S), a range, a slice, explicit positions
    assert torch.allclose(visual_attention_map([A_HAND.view(1, 1, 4, 4)], range(0, 2), slice(2, 4)), mv)
    assert torch.allclose(visual_attention_map(att, [0, 1], torch.tensor([2, 3])), mv)
    # only row 3: [0.1, 0.3]
    assert torch.allclose(visual_attention_map(att, (0, 2), [3]), torch.tensor([[0.1, 0.3]]))


def test_visual_attention_map_averages_layers_and_heads():
    other = torch.tensor([[1.0, 0.0, 0.0, 0.0],
                          [0.5, 0.5, 0.0, 0.0],
                          [0.4, 0.4, 0.2, 0.0],
                          [0.7, 0.1, 0.1, 0.1]])                           # its map: [0.55, 0.25]
    # 2 layers × 2 heads: layer 0 heads (hand, other), layer 1 heads (other, other)
    att = [torch.stack([A_HAND, other])[None], torch.stack([other, other])[None]]
    mv = visual_attention_map(att, (0, 2), (2, 4))
    # (1·[0.15, 0.45] + 3·[0.55, 0.25]) / 4 = [0.45, 0.30]
    assert torch.allclose(mv, torch.tensor([[0.45, 0.30]]))
    assert torch.allclose(visual_attention_map(torch.stack(att), (0, 2), (2, 4)), mv)


def test_visual_attention_map_per_sample_positions():
    # sample 1 is left-padded by one token: [pad, img0, img1, txt0, txt1]
    padded = torch.zeros(5, 5)
    padded[1:, 1:] = A_HAND
    a0 = torch.zeros(5, 5)
    a0[:4, :4] = A_HAND
    att = torch.stack([a0, padded])[:, None]                                # (B=2, H=1, 5, 5)
    mv = visual_attention_map([att], image_index=[(0, 2), (1, 3)], text_index=[(2, 4), (3, 5)])
    assert torch.allclose(mv, torch.tensor([[0.15, 0.45], [0.15, 0.45]]))


def test_visual_attention_map_rejects_bad_inputs():
    att = A_HAND.view(1, 1, 1, 4, 4)
    with pytest.raises(ValueError, match=r"\(L, B, H, S, S\), got \(1, 1, 4, 4\)"):
        visual_attention_map(A_HAND.view(1, 1, 4, 4), (0, 2), (2, 4))
    with pytest.raises(ValueError, match=r"layer 1 attention is \(1, 2, 4, 4\).*\(1, 1, 4, 4\)"):
        visual_attention_map([torch.rand(1, 1, 4, 4), torch.rand(1, 2, 4, 4)], (0, 2), (2, 4))
    with pytest.raises(ValueError, match="must all follow the image"):
        visual_attention_map(att, (1, 3), (0, 1))
    with pytest.raises(ValueError, match=r"outside the sequence of length 4"):
        visual_attention_map(att, (0, 2), (2, 6))
    with pytest.raises(ValueError, match="different image token counts"):
        visual_attention_map(torch.rand(1, 2, 1, 4, 4), [(0, 2), (0, 1)], (2, 4))
    with pytest.raises(ValueError, match="3 per-sample image indices for a batch of 1"):
        visual_attention_map(att, [(0, 1), (0, 1), (0, 1)], (2, 4))
    with pytest.raises(ValueError, match="eager"):
        visual_attention_map([None, None], (0, 2), (2, 4))          # what an sdpa model returns


def test_visual_attention_map_is_float32_for_bf16_attentions():
    mv = visual_attention_map(A_HAND.view(1, 1, 1, 4, 4).bfloat16(), (0, 2), (2, 4))
    assert mv.dtype == torch.float32
    assert torch.allclose(mv, torch.tensor([[0.15, 0.45]]), atol=2e-3)    # 0.2, 0.6, … are not exact in bf16


# ---- Eq. 11–12: the loss ---------------------------------------------------------------------------------------
def test_union_loss_by_hand():
    mv = torch.tensor([[0.15, 0.45]])
    # S = {img0}: share = 0.15 / 0.60 = 0.25, L = 0.75² ; S = {img1}: share 0.75, L = 0.25²
    assert roi_attention_share(mv, torch.tensor([True, False])).item() == pytest.approx(0.25)
    assert attention_alignment_loss(mv, torch.tensor([True, False])).item() == pytest.approx(0.5625)
    assert attention_alignment_loss(mv, torch.tensor([[False, True]])).item() == pytest.approx(0.0625)
    # all image tokens in S: L = 0
    assert attention_alignment_loss(mv, torch.tensor([True, True])).item() == pytest.approx(0.0, abs=1e-12)
    # Eq. 12 with λ = 0.1: 2.0 + 0.1·0.5625
    l_align = attention_alignment_loss(mv, torch.tensor([True, False]))
    assert final_loss(torch.tensor(2.0), l_align, lam=0.1).item() == pytest.approx(2.05625)


def test_union_and_per_component_readings_differ_on_two_regions():
    # 4 image tokens on a 1×1×4 grid; M^v = [0.4, 0.1, 0.3, 0.2] (sums to 1)
    mv = torch.tensor([[0.4, 0.1, 0.3, 0.2]])
    two = torch.tensor([True, False, True, False])         # regions {0} and {2}
    one = torch.tensor([True, True, False, False])         # one region {0, 1}
    grid = (1, 1, 4)
    # union: share 0.7 -> 0.3² = 0.09; per region: (1 − 0.4)² + (1 − 0.3)² = 0.36 + 0.49 = 0.85;
    # literal: |S|·0.09 = 0.18
    assert attention_alignment_loss(mv, two).item() == pytest.approx(0.09)
    assert attention_alignment_loss(mv, two, reading="components", grid=grid).item() == pytest.approx(0.85)
    assert attention_alignment_loss(mv, two, reading="literal").item() == pytest.approx(0.18)
    # region labels given directly give the same per-region loss
    labels = torch.tensor([1, 0, 2, 0])
    assert attention_alignment_loss(mv, labels, reading="components").item() == pytest.approx(0.85)
    # one region: union and per-region agree, 0.5² = 0.25
    assert attention_alignment_loss(mv, one).item() == pytest.approx(0.25)
    assert attention_alignment_loss(mv, one, reading="components", grid=grid).item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="grid"):
        attention_alignment_loss(mv, two, reading="components")


def test_loss_batch_leaves_out_images_without_roi():
    mv = torch.tensor([[0.15, 0.45], [0.5, 0.5]])
    roi = torch.tensor([[True, False], [False, False]])
    assert attention_alignment_loss(mv, roi, reduction="none").tolist() == pytest.approx([0.5625, 0.0])
    assert attention_alignment_loss(mv, roi).item() == pytest.approx(0.5625)                 # mean over 1 image
    assert attention_alignment_loss(mv, roi, reduction="sum").item() == pytest.approx(0.5625)
    assert attention_alignment_loss(mv, torch.zeros(2, 2, dtype=torch.bool)).item() == 0.0


def test_gradient_flows_to_the_attention_inputs():
    att = A_HAND.view(1, 1, 1, 4, 4).clone().requires_grad_(True)
    loss = attention_alignment_loss(visual_attention_map(att, (0, 2), (2, 4)), torch.tensor([True, False]))
    loss.backward()
    # L = (1 − m0/(m0 + m1))², m = [0.15, 0.45]: dL/dm0 = −2·0.75·0.45/0.36 = −1.875,
    # dL/dm1 = 2·0.75·0.15/0.36 = 0.625; each text row carries 1/2 of m_c (mean over 2 rows), so the gradient
    # is −0.9375 (column 0) and 0.3125 (column 1) on text rows 2 and 3, and 0 elsewhere
    g = att.grad[0, 0, 0]
    expected = torch.zeros(4, 4)
    expected[2:, 0], expected[2:, 1] = -0.9375, 0.3125
    assert torch.allclose(g, expected, atol=1e-6)
    # and on through the softmax to the attention logits of a multi-layer, multi-head map
    logits = torch.randn(2, 1, 2, 5, 5, requires_grad=True)
    att = logits.masked_fill(torch.ones(5, 5, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
    loss = attention_alignment_loss(visual_attention_map(att, (1, 3), (3, 5)), torch.tensor([True, False]),
                                    reading="components", grid=(1, 2))
    loss.backward()
    assert logits.grad[:, :, :, 3:, :4].abs().sum() > 0
    assert logits.grad[:, :, :, :3].abs().sum() == 0          # rows before the text do not enter M^v


def test_loss_rejects_mismatched_inputs():
    mv = torch.rand(2, 4)
    with pytest.raises(ValueError, match=r"roi \(2, 3\) does not match the attention map M\^v \(2, 4\)"):
        attention_alignment_loss(mv, torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(B, T\), got \(4,\)"):
        attention_alignment_loss(torch.rand(4), torch.zeros(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool.*integer"):
        attention_alignment_loss(mv, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="reading"):
        attention_alignment_loss(mv, torch.zeros(2, 4, dtype=torch.bool), reading="per-token")
    with pytest.raises(ValueError, match="labels must be >= 0"):
        attention_alignment_loss(mv, torch.tensor([1, -1, 0, 0]), reading="components")
    with pytest.raises(ValueError, match="λ"):
        final_loss(torch.tensor(1.0), torch.tensor(1.0), lam=-1)


# ---- the control: a random ROI of the same size ---------------------------------------------------------------
def test_random_roi_keeps_size_and_is_seeded():
    roi = torch.zeros(3, 64, dtype=torch.bool)
    roi[0, :5] = True
    roi[1, 10:30] = True                      # sample 2 has no ROI
    a, b, c = random_roi_like(roi, seed=0), random_roi_like(roi, seed=0), random_roi_like(roi, seed=1)
    assert a.dtype == torch.bool and a.shape == roi.shape
    assert a.sum(-1).tolist() == [5, 20, 0]
    assert torch.equal(a, b) and not torch.equal(a, c)
    away = random_roi_like(roi, seed=0, exclude_roi=True)
    assert away.sum(-1).tolist() == [5, 20, 0] and not (away & roi).any()
    with pytest.raises(ValueError, match="ROI of 40 tokens but only 24"):
        random_roi_like(torch.arange(64) < 40, seed=0, exclude_roi=True)


def test_shifted_random_roi_keeps_size_and_regions():
    roi = token_roi_mask(_roi_volume(), 1)                 # the 4×4×4 mask itself, one token per voxel
    labels = roi_components(roi, (4, 4, 4))
    moved = random_roi_like(labels, seed=3, mode="shift", grid=(4, 4, 4))
    assert (moved != 0).sum() == roi.sum()
    assert sorted(torch.bincount(moved)[1:].tolist()) == sorted(torch.bincount(labels)[1:].tolist())
    assert not torch.equal(moved, labels)
    with pytest.raises(ValueError, match="grid"):
        random_roi_like(roi, seed=0, mode="shift", grid=(4, 4))
