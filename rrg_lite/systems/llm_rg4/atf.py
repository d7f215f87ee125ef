"""LLM-RG4 §"Adaptive Token Fusion Module" (Eq. 5–8): a fixed number of LLM tokens in every input scenario.

Frozen encoders give v_f, v_l (B, N_I, D') for the frontal and lateral images and v_t (B, N_T, D_t) for the prior
report. Three perceivers p_f, p_l, p_t (learned-query cross-attention, :class:`rrg_lite.fusion.attention.
CrossAttentionStack`) compress them; the frontal one reads with N learned queries V' (N, D'), the two others read
with the *frontal query features* p_f(v_f, V') as their queries — the frontal image leads in every scenario::

    q_f = p_f(v_f, V')                      (B, N, D')    learned queries read the frontal view
    h_f = Linear_f(q_f)                     (B, N, D)                                               (5)
    h_l = Linear_l(p_l(v_l, q_f))           (B, N, D)     frontal features read the lateral view    (6)
    h_t = Linear_t(p_t(v_t, q_f))           (B, N, D)     frontal features read the prior report    (7)
    h_o = concat(h_f, h_l, h_t, dim=feat)   (B, N, 3D)    zeros for h_l / h_t when missing, fixed order (8)
    h'_o = Linear_o(h_o)                    (B, N, D)     the N tokens the LLM reads

Token *j* of h_l and h_t was asked for by frontal query *j*, so the three halves of a row talk about the same thing
and concatenating them on the feature axis is meaningful; the LLM always reads N tokens (N = 128 in the paper).
The baseline it replaces, :class:`InterleavedTokens`, puts each input's tokens side by side on the token axis:
the count grows with the inputs (Table 4: 502 input tokens against ATF's 204).

Missing inputs, per sample: ``has_lateral`` / ``has_prior`` (B,) bool say which samples have them, so one batch
may mix scenarios. A missing branch is not computed for that sample and its block of h_o is exactly zero — its
encoder features (padding, stale values, even NaN) cannot reach the output or the gradients.

What the code does and we follow (SYSTEMS.md §3; defaults of :class:`ATFConfig` are those values, CPU chapters
pass smaller widths): each perceiver is one ``nn.MultiheadAttention`` (12 heads, dropout 0.1, ``add_bias_kv``,
``add_zero_attn``) + LN + residual Linear + LN, i.e. a post-norm layer with ``ffn="linear"``, q/k/v biases, an
output projection and a zero key; each "Linear" is D' → 2048 → GELU → D → LN; the fusion Linear is 3D → D + LN.
Differences: ``add_bias_kv`` (a learned extra key/value) is left out — the zero key plays the same "attend to
nothing" role; the text branch takes an optional key-padding mask (the code has none: its reports are padded to
100 tokens and the padding is attended).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import torch
from torch import nn

from rrg_lite.fusion.attention import CrossAttentionConfig, CrossAttentionStack, check_tokens
from rrg_lite.mllm.model import compact_rows

from .scenarios import Scenario, as_scenario

__all__ = ["ATFConfig", "AdaptiveTokenFusion", "InterleavedTokens"]


@dataclass(frozen=True)
class ATFConfig:
    """How :class:`AdaptiveTokenFusion` (and the baseline :class:`InterleavedTokens`) are built.

    enc_dim: D', the image encoder's token width (RAD-DINO 768). text_dim: the prior-report encoder's width
      (CXR-BERT 768; ``None`` = enc_dim). llm_dim: D, the LLM's hidden size (Vicuna-7B 4096).
    num_queries: N, the learned queries V' and the number of output tokens (128 in the paper).
    num_heads, num_layers: of each perceiver (12 and 1 in the code). norm, ffn, ffn_dim, qkv_bias, out_proj,
      zero_attn, dropout: the perceivers' layer options (:class:`rrg_lite.fusion.attention.CrossAttentionConfig`).
    proj_hidden: hidden width of each "Linear" D' → hidden → GELU → D → LN (2048 in the code).
    layer_norm_eps: of every LayerNorm.
    """

    enc_dim: int = 768
    text_dim: int | None = None
    llm_dim: int = 4096
    num_queries: int = 128
    num_heads: int = 12
    num_layers: int = 1
    norm: str = "post"
    ffn: str = "linear"
    ffn_dim: int | None = None
    qkv_bias: bool = True
    out_proj: bool = True
    zero_attn: bool = True
    dropout: float = 0.1
    proj_hidden: int = 2048
    layer_norm_eps: float = 1e-5

    def __post_init__(self):
        for name in ("enc_dim", "llm_dim", "num_queries", "proj_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"ATFConfig.{name} must be >= 1, got {getattr(self, name)}")
        self.perceiver(kv_dim=self.enc_dim)            # the perceiver options are checked where they live

    @property
    def prior_dim(self) -> int:
        return self.enc_dim if self.text_dim is None else self.text_dim

    def perceiver(self, kv_dim: int, num_queries: int | None = None) -> CrossAttentionConfig:
        """The layer config of one perceiver that reads ``kv_dim``-wide tokens."""
        return CrossAttentionConfig(dim=self.enc_dim, kv_dim=kv_dim, num_heads=self.num_heads,
                                    num_layers=self.num_layers, num_queries=num_queries, ffn=self.ffn,
                                    ffn_dim=self.ffn_dim, norm=self.norm, qkv_bias=self.qkv_bias,
                                    out_proj=self.out_proj, zero_attn=self.zero_attn, dropout=self.dropout,
                                    layer_norm_eps=self.layer_norm_eps)

    def as_dict(self) -> dict:
        return asdict(self)


def _projector(cfg: ATFConfig, in_dim: int) -> nn.Sequential:
    """The paper's "Linear" of Eq. 5–7, as the code builds it: in → hidden → GELU → D → LN."""
    return nn.Sequential(nn.Linear(in_dim, cfg.proj_hidden), nn.GELU(), nn.Linear(cfg.proj_hidden, cfg.llm_dim),
                         nn.LayerNorm(cfg.llm_dim, eps=cfg.layer_norm_eps))


