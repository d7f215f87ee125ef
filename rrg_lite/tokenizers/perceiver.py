"""A perceiver resampler (Flamingo / Perceiver IO style): K learned latent queries read all T*N patch tokens.

Each layer: latents <- latents + CrossAttn(q=latents, kv=[features; latents]); latents <- latents + FFN(latents).
Output (B, K, D) after a final LayerNorm and a linear map to the LLM width. Text is not used: this is the
"perceiver approach" that μ² criticises for ignoring the question.
"""
from __future__ import annotations

import torch
from torch import nn

from rrg_lite.tokenizers.base import VisualTokenizer


class _ResamplerLayer(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm_x = nn.LayerNorm(dim)
        self.norm_q = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))

    def forward(self, latents, x):
        q = self.norm_q(latents)
        kv = torch.cat([self.norm_x(x), q], dim=1)  # latents also attend to themselves (Flamingo)
        latents = latents + self.attn(q, kv, kv, need_weights=False)[0]
        return latents + self.ff(self.norm_ff(latents))


class PerceiverResampler(VisualTokenizer):
    def __init__(self, in_dim: int, out_dim: int, num_tokens: int = 32, depth: int = 2, heads: int = 4,
                 max_frames: int = 64, mlp_ratio: float = 2.0):
        super().__init__()
        if in_dim % heads:
            raise ValueError(f"PerceiverResampler: in_dim {in_dim} must be divisible by heads {heads}")
        self.in_dim, self.out_dim, self.num_tokens = in_dim, out_dim, num_tokens
        self.latents = nn.Parameter(torch.randn(num_tokens, in_dim) * in_dim ** -0.5)
        # A learned embedding per frame tells the latents which slab of the volume a patch token came from.
        self.frame_embed = nn.Parameter(torch.zeros(max_frames, in_dim))
        self.layers = nn.ModuleList(_ResamplerLayer(in_dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(in_dim)
        self.proj = nn.Linear(in_dim, out_dim)

    def tokenize(self, features, question_embeds=None, question_mask=None):
        b, t, n, e = features.shape
        if t > self.frame_embed.shape[0]:
            raise ValueError(f"PerceiverResampler: {t} frames > max_frames={self.frame_embed.shape[0]}")
        x = (features + self.frame_embed[:t, None, :]).reshape(b, t * n, e)
        latents = self.latents.expand(b, -1, -1)
        for layer in self.layers:
            latents = layer(latents, x)
        return self.proj(self.norm(latents))  # (B, K, D)
