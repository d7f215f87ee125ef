"""LinVT, the parent of the μ² Tokenizer: the building blocks of a *linear* video tokenizer.

LinVT {cite}`lin2024linvt` turns the visual tokens of many frames into a fixed number of tokens for an
image-LLM. It has two sub-modules, and μ² {cite}`li2025mu2` keeps both:

1. **Spatio-temporal Visual Token Refiner (SVR)** — :class:`SpatioTemporalRefiner` attends *within* each frame
   (over the N token positions), then *across* frames (over the T frames, once per token position), then
   scores every token and keeps the best ``k`` of all ``T·N`` tokens (:func:`hard_topk_select`), then pools the
   kept tokens at several scales (kernels 1, 2, 4; :func:`fixed_multiscale_pool`).
2. **Text-conditioned Token Aggregation (TTA)** — :class:`TextConditionedAggregation`: learned queries go
   through self-attention → cross-attention to the visual tokens → cross-attention to the question embeddings,
   and a last attention step whose weights *directly* average the visual tokens (no value or output
   projection). Every output token is therefore a convex combination of the tokens that enter the TTA; that is
   LinVT's "linearity principle", which keeps the output in the space the image-LLM was aligned to.

Positions in LinVT are absolute: a learned frame embedding ``P_f(i)`` and token embedding ``P_t(j)`` are added
to ``V[i, j]`` (:class:`AbsolutePositionEmbedding`). μ² replaces that with a relative bias inside attention
(see :mod:`rrg_lite.systems.mu2.tokenizer`), which is why :class:`Attention` takes an optional additive ``bias``.

Shapes: ``B`` batch, ``T`` frames, ``N`` tokens per frame, ``D`` width (= the LLM hidden size), ``k`` kept
tokens, ``M`` tokens after multi-scale pooling, ``Q`` learned queries (= output tokens), ``L`` question length.
The tokenizer that assembles these blocks (with the μ² flags) is :class:`rrg_lite.systems.mu2.tokenizer.Mu2Tokenizer`;
the LinVT baseline is that tokenizer with every flag off (:func:`rrg_lite.systems.mu2.tokenizer.linvt_tokenizer`).
This module never imports the μ² room: μ² extends LinVT, not the other way round.
"""
from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

__all__ = [
    "Attention",
    "FeedForward",
    "AbsolutePositionEmbedding",
    "RefinerLayer",
    "SpatioTemporalRefiner",
    "hard_topk_select",
    "avg_pool_tokens",
    "pooling_matrix",
    "fixed_multiscale_pool",
    "TextConditionedAggregation",
]


