"""One learned-query / cross-attention block for every system that lets one token set read another.

Queries X_q (B, Nq, D) read keys/values X_kv (B, Nk, D_kv). One *layer* is attention, a residual, LayerNorms and an
optional feed-forward sub-block, in one of two orders::

    attention   A = softmax((X_q W_Q)(X_kv W_K)ᵀ / √d),  Z̄ = A (X_kv W_V) [W_O]         per head, d = D / H
    post-norm   Z' = LN(X_q + Z̄(X_q, X_kv));        Z = LN(Z' + FFN(Z'))                  (ViPET Eq. 7–8)
    pre-norm    Z' = X_q + Z̄(LN(X_q), LN_kv(X_kv));  Z = Z' + FFN(LN(Z'))                 (Perceiver, Flamingo)

A *stack* is ``num_layers`` such layers: layer k's queries are layer k − 1's output, keys/values stay X_kv. The
queries are either given by the caller (ViPET's PET tokens; LLM-RG4's frontal query features) or are N learned
latent vectors V' (N, D) shared by the batch (LLM-RG4's p_f, a perceiver resampler, Reg2RG's perceiver).

Who uses it:

- :mod:`rrg_lite.systems.vipet.fusion` — PET tokens ask, CT tokens answer (its layers are
  :class:`CrossAttentionLayer`).
- :mod:`rrg_lite.systems.llm_rg4.atf` — p_f (learned queries read the frontal view), p_l and p_t (the frontal query
  features read the lateral view and the prior report).

The classes, smallest first:

- :class:`CrossAttention` — the attention alone: ``(x_q, x_kv, kv_mask) -> (Z̄ (B, Nq, D), A (B, H, Nq, Nk))``.
- :class:`CrossAttentionLayer` — attention + residual + norms + FFN, one layer, built from a
  :class:`CrossAttentionConfig`.
- :class:`CrossAttentionStack` — ``num_layers`` layers, optional learned queries, optional final LayerNorm.

Options that exist because some codebase does it (all off by default):

- ``qkv_bias`` / ``out_proj``: biases in W_Q, W_K, W_V / an output projection W_O (``nn.MultiheadAttention`` has
  both; ViPET's Eq. 5–6 have neither).
- ``zero_attn``: a zero key and a zero value are appended to every key set (``add_zero_attn`` of
  ``nn.MultiheadAttention``, used by LLM-RG4's code): a query may "attend to nothing", so its output need not be
  a convex mix of real values.
- ``attend_to_queries``: keys/values are ``[X_kv; X_q]`` (Flamingo's resampler, :mod:`rrg_lite.tokenizers.perceiver`);
  needs ``kv_dim == dim``.
- ``ffn``: ``"mlp"`` (D → hidden → D with an activation, ViT's), ``"linear"`` (one D → D linear, LLM-RG4's code),
  ``"none"`` (attention sub-block only).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

__all__ = ["CrossAttentionConfig", "CrossAttention", "CrossAttentionLayer", "CrossAttentionStack", "check_tokens"]

NORMS = ("post", "pre")
FFNS = ("mlp", "linear", "none")
ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


@dataclass(frozen=True)
class CrossAttentionConfig:
    """How a :class:`CrossAttentionLayer` / :class:`CrossAttentionStack` is built.

    dim: D, the query width (and the output width). kv_dim: width of the keys/values (``None`` = dim).
    num_heads: H; √d uses the per-head width D / H. num_layers: layers of a stack.
    num_queries: N learned latent queries of a stack (``None`` = the caller passes the queries).
    ffn: ``"mlp"``, ``"linear"`` or ``"none"``; ffn_dim: hidden width of ``"mlp"`` (``None`` = 4·dim);
      activation: ``"gelu"`` or ``"relu"``.
    norm: ``"post"`` or ``"pre"`` (see the module docstring). final_norm: a LayerNorm after the last layer of a
      stack (pre-norm stacks usually end with one).
    qkv_bias, out_proj, zero_attn, attend_to_queries: see the module docstring.
    dropout: on the attention weights and the FFN output. layer_norm_eps: of every LayerNorm.
    """

    dim: int = 256
    kv_dim: int | None = None
    num_heads: int = 1
    num_layers: int = 1
    num_queries: int | None = None
    ffn: str = "mlp"
    ffn_dim: int | None = None
    activation: str = "gelu"
    norm: str = "post"
    final_norm: bool = False
    qkv_bias: bool = False
    out_proj: bool = False
    zero_attn: bool = False
    attend_to_queries: bool = False
    dropout: float = 0.0
    layer_norm_eps: float = 1e-5

    def __post_init__(self):
        name = type(self).__name__
        if self.norm not in NORMS:
            raise ValueError(f"{name}.norm must be one of {NORMS}, got {self.norm!r}")
        if self.ffn not in FFNS:
            raise ValueError(f"{name}.ffn must be one of {FFNS}, got {self.ffn!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"{name}.activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}")
        if self.dim < 1 or self.num_heads < 1 or self.dim % self.num_heads:
            raise ValueError(f"{name}: dim {self.dim} must be a positive multiple of num_heads {self.num_heads}")
        if self.kv_dim is not None and self.kv_dim < 1:
            raise ValueError(f"{name}.kv_dim must be >= 1, got {self.kv_dim}")
        if self.num_layers < 1:
            raise ValueError(f"{name}.num_layers must be >= 1, got {self.num_layers}")
        if self.num_queries is not None and self.num_queries < 1:
            raise ValueError(f"{name}.num_queries must be >= 1 or None, got {self.num_queries}")
        if self.attend_to_queries and self.key_dim != self.dim:
            raise ValueError(f"{name}: attend_to_queries concatenates queries to the keys and needs kv_dim == dim, "
                             f"got kv_dim {self.kv_dim} and dim {self.dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{name}.dropout must be in [0, 1), got {self.dropout}")

    @property
    def key_dim(self) -> int:
        return self.dim if self.kv_dim is None else self.kv_dim

    @property
    def hidden_dim(self) -> int:
        return 4 * self.dim if self.ffn_dim is None else self.ffn_dim

    def as_dict(self) -> dict:
        return asdict(self)


def check_tokens(who: str, name: str, x, dim: int) -> None:
    """Raise a ValueError naming ``who`` and ``name`` unless ``x`` is a (B, N, dim) tensor."""
    if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[-1] != dim:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{who}: {name} must be (B, N, {dim}), got {shape}")


def _check_mask(who: str, mask, x: torch.Tensor, name: str = "kv_mask") -> None:
    if mask is not None and (not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool
                             or tuple(mask.shape) != tuple(x.shape[:2])):
        got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"{who}: {name} must be bool {tuple(x.shape[:2])}, got {got}")


class CrossAttention(nn.Module):
    """``softmax((X_q W_Q)(X_kv W_K)ᵀ / √d) (X_kv W_V)``, per head, heads concatenated (then W_O if ``out_proj``).

    forward(x_q (B, Nq, D), x_kv (B, Nk, D_kv), kv_mask (B, Nk) bool or None) -> (Z̄ (B, Nq, D), A (B, H, Nq, Nk)).
    ``kv_mask`` marks real keys (True); padded keys get zero weight. Every row of A sums to one. With
    ``zero_attn`` A has Nk + 1 columns, the last one the weight on the appended zero key/value (never masked).
    A query row whose keys are all masked (and no zero key) has no defined softmax: it raises a ValueError.
    """

    def __init__(self, dim: int, num_heads: int = 1, qkv_bias: bool = False, out_proj: bool = False,
                 dropout: float = 0.0, *, kv_dim: int | None = None, zero_attn: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"CrossAttention: width {dim} is not divisible by {num_heads} heads")
        kv_dim = dim if kv_dim is None else kv_dim
        self.num_heads, self.head_dim, self.kv_dim, self.zero_attn = num_heads, dim // num_heads, kv_dim, zero_attn
        self.W_Q = nn.Linear(dim, dim, bias=qkv_bias)
        self.W_K = nn.Linear(kv_dim, dim, bias=qkv_bias)
        self.W_V = nn.Linear(kv_dim, dim, bias=qkv_bias)
        self.W_O = nn.Linear(dim, dim) if out_proj else nn.Identity()
        self.drop = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, D) -> (B, H, N, d)
        B, N, _ = x.shape
        return x.view(B, N, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x_q: torch.Tensor, x_kv: torch.Tensor, kv_mask: torch.Tensor | None = None):
        k, v = self.W_K(x_kv), self.W_V(x_kv)
        if self.zero_attn:      # a zero key (logit 0) and a zero value after the projections, as add_zero_attn
            zero = k.new_zeros(k.shape[0], 1, k.shape[-1])
            k, v = torch.cat([k, zero], 1), torch.cat([v, zero], 1)
            if kv_mask is not None:
                kv_mask = torch.cat([kv_mask, kv_mask.new_ones(kv_mask.shape[0], 1)], 1)
        if kv_mask is not None and not bool(kv_mask.any(-1).all()):
            raise ValueError("CrossAttention: a sample has every key masked out (kv_mask all False); "
                             "drop the sample or set zero_attn=True")
        q, k, v = self._heads(self.W_Q(x_q)), self._heads(k), self._heads(v)
        logits = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)           # (B, H, Nq, Nk)
        if kv_mask is not None:
            logits = logits.masked_fill(~kv_mask[:, None, None, :], float("-inf"))
        attn = logits.softmax(dim=-1)
        z = (self.drop(attn) @ v).transpose(1, 2).reshape(*x_q.shape[:2], -1)  # heads side by side again
        return self.W_O(z), attn


class CrossAttentionLayer(nn.Module):
    """One layer: the mixing step (cross-attention), residual and norms, then the FFN sub-block (or none).

    forward(x_q (B, Nq, D), x_kv (B, Nk, D_kv), kv_mask (B, Nk) bool or None) -> (Z (B, Nq, D), A (B, H, Nq, Nk')).
    Nk' = Nk (+ Nq with ``attend_to_queries``) (+ 1 with ``zero_attn``).

    Parameter names (kept stable for checkpoints): ``attn`` (W_Q, W_K, W_V, W_O), ``norm1`` (queries),
    ``norm_kv`` (keys/values, pre-norm only), ``ffn`` and ``norm2``. A system that mixes differently (ViPET's
    concatenation controls) subclasses this and overrides :meth:`_build_mixing` and :meth:`mix`.
    """

    def __init__(self, cfg: CrossAttentionConfig):
        super().__init__()
        self.cfg = cfg
        self._build_mixing(cfg)      # order of construction = order of parameter initialisation under a seed
        self._build_ffn(cfg)

    def _build_mixing(self, cfg: CrossAttentionConfig) -> None:
        self.attn = CrossAttention(cfg.dim, cfg.num_heads, cfg.qkv_bias, cfg.out_proj, cfg.dropout,
                                   kv_dim=cfg.kv_dim, zero_attn=cfg.zero_attn)
        self.norm1 = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
        if cfg.norm == "pre":                       # keys/values get their own norm in pre-norm
            self.norm_kv = nn.LayerNorm(cfg.key_dim, eps=cfg.layer_norm_eps)

    def _build_ffn(self, cfg: CrossAttentionConfig) -> None:
        D = cfg.dim
        if cfg.ffn == "mlp":
            self.ffn = nn.Sequential(nn.Linear(D, cfg.hidden_dim), ACTIVATIONS[cfg.activation](),
                                     nn.Linear(cfg.hidden_dim, D), nn.Dropout(cfg.dropout))
        elif cfg.ffn == "linear":
            self.ffn = nn.Sequential(nn.Linear(D, D), nn.Dropout(cfg.dropout))
        if cfg.ffn != "none":
            self.norm2 = nn.LayerNorm(D, eps=cfg.layer_norm_eps)

    def mix(self, x_q, x_kv, kv_mask):
        """The step that lets queries read keys/values: (B, Nq, D), (B, Nk, D_kv) -> (Z̄ (B, Nq, D), A or None)."""
        if self.cfg.attend_to_queries:               # Flamingo: latents also read themselves
            x_kv = torch.cat([x_kv, x_q], dim=1)
            if kv_mask is not None:
                kv_mask = torch.cat([kv_mask, kv_mask.new_ones(x_q.shape[:2])], dim=1)
        return self.attn(x_q, x_kv, kv_mask)

    def feed_forward(self, z: torch.Tensor) -> torch.Tensor:
        """The FFN sub-block: post ``LN(z + FFN(z))``, pre ``z + FFN(LN(z))``, or ``z`` itself with ``ffn="none"``."""
        if self.cfg.ffn == "none":
            return z
        if self.cfg.norm == "post":
            return self.norm2(z + self.ffn(z))
        return z + self.ffn(self.norm2(z))

    def forward(self, x_q: torch.Tensor, x_kv: torch.Tensor, kv_mask: torch.Tensor | None = None):
        if self.cfg.norm == "post":
            z_bar, attn = self.mix(x_q, x_kv, kv_mask)
            z = self.norm1(x_q + z_bar)
        else:
            z_bar, attn = self.mix(self.norm1(x_q), self.norm_kv(x_kv), kv_mask)
            z = x_q + z_bar
        return self.feed_forward(z), attn


class CrossAttentionStack(nn.Module):
    """``num_layers`` :class:`CrossAttentionLayer` s; with ``num_queries`` the queries are learned latents V'.

    forward(x_kv (B, Nk, D_kv), queries (B, Nq, D) or None, kv_mask (B, Nk) bool or None, return_attention=False)
      -> Z (B, Nq, D), Nq = ``num_queries`` when ``queries`` is None; with ``return_attention`` also the list of
      per-layer attention weights (B, H, Nq, Nk').
    Passing ``queries`` to a stack that has latents uses the given queries (a caller that conditions them).
    """

    def __init__(self, config: CrossAttentionConfig | None = None, **overrides):
        super().__init__()
        if config is None:
            config = CrossAttentionConfig(**overrides)
        elif overrides:
            raise ValueError("CrossAttentionStack: pass either a CrossAttentionConfig or keyword fields, not both")
        self.config = config
        if config.num_queries is not None:
            # ViT-style small init: latents start near the origin, like the tokens they will be compared with
            self.latents = nn.Parameter(torch.randn(config.num_queries, config.dim) * config.dim ** -0.5)
        self.layers = nn.ModuleList(CrossAttentionLayer(config) for _ in range(config.num_layers))
        self.final_norm = nn.LayerNorm(config.dim, eps=config.layer_norm_eps) if config.final_norm else nn.Identity()

    @property
    def num_queries(self) -> int | None:
        return self.config.num_queries

    def forward(self, x_kv: torch.Tensor, queries: torch.Tensor | None = None, kv_mask: torch.Tensor | None = None,
                return_attention: bool = False):
        cfg = self.config
        who = type(self).__name__
        check_tokens(who, "keys/values x_kv", x_kv, cfg.key_dim)
        _check_mask(who, kv_mask, x_kv)
        if queries is None:
            if cfg.num_queries is None:
                raise ValueError(f"{who}: no queries given and no learned queries (set num_queries in the config)")
            queries = self.latents.expand(x_kv.shape[0], -1, -1)
        check_tokens(who, "queries", queries, cfg.dim)
        if queries.shape[0] != x_kv.shape[0]:
            raise ValueError(f"{who}: batch sizes differ, queries {tuple(queries.shape)} vs x_kv {tuple(x_kv.shape)}")
        attentions = []
        z = queries
        for layer in self.layers:
            z, attn = layer(z, x_kv, kv_mask)
            attentions.append(attn)
        z = self.final_norm(z)
        return (z, attentions) if return_attention else z
