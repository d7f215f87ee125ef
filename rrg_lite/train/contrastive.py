"""CLIP-style contrastive learning: InfoNCE between paired embeddings, and retrieval read-outs.

For a batch of B pairs (image i, report i), with L2-normalised embeddings u_i (image) and v_j (text) and a
temperature τ::

    s_ij       = u_i · v_j / τ                                   (B, B) similarity logits
    L_img→txt  = −(1/B) Σ_i log( exp s_ii / Σ_j exp s_ij )        each image must pick its own report
    L_txt→img  = −(1/B) Σ_j log( exp s_jj / Σ_i exp s_ij )        each report must pick its own image
    InfoNCE    = L_img→txt                       (one-directional, van den Oord et al. 2018)
               = (L_img→txt + L_txt→img) / 2     (two-directional, CLIP / ConVIRT / CT-CLIP / M3D-CLIP)

The other B − 1 items of the batch are the negatives, so a larger batch is a harder task; τ sets how peaked the
softmax is (CLIP learns log(1/τ), initialised at log(1/0.07) and clamped at 100). ViPET-VLM's stage 1 fine-tunes
its PET and CT encoders with this loss against the PET and CT halves of the report; chapter 4 pre-trains the
book's small encoders with it.

- :func:`info_nce` — the loss above, written out with ``logsumexp`` (tests compare it to ``F.cross_entropy``).
- :class:`LogitScale` — the learnable 1/τ of CLIP.
- :func:`similarity`, :func:`recall_at_k` — report↔image retrieval: R@k is the share of queries whose partner
  is among the k most similar candidates; chance is k / n.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["info_nce", "LogitScale", "similarity", "recall_at_k", "retrieval_chance"]


def info_nce(image: torch.Tensor, text: torch.Tensor, temperature: float | torch.Tensor = 0.07,
             symmetric: bool = True, normalize: bool = True) -> torch.Tensor:
    """InfoNCE of B paired embeddings (row i of ``image`` goes with row i of ``text``): (B, D), (B, D) -> scalar.

    ``temperature``: τ (a float, or a tensor such as ``1 / LogitScale()()`` to learn it). ``symmetric=False``
    gives the one-directional image→text loss. ``normalize=False`` skips the L2 normalisation (the caller did it).
    """
    if image.ndim != 2 or image.shape != text.shape:
        raise ValueError(f"info_nce needs two (B, D) tensors of one shape, got {tuple(image.shape)} and {tuple(text.shape)}")
    if image.shape[0] < 2:
        raise ValueError("info_nce needs at least 2 pairs (the other pairs are the negatives)")
    if normalize:
        image, text = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    logits = image @ text.T / temperature                             # (B, B): s_ij
    diag = logits.diagonal()
    img_to_txt = (torch.logsumexp(logits, dim=1) - diag).mean()       # softmax over reports, per image (rows)
    if not symmetric:
        return img_to_txt
    txt_to_img = (torch.logsumexp(logits, dim=0) - diag).mean()       # softmax over images, per report (columns)
    return (img_to_txt + txt_to_img) / 2


class LogitScale(nn.Module):
    """CLIP's learnable inverse temperature: ``forward() = exp(s)`` with s initialised at log(1/τ0), capped at ``max``."""

    def __init__(self, temperature: float = 0.07, max_scale: float = 100.0):
        super().__init__()
        if not 0 < temperature:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        self.max_log = math.log(max_scale)

    def forward(self) -> torch.Tensor:
        return self.log_scale.clamp(max=self.max_log).exp()


def similarity(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Cosine similarities: (n, D) images x (m, D) texts -> (n, m)."""
    return F.normalize(image.float(), dim=-1) @ F.normalize(text.float(), dim=-1).T


def recall_at_k(sim: torch.Tensor, k: int = 1) -> float:
    """R@k of a square similarity matrix whose row i's partner is column i (pass ``sim.T`` for the other direction).

    Ties count against the query (its partner must be strictly above all but k − 1 candidates), so a constant
    matrix scores 0, not 1.
    """
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"recall_at_k needs a square (n, n) similarity, got {tuple(sim.shape)}")
    if not 1 <= k <= sim.shape[0]:
        raise ValueError(f"k must be in 1..{sim.shape[0]}, got {k}")
    own = sim.diagonal()[:, None]
    rank = (sim >= own).sum(1)          # 1 = partner strictly best; ties push the rank down
    return float((rank <= k).float().mean())


def retrieval_chance(n: int, k: int = 1) -> float:
    """R@k of a random ranking of n candidates: k / n."""
    return min(k, n) / n