class Attention(nn.Module):
    """Multi-head attention that returns its weights and accepts an additive score bias.

    ``A = softmax(q kᵀ / √d + bias)``, per head. ``bias`` is (H, Lq, Lk) or broadcastable to (B, H, Lq, Lk);
    ``key_mask`` (B, Lk) bool marks real keys (True) — padded keys get no weight.
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def scores(self, x: torch.Tensor, context: torch.Tensor, bias=None, key_mask=None) -> torch.Tensor:
        """Attention probabilities (B, H, Lq, Lk) of queries from ``x`` (B, Lq, D) over ``context`` (B, Lk, D)."""
        B, Lq, _ = x.shape
        Lk = context.shape[1]
        q = self.q(x).view(B, Lq, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k(context).view(B, Lk, self.num_heads, self.head_dim).transpose(1, 2)
        logits = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # (B, H, Lq, Lk)
        if bias is not None:
            logits = logits + bias
        if key_mask is not None:
            logits = logits.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        return logits.softmax(dim=-1)

    def forward(self, x, context=None, bias=None, key_mask=None, return_weights: bool = False):
        """(B, Lq, D) → (B, Lq, D); with ``return_weights`` also the (B, H, Lq, Lk) probabilities."""
        context = x if context is None else context
        B, Lq, D = x.shape
        attn = self.scores(x, context, bias, key_mask)
        v = self.v(context).view(B, -1, self.num_heads, self.head_dim).transpose(1, 2)
        y = self.out((attn @ v).transpose(1, 2).reshape(B, Lq, D))
        return (y, attn) if return_weights else y


class FeedForward(nn.Sequential):
    """The transformer MLP: D → ratio·D → D with GELU."""

    def __init__(self, dim: int, ratio: int = 4):
        super().__init__(nn.Linear(dim, ratio * dim), nn.GELU(), nn.Linear(ratio * dim, dim))


class AbsolutePositionEmbedding(nn.Module):
    """LinVT's positions: ``V[i, j] + P_f(i) + P_t(j)`` with learned tables of ``max_frames`` and ``max_tokens``.

    An absolute table has a largest position; a volume with more frames than ``max_frames`` is an error here
    (the relative bias of μ² has no such limit).
    """

    def __init__(self, dim: int, max_frames: int, max_tokens: int):
        super().__init__()
        self.frame = nn.Parameter(torch.randn(max_frames, dim) * 0.02)
        self.token = nn.Parameter(torch.randn(max_tokens, dim) * 0.02)

    def forward(self, v: torch.Tensor) -> torch.Tensor:  # (B, T, N, D) -> same
        T, N = v.shape[1:3]
        if T > self.frame.shape[0] or N > self.token.shape[0]:
            raise ValueError(
                f"absolute position tables hold {self.frame.shape[0]} frames × {self.token.shape[0]} tokens, "
                f"got {T} frames × {N} tokens; raise max_frames/max_tokens or use the relative bias (rpe=True)"
            )
        return v + self.frame[:T, None, :] + self.token[None, :N, :]


class RefinerLayer(nn.Module):
    """One spatio-temporal layer: attention within each frame, then across frames per token position, then MLP.

    ``spatial_bias(N)`` / ``temporal_bias(T)`` (optional callables) return the (H, L, L) relative biases of μ².
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.norm_s, self.spatial = nn.LayerNorm(dim), Attention(dim, num_heads)
        self.norm_t, self.temporal = nn.LayerNorm(dim), Attention(dim, num_heads)
        self.norm_f, self.mlp = nn.LayerNorm(dim), FeedForward(dim, mlp_ratio)

    def forward(self, v: torch.Tensor, spatial_bias=None, temporal_bias=None) -> torch.Tensor:
        B, T, N, D = v.shape
        # within a frame: the N tokens of each of the B·T frames attend to each other
        x = v.reshape(B * T, N, D)
        x = x + self.spatial(self.norm_s(x), bias=None if spatial_bias is None else spatial_bias(N))
        # across frames: for each of the B·N token positions, its T copies attend to each other
        x = x.view(B, T, N, D).transpose(1, 2).reshape(B * N, T, D)
        x = x + self.temporal(self.norm_t(x), bias=None if temporal_bias is None else temporal_bias(T))
        x = x.view(B, N, T, D).transpose(1, 2)
        return x + self.mlp(self.norm_f(x))


class SpatioTemporalRefiner(nn.Module):
    """A stack of :class:`RefinerLayer` with a final LayerNorm: (B, T, N, D) → (B, T, N, D)."""

    def __init__(self, dim: int, num_heads: int, num_layers: int, mlp_ratio: int = 4):
        super().__init__()
        self.layers = nn.ModuleList(RefinerLayer(dim, num_heads, mlp_ratio) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, v, spatial_biases=None, temporal_biases=None):
        for i, layer in enumerate(self.layers):
            v = layer(
                v,
                None if spatial_biases is None else spatial_biases[i],
                None if temporal_biases is None else temporal_biases[i],
            )
        return self.norm(v)


def hard_topk_select(v_flat: torch.Tensor, scores: torch.Tensor, k: int):
    """LinVT's token selection: keep the ``k`` highest-scoring of all T·N tokens, in their original order.

    v_flat (B, T·N, D), scores (B, T·N) → (tokens (B, k', D), index (B, k')) with k' = min(k, T·N).
    The index is an integer: no gradient reaches ``scores`` nor any token that was not kept.
    """
    if v_flat.shape[:2] != scores.shape:
        raise ValueError(f"scores {tuple(scores.shape)} do not match tokens {tuple(v_flat.shape[:2])}")
    k = min(k, v_flat.shape[1])
    index = scores.topk(k, dim=1).indices.sort(dim=1).values  # keep spatio-temporal order for pooling
    tokens = v_flat.gather(1, index[..., None].expand(-1, -1, v_flat.shape[-1]))
    return tokens, index


