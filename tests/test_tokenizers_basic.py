"""Linear, spatial-pooling and perceiver projectors: shapes, hand-checkable pooling, errors."""
import pytest
import torch

from rrg_lite.tokenizers.linear import LinearProjector
from rrg_lite.tokenizers.perceiver import PerceiverResampler
from rrg_lite.tokenizers.pooling import SpatialPoolingProjector


def test_linear_projector_keeps_every_token():
    proj = LinearProjector(8, 16, num_frames=3, num_patches=5, depth=1)
    x = torch.randn(2, 3, 5, 8)
    out = proj(x)
    assert out.shape == (2, 15, 16) and proj.num_tokens == 15
    torch.testing.assert_close(out[1, 7], proj.proj(x[1, 1, 2]))  # token 7 = frame 1, patch 2


def test_spatial_pooling_averages_grid_cells_by_hand():
    proj = SpatialPoolingProjector(1, 1, grid=(2, 2, 2), kernel=(1, 2, 2), mlp_depth=1)
    with torch.no_grad():
        proj.mlp[0].weight.fill_(1.0)
        proj.mlp[0].bias.zero_()
    x = torch.arange(8.0).reshape(1, 1, 8, 1)  # grid tokens in (d, h, w) order: slab 0 = 0..3, slab 1 = 4..7
    out = proj(x)
    assert out.shape == (1, 2, 1) and proj.num_tokens == 2
    assert out[0, :, 0].tolist() == [1.5, 5.5]


def test_spatial_pooling_frames_and_errors():
    proj = SpatialPoolingProjector(4, 6, grid=(2, 4, 4), kernel=(2, 2, 2), num_frames=3)
    assert proj(torch.randn(2, 3, 32, 4)).shape == (2, 3 * 4, 6)
    with pytest.raises(ValueError, match="grid"):
        proj(torch.randn(2, 3, 30, 4))
    with pytest.raises(ValueError, match="divide"):
        SpatialPoolingProjector(4, 6, grid=(2, 4, 4), kernel=(1, 3, 1))


def test_perceiver_resampler_fixed_token_count_and_ignores_text():
    torch.manual_seed(0)
    proj = PerceiverResampler(8, 12, num_tokens=5, depth=2, heads=2)
    x = torch.randn(3, 4, 6, 8)
    out = proj(x)
    assert out.shape == (3, 5, 12)
    q, qm = torch.randn(3, 7, 12), torch.ones(3, 7, dtype=torch.bool)
    torch.testing.assert_close(proj(x, q, qm), out)
    assert proj(torch.randn(3, 1, 6, 8)).shape == (3, 5, 12)  # any number of frames
    # Each sample's tokens depend only on that sample.
    torch.testing.assert_close(proj(x[1:2]), out[1:2])


def test_bad_feature_shapes():
    proj = LinearProjector(8, 16, num_patches=5)
    with pytest.raises(ValueError, match=r"\(B, T, N, E\)"):
        proj(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="E=7"):
        proj(torch.randn(2, 1, 5, 7))
    with pytest.raises(TypeError, match="floating"):
        proj(torch.ones(2, 1, 5, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="question_embeds"):
        proj(torch.randn(2, 1, 5, 8), torch.randn(3, 4, 16))
