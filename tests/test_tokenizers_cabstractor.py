"""C-Abstractor (Honeybee, as M4CXR uses it): shapes, hand-checked pooling and blocks, gradients, clear errors."""
import math

import pytest
import torch

from rrg_lite.tokenizers.base import VisualTokenizer
from rrg_lite.tokenizers.cabstractor import (CAbstractor, CAbstractorConfig, LayerNorm2d, RegBottleneck,
                                             SqueezeExcite, pool_only_projector)


def _small(**kw):
    base = dict(in_dim=8, out_dim=12, num_patches=16, num_queries=9, hidden_dim=16, depth=2, mlp_depth=2)
    base.update(kw)
    return CAbstractor(CAbstractorConfig(**base))


def test_shapes_and_token_count():
    torch.manual_seed(0)
    proj = _small()
    assert isinstance(proj, VisualTokenizer)
    out = proj(torch.randn(2, 1, 16, 8))
    assert out.shape == (2, 9, 12) and proj.num_tokens == 9
    # T images are tokenised one by one and concatenated in order: (B, T*s*s, D)
    x = torch.randn(2, 3, 16, 8)
    out = proj(x)
    assert out.shape == (2, 27, 12) and proj.tokens_for(3, 16) == 27
    torch.testing.assert_close(out[:, 9:18], proj(x[:, 1:2]), atol=1e-5, rtol=1e-5)   # image 1 alone
    torch.testing.assert_close(out[1:2], proj(x[1:2]), atol=1e-5, rtol=1e-5)          # no mixing across the batch


def test_full_scale_grid_1369_to_361():
    # RAD-DINO's 37×37 grid pooled to 19×19 (not an integer stride): narrow widths keep the test cheap
    proj = CAbstractor(in_dim=4, out_dim=6, hidden_dim=8, depth=1)
    assert proj.config.grid == 37 and proj.config.pooled_grid == 19 and proj.num_tokens == 361
    assert proj(torch.randn(1, 1, 1369, 4)).shape == (1, 361, 6)


def test_default_config_is_the_papers():
    cfg = CAbstractorConfig()
    assert (cfg.in_dim, cfg.out_dim, cfg.num_patches, cfg.num_queries) == (768, 4096, 1369, 361)
    assert (cfg.hidden_dim, cfg.depth, cfg.mlp_depth) == (1024, 3, 2)
    with torch.device("meta"):              # shapes only, no memory
        proj = CAbstractor(cfg)
    assert tuple(proj.pos_emb.shape) == (1, 1369, 768)                 # SYSTEMS.md: (1, 1369, 768)
    assert len(proj.stage1) == 3 and len(proj.stage2) == 3
    assert [tuple(m.weight.shape) for m in proj.readout if isinstance(m, torch.nn.Linear)] == [(4096, 1024),
                                                                                               (4096, 4096)]


def test_pool_only_adaptive_pool_by_hand_on_a_non_divisible_grid():
    # 5×5 grid -> 3×3: adaptive pooling windows are rows/cols {0,1}, {1,2,3}, {3,4} (overlapping)
    proj = pool_only_projector(1, 1, num_patches=25, num_queries=9, pos_emb=False)
    assert proj.config.depth == 0 and proj.num_tokens == 9
    with torch.no_grad():
        proj.readout[0].weight.fill_(1.0)
        proj.readout[0].bias.zero_()
    x = torch.arange(25.0).reshape(1, 1, 25, 1)        # token (r, c) holds 5r + c, row-major
    out = proj(x)[0, :, 0].reshape(3, 3)
    # mean of 5r + c over a window = 5·mean(r) + mean(c); window means are 0.5, 2, 3.5
    m = [0.5, 2.0, 3.5]
    expected = torch.tensor([[5 * mi + mj for mj in m] for mi in m])   # [[3, 4.5, 6], [10.5, 12, 13.5], [18, 19.5, 21]]
    torch.testing.assert_close(out, expected)
    # 7×7 -> 3×3 keeps 9 tokens too: the token count is set by s, never by g
    assert pool_only_projector(2, 3, 49, 9)(torch.randn(1, 1, 49, 2)).shape == (1, 9, 3)


def test_pool_only_has_no_convolutions_and_one_linear():
    proj = pool_only_projector(8, 12, 16, 4)
    assert len(proj.stage1) == 0 and len(proj.stage2) == 0
    assert [type(m).__name__ for m in proj.readout] == ["Linear"]
    assert sum(p.numel() for p in proj.parameters()) == 16 * 8 + 8 * 12 + 12     # pos emb + Linear(8, 12)


def test_layer_norm_2d_normalises_channels_per_pixel():
    ln = LayerNorm2d(2, eps=0.0)
    x = torch.tensor([[[[1.0]], [[3.0]]]])           # (1, C=2, 1, 1): one pixel with channels [1, 3]
    # mean 2, variance 1 -> [-1, 1] (weight 1, bias 0 at init)
    torch.testing.assert_close(ln(x).flatten(), torch.tensor([-1.0, 1.0]))


def test_squeeze_excite_gate_by_hand():
    se = SqueezeExcite(2, 1)
    with torch.no_grad():
        se.fc1.weight.zero_(); se.fc1.bias.zero_()
        se.fc2.weight.zero_(); se.fc2.bias.copy_(torch.tensor([0.0, math.log(3.0)]))
    x = torch.ones(1, 2, 2, 2)
    # gate = sigmoid(fc2 bias) = [1/2, 3/4] whatever the input
    torch.testing.assert_close(se(x)[0, :, 0, 0], torch.tensor([0.5, 0.75]))


def test_bottleneck_residual_paths():
    torch.manual_seed(0)
    same = RegBottleneck(4, 4)
    assert isinstance(same.shortcut, torch.nn.Identity)
    with torch.no_grad():                             # zero the residual branch's last norm: y = SiLU(0 + x)
        same.conv3[1].weight.zero_(); same.conv3[1].bias.zero_()
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(same(x), torch.nn.functional.silu(x))
    wider = RegBottleneck(4, 6)                       # width changes: projection shortcut
    assert not isinstance(wider.shortcut, torch.nn.Identity)
    assert wider(x).shape == (2, 6, 3, 3)
    assert wider.conv2[0].groups == 6                 # the 3×3 conv is depthwise
    assert wider.se.fc1.out_channels == 1             # round(0.25 · C_in = 4) = 1


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    proj = _small(depth=1)
    x = torch.randn(2, 2, 16, 8, requires_grad=True)
    proj(x).square().mean().backward()
    assert x.grad.abs().sum() > 0
    no_grad = [n for n, p in proj.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert no_grad == []


def test_clear_errors():
    with pytest.raises(ValueError, match="num_patches=1368 is not a perfect square"):
        CAbstractorConfig(num_patches=1368)
    with pytest.raises(ValueError, match="num_queries=360 is not a perfect square"):
        CAbstractorConfig(num_queries=360)
    with pytest.raises(ValueError, match="depth must be >= 0"):
        CAbstractorConfig(depth=-1)
    proj = _small()
    with pytest.raises(ValueError, match=r"N=17 .*not a square grid.*num_patches=16 \(4×4\)"):
        proj(torch.randn(1, 1, 17, 8))               # e.g. a CLS token left in
    with pytest.raises(ValueError, match=r"N=25 .*5×5 grid"):
        proj(torch.randn(1, 1, 25, 8))
    with pytest.raises(ValueError, match="E=7"):
        proj(torch.randn(1, 1, 16, 7))
    with pytest.raises(ValueError, match="not both"):
        CAbstractor(CAbstractorConfig(), depth=1)
