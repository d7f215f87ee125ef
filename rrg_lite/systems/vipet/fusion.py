"""ViPET-VLM stage 1b: PET-query cross-attention fusion (Eq. 5–8) and its CLIP-style alignment (Eq. 9).

The PET encoder gives V_PET (B, N_pet, D), the CT encoder V_CT (B, N_ct, D). PET tokens ask, CT tokens answer::

    Q = V_PET W_Q,   K = V_CT W_K,   V = V_CT W_V                        (5)
    Z̄ = softmax(Q Kᵀ / √d) V                                            (6)
    Z' = LayerNorm(V_PET + Z̄)                                           (7)
    Z_cross = LayerNorm(Z' + FFN(Z'))                                    (8)   -> (B, N_pet, D), the PET token grid
    L_cross = InfoNCE(pool(Z_cross), t_full), image→text only           (9)

The paper's reason for PET as the query: a reader first finds uptake on PET, then looks up its anatomy on CT.
:class:`PetCtFusion` is that block; :class:`FusionConfig` says how it is built. Its layers are the package's shared
cross-attention layer (:class:`rrg_lite.fusion.attention.CrossAttentionLayer`, which LLM-RG4's token fusion uses
too); :class:`CrossAttention` (Eq. 5–6 alone) is the shared one, re-exported here. The controls the chapter needs
are options of the same class, so that every variant has the same FFN and the same norms and only the studied part
changes:

- ``norm="post"`` (default, Eq. 7–8 as written) or ``norm="pre"``: ``Z' = V_PET + Attn(LN(V_PET), LN(V_CT))``,
  ``Z = Z' + FFN(LN(Z'))`` — the pre-norm block of a related codebase. No final LayerNorm in pre-norm (a stack of
  pre-norm blocks usually ends with one; add it outside if needed).
- ``query="ct"``: CT-as-query control; the roles swap and the output keeps the CT grid (B, N_ct, D).
- ``mode="concat_tokens"``: concatenation instead of cross-attention, as in a related codebase — no attention,
  the sequence ``[V_PET; V_CT]`` (B, N_pet + N_ct, D) goes through the same FFN sub-block (Eq. 8) and the LLM has
  to fuse the two modalities itself (twice the visual tokens).
- ``mode="concat_features"``: per-token concatenation on the feature axis, ``Z̄ = [V_PET ‖ V_CT] W_cat``
  (2D → D) in place of Eq. 5–6, then Eq. 7–8 unchanged. It needs co-registered grids (N_pet = N_ct) and asks
  whether *learned retrieval* beats pairing each PET token with the CT token at the same place.

What the paper does not state, and what we chose (SYSTEMS.md §1, "Not stated: heads, blocks, d, FFN width"):
one head and one block (Eq. 6 is written for a single head; ``num_heads``/``num_layers`` change it); no biases
in W_Q, W_K, W_V and no output projection, as Eq. 5–6 are written (``qkv_bias``, ``out_proj`` add them); the
FFN is D → 4D → D with GELU (ViT's, the encoders are ViTs); √d is the per-head width; for Eq. 9 Z_cross is
mean-pooled over its tokens and τ = 0.07 (CLIP's initial value).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from rrg_lite.fusion.attention import (ACTIVATIONS, CrossAttention, CrossAttentionConfig, CrossAttentionLayer,
                                      check_tokens)
from rrg_lite.train.contrastive import info_nce

__all__ = ["FusionConfig", "PetCtFusion", "CrossAttention", "pool_tokens", "one_way_clip_loss"]

_MODES = ("cross", "concat_tokens", "concat_features")
_NORMS = ("post", "pre")
_QUERIES = ("pet", "ct")


@dataclass(frozen=True)
class FusionConfig:
    """How :class:`PetCtFusion` is built. Defaults = Eq. 5–8 as printed, at a width chosen by the caller.

    dim: D, the width of both encoders' tokens (the paper uses CT-ViT for both, so one width).
    num_heads: heads of Eq. 6 (1 = the formula as written; √d uses the per-head width D / num_heads).
    num_layers: fusion blocks stacked; block k's queries are block k−1's output, keys/values stay the other
      modality's encoder tokens.
    ffn_dim: hidden width of the FFN (``None`` = 4·dim). activation: ``"gelu"`` or ``"relu"``.
    norm: ``"post"`` (Eq. 7–8) or ``"pre"``. query: ``"pet"`` (the paper) or ``"ct"`` (control).
    mode: ``"cross"`` (the paper), ``"concat_tokens"`` or ``"concat_features"`` (controls).
    qkv_bias / out_proj: add biases to W_Q, W_K, W_V / an output projection W_O after Eq. 6 (not in the paper).
    dropout: on the attention weights and the FFN output (0 = the paper says nothing).
    layer_norm_eps: of every LayerNorm.
    """

    dim: int = 256
    num_heads: int = 1
    num_layers: int = 1
    ffn_dim: int | None = None
    activation: str = "gelu"
    norm: str = "post"
    query: str = "pet"
    mode: str = "cross"
    qkv_bias: bool = False
    out_proj: bool = False
    dropout: float = 0.0
    layer_norm_eps: float = 1e-5

    def __post_init__(self):
        if self.mode not in _MODES:
            raise ValueError(f"FusionConfig.mode must be one of {_MODES}, got {self.mode!r}")
        if self.norm not in _NORMS:
            raise ValueError(f"FusionConfig.norm must be one of {_NORMS}, got {self.norm!r}")
        if self.query not in _QUERIES:
            raise ValueError(f"FusionConfig.query must be one of {_QUERIES}, got {self.query!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"FusionConfig.activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}")
        if self.dim < 1 or self.num_heads < 1 or self.dim % self.num_heads:
            raise ValueError(f"FusionConfig: dim {self.dim} must be a positive multiple of num_heads {self.num_heads}")
        if self.num_layers < 1:
            raise ValueError(f"FusionConfig.num_layers must be >= 1, got {self.num_layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"FusionConfig.dropout must be in [0, 1), got {self.dropout}")

    @property
    def hidden_dim(self) -> int:
        return 4 * self.dim if self.ffn_dim is None else self.ffn_dim

    def as_dict(self) -> dict:
        return asdict(self)


class _FusionBlock(CrossAttentionLayer):
    """One block: the shared :class:`~rrg_lite.fusion.attention.CrossAttentionLayer` (Eq. 5–8, or their pre-norm);
    the concatenation controls replace its mixing step (``concat_features``) or drop it (``concat_tokens``)."""

    def __init__(self, cfg: FusionConfig):
        self.mode = cfg.mode
        super().__init__(_layer_config(cfg))

    def _build_mixing(self, cfg: CrossAttentionConfig) -> None:
        if self.mode == "cross":
            super()._build_mixing(cfg)
        elif self.mode == "concat_features":        # [V_PET ‖ V_CT] W_cat in place of Eq. 5–6, then Eq. 7
            self.W_cat = nn.Linear(2 * cfg.dim, cfg.dim, bias=cfg.qkv_bias)
            self.norm1 = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
            if cfg.norm == "pre":
                self.norm_kv = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)

    def mix(self, x_q, x_kv, kv_mask):
        if self.mode == "cross":
            return super().mix(x_q, x_kv, kv_mask)
        return self.W_cat(torch.cat([x_q, x_kv], dim=-1)), None

    def forward(self, x_q, x_kv, kv_mask=None):
        if self.mode == "concat_tokens":           # no mixing step: only the FFN sub-block (Eq. 8)
            return self.feed_forward(x_q), None
        return super().forward(x_q, x_kv, kv_mask)


def _layer_config(cfg: FusionConfig) -> CrossAttentionConfig:
    """FusionConfig -> the shared layer's config (same D, heads, FFN, norm order, biases, dropout)."""
    return CrossAttentionConfig(dim=cfg.dim, num_heads=cfg.num_heads, ffn="mlp", ffn_dim=cfg.ffn_dim,
                                activation=cfg.activation, norm=cfg.norm, qkv_bias=cfg.qkv_bias,
                                out_proj=cfg.out_proj, dropout=cfg.dropout, layer_norm_eps=cfg.layer_norm_eps)


