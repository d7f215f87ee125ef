"""Honeybee's C-Abstractor, the projector of M4CXR: convolutions keep locality, an adaptive pool sets the count.

M4CXR (Sec. IV-D, Eq. 1) maps each image's encoder features to LLM tokens with ``X_i = M_P(f_i)``; M_P is a
randomly initialised C-Abstractor (Honeybee, Cha et al. CVPR 2024) of depth 3, MLP depth 2, hidden size 1024,
which turns RAD-DINO's 1369 = 37×37 patch tokens into 361 = 19×19 tokens (about a quarter). Per image::

    f_i       (N, E)             N = g·g patch tokens (no CLS token), E = encoder width
    + P       (N, E)             learned positional embedding (Honeybee: trunc-normal, std 0.02)
    -> grid   (E, g, g)          tokens in row-major order become a feature map
    -> S1     (H, g, g)          RegStage: ``depth`` ResNet-style bottleneck blocks, E -> H
    -> pool   (H, s, s)          AdaptiveAvgPool2d(s): any g works, 37 -> 19 included (cells overlap)
    -> S2     (H, s, s)          RegStage: ``depth`` blocks, H -> H
    -> tokens (s·s, H) -> MLP -> (s·s, D)    readout: Linear(H, D) [-> SiLU -> Linear(D, D)] × (mlp_depth − 1)

One bottleneck block (:class:`RegBottleneck`, the block that timm's ``RegStage`` builds by default, which Honeybee
uses with SiLU and a channels-last LayerNorm)::

    y = SiLU( LN(conv1x1(SE(SiLU(LN(dwconv3x3(SiLU(LN(conv1x1(x)))))))))  +  shortcut(x) )
    shortcut = identity when the width does not change, else LN(conv1x1(x)); SE = squeeze-and-excitation with
    round(se_ratio · C_in) hidden channels (se_ratio 0.25); the 3×3 conv is depthwise (group size 1).

Frames: the interface gives ``(B, T, N, E)``. M4CXR feeds every image through the projector on its own (Eq. 1),
so the T images of a sample are flattened into the batch, tokenised independently, and their tokens concatenated
in image order: output ``(B, T·s·s, D)``. Nothing mixes across images here; the LLM sees them side by side.

``depth=0`` is Honeybee's own degenerate case and the "pool-only" control of the chapter: no convolutions, only
the positional embedding, the adaptive average pool of the grid to s×s and the readout. :func:`pool_only_projector`
builds it with a single linear readout (``mlp_depth=1``) — the same token ratio with no locality modelling.
(:class:`~rrg_lite.tokenizers.pooling.SpatialPoolingProjector` cannot serve: its kernel must divide the grid,
and 37 -> 19 is not an integer stride.)
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from rrg_lite.tokenizers.base import VisualTokenizer

__all__ = ["CAbstractorConfig", "CAbstractor", "pool_only_projector", "RegBottleneck", "RegStage",
           "SqueezeExcite", "LayerNorm2d"]


@dataclass(frozen=True)
class CAbstractorConfig:
    """How :class:`CAbstractor` is built. Defaults = M4CXR at full scale (RAD-DINO 768 -> Mistral 4096).

    in_dim: E, the vision encoder's width. out_dim: D, the LLM's hidden size.
    num_patches: N = g·g tokens per image from the encoder (a perfect square; 1369 = 37² for RAD-DINO).
    num_queries: s·s tokens per image out (a perfect square; 361 = 19²).
    hidden_dim: H, width of the convolutional stages (1024). depth: blocks per stage (3; 0 = pool-only).
    mlp_depth: layers of the readout MLP (2: Linear -> SiLU -> Linear). se_ratio: SE width / input width (0.25).
    pos_emb: add the learned positional embedding (Honeybee: on). num_frames: images per sample (T) the
      caller plans for; only ``num_tokens`` uses it, any T is accepted at run time.
    layer_norm_eps: of every LayerNorm2d (timm's 1e-6).
    """

    in_dim: int = 768
    out_dim: int = 4096
    num_patches: int = 1369
    num_queries: int = 361
    hidden_dim: int = 1024
    depth: int = 3
    mlp_depth: int = 2
    se_ratio: float = 0.25
    pos_emb: bool = True
    num_frames: int = 1
    layer_norm_eps: float = 1e-6

    def __post_init__(self):
        for name in ("in_dim", "out_dim", "hidden_dim", "mlp_depth", "num_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"CAbstractorConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.depth < 0:
            raise ValueError(f"CAbstractorConfig.depth must be >= 0 (0 = pool-only), got {self.depth}")
        if not 0.0 <= self.se_ratio <= 1.0:
            raise ValueError(f"CAbstractorConfig.se_ratio must be in [0, 1], got {self.se_ratio}")
        _side("num_patches", self.num_patches)
        _side("num_queries", self.num_queries)

    @property
    def grid(self) -> int:
        """g, the side of the input grid."""
        return _side("num_patches", self.num_patches)

    @property
    def pooled_grid(self) -> int:
        """s, the side of the output grid."""
        return _side("num_queries", self.num_queries)

    def as_dict(self) -> dict:
        return asdict(self)


def _side(name: str, n: int) -> int:
    """The integer side of a square token grid, or a ValueError that names the count."""
    side = math.isqrt(n) if n >= 1 else 0
    if n < 1 or side * side != n:
        raise ValueError(f"C-Abstractor: {name}={n} is not a perfect square, so it cannot be a g×g token grid "
                         f"(RAD-DINO gives 1369 = 37×37 patch tokens once the CLS token is dropped)")
    return side


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map, at every pixel (timm's LayerNorm2d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SqueezeExcite(nn.Module):
    """Channel gate: (B, C, H, W) * sigmoid(W2 SiLU(W1 mean_hw(x))), with ``hidden`` channels in between."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.act = nn.SiLU()
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(self.act(self.fc1(x.mean(dim=(2, 3), keepdim=True))))   # (B, C, 1, 1)
        return x * gate.sigmoid()


def _conv_norm(c_in: int, c_out: int, kernel: int, eps: float, groups: int = 1, act: bool = True) -> nn.Sequential:
    # bias-free conv: the LayerNorm right after it has its own shift
    layers = [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, groups=groups, bias=False), LayerNorm2d(c_out, eps)]
    if act:
        layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class RegBottleneck(nn.Module):
    """One residual bottleneck block (see the module docstring): (B, C_in, H, W) -> (B, C_out, H, W).

    Bottleneck width = C_out (ratio 1), 3×3 conv depthwise, SE with round(se_ratio · C_in) channels.
    """

    def __init__(self, c_in: int, c_out: int, se_ratio: float = 0.25, eps: float = 1e-6):
        super().__init__()
        self.conv1 = _conv_norm(c_in, c_out, 1, eps)
        self.conv2 = _conv_norm(c_out, c_out, 3, eps, groups=c_out)
        se_hidden = int(round(c_in * se_ratio))
        self.se = SqueezeExcite(c_out, se_hidden) if se_hidden > 0 else nn.Identity()
        self.conv3 = _conv_norm(c_out, c_out, 1, eps, act=False)
        # a projection shortcut only where the width changes (the first block of a stage)
        self.shortcut = nn.Identity() if c_in == c_out else _conv_norm(c_in, c_out, 1, eps, act=False)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.se(self.conv2(self.conv1(x))))
        return self.act(y + self.shortcut(x))


