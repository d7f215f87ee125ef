"""The μ² Tokenizer: LinVT plus three changes, each behind a flag.

μ² {cite}`li2025mu2` sits between a 3-D ViT and the LLM. A CT of any depth is cut into T frames of K slices,
the ViT turns each frame into N tokens of width E, and the tokenizer turns the (T, N, E) tokens plus the
question into a *fixed* number of tokens of the LLM's width D. It starts from LinVT (:mod:`rrg_lite.tokenizers.linvt`) and changes:

- **RPE** (``rpe=True``) — relative positional bias. Instead of adding absolute embeddings ``P_f(i) + P_t(j)``
  to the tokens, every self-attention in the refiner adds a learned bias to its scores,
  ``A_ij = q_i·k_j/√d + P_r(i − j)``, one table per head (:class:`RelativePositionBias`). Within a frame ``i − j``
  is the distance between flattened patch indices; across frames it is the frame distance. Distances beyond
  ``max_distance`` share the table's last entry, so any depth works.
- **DTS** (``dts=True``) — differentiable token selection. Instead of keeping the hard top-k tokens, each of
  ``k`` soft tokens is a softmax-weighted sum over *all* T·N tokens, ``α⁽ʳ⁾ = softmax(W_s⁽ʳ⁾ V_flat)``,
  ``V_top⁽ʳ⁾ = Σ_i α_i⁽ʳ⁾ V_flat(i)`` with ``W_s⁽ʳ⁾ ∈ R^{E×1}`` (:class:`SoftTokenSelection`). Gradient reaches
  every token and every selector.
- **DMTP** (``dmtp=True``) — dynamic multi-scale pooling. The same average pooling with kernels ``s ∈ {1, 2, 4}``,
  but each scale's output is multiplied by ``w_s = softmax_s(g(ȳ_s))``, where ``g`` is a small MLP applied to
  the scale's mean token ``ȳ_s`` (:class:`DynamicMultiScalePooling`); the weighted outputs are concatenated.
  Read literally this gate is constant (pooling preserves the mean, so every ȳ_s is the same); by default we
  apply ``g`` per pooled token and average the scores instead (``dmtp_gate="token"``; ``"mean"`` = literal).

With all three flags off :class:`Mu2Tokenizer` *is* the LinVT baseline; with all on it is μ². The paper's
ablation (Table 2) is reproduced with :data:`ABLATION_VARIANTS`; the paper's own numbers are in
:data:`PAPER_TABLE2` and its full-scale setting in :data:`FULL_SCALE`.

Design choices that the paper leaves open (said here so that a reader can change them):
- a LLaVA-style 2-layer MLP projects the encoder width E to D first, so that everything after it works in the
  LLM's embedding space, as LinVT does after an image-LLM's projector;
- the refiner's *output* decides every weight (selection scores, DMTP gate, TTA keys), and the weights are
  applied to the refiner's *input* tokens (the projector's output). That is the linearity principle as the paper
  states it — "the output of each module is a linear combination of part of its input". (An earlier version
  averaged the refined, LayerNorm-ed tokens; on the chapter's oracle features it passed no measurable image
  information to the LLM in 200 steps, one seed.) ``tokens == details["token_weights"] @ details["inputs"]``;
- the hard top-k score head gets no gradient (the paper's point about hard selection);
- the TTA keys carry a learned embedding of their pooling scale (LinVT's scale-specific queries); values don't.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from rrg_lite.tokenizers.base import VisualTokenizer, check_features
from rrg_lite.tokenizers.linvt import (
    AbsolutePositionEmbedding,
    SpatioTemporalRefiner,
    TextConditionedAggregation,
    avg_pool_tokens,
    fixed_multiscale_pool,
    hard_topk_select,
    pooling_matrix,
)

__all__ = [
    "Mu2Config",
    "Mu2Tokenizer",
    "RelativePositionBias",
    "SoftTokenSelection",
    "DynamicMultiScalePooling",
    "relative_position_index",
    "volume_to_frames",
    "linvt_tokenizer",
    "ABLATION_VARIANTS",
    "PAPER_TABLE2",
    "PAPER_TABLE2_SOURCE",
    "FULL_SCALE",
]

# ----------------------------------------------------------------------------------------------------------
# The paper's numbers (not ours). Source: Li et al., "μ² Tokenizer: Differentiable Multi-Scale Multi-Modal
# Tokenizer for Radiology Report Generation", Table 2 ("component effectiveness of μ² Tokenizer"), AMOS-MM.
# Row "μ² LLM-1B (SFT)" is the full tokenizer after SFT; the paper's last row adds DPO (chapter on DPO), whose
# METEOR 0.876 is printed as in the paper (it looks like a typo: Table 1 has the same value).
# ----------------------------------------------------------------------------------------------------------
PAPER_TABLE2_SOURCE = "Li et al. 2025, μ² Tokenizer, Table 2 (AMOS-MM)"
PAPER_TABLE2 = {
    "Baseline": {"BLEU": 0.190, "ROUGE-1": 0.405, "METEOR": 0.210, "BERTScore": 0.864, "GREEN": 0.204},
    "+RPE": {"BLEU": 0.281, "ROUGE-1": 0.421, "METEOR": 0.236, "BERTScore": 0.880, "GREEN": 0.277},
    "+DTS": {"BLEU": 0.271, "ROUGE-1": 0.411, "METEOR": 0.240, "BERTScore": 0.888, "GREEN": 0.299},
    "+DMTP": {"BLEU": 0.254, "ROUGE-1": 0.401, "METEOR": 0.220, "BERTScore": 0.874, "GREEN": 0.233},
    "μ² (SFT)": {"BLEU": 0.279, "ROUGE-1": 0.421, "METEOR": 0.249, "BERTScore": 0.881, "GREEN": 0.339},
    "μ² (SFT&DPO)": {"BLEU": 0.336, "ROUGE-1": 0.459, "METEOR": 0.876, "BERTScore": 0.881, "GREEN": 0.400},
}

#: The ablation's variants: name → (rpe, dts, dmtp). Names match the rows of :data:`PAPER_TABLE2`.
ABLATION_VARIANTS = {
    "Baseline": dict(rpe=False, dts=False, dmtp=False),
    "+RPE": dict(rpe=True, dts=False, dmtp=False),
    "+DTS": dict(rpe=False, dts=True, dmtp=False),
    "+DMTP": dict(rpe=False, dts=False, dmtp=True),
    "μ² (SFT)": dict(rpe=True, dts=True, dmtp=True),
}


@dataclass(frozen=True)
class Mu2Config:
    """Everything that shapes the tokenizer. Defaults = the paper's full scale (§3, Implementation Details).

    in_dim: encoder token width E (M3D-CLIP's 3-D ViT: 768). dim: D, the LLM hidden size (Llama-3.2-1B: 2048).
    k: kept/soft tokens. num_queries: output tokens (fixed, whatever the depth).
    max_frames / max_tokens: size of LinVT's absolute tables. max_frame_distance / max_token_distance: clip of
    μ²'s relative distances.
    """

    in_dim: int = 768
    dim: int = 2048
    num_heads: int = 8
    refiner_layers: int = 4
    aggregation_layers: int = 4
    k: int = 1024
    num_queries: int = 1024
    pool_kernels: tuple = (1, 2, 4)
    mlp_ratio: int = 4
    gate_hidden: int = 64
    dmtp_gate: str = "token"
    max_frames: int = 64
    max_tokens: int = 2048
    max_frame_distance: int = 64
    max_token_distance: int = 2048
    rpe: bool = True
    dts: bool = True
    dmtp: bool = True

    def variant(self, name: str) -> "Mu2Config":
        """This config with the flags of an :data:`ABLATION_VARIANTS` row."""
        if name not in ABLATION_VARIANTS:
            raise KeyError(f"unknown variant {name!r}; choose one of {list(ABLATION_VARIANTS)}")
        return replace(self, **ABLATION_VARIANTS[name])

    def as_dict(self) -> dict:
        return asdict(self)


#: The paper's full-scale setting (§3): 4 refiner + 4 aggregation layers, 8 heads, k = 1024 soft tokens,
#: 1024 scale-specific learnable queries, a 3-D ViT from M3D-CLIP (width 768, patches 4×16×16) on frames of
#: 32×256×256 (8 frames from a volume resized to 256×256×256), and Llama-3.2-1B-Instruct (hidden size 2048).
#: The paper says "1024 queries with a hidden size of 768"; we read 768 as the ViT width E (M3D-CLIP's) and run
#: the tokenizer at the LLM width, as LinVT does. ``num_queries`` is a config field: 256 queries (a shorter LLM
#: input) is ``replace(FULL_SCALE, num_queries=256)``.
FULL_SCALE = Mu2Config()


def relative_position_index(length: int, max_distance: int, device=None) -> torch.Tensor:
    """(length, length) long tensor of ``clamp(i − j, −max_distance, max_distance) + max_distance``.

    It indexes a table of ``2·max_distance + 1`` entries: entry ``max_distance`` is distance 0.
    """
    pos = torch.arange(length, device=device)
    return (pos[:, None] - pos[None, :]).clamp(-max_distance, max_distance) + max_distance


class RelativePositionBias(nn.Module):
    """``P_r(i − j)``: a learned table per head, returned as the (H, L, L) additive bias of an attention layer.

    Starts at zero (attention begins position-blind and learns which offsets matter).
    """

    def __init__(self, num_heads: int, max_distance: int):
        super().__init__()
        self.max_distance = max_distance
        self.table = nn.Parameter(torch.zeros(num_heads, 2 * max_distance + 1))

    def forward(self, length: int) -> torch.Tensor:
        index = relative_position_index(length, self.max_distance, device=self.table.device)
        return self.table[:, index]  # (H, L, L)


class SoftTokenSelection(nn.Module):
    """DTS: ``k`` soft tokens, each a softmax over all T·N tokens of a learned score ``W_s⁽ʳ⁾ V``.

    forward(v_flat (B, T·N, D)) → (soft tokens (B, k, D), α (B, k, T·N)); every row of α sums to one.
    """

    def __init__(self, dim: int, k: int):
        super().__init__()
        self.selectors = nn.Linear(dim, k, bias=False)  # row r is W_s⁽ʳ⁾ (an E→1 vector per soft token)

    def forward(self, v_flat: torch.Tensor):
        alpha = self.selectors(v_flat).transpose(1, 2).softmax(dim=-1)  # (B, k, T·N)
        return alpha @ v_flat, alpha


class DynamicMultiScalePooling(nn.Module):
    """DMTP: pool at each kernel, weight each scale by a softmax over scales of a gate ``g``, concatenate.

    forward(x (B, k, D)) → (pooled (B, Σ_s ⌈k/s⌉, D), weights (B, S)); ``g`` is D → hidden → 1 (GELU).

    ``gate="mean"`` is the paper's formula read literally, ``w_s ∝ exp g(ȳ_s)`` with ȳ_s the mean token of
    scale s. Average pooling keeps the mean, so when k is a multiple of every kernel all ȳ_s are *equal* and the
    weights are always uniform (1/S): the gate cannot learn anything. ``gate="token"`` (the default here) applies
    ``g`` to every pooled token and averages the scores, ``w_s ∝ exp mean_m g(y_{s,m})``, which does depend on
    the scale because ``g`` is non-linear and coarser scales are smoother.
    """

    def __init__(self, dim: int, kernels=(1, 2, 4), hidden: int = 64, gate: str = "token"):
        super().__init__()
        if gate not in ("token", "mean"):
            raise ValueError(f"DMTP gate must be 'token' or 'mean', got {gate!r}")
        self.kernels, self.gate_mode = tuple(kernels), gate
        self.gate = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor):
        pooled = [avg_pool_tokens(x, s) for s in self.kernels]
        if self.gate_mode == "mean":
            logits = torch.stack([self.gate(y.mean(dim=1)) for y in pooled], dim=1)  # g(ȳ_s): (B, S, 1)
        else:
            logits = torch.stack([self.gate(y).mean(dim=1) for y in pooled], dim=1)  # mean_m g(y_s,m)
        weights = logits.squeeze(-1).softmax(dim=-1)  # w_s: (B, S)
        out = torch.cat([w[:, None, None] * y for w, y in zip(weights.unbind(1), pooled)], dim=1)
        return out, weights


class Mu2Tokenizer(VisualTokenizer):
    """LinVT (all flags off) or μ² (all on), or any mix: (B, T, N, E) + question → (B, num_queries, D).

    ``forward(features, question_embeds=None, question_mask=None)`` follows the visual-tokenizer interface of
    :mod:`rrg_lite.tokenizers`; ``return_details=True`` also returns a dict with

    - ``token_weights`` (B, Q, T·N): how much each input token position contributes to each output token
      (aggregation weights × pooling × selection; since every step is linear, ``tokens = token_weights @ X``),
    - ``inputs`` (B, T·N, D): the projected input tokens X, so that ``tokens == token_weights @ inputs``,
    - ``refined`` (B, T·N, D): the refiner's output V (it sets the weights), ``aggregation`` (B, Q, M): the TTA's
      last weights,
    - ``selection``: ``index`` (B, k) of hard top-k, or ``alpha`` (B, k, T·N) of DTS,
    - ``scale_weights`` (B, S): the DMTP weights (ones for fixed pooling).
    """

    uses_text = True

    def __init__(self, config: Mu2Config):
        super().__init__()
        self.config = c = config
        self.in_dim, self.out_dim, self.num_tokens = c.in_dim, c.dim, c.num_queries
        self.projector = nn.Sequential(nn.Linear(c.in_dim, c.dim), nn.GELU(), nn.Linear(c.dim, c.dim))
        if c.rpe:
            self.spatial_bias = nn.ModuleList(
                RelativePositionBias(c.num_heads, c.max_token_distance) for _ in range(c.refiner_layers)
            )
            self.temporal_bias = nn.ModuleList(
                RelativePositionBias(c.num_heads, c.max_frame_distance) for _ in range(c.refiner_layers)
            )
        else:
            self.position = AbsolutePositionEmbedding(c.dim, c.max_frames, c.max_tokens)
        self.refiner = SpatioTemporalRefiner(c.dim, c.num_heads, c.refiner_layers, c.mlp_ratio)
        if c.dts:
            self.selection = SoftTokenSelection(c.dim, c.k)
        else:
            self.score = nn.Linear(c.dim, 1)  # LinVT's token importance; hard top-k gives it no gradient
        if c.dmtp:
            self.pooling = DynamicMultiScalePooling(c.dim, c.pool_kernels, c.gate_hidden, c.dmtp_gate)
        self.scale_embedding = nn.Parameter(torch.randn(len(c.pool_kernels), c.dim) * 0.02)
        self.aggregation = TextConditionedAggregation(
            c.dim, c.num_heads, c.aggregation_layers, c.num_queries, c.mlp_ratio
        )

    def forward(self, features, question_embeds=None, question_mask=None, return_details: bool = False):
        if question_embeds is not None and question_embeds.shape[-1] != self.config.dim:
            raise ValueError(
                f"Mu2Tokenizer: question_embeds must have the LLM width {self.config.dim}, "
                f"got {tuple(question_embeds.shape)}"
            )
        if not return_details:
            return super().forward(features, question_embeds, question_mask)  # input checks, then tokenize
        check_features(features, self.in_dim, type(self).__name__)
        return self._run(features, question_embeds, question_mask, details=True)

    def tokenize(self, features, question_embeds=None, question_mask=None):
        return self._run(features, question_embeds, question_mask, details=False)

    def _run(self, features, question_embeds, question_mask, details: bool):
        c = self.config
        B, T, N, _ = features.shape
        x = self.projector(features)  # the visual tokens in the LLM's space: the values of every later step
        if c.rpe:
            v = self.refiner(x, list(self.spatial_bias), list(self.temporal_bias))
        else:
            v = self.refiner(self.position(x))
        v_flat, x_flat = v.reshape(B, T * N, c.dim), x.reshape(B, T * N, c.dim)

        # token selection: hard top-k (LinVT) or k soft tokens (DTS). The refined tokens choose; the same
        # selection is applied to the input tokens (linearity principle: the output combines the input).
        if c.dts:
            top_refined, alpha = self.selection(v_flat)
            top = alpha @ x_flat
            selection = {"alpha": alpha}
        else:
            top_refined, index = hard_topk_select(v_flat, self.score(v_flat).squeeze(-1), c.k)
            top = x_flat.gather(1, index[..., None].expand(-1, -1, c.dim))
            selection = {"index": index}

        # multi-scale pooling: fixed (LinVT) or dynamic (DMTP); the DMTP gate reads the refined tokens
        if c.dmtp:
            pooled_refined, scale_weights = self.pooling(top_refined)
        else:
            pooled_refined = fixed_multiscale_pool(top_refined, c.pool_kernels)
            scale_weights = torch.ones(B, len(c.pool_kernels), dtype=top.dtype, device=top.device)
        pooled = self._pool_matrix(top.shape[1], scale_weights) @ top  # the same pooling, on the input tokens
        sizes = [-(-top.shape[1] // s) for s in c.pool_kernels]
        key_bias = torch.repeat_interleave(self.scale_embedding, torch.tensor(sizes, device=top.device), dim=0)

        tokens, agg = self.aggregation(pooled_refined, question_embeds, question_mask, key_bias.expand(B, -1, -1),
                                       values=pooled)
        if not details:
            return tokens
        info = {
            "inputs": x_flat,
            "refined": v_flat,
            "aggregation": agg,
            "selection": selection,
            "scale_weights": scale_weights,
            "token_weights": agg @ self._pool_matrix(top.shape[1], scale_weights) @ self._select_matrix(
                selection, T * N, top.dtype
            ),
            "frames": T,
            "tokens_per_frame": N,
        }
        return tokens, info

    def _pool_matrix(self, k: int, scale_weights: torch.Tensor) -> torch.Tensor:
        """(B, M, k): pooled = P @ top, with each scale's rows multiplied by its weight."""
        blocks = [
            w[:, None, None] * pooling_matrix(k, s, scale_weights.dtype, scale_weights.device)
            for w, s in zip(scale_weights.unbind(1), self.config.pool_kernels)
        ]
        return torch.cat(blocks, dim=1)

    @staticmethod
    def _select_matrix(selection: dict, length: int, dtype) -> torch.Tensor:
        """(B, k, T·N): top = S @ v_flat (one-hot rows for hard top-k, α for DTS)."""
        if "alpha" in selection:
            return selection["alpha"]
        index = selection["index"]
        return torch.nn.functional.one_hot(index, length).to(dtype)


def volume_to_frames(volume, slices_per_frame: int):
    """Cut a (D, H, W) volume of any depth into (T, K, H, W) frames, T = ⌈D / K⌉ (the last frame padded with
    the volume's minimum, i.e. air).

    Thin wrapper around :func:`rrg_lite.data.transforms.split_into_frames`, so that the tokenizer's input
    depth is never resized: more slices simply give more frames, and the output token count stays fixed.
    """
    from rrg_lite.data.transforms import split_into_frames

    return split_into_frames(volume, slices_per_frame)


def linvt_tokenizer(**config) -> Mu2Tokenizer:
    """The LinVT baseline as a tokenizer: :class:`Mu2Tokenizer` with every μ² flag off.

    ``config`` are :class:`Mu2Config` fields (``in_dim``, ``dim``, ``k``, ...); ``rpe``/``dts``/``dmtp`` given
    here are overridden to False.
    """
    return Mu2Tokenizer(Mu2Config(**{**config, "rpe": False, "dts": False, "dmtp": False}))
