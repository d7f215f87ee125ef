"""What a frozen encoder's features carry: a study-level linear probe, AUC per label and by lesion size, intervals.

    feats = pooled_features(encoder, images)                    # (n, 2E): mean and max over the patch tokens
    probe = fit_linear_probe(feats[train], labels[train])       # one L2-regularised logistic regression per label
    auc = roc_auc(probe.scores(feats[test]), labels[test])      # (L,)
    auc_by_size(scores, labels, sizes, bins=(0, 30, 300, inf))  # positives of one size bin vs all negatives

A linear probe is the standard read-out of representation quality (CLIP, DINO): if a logistic regression on frozen
features separates a finding, the information is in the features in a form a small projector can use — which is
what an LLaVA-style MLLM sees. Written in torch (full-batch L-BFGS) so the package needs no extra dependency.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn


def roc_auc(scores, labels) -> torch.Tensor:
    """Per-column ROC AUC: (n, L) scores, (n, L) {0, 1} labels -> (L,) float64, NaN where a column has one class.

    AUC = P(score of a random positive > score of a random negative), ties one half (Mann–Whitney U / (n+ n−)),
    from average ranks.
    """
    s = torch.as_tensor(scores, dtype=torch.float64)
    y = torch.as_tensor(labels)
    if s.ndim == 1:
        s, y = s[:, None], y[:, None]
    if s.shape != y.shape or s.ndim != 2:
        raise ValueError(f"scores and labels must both be (n, L), got {tuple(s.shape)} and {tuple(y.shape)}")
    out = torch.full((s.shape[1],), float("nan"), dtype=torch.float64)
    for j in range(s.shape[1]):
        col, pos = s[:, j], y[:, j] > 0.5
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        if n_pos == 0 or n_neg == 0:
            continue
        uniq, inv, counts = torch.unique(col, return_inverse=True, return_counts=True)
        ends = counts.cumsum(0).double()
        avg_rank = ends - (counts.double() - 1) / 2          # average 1-based rank of each distinct value
        ranks = avg_rank[inv]
        out[j] = (ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return out


@torch.no_grad()
def pooled_features(encoder: nn.Module, images, batch_size: int = 64) -> torch.Tensor:
    """Frozen features per study: (n, C, *spatial) -> (n, 2E), the mean and the max of the patch tokens."""
    was = encoder.training
    encoder.eval()
    out = []
    for i in range(0, len(images), batch_size):
        tok = encoder(images[i: i + batch_size])
        out.append(torch.cat([tok.mean(1), tok.amax(1)], -1).float())
    encoder.train(was)
    return torch.cat(out)


@torch.no_grad()
def pixel_features(encoder: nn.Module, images, batch_size: int = 64) -> torch.Tensor:
    """A no-learning reference: the max, min and mean of the encoder's *standardised input* over each patch,
    flattened (n, 3·C·N). What a probe reads from these is in the pixels; a pre-trained encoder should keep it."""
    import torch.nn.functional as F

    pool = F.max_pool2d if encoder.spatial_dims == 2 else F.max_pool3d
    avg = F.avg_pool2d if encoder.spatial_dims == 2 else F.avg_pool3d
    k = tuple(encoder.patch_size)
    out = []
    for i in range(0, len(images), batch_size):
        x = encoder.standardize(images[i: i + batch_size].float())
        out.append(torch.cat([pool(x, k).flatten(1), (-pool(-x, k)).flatten(1), avg(x, k).flatten(1)], 1))
    return torch.cat(out)


@dataclass
class LinearProbe:
    """Standardisation (fitted on the training features) + one logistic regression per label."""

    mean: torch.Tensor     # (F,)
    std: torch.Tensor      # (F,)
    weight: torch.Tensor   # (F, L)
    bias: torch.Tensor     # (L,)

    def scores(self, feats: torch.Tensor) -> torch.Tensor:
        """(n, F) -> (n, L) logits."""
        return ((feats.double() - self.mean) / self.std) @ self.weight + self.bias


def fit_linear_probe(feats: torch.Tensor, labels: torch.Tensor, l2: float = 1e-2, iters: int = 200) -> LinearProbe:
    """L2-regularised logistic regression per label on standardised features (full batch, L-BFGS, float64).

    Loss per label: mean BCE + ``l2`` · ||w||² / 2 (the bias is not penalised). Deterministic.
    """
    x = feats.double()
    y = torch.as_tensor(labels).double()
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"need (n, F) features and (n, L) labels, got {tuple(x.shape)} and {tuple(y.shape)}")
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    w = torch.zeros(z.shape[1], y.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(y.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(z @ w + b, y, reduction="none").mean(0).sum()
        loss = loss + l2 * (w * w).sum() / 2
        loss.backward()
        return loss

    opt.step(closure)
    return LinearProbe(mean, std, w.detach(), b.detach())


def auc_by_size(scores, labels, sizes, bins: Sequence[float] = (0, 30, 300, float("inf")),
                min_pos: int = 3) -> list[dict]:
    """AUC of each size bin: positives whose finding size is in (lo, hi] against every negative of that label.

    ``sizes`` (n, L): voxels (CT) or box pixels (X-ray) of the label's findings (0 where absent). Returns one
    dict per bin: ``{"bin": (lo, hi), "auc": mean over labels with >= min_pos positives, "per_label": {j: auc},
    "n_pos": positives in the bin}``.
    """
    s = torch.as_tensor(scores, dtype=torch.float64)
    y = torch.as_tensor(labels) > 0.5
    z = torch.as_tensor(sizes, dtype=torch.float64)
    out = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        per, n_pos = {}, 0
        for j in range(s.shape[1]):
            pos = y[:, j] & (z[:, j] > lo) & (z[:, j] <= hi)
            neg = ~y[:, j]
            if int(pos.sum()) < min_pos or not neg.any():
                continue
            sel = pos | neg
            per[j] = float(roc_auc(s[sel, j], pos[sel].long())[0])
            n_pos += int(pos.sum())
        vals = list(per.values())
        out.append({"bin": (lo, hi), "auc": sum(vals) / len(vals) if vals else float("nan"), "per_label": per,
                    "n_pos": n_pos})
    return out


def bootstrap_macro_auc(scores, labels, n_boot: int = 200, seed: int = 0, alpha: float = 0.05):
    """Macro AUC and a percentile bootstrap interval over studies: -> (macro, lo, hi)."""
    s = torch.as_tensor(scores, dtype=torch.float64)
    y = torch.as_tensor(labels)
    macro = float(roc_auc(s, y).nanmean())
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(n_boot):
        idx = torch.randint(0, len(s), (len(s),), generator=g)
        vals.append(float(roc_auc(s[idx], y[idx]).nanmean()))
    vals = torch.tensor(vals)
    return macro, float(vals.quantile(alpha / 2)), float(vals.quantile(1 - alpha / 2))
