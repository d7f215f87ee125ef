"""Reg2RG's local feature decoupling (Eq. 3–7): shapes, flags of Tables V–VI, and what crop-and-resize erases."""
import numpy as np
import pytest
import torch

from rrg_lite.encoders.vit import vit3d
from rrg_lite.mllm.text import IMAGE_TOKEN, REGION_TOKEN
from rrg_lite.systems.reg2rg.features import (
    ABLATIONS,
    LFDConfig,
    LocalFeatureDecoupling,
    RegionTokens,
    ablation_config,
)

G = 24                       # test volumes are G³ voxels
SMALL = dict(input_shape=(8, 16, 16), llm_dim=24, perceiver_depth=1, perceiver_heads=2, mask_patch=(4, 8, 8),
             mask_dim=16, mask_heads=2)


def _lfd(**kw) -> LocalFeatureDecoupling:
    torch.manual_seed(0)
    enc = vit3d(img_size=(8, 16, 16), patch_size=(4, 8, 8), in_channels=kw.pop("channels", 1), embed_dim=16,
                depth=1, heads=2)
    return LocalFeatureDecoupling(enc, LFDConfig(**{**SMALL, **kw})).eval()


def _sphere(r: float, centre=None) -> torch.Tensor:
    z, y, x = np.mgrid[:G, :G, :G]
    c = (G - 1) / 2 if centre is None else centre
    cz, cy, cx = (c, c, c) if np.isscalar(c) else c
    return torch.from_numpy((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= r * r)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative difference ‖a − b‖ / mean(‖a‖, ‖b‖)."""
    return float(2 * (a - b).norm() / (a.norm() + b.norm()))


def _studies(R=3):
    masks = torch.stack([_sphere(4, (8, 8, 8)), _sphere(5, (14, 12, 12)), _sphere(3, (18, 16, 6))][:R])
    torch.manual_seed(1)
    return torch.rand(1, G, G, G), masks


# ---- shapes and the ablation flags ---------------------------------------------------------------------------
def test_full_model_shapes_33_tokens_per_region():
    lfd = _lfd()
    v, m = _studies(3)
    out = lfd(v, m)
    assert out.regions.shape == (3, 33, 24)          # K = 32 texture tokens + 1 geometry token, D = 24
    assert out.image.shape == (32, 24)               # K_g = 32 global tokens
    assert lfd.config.tokens_per_region == 33
    assert out.num_visual_tokens() == {IMAGE_TOKEN: 32, REGION_TOKEN: 33}
    emb = out.visual_embeds(order=[2, 0, 1])
    assert emb["image"].shape == (1, 32, 24) and emb["region"].shape == (3, 33, 24)
    assert torch.equal(emb["region"][0], out.regions[2]) and torch.equal(emb["region"][2], out.regions[1])


@pytest.mark.parametrize("name,k_region,has_image", [
    ("full", 33, True), ("no_lfd", 32, True), ("glb", None, True), ("txt", 32, False), ("txt+geo", 33, False),
    ("txt+geo+glb", 33, True),
])
def test_ablation_settings_token_counts(name, k_region, has_image):
    torch.manual_seed(0)
    enc = vit3d(img_size=(8, 16, 16), patch_size=(4, 8, 8), in_channels=1, embed_dim=16, depth=1, heads=2)
    cfg = ablation_config(name, LFDConfig(**SMALL))
    lfd = LocalFeatureDecoupling(enc, cfg)
    v, m = _studies(2)
    out = lfd(v, m)
    assert (out.regions is None) == (k_region is None)
    if k_region is not None:
        assert out.regions.shape == (2, k_region, 24)
    assert (out.image is not None) == has_image
    assert (lfd.mask_encoder is not None) == cfg.use_geometry     # no f_M built when geometry is off
    assert set(ABLATIONS) == {"full", "no_lfd", "glb", "txt", "txt+geo", "txt+geo+glb"}


def test_mask_encoder_is_a_three_layer_vit_mean_pooled():
    lfd = _lfd()
    assert len(lfd.mask_encoder.blocks) == 3                 # "a lightweight 3-layer ViT3D"
    m = _studies(2)[1]
    x = lfd.geometry_inputs(m)
    assert x.shape == (2, 1, 8, 16, 16) and float(x.min()) >= 0 and float(x.max()) <= 1
    with torch.no_grad():
        by_hand = lfd.geometry_proj(lfd.mask_encoder(x).mean(dim=1))   # Eq. 4: f_P(mean f_M(M))
        assert torch.allclose(lfd.geometry_tokens(m)[:, 0], by_hand, atol=1e-6)


# ---- what the texture and geometry tokens see ----------------------------------------------------------------
def test_geometry_changes_with_size_texture_does_not():
    # uniform texture: a ball of radius 4 and one of radius 8 crop-and-resize to nearly the same input
    lfd = _lfd()
    v = torch.ones(1, G, G, G)
    m = torch.stack([_sphere(4), _sphere(8)])
    with torch.no_grad():
        out = lfd(v, m)
        noisy = lfd(torch.rand(1, G, G, G, generator=torch.Generator().manual_seed(0)), m)
    tex_size = _rel(out.regions[0, :32], out.regions[1, :32])          # measured 0.018
    tex_texture = _rel(out.regions[1, :32], noisy.regions[1, :32])     # control: new texture, same mask (0.10)
    geo_size = _rel(out.regions[0, 32], out.regions[1, 32])            # measured 0.36
    assert tex_size < 0.5 * tex_texture
    assert geo_size > 5 * tex_size
    assert torch.allclose(out.regions[1, 32], noisy.regions[1, 32])    # geometry reads the mask only


def test_cube_size_and_place_are_erased_exactly_from_texture():
    # cubes of side 4 and 8 (and the side-4 cube moved) crop to constant blocks: identical f_V inputs
    lfd = _lfd()
    v = torch.full((1, G, G, G), 0.7)
    small, big, moved = (torch.zeros(G, G, G, dtype=torch.bool) for _ in range(3))
    small[2:6, 2:6, 2:6] = True
    big[8:16, 8:16, 8:16] = True
    moved[16:20, 12:16, 3:7] = True
    m = torch.stack([small, big, moved])
    assert torch.equal(lfd.texture_inputs(v, m)[0], lfd.texture_inputs(v, m)[1])
    with torch.no_grad():
        out = lfd(v, m)
    assert torch.allclose(out.regions[0, :32], out.regions[1, :32], atol=1e-6)
    assert torch.allclose(out.regions[0, :32], out.regions[2, :32], atol=1e-6)
    assert not torch.allclose(out.regions[0, 32], out.regions[1, 32], atol=1e-3)   # size
    assert not torch.allclose(out.regions[0, 32], out.regions[2, 32], atol=1e-3)   # place


def test_masking_zeroes_outside_mask_voxels():
    # the mask's box is the whole 8×16×16 volume, so the crop needs no resampling: input = M ⊙ V exactly
    lfd = _lfd()
    v = torch.rand(1, 8, 16, 16, generator=torch.Generator().manual_seed(0)) + 1.0   # no zeros of its own
    m = torch.ones(1, 8, 16, 16, dtype=torch.bool)
    m[0, 2:5, 3:9, 4:12] = False                       # a hole inside the box
    x = lfd.texture_inputs(v, m)[0]
    assert torch.equal(x[:, m[0]], v[:, m[0]])
    assert (x[:, ~m[0]] == 0).all()
    # without LFD the region is M ⊙ V at the whole field of view: zeros far from the organ, no crop
    nolfd = _lfd(lfd=False, use_geometry=False)
    ball = _sphere(3, (6, 6, 6))[None]
    y = nolfd.texture_inputs(torch.ones(1, G, G, G), ball)[0, 0]      # (8, 16, 16) of a 24³ volume
    assert float(y[-1].abs().max()) == 0.0 and float(y.max()) > 0.5   # last slice far from the ball: all fill


def test_fill_value_and_global_input():
    lfd = _lfd(fill=-1.0)
    v = torch.ones(1, 8, 16, 16)
    m = torch.ones(1, 8, 16, 16, dtype=torch.bool)
    m[0, 0, 0, 0] = False
    assert float(lfd.texture_inputs(v, m)[0, 0, 0, 0, 0]) == -1.0
    g = lfd.global_input(torch.arange(8 * 16 * 16, dtype=torch.float32).reshape(1, 8, 16, 16))
    assert g.shape == (1, 1, 8, 16, 16) and float(g[0, 0, 0, 0, 1]) == 1.0   # at input_shape: unchanged


# ---- frozen encoder, cached features -------------------------------------------------------------------------
def test_encoder_is_frozen_and_cached_features_give_the_same_tokens():
    lfd = _lfd().train()
    assert not lfd.encoder.training and lfd.adapter.training
    v, m = _studies(2)
    out = lfd(v, m)
    (out.regions.sum() + out.image.sum()).backward()
    assert all(p.grad is None for p in lfd.encoder.parameters())
    assert any(p.grad is not None for p in lfd.adapter.parameters())
    assert any(p.grad is not None for p in lfd.mask_encoder.parameters())
    lfd.eval()
    with torch.no_grad():
        tex = lfd.encode(lfd.texture_inputs(v, m))
        glb = lfd.encode(lfd.global_input(v))
        a, b = lfd(v, m), lfd(v, m, texture_features=tex, global_features=glb)
    assert tex.shape == (2, 8, 16) and glb.shape == (1, 8, 16)       # N = 2·2·2 patches, E = 16
    assert torch.allclose(a.regions, b.regions) and torch.allclose(a.image, b.image)


# ---- clear errors ------------------------------------------------------------------------------------------------
def test_config_errors():
    with pytest.raises(ValueError, match="no geometry token"):
        LFDConfig(lfd=False)
    with pytest.raises(ValueError, match="all off"):
        LFDConfig(use_texture=False, use_geometry=False, use_global=False)
    with pytest.raises(ValueError, match="must divide"):
        LFDConfig(input_shape=(8, 16, 16), mask_patch=(3, 8, 8))
    with pytest.raises(ValueError, match="unknown setting"):
        ablation_config("txt+glb")
    with pytest.raises(ValueError, match="either an LFDConfig or keyword"):
        LocalFeatureDecoupling(vit3d(), LFDConfig(), llm_dim=8)
    with pytest.raises(ValueError, match="encoder_dim"):
        LocalFeatureDecoupling(torch.nn.Identity(), LFDConfig())


def test_input_errors():
    lfd = _lfd()
    v, m = _studies(2)
    with pytest.raises(ValueError, match=r"\(C, D, H, W\)"):
        lfd(v[0], m)
    with pytest.raises(ValueError, match="volume's grid"):
        lfd(v, m[:, :-1])
    with pytest.raises(ValueError, match="must be bool"):
        lfd(v, m.float())
    empty = m.clone()
    empty[1] = False
    with pytest.raises(ValueError, match=r"mask\(s\) \[1\] are empty"):
        lfd(v, empty)
    with pytest.raises(ValueError, match="2 rows for 1 region"):
        lfd(v, m[:1], texture_features=torch.zeros(2, 8, 16))
    with pytest.raises(ValueError, match="not a permutation"):
        RegionTokens(torch.zeros(2, 3, 4), None).visual_embeds(order=[0, 0])


def test_encoder_output_shape_is_checked():
    class Pooled(torch.nn.Module):                   # returns (m, E), not (m, N, E)
        embed_dim = 4

        def forward(self, x):
            return x.flatten(1)[:, :4]

    lfd = LocalFeatureDecoupling(Pooled(), LFDConfig(**{**SMALL, "use_geometry": False}))
    v, m = _studies(1)
    with pytest.raises(ValueError, match=r"must map \(m, C, d, h, w\) to \(m, N, 4\)"):
        lfd(v, m)