class RegStage(nn.Sequential):
    """``depth`` bottleneck blocks at stride 1: the first maps C_in -> C_out, the others keep C_out."""

    def __init__(self, depth: int, c_in: int, c_out: int, se_ratio: float = 0.25, eps: float = 1e-6):
        super().__init__(*(RegBottleneck(c_in if i == 0 else c_out, c_out, se_ratio, eps) for i in range(depth)))


class CAbstractor(VisualTokenizer):
    """C-Abstractor (see the module docstring). ``CAbstractor(CAbstractorConfig(...))`` or keyword fields.

    forward(features (B, T, N, E)) -> tokens (B, T·s·s, D); ``N`` must equal ``config.num_patches``.
    """

    def __init__(self, config: CAbstractorConfig | None = None, **overrides):
        super().__init__()
        if config is None:
            config = CAbstractorConfig(**overrides)
        elif overrides:
            raise ValueError("CAbstractor: pass either a CAbstractorConfig or keyword fields, not both")
        self.config = cfg = config
        self.in_dim, self.out_dim = cfg.in_dim, cfg.out_dim
        if cfg.pos_emb:
            self.pos_emb = nn.Parameter(torch.zeros(1, cfg.num_patches, cfg.in_dim))
            nn.init.trunc_normal_(self.pos_emb, mean=0.0, std=0.02)
        else:
            self.register_parameter("pos_emb", None)
        width = cfg.hidden_dim if cfg.depth else cfg.in_dim
        self.stage1 = RegStage(cfg.depth, cfg.in_dim, cfg.hidden_dim, cfg.se_ratio, cfg.layer_norm_eps)
        self.pool = nn.AdaptiveAvgPool2d(cfg.pooled_grid)
        self.stage2 = RegStage(cfg.depth, cfg.hidden_dim, cfg.hidden_dim, cfg.se_ratio, cfg.layer_norm_eps)
        layers = [nn.Linear(width, cfg.out_dim)]
        for _ in range(cfg.mlp_depth - 1):
            layers += [nn.SiLU(), nn.Linear(cfg.out_dim, cfg.out_dim)]
        self.readout = nn.Sequential(*layers)

    @property
    def num_tokens(self) -> int:
        return self.config.num_frames * self.config.num_queries

    def tokens_for(self, num_frames: int, num_patches: int) -> int:
        return num_frames * self.config.num_queries

    def tokenize(self, features, question_embeds=None, question_mask=None):
        cfg = self.config
        b, t, n, e = features.shape
        if n != cfg.num_patches:
            side = math.isqrt(n)
            grid = f"a {side}×{side} grid" if side * side == n else "not a square grid"
            raise ValueError(f"CAbstractor: got N={n} patch tokens per image ({grid}); this projector was built for "
                             f"num_patches={cfg.num_patches} ({cfg.grid}×{cfg.grid}) — drop a CLS token first, or "
                             f"build it with the encoder's grid")
        x = features.reshape(b * t, n, e)                           # every image on its own (Eq. 1)
        if self.pos_emb is not None:
            x = x + self.pos_emb
        g = cfg.grid
        x = x.transpose(1, 2).reshape(b * t, e, g, g)               # row-major tokens -> (E, g, g) map
        x = self.stage2(self.pool(self.stage1(x)))                  # (B·T, H, s, s)
        x = x.flatten(2).transpose(1, 2)                            # (B·T, s·s, H), row-major again
        return self.readout(x).reshape(b, t * cfg.num_queries, cfg.out_dim)


def pool_only_projector(in_dim: int, out_dim: int, num_patches: int, num_queries: int, mlp_depth: int = 1,
                        pos_emb: bool = True, num_frames: int = 1) -> CAbstractor:
    """The pool-only control at C-Abstractor's token ratio: positional embedding, adaptive average pool of the
    g×g grid to s×s, then a linear readout (``mlp_depth=1``). It is ``CAbstractor`` with ``depth=0``."""
    return CAbstractor(CAbstractorConfig(in_dim=in_dim, out_dim=out_dim, num_patches=num_patches,
                                         num_queries=num_queries, depth=0, mlp_depth=mlp_depth, pos_emb=pos_emb,
                                         num_frames=num_frames))