def avg_pool_tokens(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """Average consecutive groups of ``kernel`` tokens (stride = kernel): (B, M, D) → (B, ⌈M/kernel⌉, D).

    A last, shorter group is averaged over the tokens it has (no zero padding enters the mean).
    """
    if kernel < 1:
        raise ValueError(f"pooling kernel must be ≥ 1, got {kernel}")
    return pooling_matrix(x.shape[1], kernel, dtype=x.dtype, device=x.device) @ x


def pooling_matrix(length: int, kernel: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """The (⌈length/kernel⌉, length) matrix P with ``avg_pool_tokens(x, kernel) == P @ x``; rows sum to one."""
    groups = torch.arange(length, device=device) // kernel
    P = F.one_hot(groups, num_classes=int(groups.max()) + 1).T.to(dtype)
    return P / P.sum(dim=1, keepdim=True)


def fixed_multiscale_pool(x: torch.Tensor, kernels=(1, 2, 4)) -> torch.Tensor:
    """LinVT's multi-scale pooling: pool at every kernel and concatenate along tokens.

    (B, k, D) → (B, Σ_s ⌈k/s⌉, D); kernels (1, 2, 4) give k + k/2 + k/4 tokens, every scale weighted equally.
    """
    return torch.cat([avg_pool_tokens(x, s) for s in kernels], dim=1)


class AggregationLayer(nn.Module):
    """Queries: self-attention → cross-attention to visual tokens → cross-attention to the question → MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.norm_q, self.self_attn = nn.LayerNorm(dim), Attention(dim, num_heads)
        self.norm_v, self.visual_attn = nn.LayerNorm(dim), Attention(dim, num_heads)
        self.norm_t, self.text_attn = nn.LayerNorm(dim), Attention(dim, num_heads)
        # the question is the LLM's input embeddings, often tiny (std ~0.02 at init): normalise it as a context
        self.norm_question = nn.LayerNorm(dim)
        self.norm_f, self.mlp = nn.LayerNorm(dim), FeedForward(dim, mlp_ratio)

    def forward(self, q, visual, question=None, question_mask=None):
        q = q + self.self_attn(self.norm_q(q))
        q = q + self.visual_attn(self.norm_v(q), visual)
        if question is not None:
            mask = question_mask
            if mask is not None:
                has_text = mask.any(dim=1)  # a sample with an empty question gets no text update
                mask = mask | ~has_text[:, None]
            update = self.text_attn(self.norm_t(q), self.norm_question(question), key_mask=mask)
            if question_mask is not None:
                update = update * has_text[:, None, None].to(update.dtype)
            q = q + update
        return q + self.mlp(self.norm_f(q))


class TextConditionedAggregation(nn.Module):
    """LinVT's TTA: ``Q`` learned queries, conditioned on visual tokens and the question, average the visual tokens.

    forward(visual (B, M, D), question (B, L, D) | None, question_mask (B, L) | None)
      → (tokens (B, Q, D), weights (B, Q, M))

    The last step computes multi-head attention probabilities of the queries over the visual tokens, averages
    them over heads and returns ``weights @ visual``: rows of ``weights`` are non-negative and sum to one, so
    each output token is a convex combination of the visual tokens (the linearity principle).
    ``visual_key_bias`` (B, M, D) is added to the *keys only* (μ² uses it for scale embeddings), so the values
    stay the visual tokens themselves. ``values`` (B, M, D), if given, are averaged instead of ``visual``: the
    tokenizer passes the un-refined input tokens there, so that the refined tokens decide the weights and the
    output stays a combination of the tokens the LLM was aligned to.
    """

    def __init__(self, dim: int, num_heads: int, num_layers: int, num_queries: int, mlp_ratio: int = 4):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * 0.02)
        self.layers = nn.ModuleList(AggregationLayer(dim, num_heads, mlp_ratio) for _ in range(num_layers))
        self.norm_q, self.norm_k = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.aggregate = Attention(dim, num_heads)  # only its q/k projections are used (no values)

    def forward(self, visual, question=None, question_mask=None, visual_key_bias=None, values=None):
        q = self.queries.expand(visual.shape[0], -1, -1)
        keys = visual if visual_key_bias is None else visual + visual_key_bias
        for layer in self.layers:
            q = layer(q, keys, question, question_mask)
        weights = self.aggregate.scores(self.norm_q(q), self.norm_k(keys)).mean(dim=1)  # (B, Q, M)
        return weights @ (visual if values is None else values), weights
