"""LLaVA's projector: every patch token is mapped to the LLM width by a linear layer or a 2-layer MLP.

(B, T, N, E) -> (B, T*N, D). Nothing is compressed: K = T*N tokens reach the LLM, which is why later papers
(M3D's pooling, perceivers, C-Abstractor, LinVT/μ²) reduce the count first.
"""
from __future__ import annotations

from torch import nn

from rrg_lite.tokenizers.base import VisualTokenizer


class LinearProjector(VisualTokenizer):
    """``depth=1``: one ``Linear(E, D)`` (LLaVA-1); ``depth=2``: ``Linear -> GELU -> Linear`` (LLaVA-1.5)."""

    def __init__(self, in_dim: int, out_dim: int, num_frames: int = 1, num_patches: int | None = None, depth: int = 2):
        super().__init__()
        if depth not in (1, 2):
            raise ValueError(f"LinearProjector depth must be 1 or 2, got {depth}")
        self.in_dim, self.out_dim, self.depth = in_dim, out_dim, depth
        self.num_frames, self.num_patches = num_frames, num_patches
        if depth == 1:
            self.proj = nn.Linear(in_dim, out_dim)
        else:
            self.proj = nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))

    @property
    def num_tokens(self) -> int:
        if self.num_patches is None:
            raise ValueError("LinearProjector keeps every token: pass num_patches (and num_frames) to know K")
        return self.num_frames * self.num_patches

    def tokens_for(self, num_frames: int, num_patches: int) -> int:
        return num_frames * num_patches

    def tokenize(self, features, question_embeds=None, question_mask=None):
        b, t, n, e = features.shape
        return self.proj(features.reshape(b, t * n, e))  # (B, T*N, D)
