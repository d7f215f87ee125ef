"""Small ViTs and the full-scale encoders on tiny random configs (no downloads)."""
import pytest
import torch

from rrg_lite.encoders.pretrained import m3d_clip_vit, rad_dino, radfm_vit3d
from rrg_lite.encoders.vit import ViT, vit2d, vit3d


def test_vit_shapes_2d_3d():
    torch.manual_seed(0)
    assert vit2d(img_size=(32, 32), patch_size=8, embed_dim=16, heads=2)(torch.randn(2, 1, 32, 32)).shape == (2, 16, 16)
    enc = vit3d(img_size=(8, 32, 32), patch_size=(4, 8, 8), embed_dim=16, heads=2)
    assert enc.num_patches == 2 * 4 * 4
    assert enc(torch.randn(3, 1, 8, 32, 32)).shape == (3, 32, 16)
    assert ViT(3, (8, 32, 32), (4, 8, 8), embed_dim=16, heads=2, return_cls=True)(torch.randn(1, 1, 8, 32, 32)).shape == (1, 33, 16)


def test_patchify_order_matches_conv_grid():
    # The linear patch embedding must see patches in the same row-major grid order as the conv one.
    enc = ViT(3, (4, 4, 4), (2, 2, 2), embed_dim=8, heads=2, patch_embed="linear")
    x = torch.arange(64.0).reshape(1, 1, 4, 4, 4)
    p = enc.patchify(x)
    assert p.shape == (1, 8, 8)
    assert p[0, 0].tolist() == [0, 1, 4, 5, 16, 17, 20, 21]          # first 2x2x2 patch
    assert p[0, 1].tolist() == [2, 3, 6, 7, 18, 19, 22, 23]          # next along width


def test_vit_bad_input():
    enc = vit2d(img_size=(32, 32), patch_size=8, embed_dim=16, heads=2)
    with pytest.raises(ValueError, match="expects"):
        enc(torch.randn(2, 1, 30, 32))
    with pytest.raises(TypeError, match="floating"):
        enc(torch.ones(2, 1, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="divide"):
        vit2d(img_size=(30, 32), patch_size=8)


def test_m3d_clip_vit_small_random_and_weights_roundtrip(tmp_path):
    from safetensors.torch import save_file

    enc = m3d_clip_vit(img_size=(8, 32, 32), patch_size=(4, 16, 16), hidden_size=32, mlp_dim=64, num_layers=1, num_heads=2)
    out = enc(torch.randn(2, 1, 8, 32, 32))
    assert out.shape == (2, 2 * 2 * 2, 32) and enc.num_patches == 8 and enc.grid == (2, 2, 2)
    state = {f"vision_encoder.{k}": v.clone() for k, v in enc.vit.state_dict().items()}
    state["text_encoder.x"] = torch.zeros(1)  # other parts of the CLIP checkpoint are ignored
    save_file(state, str(tmp_path / "model.safetensors"))
    again = m3d_clip_vit(tmp_path, img_size=(8, 32, 32), patch_size=(4, 16, 16), hidden_size=32, mlp_dim=64, num_layers=1, num_heads=2)
    x = torch.randn(1, 1, 8, 32, 32)
    torch.testing.assert_close(again.eval()(x), enc.eval()(x))
    with pytest.raises(ValueError, match="do not fit"):
        m3d_clip_vit(tmp_path, img_size=(8, 32, 32), patch_size=(4, 16, 16), hidden_size=32, mlp_dim=64, num_layers=2, num_heads=2)


def test_rad_dino_small_random_config():
    from transformers import Dinov2Config

    cfg = Dinov2Config(image_size=28, patch_size=14, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    enc = rad_dino(config=cfg)
    out = enc(torch.randn(2, 3, 28, 28))
    assert out.shape == (2, 4, 32) and enc.num_patches == 4
    with pytest.raises(ValueError, match="exactly one"):
        rad_dino()


def test_radfm_vit3d_small():
    enc = radfm_vit3d(img_size=(4, 32, 32), patch_size=(4, 16, 16), embed_dim=16, depth=1, heads=2)
    assert enc(torch.randn(1, 3, 4, 32, 32)).shape == (1, 4, 16)


def test_conv_stem_grid_and_strides():
    """conv_stem: stride 2 per stage on the axes whose patch factor is left, then a stride-1 conv to E."""
    import torch

    from rrg_lite.encoders.vit import ConvStem, ViT

    stem = ConvStem(3, 2, (4, 8, 8), width=16, embed_dim=8)
    strides = [m.stride for m in stem.net if isinstance(m, torch.nn.Conv3d)]
    assert strides == [(2, 2, 2), (2, 2, 2), (1, 2, 2), (1, 1, 1)]
    assert stem(torch.zeros(1, 2, 8, 32, 32)).shape == (1, 2 * 4 * 4, 8)
    vit = ViT(2, (32, 32), (16, 16), 1, embed_dim=8, depth=1, heads=2, patch_embed="conv_stem", stem_width=8,
              final_norm=False)
    assert vit(torch.zeros(2, 1, 32, 32)).shape == (2, 4, 8) and isinstance(vit.norm, torch.nn.Identity)
    with pytest.raises(ValueError, match="power-of-two"):
        ViT(2, (24, 24), (12, 12), 1, patch_embed="conv_stem")
