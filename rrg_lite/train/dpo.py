"""Direct Preference Optimization (DPO), written out.

μ²-LLM's second stage aligns the SFT model with pairs of its own reports ranked by GREEN: for an input x (CT volume
+ question) a preferred report y_w and a dispreferred report y_l. DPO (Rafailov et al., 2023) trains the policy
π_θ directly on such pairs, against a frozen reference π_ref (the SFT model):

    L_DPO = − E[ log σ( β · [ log π_θ(y_w|x) − log π_ref(y_w|x) ] − β · [ log π_θ(y_l|x) − log π_ref(y_l|x) ] ) ]

Reading it from the inside out:

- ``log π(y|x)`` is a *sequence* log-probability: the sum over the report's tokens of log p(token | everything
  before it), prompt and image tokens excluded (:func:`sequence_logprobs`);
- ``β · log π_θ(y|x)/π_ref(y|x)`` is the *implicit reward* r(x, y) — how much more likely the policy makes y than
  the reference did. It starts at 0 for every y, because the policy starts as a copy of the reference;
- the loss is a logistic loss on the reward *margin* r(x, y_w) − r(x, y_l): it pushes the preferred report up and the
  dispreferred one down, relative to where the reference had them. At the start the margin is 0 and the loss is
  −log σ(0) = log 2 ≈ 0.693 for every pair; β sets how far the policy may drift from the reference for a given
  margin (small β: a margin costs little drift, so the policy moves more).

What gets logged (:class:`DPOObjective` keeps a history of these, per training step), named as TRL names them:
``rewards/chosen`` and ``rewards/rejected`` (mean implicit rewards), ``rewards/margins`` (their difference),
``rewards/accuracies`` (share of pairs where the chosen reward is higher), ``logps/chosen``, ``logps/rejected``.

The reference model can be
- ``"copy"``: a frozen deep copy of the policy taken when the objective is built (simple, 2× the memory);
- ``"disable_adapter"``: the policy itself with its LoRA adapters switched off (PEFT's ``disable_adapter()``) —
  exact when the adapters were added for DPO and the base is the SFT model, and free in memory;
- ``"precomputed"``: reference log-probabilities computed once before training (:func:`precompute_reference_logps`)
  and carried in the batch as ``ref_chosen_logps`` / ``ref_rejected_logps`` — the cheapest on a CPU.

The math lives in :func:`sequence_logprobs` and :func:`dpo_loss` and does not depend on any training loop;
:class:`DPOObjective` plugs it into :func:`rrg_lite.train.loop.train` as ``loss_fn``.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from rrg_lite.mllm.losses import per_token_loss
from rrg_lite.mllm.prompt import IGNORE_INDEX

__all__ = ["IGNORE_INDEX", "sequence_logprobs", "dpo_loss", "dpo_metrics", "DPOObjective", "DPOCollator",
           "concat_pair_batch", "precompute_reference_logps", "model_sequence_logprobs"]



def sequence_logprobs(logits: torch.Tensor, labels: torch.Tensor, average: bool = False) -> torch.Tensor:
    """Sum (or mean) of log p(label_t | tokens < t) over the positions where ``labels != -100``.

    logits: (B, S, V) from a causal LM — position t predicts token t+1;
    labels: (B, S) token ids of the full sequence, -100 on the prompt, image placeholders and padding.
    Returns (B,). The shift: logits[:, t] is scored against labels[:, t + 1].
    """
    mask = labels[:, 1:] != IGNORE_INDEX
    total = -per_token_loss(logits, labels).sum(-1)          # the shift and the shape checks live there
    if average:
        return total / mask.sum(-1).clamp(min=1)
    return total


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, beta: float = 0.1,
             label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair DPO losses and implicit rewards; all inputs (B,) sequence log-probabilities.

    Returns ``(losses (B,), chosen_rewards (B,), rejected_rewards (B,))``; the rewards are detached.
    ``label_smoothing`` ε > 0 gives conservative DPO (the label is flipped with probability ε); 0 is the paper's.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    chosen_logratios = policy_chosen_logps - ref_chosen_logps        # log π_θ(y_w|x) / π_ref(y_w|x)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # log π_θ(y_l|x) / π_ref(y_l|x)
    margin = beta * (chosen_logratios - rejected_logratios)
    # −log σ(m), computed as softplus(−m) by logsigmoid for numerical stability at large |m|
    losses = -(1 - label_smoothing) * F.logsigmoid(margin) - label_smoothing * F.logsigmoid(-margin)
    return losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()


def dpo_metrics(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor, policy_chosen_logps: torch.Tensor,
                policy_rejected_logps: torch.Tensor) -> dict[str, float]:
    return {
        "rewards/chosen": chosen_rewards.mean().item(),
        "rewards/rejected": rejected_rewards.mean().item(),
        "rewards/margins": (chosen_rewards - rejected_rewards).mean().item(),
        "rewards/accuracies": (chosen_rewards > rejected_rewards).float().mean().item(),
        "logps/chosen": policy_chosen_logps.detach().mean().item(),
        "logps/rejected": policy_rejected_logps.detach().mean().item(),
    }


_NON_MODEL_KEYS = ("ref_chosen_logps", "ref_rejected_logps", "pair_ids", "chosen_scores", "rejected_scores")


def model_sequence_logprobs(model: torch.nn.Module, batch: Mapping[str, Any]) -> torch.Tensor:
    """(B,) log p(target | prompt) for a batch with ``labels``: the model's own ``sequence_logprobs`` if it has one
    (:class:`rrg_lite.mllm.model.MultimodalLM` does), else a causal LM's logits through :func:`sequence_logprobs`."""
    inputs = {k: v for k, v in batch.items() if k not in _NON_MODEL_KEYS}
    base = getattr(model, "module", model)  # unwrap DistributedDataParallel
    if hasattr(base, "sequence_logprobs"):
        return model.sequence_logprobs(**inputs) if model is base else base.sequence_logprobs(**inputs)
    labels = inputs.pop("labels")
    logits = model(**inputs).logits
    return sequence_logprobs(logits, labels)