class PetCtFusion(nn.Module):
    """The fusion module of stage 1b and its controls (see the module docstring and :class:`FusionConfig`).

    forward(v_pet (B, N_pet, D), v_ct (B, N_ct, D), pet_mask=None, ct_mask=None, return_attention=False)
      -> Z (B, N_out, D), N_out = N_pet (paper), N_ct (``query="ct"``), N_pet + N_ct (``"concat_tokens"``);
      with ``return_attention`` also the list of per-block attention weights (B, H, N_out, N_kv) (empty for the
      concatenation controls). ``pet_mask``/``ct_mask`` (B, N) bool mark real tokens when grids are padded; only
      the key/value side's mask is used (queries that are padding give outputs the caller ignores); the
      concatenation controls use neither (``"concat_tokens"`` callers concatenate the masks as the tokens).
    """

    def __init__(self, config: FusionConfig | None = None, **overrides):
        super().__init__()
        if config is None:
            config = FusionConfig(**overrides)
        elif overrides:
            raise ValueError("PetCtFusion: pass either a FusionConfig or keyword fields, not both")
        self.config = config
        self.blocks = nn.ModuleList(_FusionBlock(config) for _ in range(config.num_layers))

    def num_output_tokens(self, n_pet: int, n_ct: int) -> int:
        cfg = self.config
        if cfg.mode == "concat_tokens":
            return n_pet + n_ct
        return n_ct if cfg.query == "ct" else n_pet

    def forward(self, v_pet: torch.Tensor, v_ct: torch.Tensor, pet_mask: torch.Tensor | None = None,
                ct_mask: torch.Tensor | None = None, return_attention: bool = False):
        cfg = self.config
        check_tokens("PetCtFusion", "v_pet", v_pet, cfg.dim)
        check_tokens("PetCtFusion", "v_ct", v_ct, cfg.dim)
        if v_pet.shape[0] != v_ct.shape[0]:
            raise ValueError(f"PetCtFusion: batch sizes differ, v_pet {tuple(v_pet.shape)} vs v_ct {tuple(v_ct.shape)}")
        for name, mask, x in (("pet_mask", pet_mask, v_pet), ("ct_mask", ct_mask, v_ct)):
            if mask is not None and (mask.dtype != torch.bool or tuple(mask.shape) != tuple(x.shape[:2])):
                raise ValueError(f"PetCtFusion: {name} must be bool {tuple(x.shape[:2])}, "
                                 f"got {mask.dtype} {tuple(mask.shape)}")
        if cfg.mode == "concat_features" and v_pet.shape[1] != v_ct.shape[1]:
            raise ValueError("PetCtFusion(mode='concat_features') pairs tokens by position and needs co-registered "
                             f"grids of one length, got v_pet {tuple(v_pet.shape)} and v_ct {tuple(v_ct.shape)}")
        if cfg.mode == "concat_tokens":
            x_q, x_kv, kv_mask = torch.cat([v_pet, v_ct], dim=1), None, None
        elif cfg.query == "pet":
            x_q, x_kv, kv_mask = v_pet, v_ct, ct_mask
        else:
            x_q, x_kv, kv_mask = v_ct, v_pet, pet_mask
        attentions = []
        for block in self.blocks:
            x_q, attn = block(x_q, x_kv, kv_mask)
            if attn is not None:
                attentions.append(attn)
        return (x_q, attentions) if return_attention else x_q


