"""How much the LM's text tokens attend to the visual tokens (ViPET-VLM §3.2.4, Eq. 10).

Layer l, head h of the LM has an attention matrix A_l^h (S, S) (row = query, column = key, rows sum to 1).
For a set Q of query rows (the answer tokens, or every token after the image) and the K visual token
positions c_1..c_K of one slot, the *visual attention map* is the mean over layers, heads and query rows::

    M^v_k = 1/(L·H·|Q|) Σ_l Σ_h Σ_{q ∈ Q} A_l^h[q, c_k]          k = 1..K              (ViPET Eq. 10)

Each row of A sums to 1, so Σ_k M^v_k ≤ 1: the share of the query tokens' attention that lands on the image
(the rest goes to text tokens). It is differentiable in the attentions, so a loss on it (ViPET's L_align,
built in :mod:`rrg_lite.systems.vipet.alignment`) trains the projector and LoRA weights to move attention.

- :func:`mean_attention_to` — the pure formula, on a tuple of per-layer attentions; unit-tested by hand.
- :func:`visual_positions` — where a slot's placeholder tokens sit in each row (-1 padding for ragged rows).
- :meth:`MultimodalLM.visual_attention <rrg_lite.mllm.model.MultimodalLM.visual_attention>` — one forward pass
  that returns the LM output (with its loss) *and* M^v, so L = L_llm + λ·L_align costs one pass.

The attentions come from ``output_attentions=True``, which needs the *eager* attention implementation
(``tiny_llama(..., attn_implementation="eager")``, ``load_causal_lm(..., attn_implementation="eager")``); SDPA and
flash attention never form A, and an LM that returns none is refused with an error saying so.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import torch

__all__ = ["QUERIES", "VisualAttention", "mean_attention_to", "visual_positions", "check_attentions",
           "select_layers"]

#: Which rows are the queries Q: the target (answer) tokens, or every real token after the last visual token.
QUERIES = ("targets", "after_image")


class VisualAttention(NamedTuple):
    """What :meth:`MultimodalLM.visual_attention` returns.

    attention: (B, K) float32, M^v per visual token (0 on padding); positions: (B, K) long, each visual token's
    sequence position (-1 = padding, for rows with fewer visual tokens); output: the LM's output of the same pass
    (``.loss`` when labels were given, ``.logits``, ``.attentions``).
    """

    attention: torch.Tensor
    positions: torch.Tensor
    output: Any


def check_attentions(attentions) -> list[torch.Tensor]:
    """The LM's ``outputs.attentions`` as a list of L tensors (B, H, S, S); a clear error when there are none."""
    if isinstance(attentions, torch.Tensor):
        if attentions.ndim != 5:
            raise ValueError(f"attentions as one tensor must be (L, B, H, S, S), got {tuple(attentions.shape)}")
        attentions = list(attentions.unbind(0))
    if attentions is None or len(attentions) == 0 or any(a is None for a in attentions):
        raise ValueError(
            "the LM returned no attention weights: SDPA / flash attention never form them. Build the LM with "
            "attn_implementation='eager' (tiny_llama(..., attn_implementation='eager') or "
            "load_causal_lm(..., attn_implementation='eager'))"
        )
    layers = list(attentions)
    shape = layers[0].shape
    if len(shape) != 4 or shape[-1] != shape[-2]:
        raise ValueError(f"each layer's attention must be (B, H, S, S), got {tuple(shape)}")
    if any(a.shape != shape for a in layers):
        raise ValueError(f"layers' attentions differ in shape: {[tuple(a.shape) for a in layers]}")
    return layers


def mean_attention_to(attentions, query_mask: torch.Tensor, key_positions: torch.Tensor) -> torch.Tensor:
    """Eq. 10: M^v (B, K), the attention of the query rows to each key position, averaged over L, H and Q.

    attentions: a list/tuple of L tensors (B, H, S, S) or one (L, B, H, S, S); query_mask: (B, S) bool, the query
    rows Q_b of each sample (at least one per sample); key_positions: (B, K) long, the key columns, -1 = padding
    (its entry is 0). Differentiable in ``attentions``; float32 whatever their dtype.
    """
    layers = check_attentions(attentions)
    b, h, s, _ = layers[0].shape
    query_mask = torch.as_tensor(query_mask, device=layers[0].device)
    key_positions = torch.as_tensor(key_positions, device=layers[0].device)
    if query_mask.shape != (b, s) or query_mask.dtype != torch.bool:
        raise ValueError(f"query_mask must be a (B, S) = ({b}, {s}) bool tensor, got {tuple(query_mask.shape)} "
                         f"{query_mask.dtype}")
    if key_positions.ndim != 2 or key_positions.shape[0] != b or key_positions.is_floating_point():
        raise ValueError(f"key_positions must be a (B={b}, K) integer tensor, got {tuple(key_positions.shape)} "
                         f"{key_positions.dtype}")
    if (key_positions >= s).any() or (key_positions < -1).any():
        raise ValueError(f"key_positions must lie in [0, {s}) (or be -1 for padding)")
    n_queries = query_mask.sum(1)
    if (n_queries == 0).any():
        raise ValueError(f"samples {(n_queries == 0).nonzero().flatten().tolist()} have no query rows (no target "
                         "tokens / nothing after the image)")
    row_w = query_mask.float() / n_queries[:, None].float()              # (B, S): 1/|Q_b| on query rows
    cols = key_positions.clamp_min(0)                                    # (B, K); padding reads column 0, zeroed below
    total = None
    for a in layers:                      # layer by layer: never stack an (L, B, H, S, S) copy
        per_key = torch.einsum("bq,bqk->bk", row_w, a.float().sum(1))    # Σ_h, then mean over Q: (B, S)
        total = per_key if total is None else total + per_key
    out = torch.gather(total, 1, cols) / (len(layers) * h)
    return out * (key_positions >= 0).to(out.dtype)


def visual_positions(input_ids: torch.Tensor, token_id: int) -> torch.Tensor:
    """(B, K) long: the positions of ``token_id`` in each row of ``input_ids`` (B, S), in order, -1-padded.

    K is the largest count in a row (a row with fewer visual tokens, e.g. fewer images, is padded with -1).
    """
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids must be (B, S), got {tuple(input_ids.shape)}")
    hit = input_ids == token_id
    k = int(hit.sum(1).max()) if hit.numel() else 0
    pos = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    # Sort hits first (stable keeps their order), then read the first k columns.
    order = torch.argsort((~hit).to(torch.int8), dim=1, stable=True)[:, :k]
    found = torch.gather(hit, 1, order)
    return torch.where(found, torch.gather(pos, 1, order), torch.full_like(order, -1))


def select_layers(layers: list[torch.Tensor], which: Sequence[int] | None) -> list[torch.Tensor]:
    """``which`` (layer indices, negative from the end) of ``layers``; all when ``None``."""
    if which is None:
        return layers
    which = list(which)
    if not which:
        raise ValueError("layers= must name at least one layer (or be None for all)")
    bad = [i for i in which if not -len(layers) <= i < len(layers)]
    if bad:
        raise ValueError(f"layers {bad} out of range for an LM with {len(layers)} layers")
    return [layers[i] for i in which]
