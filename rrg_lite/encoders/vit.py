"""A small Vision Transformer for 2-D images and 3-D volumes.

    x (m, C, *spatial)  --patchify-->  (m, N, C*prod(patch))  --linear-->  (m, N, E)  + learned positions
                        --depth x [x + MHSA(LN(x)); x + MLP(LN(x))]-->  LN  -->  patch tokens (m, N, E)

``N = prod(img_size // patch_size)``; tokens are in row-major order of the patch grid ((gd, gh, gw) for 3-D).
A class token is used inside the encoder (as in ViT/DINO/M3D-CLIP) and dropped from the output unless
``return_cls=True``. ``patch_embed="conv"`` is a strided convolution (ViT, MONAI "conv"); ``"linear"`` flattens
each patch and applies LayerNorm -> Linear -> LayerNorm (the vit-pytorch style RadFM uses). Both are linear
maps of the patch voxels; they differ in normalisation and weight layout. ``patch_embed="conv_max"`` is a small
non-linear stem: a strided convolution over sub-patches of ``stem_cell`` voxels, a GELU, and a max over the
sub-patches of each patch, then a linear map to E. A linear patch embedding answers "what does this patch look like
on average"; the max answers "is there something bright/dark anywhere in it", which is what a 1–2 voxel nodule or
calcification needs (the same reason radiologists read maximum-intensity projections to find nodules).
``patch_embed="conv_stem"`` is the hybrid ViT of the original ViT paper (a CNN makes the tokens, the transformer
mixes them): stride-2 3×3(×3) convolutions with GroupNorm and GELU until the grid is the patch grid. Trained from
scratch on a few hundred studies this is the stem that learns: a pure ViT has no locality prior and, on the CPU
profile, its label loss never leaves the base rate (chapter 4 shows both).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _tuple(value, n: int, name: str) -> tuple[int, ...]:
    out = (value,) * n if isinstance(value, int) else tuple(value)
    if len(out) != n:
        raise ValueError(f"{name} must have {n} entries for a {n}-D ViT, got {value}")
    return out


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} must be divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)  # (b, heads, n, d/heads)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ConvMaxStem(nn.Module):
    """(m, C, *spatial) -> (m, N, E): conv over ``cell``-sized sub-patches (stride = cell) -> GELU -> max over the
    sub-patches inside each patch -> concat(max, mean) -> Linear -> (m, N, E). ``width`` filters per cell."""

    def __init__(self, spatial_dims: int, in_channels: int, patch_size, cell, width: int, embed_dim: int):
        super().__init__()
        for p, c in zip(patch_size, cell):
            if p % c:
                raise ValueError(f"stem cell {tuple(cell)} must divide the patch size {tuple(patch_size)}")
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        pool = F.max_pool2d if spatial_dims == 2 else F.max_pool3d
        avg = F.avg_pool2d if spatial_dims == 2 else F.avg_pool3d
        self.conv = conv(in_channels, width, kernel_size=cell, stride=cell)
        self.window = tuple(p // c for p, c in zip(patch_size, cell))
        self._max, self._avg = pool, avg
        self.proj = nn.Linear(2 * width, embed_dim)

    def forward(self, x):
        h = F.gelu(self.conv(x))                                  # (m, width, *cells)
        pooled = torch.cat([self._max(h, self.window), self._avg(h, self.window)], 1)  # (m, 2*width, *grid)
        return self.proj(pooled.flatten(2).transpose(1, 2))       # (m, N, E), grid in row-major order


class VoxelMaxStem(nn.Module):
    """(m, C, *spatial) -> (m, N, E), non-linear before anything is averaged (``patch_embed="voxel_max"``).

        max and min over each 2-voxel cell, per channel -> 2C      (a one-voxel calcification survives as itself,
                                                                   not as 1/32 of a patch mean)
        1x1 conv 2C -> w/2, GELU; conv 2 per axis, stride 2 -> w, GELU   (local shape on the 4-voxel scale)
        max and mean over the rest of the patch -> concat (2w) -> Linear -> E

    The patch size must be divisible by 4 along every axis. Everything after the first pooling runs at 1/8 of the
    voxels (3-D), so it costs about as much as ``conv_max``.
    """

    def __init__(self, spatial_dims: int, in_channels: int, patch_size, width: int, embed_dim: int):
        super().__init__()
        for p in patch_size:
            if p % 4:
                raise ValueError(f"voxel_max needs a patch size divisible by 4 on every axis, got {tuple(patch_size)}")
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.point = conv(2 * in_channels, width // 2, kernel_size=1)
        self.local = conv(width // 2, width, kernel_size=2, stride=2)
        self.pool2 = F.max_pool2d if spatial_dims == 2 else F.max_pool3d
        self.avg = F.avg_pool2d if spatial_dims == 2 else F.avg_pool3d
        self.window = tuple(p // 4 for p in patch_size)
        self.proj = nn.Linear(2 * width, embed_dim)

    def forward(self, x):
        h = torch.cat([self.pool2(x, 2), -self.pool2(-x, 2)], 1)  # (m, 2C, *spatial/2): cell max and min
        h = F.gelu(self.point(h))                                 # (m, w/2, *spatial/2)
        h = F.gelu(self.local(h))                                 # (m, w, *spatial/4)
        pooled = torch.cat([self.pool2(h, self.window), self.avg(h, self.window)], 1)  # (m, 2w, *grid)
        return self.proj(pooled.flatten(2).transpose(1, 2))       # (m, N, E)


class ConvStem(nn.Module):
    """(m, C, *spatial) -> (m, N, E): a small CNN whose total stride is the patch size (``patch_embed="conv_stem"``).

    Stage i: conv k=3, stride 2 on every axis whose patch factor is not used up yet (else 1), GroupNorm, GELU;
    widths ``width/4, width/2, width, width, ...`` (no norm on the first stage); a last 3×3 conv (stride 1) maps
    to E. The kernels overlap, so a token also sees the edges of the neighbouring patches — a lesion cut by a patch
    border is not split in two, as it is by a strided patch embedding.
    """

    def __init__(self, spatial_dims: int, in_channels: int, patch_size, width: int, embed_dim: int):
        super().__init__()
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        left, layers, c_in, i = list(patch_size), [], in_channels, 0
        for p in patch_size:
            if p & (p - 1):
                raise ValueError(f"conv_stem needs power-of-two patch sizes, got {tuple(patch_size)}")
        while any(f > 1 for f in left):
            stride = tuple(2 if f > 1 else 1 for f in left)
            left = [f // s for f, s in zip(left, stride)]
            c_out = max(width // 4 * 2 ** i, 8) if i < 2 else width
            c_out = min(c_out, width)
            norm = [nn.GroupNorm(min(8, c_out), c_out)] if i else []    # none on the first: it would rescale raw HU
            layers += [conv(c_in, c_out, 3, stride, 1), *norm, nn.GELU()]
            c_in, i = c_out, i + 1
        layers.append(conv(c_in, embed_dim, 3, 1, 1))         # mixes neighbouring patches before attention does
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).flatten(2).transpose(1, 2)           # (m, N, E), grid in row-major order


class ViT(nn.Module):
    """ViT over ``spatial_dims``-D inputs of shape (m, ``in_channels``, *``img_size``) -> (m, N, ``embed_dim``)."""

    def __init__(self, spatial_dims: int, img_size: Sequence[int] | int, patch_size: Sequence[int] | int,
                 in_channels: int = 1, embed_dim: int = 64, depth: int = 2, heads: int = 4, mlp_ratio: float = 2.0,
                 dropout: float = 0.0, patch_embed: str = "conv", return_cls: bool = False,
                 stem_cell: Sequence[int] | int = 2, stem_width: int = 32, final_norm: bool = True):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        self.spatial_dims, self.in_channels, self.embed_dim = spatial_dims, in_channels, embed_dim
        self.img_size = _tuple(img_size, spatial_dims, "img_size")
        self.patch_size = _tuple(patch_size, spatial_dims, "patch_size")
        for s, p in zip(self.img_size, self.patch_size):
            if s % p:
                raise ValueError(f"patch size {self.patch_size} must divide the image size {self.img_size}")
        self.grid = tuple(s // p for s, p in zip(self.img_size, self.patch_size))
        self.num_patches = math.prod(self.grid)
        self.return_cls = return_cls
        patch_dim = in_channels * math.prod(self.patch_size)
        if patch_embed == "conv":
            conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
            self.patch_embed = conv(in_channels, embed_dim, kernel_size=self.patch_size, stride=self.patch_size)
        elif patch_embed == "conv_max":
            cell = _tuple(stem_cell, spatial_dims, "stem_cell")
            self.patch_embed = ConvMaxStem(spatial_dims, in_channels, self.patch_size, cell, stem_width, embed_dim)
        elif patch_embed == "voxel_max":
            self.patch_embed = VoxelMaxStem(spatial_dims, in_channels, self.patch_size, stem_width, embed_dim)
        elif patch_embed == "conv_stem":
            self.patch_embed = ConvStem(spatial_dims, in_channels, self.patch_size, stem_width, embed_dim)
        elif patch_embed == "linear":
            self.patch_embed = nn.Sequential(nn.LayerNorm(patch_dim), nn.Linear(patch_dim, embed_dim), nn.LayerNorm(embed_dim))
        else:
            raise ValueError(f"patch_embed must be 'conv', 'conv_max', 'voxel_max', 'conv_stem' or 'linear', "
                             f"got {patch_embed!r}")
        self.patch_embed_kind = patch_embed
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.randn(1, self.num_patches + 1, embed_dim) * 0.02)
        self.blocks = nn.ModuleList(Block(embed_dim, heads, mlp_ratio, dropout) for _ in range(depth))
        # A LayerNorm per token rescales a token that fires on a lesion to the size of every other token, so a max
        # over tokens can no longer tell "something here" from "nothing"; final_norm=False keeps the magnitudes.
        self.norm = nn.LayerNorm(embed_dim) if final_norm else nn.Identity()

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(m, C, *spatial) -> (m, N, C*prod(patch)): each patch flattened as (C, p1, p2[, p3])."""
        m, c = x.shape[:2]
        shape = [m, c]
        for g, p in zip(self.grid, self.patch_size):
            shape += [g, p]
        x = x.reshape(shape)
        sd = self.spatial_dims
        grid_axes = [2 + 2 * i for i in range(sd)]
        patch_axes = [3 + 2 * i for i in range(sd)]
        x = x.permute(0, *grid_axes, 1, *patch_axes)
        return x.reshape(m, self.num_patches, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels or tuple(x.shape[2:]) != self.img_size:
            raise ValueError(
                f"ViT expects (m, {self.in_channels}, *{self.img_size}), got {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"ViT input must be floating point, got {x.dtype}")
        if self.patch_embed_kind == "conv":
            tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (m, N, E), grid in row-major order
        elif self.patch_embed_kind in ("conv_max", "voxel_max", "conv_stem"):
            tokens = self.patch_embed(x)
        else:
            tokens = self.patch_embed(self.patchify(x))
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1) + self.pos_embed
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens)
        return tokens if self.return_cls else tokens[:, 1:]


def vit2d(img_size=(128, 128), patch_size=16, in_channels=1, embed_dim=64, depth=2, heads=4, **kw) -> ViT:
    """A small 2-D ViT (chest X-ray sized for the CPU profile)."""
    return ViT(2, img_size, patch_size, in_channels, embed_dim, depth, heads, **kw)


def vit3d(img_size=(8, 64, 64), patch_size=(4, 16, 16), in_channels=1, embed_dim=64, depth=2, heads=4, **kw) -> ViT:
    """A small 3-D ViT; with ``img_size[0] = k`` slices it encodes one frame of a CT split into frames of k slices."""
    return ViT(3, img_size, patch_size, in_channels, embed_dim, depth, heads, **kw)