def _presence(who: str, name: str, flags, x: torch.Tensor | None, batch: int, device) -> torch.Tensor:
    """(B,) bool of which samples have this optional input; default: all if ``x`` is given, none if not."""
    if flags is None:
        return torch.full((batch,), x is not None, dtype=torch.bool, device=device)
    flags = torch.as_tensor(flags, device=device)
    if flags.dtype != torch.bool or tuple(flags.shape) != (batch,):
        raise ValueError(f"{who}: {name} must be {batch} booleans, one per sample, got {flags.dtype} "
                         f"{tuple(flags.shape)}")
    if x is None and bool(flags.any()):
        raise ValueError(f"{who}: {name} marks {int(flags.sum())} sample(s) as present but no tokens were given")
    return flags


def _check_batch(who: str, name: str, x: torch.Tensor, batch: int) -> None:
    if x.shape[0] != batch:
        raise ValueError(f"{who}: {name} has batch size {x.shape[0]}, the frontal tokens {batch}")


def _mask_ok(who: str, mask, x: torch.Tensor | None) -> None:
    if mask is not None and (x is None or not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool
                             or tuple(mask.shape) != tuple(x.shape[:2])):
        want = "no prior tokens were given" if x is None else f"must be bool {tuple(x.shape[:2])}"
        got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"{who}: prior_mask {want}, got {got}")