def _find_peft(model: torch.nn.Module):
    for module in model.modules():
        if hasattr(module, "disable_adapter") and hasattr(module, "peft_config"):
            return module
    return None


class DPOObjective:
    """``loss_fn(model, batch)`` for :func:`rrg_lite.train.loop.train`: the DPO loss of a paired batch.

    The batch is one model batch of 2B sequences, the B chosen reports first and then the B rejected ones
    (:class:`DPOCollator` builds it), so that the policy runs one forward for both. ``reference`` is ``"copy"``,
    ``"disable_adapter"`` or ``"precomputed"`` (see the module docstring). ``history`` collects
    :func:`dpo_metrics` plus ``loss`` for every call made while the model is training.
    """

    def __init__(self, policy: torch.nn.Module, beta: float = 0.1, reference: str = "copy",
                 label_smoothing: float = 0.0,
                 logps_fn: Callable[[torch.nn.Module, Mapping[str, Any]], torch.Tensor] = model_sequence_logprobs):
        if reference not in ("copy", "disable_adapter", "precomputed"):
            raise ValueError(f"reference must be 'copy', 'disable_adapter' or 'precomputed', got {reference!r}")
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.beta, self.reference, self.label_smoothing, self.logps_fn = beta, reference, label_smoothing, logps_fn
        self.ref_model = None
        if reference == "copy":
            self.ref_model = copy.deepcopy(policy).eval()
            for p in self.ref_model.parameters():
                p.requires_grad_(False)
        elif reference == "disable_adapter" and _find_peft(policy) is None:
            raise ValueError("reference='disable_adapter' needs a PEFT (LoRA) model inside the policy")
        self.history: list[dict[str, float]] = []

    @contextmanager
    def _adapters_off(self, model):
        peft_model = _find_peft(model)
        with peft_model.disable_adapter():
            yield

    @torch.no_grad()
    def reference_logps(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> torch.Tensor:
        """(2B,) reference log-probabilities for a paired batch."""
        if self.reference == "precomputed":
            if "ref_chosen_logps" not in batch:
                raise KeyError("reference='precomputed' needs ref_chosen_logps/ref_rejected_logps in the batch "
                               "(see precompute_reference_logps)")
            return torch.cat([torch.as_tensor(batch["ref_chosen_logps"]), torch.as_tensor(batch["ref_rejected_logps"])])
        if self.reference == "copy":
            device = next(model.parameters()).device
            if next(self.ref_model.parameters()).device != device:
                self.ref_model.to(device)
            return self.logps_fn(self.ref_model, batch)
        was_training = model.training
        model.eval()  # no dropout in the reference pass
        try:
            with self._adapters_off(model):
                return self.logps_fn(model, batch)
        finally:
            model.train(was_training)

    def __call__(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> torch.Tensor:
        policy_logps = self.logps_fn(model, batch)
        if policy_logps.shape[0] % 2:
            raise ValueError(f"a DPO batch holds chosen then rejected sequences; got an odd size {policy_logps.shape[0]}")
        ref_logps = self.reference_logps(model, batch).to(policy_logps.device, policy_logps.dtype)
        pc, pr = policy_logps.chunk(2)
        rc, rr = ref_logps.chunk(2)
        losses, chosen_r, rejected_r = dpo_loss(pc, pr, rc, rr, self.beta, self.label_smoothing)
        loss = losses.mean()
        if model.training:
            self.history.append({"loss": loss.item(), **dpo_metrics(chosen_r, rejected_r, pc, pr)})
        return loss

    def summary(self, last: int = 10) -> dict[str, float]:
        """Mean of the last ``last`` logged steps."""
        rows = self.history[-last:]
        if not rows:
            return {}
        return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}


def concat_pair_batch(chosen: Mapping[str, Any], rejected: Mapping[str, Any], pad_token_id: int) -> dict[str, Any]:
    """Stack two right-padded model batches (B each) into one of 2B rows, chosen first; pads to a common length."""
    out: dict[str, Any] = {}
    for key in chosen:
        a, b = chosen[key], rejected[key]
        if isinstance(a, torch.Tensor) and a.ndim == 2 and key in ("input_ids", "attention_mask", "labels"):
            length = max(a.shape[1], b.shape[1])
            fill = {"input_ids": pad_token_id, "attention_mask": 0, "labels": IGNORE_INDEX}[key]
            a = F.pad(a, (0, length - a.shape[1]), value=fill)
            b = F.pad(b, (0, length - b.shape[1]), value=fill)
            out[key] = torch.cat([a, b])
        elif isinstance(a, torch.Tensor):
            out[key] = torch.cat([a, b])
        elif isinstance(a, list):
            out[key] = a + b
        elif isinstance(a, Mapping):
            out[key] = {slot: a[slot] + b[slot] for slot in a}
        else:
            raise TypeError(f"cannot pair batch field {key!r} of type {type(a).__name__}")
    return out


class DPOCollator:
    """Collates preference examples ``{"chosen": example, "rejected": example, ...}`` into one 2B batch.

    ``collate`` turns a list of model examples into a model batch (e.g. ``MLLMCollator(pad_id)``); precomputed
    reference log-probabilities (``ref_chosen_logps``, ``ref_rejected_logps``) are carried along as (B,) tensors.
    """

    def __init__(self, collate: Callable[[list], dict], pad_token_id: int):
        self.collate, self.pad_token_id = collate, pad_token_id

    def __call__(self, pairs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        batch = concat_pair_batch(self.collate([p["chosen"] for p in pairs]),
                                  self.collate([p["rejected"] for p in pairs]), self.pad_token_id)
        for key in ("ref_chosen_logps", "ref_rejected_logps"):
            if all(key in p for p in pairs):
                batch[key] = torch.tensor([float(p[key]) for p in pairs])
        return batch


def precompute_reference_logps(model: torch.nn.Module, pairs: Sequence[dict], collate: Callable[[list], dict],
                               batch_size: int = 8, logps_fn: Callable = model_sequence_logprobs,
                               progress: bool = False, shard: bool | str = "auto") -> list[dict]:
    """Adds ``ref_chosen_logps`` / ``ref_rejected_logps`` to each pair, scored by ``model`` (the SFT model).

    Batches are scored on the model's device (:func:`rrg_lite.mllm.inference.batched_inference`), split over
    processes under ``accelerate launch``.
    """
    from rrg_lite.mllm.inference import batched_inference

    def score(m, sides):
        return torch.stack([logps_fn(m, sides["chosen"]), logps_fn(m, sides["rejected"])], dim=1)  # (B, 2)

    def collate_pairs(chunk):
        return {"chosen": collate([p["chosen"] for p in chunk]), "rejected": collate([p["rejected"] for p in chunk])}

    logps = batched_inference(model, pairs, score, batch_size=batch_size, collate=collate_pairs,
                              progress=progress, desc="reference log-probs", shard=shard)
    out = []
    for i, (p, (c, r)) in enumerate(zip(pairs, (row.tolist() for row in logps))):
        if not (math.isfinite(c) and math.isfinite(r)):
            raise ValueError(f"non-finite reference log-probability for pair {p.get('id', i)}")
        out.append({**p, "ref_chosen_logps": c, "ref_rejected_logps": r})
    return out
