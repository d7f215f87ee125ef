"""M3D's spatial-pooling projector: average-pool the 3-D grid of patch tokens, then an MLP to the LLM width.

The encoder's N patch tokens of one frame form a grid ``grid = (gd, gh, gw)`` (for a 2-D encoder ``(1, gh, gw)``).
Average pooling with ``kernel = (kd, kh, kw)`` (stride = kernel) keeps ``(gd/kd)*(gh/kh)*(gw/kw)`` tokens per
frame; the MLP maps E -> D. In M3D, a 32x256x256 volume with 4x16x16 patches gives an 8x16x16 = 2048-token grid,
pooled to 256 tokens. Frames are pooled independently: K = T * pooled tokens.
"""
from __future__ import annotations

import math

import torch.nn.functional as F
from torch import nn

from rrg_lite.tokenizers.base import VisualTokenizer


class SpatialPoolingProjector(VisualTokenizer):
    def __init__(self, in_dim: int, out_dim: int, grid: tuple[int, int, int], kernel: tuple[int, int, int],
                 num_frames: int = 1, mlp_depth: int = 2):
        super().__init__()
        if len(grid) != 3 or len(kernel) != 3:
            raise ValueError(f"grid and kernel must be (depth, height, width) triples, got {grid} and {kernel}")
        for g, k in zip(grid, kernel):
            if k < 1 or g % k:
                raise ValueError(f"pooling kernel {tuple(kernel)} must divide the patch grid {tuple(grid)}")
        self.in_dim, self.out_dim = in_dim, out_dim
        self.grid, self.kernel, self.num_frames = tuple(grid), tuple(kernel), num_frames
        self.pooled_grid = tuple(g // k for g, k in zip(grid, kernel))
        layers = [nn.Linear(in_dim, out_dim)]
        for _ in range(mlp_depth - 1):
            layers += [nn.GELU(), nn.Linear(out_dim, out_dim)]
        self.mlp = nn.Sequential(*layers)

    @property
    def num_tokens(self) -> int:
        return self.num_frames * math.prod(self.pooled_grid)

    def tokens_for(self, num_frames: int, num_patches: int) -> int:
        return num_frames * math.prod(self.pooled_grid)

    def tokenize(self, features, question_embeds=None, question_mask=None):
        b, t, n, e = features.shape
        if n != math.prod(self.grid):
            raise ValueError(f"SpatialPoolingProjector: {n} patch tokens do not form the grid {self.grid}")
        # (B*T, E, gd, gh, gw): channels first for avg_pool3d; tokens are in row-major (d, h, w) order.
        x = features.reshape(b * t, *self.grid, e).permute(0, 4, 1, 2, 3)
        x = F.avg_pool3d(x, kernel_size=self.kernel, stride=self.kernel)
        x = x.flatten(2).transpose(1, 2)  # (B*T, K_frame, E)
        return self.mlp(x).reshape(b, -1, self.out_dim)  # (B, T*K_frame, D)