class AdaptiveTokenFusion(nn.Module):
    """Eq. 5–8: frontal, lateral and prior-report tokens -> N LLM tokens, in every scenario.

    forward(v_f (B, N_I, D'), v_l (B, N_I', D') or None, v_t (B, N_T, D_t) or None, has_lateral (B,) bool or None,
            has_prior (B,) bool or None, prior_mask (B, N_T) bool or None, return_parts=False)
      -> h'_o (B, N, D); with ``return_parts`` also ``{"q_f", "h_f", "h_l", "h_t", "h_o"}`` (shapes in the module
      docstring; missing blocks are zeros).
    ``has_lateral`` / ``has_prior`` default to "all" when the tokens are given and "none" when they are ``None``;
    ``prior_mask`` marks real report tokens (True) when reports are padded.
    """

    def __init__(self, config: ATFConfig | None = None, **overrides):
        super().__init__()
        if config is None:
            config = ATFConfig(**overrides)
        elif overrides:
            raise ValueError("AdaptiveTokenFusion: pass either an ATFConfig or keyword fields, not both")
        self.config = cfg = config
        self.p_f = CrossAttentionStack(cfg.perceiver(cfg.enc_dim, num_queries=cfg.num_queries))  # V' lives here
        self.p_l = CrossAttentionStack(cfg.perceiver(cfg.enc_dim))
        self.p_t = CrossAttentionStack(cfg.perceiver(cfg.prior_dim))
        self.linear_f, self.linear_l, self.linear_t = (_projector(cfg, cfg.enc_dim) for _ in range(3))
        self.fuse = nn.Sequential(nn.Linear(3 * cfg.llm_dim, cfg.llm_dim),
                                  nn.LayerNorm(cfg.llm_dim, eps=cfg.layer_norm_eps))

    @property
    def num_tokens(self) -> int:
        return self.config.num_queries

    @property
    def out_dim(self) -> int:
        return self.config.llm_dim

    def tokens_for(self, scenario: Scenario | str) -> int:
        """Tokens the LLM reads in ``scenario``: N in all four (the point of ATF)."""
        as_scenario(scenario)
        return self.config.num_queries

    def _branch(self, perceiver, linear, x, q_f, present, kv_mask=None) -> torch.Tensor:
        """Eq. 6 / 7 for the samples that have the input; the others get an exact zero block (B, N, D)."""
        out = q_f.new_zeros(q_f.shape[0], q_f.shape[1], self.config.llm_dim)
        if x is None or not bool(present.any()):
            return out
        idx = present.nonzero().flatten()
        mask = None if kv_mask is None else kv_mask[idx]
        h = linear(perceiver(x[idx], queries=q_f[idx], kv_mask=mask))
        return out.index_put((idx,), h)

    def forward(self, v_f: torch.Tensor, v_l: torch.Tensor | None = None, v_t: torch.Tensor | None = None,
                has_lateral: torch.Tensor | Sequence[bool] | None = None,
                has_prior: torch.Tensor | Sequence[bool] | None = None, prior_mask: torch.Tensor | None = None,
                return_parts: bool = False):
        cfg, who = self.config, "AdaptiveTokenFusion"
        check_tokens(who, "frontal tokens v_f", v_f, cfg.enc_dim)
        B = v_f.shape[0]
        if v_l is not None:
            check_tokens(who, "lateral tokens v_l", v_l, cfg.enc_dim)
            _check_batch(who, "v_l", v_l, B)
        if v_t is not None:
            check_tokens(who, "prior-report tokens v_t", v_t, cfg.prior_dim)
            _check_batch(who, "v_t", v_t, B)
        _mask_ok(who, prior_mask, v_t)
        lat = _presence(who, "has_lateral", has_lateral, v_l, B, v_f.device)
        pri = _presence(who, "has_prior", has_prior, v_t, B, v_f.device)
        q_f = self.p_f(v_f)                                                  # (B, N, D')
        h_f = self.linear_f(q_f)                                             # (5)
        h_l = self._branch(self.p_l, self.linear_l, v_l, q_f, lat)           # (6), zeros where missing
        h_t = self._branch(self.p_t, self.linear_t, v_t, q_f, pri, prior_mask)   # (7)
        h_o = torch.cat([h_f, h_l, h_t], dim=-1)                             # (8), fixed order f, l, t
        out = self.fuse(h_o)                                                 # (B, N, D)
        if return_parts:
            return out, {"q_f": q_f, "h_f": h_f, "h_l": h_l, "h_t": h_t, "h_o": h_o}
        return out


