"""Token-level language-model losses: the plain next-token cross-entropy and its per-token weighted form.

A causal LM's logits at position t predict the token at t + 1, so every loss here starts with the *shift*::

    logits (B, S, V)[:, :-1]   scored against   labels (B, S)[:, 1:]        ->   ℓ (B, S-1)
    ℓ_j = −log p(t_j | t_<j, image)      on target positions (labels != -100), 0 elsewhere

That is :func:`per_token_loss`, the one place the shift is written; :meth:`MultimodalLM.sequence_logprobs
<rrg_lite.mllm.model.MultimodalLM.sequence_logprobs>` (the DPO quantity, Σ −ℓ_j) and :func:`weighted_lm_loss`
both read it.

LLM-RG4 §3.3 (token-level loss weighting, TLW) multiplies each target token's loss by a weight c_j
(λ = 1.75 on the tokens of key sentences, 1 elsewhere): L(t_j) = −c_j log p(t_j). Weights are given per
*position*, aligned with ``labels`` (``loss_weights`` (B, S), the weight of predicting ``labels[:, t]``; 0 on
prompt, placeholder and padding positions — :func:`rrg_lite.mllm.prompt.encode_example` builds them). Two
normalisations over the N target tokens of the batch (the mask m_j = [label_j != -100]):

    "mean"           L = Σ_j m_j c_j ℓ_j / Σ_j m_j        the paper's form: weighted sum, plain token average
    "weighted_mean"  L = Σ_j m_j c_j ℓ_j / Σ_j m_j c_j    a weighted average (the loss scale does not grow with c)

With every c_j = 1 both are the plain mean cross-entropy over target tokens — exactly what a 🤗 causal LM
returns for ``labels`` (the tests check it). Under "mean", raising the key tokens' weight raises the total
gradient; under "weighted_mean" it only moves gradient from the other tokens to the key tokens. (The LLM-RG4
*code* uses a third form, Σℓ/N + 0.75·Σ(ℓ·s)/#(s≠0) with s a 0/1 key mask; compose it from
:func:`per_token_loss` in the LLM-RG4 room — SYSTEMS.md §3.)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from rrg_lite.mllm.prompt import IGNORE_INDEX

__all__ = ["LOSS_WEIGHT_NORMS", "per_token_loss", "weighted_lm_loss"]

#: The normalisations :func:`weighted_lm_loss` offers (the first is the default).
LOSS_WEIGHT_NORMS = ("mean", "weighted_mean")


def _check_logits_labels(logits: torch.Tensor, labels: torch.Tensor, what: str) -> None:
    if logits.ndim != 3:
        raise ValueError(f"{what}: logits must be (B, S, V), got {tuple(logits.shape)}")
    if labels.shape != logits.shape[:2]:
        raise ValueError(f"{what}: logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree on (B, S)")
    if labels.is_floating_point():
        raise ValueError(f"{what}: labels must be integer token ids (-100 = ignored), got {labels.dtype}")


def per_token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ℓ (B, S-1): the cross-entropy −log p(labels[:, t+1] | logits[:, t]), 0 where the label is -100.

    logits (B, S, V) from a causal LM (any dtype; computed in float32), labels (B, S) full-sequence token ids.
    Column t of the result belongs to ``labels[:, t + 1]``: pair it with ``labels[:, 1:]`` / ``weights[:, 1:]``.
    """
    _check_logits_labels(logits, labels, "per_token_loss")
    target = labels[:, 1:].to(logits.device)
    # cross_entropy wants the class axis second: (B, V, S-1); ignored positions come back as exactly 0
    return F.cross_entropy(logits[:, :-1].float().transpose(1, 2), target, ignore_index=IGNORE_INDEX,
                           reduction="none")


def weighted_lm_loss(logits: torch.Tensor, labels: torch.Tensor, loss_weights: torch.Tensor | None = None,
                     norm: str = "mean") -> torch.Tensor:
    """The (weighted) next-token loss of a batch, a scalar. See the module docstring for the two ``norm`` forms.

    logits (B, S, V), labels (B, S) (-100 = no loss), loss_weights (B, S) float ≥ 0 aligned with ``labels``
    (``None`` = all 1: the plain mean cross-entropy). Weights on ignored positions are not used. A batch with
    no target token (or, for "weighted_mean", zero total weight) gives 0, not NaN.
    """
    if norm not in LOSS_WEIGHT_NORMS:
        raise ValueError(f"loss_weight_norm must be one of {LOSS_WEIGHT_NORMS}, got {norm!r}")
    losses = per_token_loss(logits, labels)                            # (B, S-1)
    mask = (labels[:, 1:] != IGNORE_INDEX).to(losses.device, losses.dtype)
    if loss_weights is None:
        weights = mask
    else:
        if not isinstance(loss_weights, torch.Tensor) or loss_weights.shape != labels.shape:
            shape = tuple(loss_weights.shape) if isinstance(loss_weights, torch.Tensor) else type(loss_weights).__name__
            raise ValueError(f"loss_weights must be a (B, S) tensor like labels {tuple(labels.shape)}, got {shape}")
        if not loss_weights.is_floating_point():
            raise ValueError(f"loss_weights must be floating point, got {loss_weights.dtype}")
        if not torch.isfinite(loss_weights).all() or (loss_weights < 0).any():
            raise ValueError("loss_weights must be finite and non-negative")
        weights = loss_weights[:, 1:].to(losses.device, losses.dtype) * mask
    total = (weights * losses).sum()
    if norm == "mean":
        return total / mask.sum().clamp_min(1.0)        # N target tokens (a count: ≥ 1 avoids 0/0)
    return total / weights.sum().clamp_min(1e-12)        # Σ c_j over target tokens