def pool_tokens(z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over tokens: (B, N, D) [+ (B, N) bool of real tokens] -> (B, D). (B, D) passes through unchanged."""
    if z.ndim == 2:
        return z
    if z.ndim != 3:
        raise ValueError(f"pool_tokens needs (B, N, D) or (B, D), got {tuple(z.shape)}")
    if mask is None:
        return z.mean(dim=1)
    if tuple(mask.shape) != tuple(z.shape[:2]):
        raise ValueError(f"pool_tokens: mask {tuple(mask.shape)} does not match tokens {tuple(z.shape)}")
    w = mask.to(z.dtype).unsqueeze(-1)
    return (z * w).sum(1) / w.sum(1).clamp_min(1.0)


def one_way_clip_loss(visual: torch.Tensor, text: torch.Tensor, temperature: float | torch.Tensor = 0.07,
                      visual_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 3, 4 and 9: image→text InfoNCE with cosine similarity, as the paper writes it (one direction only).

    ``visual``: (B, N, D) tokens (mean-pooled first, see :func:`pool_tokens`) or (B, D) embeddings — v_PET, v_CT
    or Z_cross. ``text``: (B, D) — t_PET, t_CT or t_full, already in the same width. Returns a scalar.
    The loss itself is the package's :func:`rrg_lite.train.contrastive.info_nce` with ``symmetric=False``.
    """
    pooled = pool_tokens(visual, visual_mask)
    if text.ndim != 2 or pooled.shape != text.shape:
        raise ValueError(f"one_way_clip_loss: pooled visual {tuple(pooled.shape)} (from {tuple(visual.shape)}) "
                         f"and text {tuple(text.shape)} must be two (B, D) tensors of one shape")
    return info_nce(pooled, text, temperature=temperature, symmetric=False)