class InterleavedTokens(nn.Module):
    """The baseline of Table 4 ("ATF ✗"): each input gets its own projector, the results go side by side.

    Frontal and lateral images: a perceiver with its own N learned queries each (the same p_f as ATF, one per view)
    and a projector to D — N tokens per image; with ``compress_images=False`` every patch token is projected
    (LLaVA; N_I tokens per image). Prior report: every token projected to D (N_T tokens). Order
    ``[frontal; lateral; prior]`` on the token axis, so the count grows with the inputs.

    forward(v_f (B, N_I, D'), v_l or None, v_t or None, has_lateral, has_prior, prior_mask)
      -> (tokens (B, K, D), mask (B, K) bool): missing inputs and padded report tokens are dropped and the real
      tokens moved to the front of each row (:func:`rrg_lite.mllm.model.compact_rows`); in a single-scenario batch
      without padding every row is full and K = :meth:`tokens_for`.
    """

    def __init__(self, config: ATFConfig | None = None, compress_images: bool = True, text_tokens: int = 100,
                 **overrides):
        super().__init__()
        if config is None:
            config = ATFConfig(**overrides)
        elif overrides:
            raise ValueError("InterleavedTokens: pass either an ATFConfig or keyword fields, not both")
        if text_tokens < 1:
            raise ValueError(f"InterleavedTokens: text_tokens must be >= 1, got {text_tokens}")
        self.config, self.compress_images, self.text_tokens = config, compress_images, text_tokens
        if compress_images:
            self.p_f = CrossAttentionStack(config.perceiver(config.enc_dim, num_queries=config.num_queries))
            self.p_l = CrossAttentionStack(config.perceiver(config.enc_dim, num_queries=config.num_queries))
        self.linear_f = _projector(config, config.enc_dim)
        self.linear_l = _projector(config, config.enc_dim)
        self.linear_t = _projector(config, config.prior_dim)

    @property
    def out_dim(self) -> int:
        return self.config.llm_dim

    def tokens_for(self, scenario: Scenario | str, image_tokens: int | None = None,
                   text_tokens: int | None = None) -> int:
        """Tokens the LLM reads in ``scenario``: sn N, sw N + N_T, mn 2N, mw 2N + N_T (N per image).

        ``image_tokens``: N_I, needed with ``compress_images=False`` (then each image gives N_I tokens).
        ``text_tokens``: N_T of the prior report (default: the constructor's, 100 as CXR-BERT's in the code).
        """
        sc = as_scenario(scenario)
        if self.compress_images:
            per_image = self.config.num_queries
        elif image_tokens is None:
            raise ValueError("InterleavedTokens.tokens_for: compress_images=False counts every patch token; "
                             "pass image_tokens=N_I")
        else:
            per_image = int(image_tokens)
        n_t = self.text_tokens if text_tokens is None else int(text_tokens)
        return per_image * (2 if sc.has_lateral else 1) + (n_t if sc.has_prior else 0)

    def _image(self, perceiver_name: str, linear, x):
        if self.compress_images:
            x = getattr(self, perceiver_name)(x)
        return linear(x)

    def forward(self, v_f, v_l=None, v_t=None, has_lateral=None, has_prior=None, prior_mask=None):
        cfg, who = self.config, "InterleavedTokens"
        check_tokens(who, "frontal tokens v_f", v_f, cfg.enc_dim)
        B = v_f.shape[0]
        parts, masks = [self._image("p_f", self.linear_f, v_f)], []
        masks.append(torch.ones(parts[0].shape[:2], dtype=torch.bool, device=v_f.device))
        lat = _presence(who, "has_lateral", has_lateral, v_l, B, v_f.device)
        pri = _presence(who, "has_prior", has_prior, v_t, B, v_f.device)
        _mask_ok(who, prior_mask, v_t)
        if v_l is not None:
            check_tokens(who, "lateral tokens v_l", v_l, cfg.enc_dim)
            _check_batch(who, "v_l", v_l, B)
            h = self._image("p_l", self.linear_l, torch.where(lat[:, None, None], v_l, 0.0))  # no NaN from absent
            parts.append(h)
            masks.append(lat[:, None].expand(-1, h.shape[1]))
        if v_t is not None:
            check_tokens(who, "prior-report tokens v_t", v_t, cfg.prior_dim)
            _check_batch(who, "v_t", v_t, B)
            parts.append(self.linear_t(torch.where(pri[:, None, None], v_t, 0.0)))
            m = pri[:, None].expand(-1, v_t.shape[1])
            masks.append(m if prior_mask is None else m & prior_mask)
        return compact_rows(torch.cat(parts, dim=1), torch.cat(masks, dim=1))
