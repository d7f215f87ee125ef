"""A cheap stand-in for a pre-trained medical encoder: train a small ViT to predict the study's label vector.

The papers start from encoders pre-trained on large data (M3D-CLIP: image-text contrastive on M3D-Cap;
RAD-DINO: self-supervised DINOv2 on chest X-rays). A randomly initialised ViT has learned nothing, so the CPU
profile pre-trains its small ViT for a few seconds with a multi-label head (CT-RATE's 18 labels, binary
cross-entropy on the mean patch token). The MLLM chapters then freeze it, as LLaVA freezes CLIP.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from rrg_lite.train.loop import TrainConfig, TrainResult, train


POOLINGS = ("mean", "max", "meanmax")


class LabelProbe(nn.Module):
    """encoder + LayerNorm + linear head on pooled patch tokens; ``forward(images, labels) -> {"loss", "logits"}``.

    ``pool="mean"`` averages the N patch tokens; ``"max"`` takes each channel's maximum over them, so a finding
    seen by one patch anywhere in the volume is not diluted N times; ``"meanmax"`` concatenates both (2E).
    """

    def __init__(self, encoder: nn.Module, num_labels: int, pool: str = "mean"):
        super().__init__()
        if pool not in POOLINGS:
            raise ValueError(f"pool must be one of {POOLINGS}, got {pool!r}")
        self.encoder, self.pool = encoder, pool
        width = encoder.embed_dim * (2 if pool == "meanmax" else 1)
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, num_labels))

    def pooled(self, tokens: torch.Tensor) -> torch.Tensor:
        """(m, N, E) -> (m, E) or (m, 2E)."""
        if self.pool == "mean":
            return tokens.mean(1)
        if self.pool == "max":
            return tokens.amax(1)
        return torch.cat([tokens.mean(1), tokens.amax(1)], dim=-1)

    def forward(self, images, labels=None):
        logits = self.head(self.pooled(self.encoder(images)))
        loss = F.binary_cross_entropy_with_logits(logits, labels.float()) if labels is not None else None
        return {"loss": loss, "logits": logits}


def _collate(rows):
    images, labels = zip(*rows)
    return {"images": torch.stack(images), "labels": torch.stack(labels)}


def train_label_probe(encoder: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig,
                      pool: str = "mean") -> tuple[LabelProbe, TrainResult]:
    """Train ``encoder`` (in place) and a head to predict ``labels`` (n, L) in {0, 1} from ``images`` (n, C, *spatial).

    Returns the probe (encoder + head, for :func:`probe_auc`) and the training result.
    """
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} label vectors")
    probe = LabelProbe(encoder, labels.shape[1], pool=pool)
    return probe, train(probe, TensorDataset(images, labels), cfg, collate_fn=_collate)


def pretrain_on_labels(encoder: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig,
                       pool: str = "mean") -> TrainResult:
    """:func:`train_label_probe` keeping only the training result (the encoder is trained in place)."""
    return train_label_probe(encoder, images, labels, cfg, pool=pool)[1]


def label_auc(scores, labels) -> torch.Tensor:
    """Per-label ROC AUC: (n, L) scores and (n, L) {0, 1} labels -> (L,), NaN where a label has one class only.

    AUC = P(score of a random positive > score of a random negative), ties counting one half — the
    Mann–Whitney U statistic divided by n_pos * n_neg, computed from average ranks.
    """
    scores, labels = torch.as_tensor(scores, dtype=torch.float64), torch.as_tensor(labels)
    if scores.shape != labels.shape or scores.ndim != 2:
        raise ValueError(f"scores and labels must both be (n, L), got {tuple(scores.shape)} and {tuple(labels.shape)}")
    out = torch.full((scores.shape[1],), float("nan"), dtype=torch.float64)
    for j in range(scores.shape[1]):
        s, y = scores[:, j], labels[:, j].bool()
        n_pos, n_neg = int(y.sum()), int((~y).sum())
        if n_pos == 0 or n_neg == 0:
            continue
        # average ranks (1-based) so that tied scores share their rank
        order = torch.argsort(s)
        ranks = torch.empty_like(s)
        ranks[order] = torch.arange(1, len(s) + 1, dtype=torch.float64)
        for v in torch.unique(s):
            tie = s == v
            if tie.sum() > 1:
                ranks[tie] = ranks[tie].mean()
        u = ranks[y].sum() - n_pos * (n_pos + 1) / 2
        out[j] = u / (n_pos * n_neg)
    return out


@torch.no_grad()
def probe_auc(probe: LabelProbe, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Held-out per-label AUC of a trained :class:`LabelProbe`: what the frozen encoder's features can see."""
    was_training = probe.training
    probe.eval()
    device = next(probe.parameters()).device
    logits = torch.cat([probe(images[i: i + batch_size].to(device))["logits"].cpu()
                        for i in range(0, len(images), batch_size)])
    probe.train(was_training)
    return label_auc(logits, labels)


@torch.no_grad()
def extract_features(encoder: nn.Module, images, batch_size: int = 32, progress: bool = False) -> torch.Tensor:
    """Frozen-encoder features for every image: (n, C, *spatial) -> (n, 1, N, E) (T = 1 frame), on the CPU.

    ``images`` may be any sliceable sequence of volumes (a tensor, or lazily loaded files); each batch is moved
    to the encoder's device and dtype.
    """
    from tqdm.auto import tqdm

    was_training = encoder.training
    encoder.eval()
    param = next(encoder.parameters())
    out = []
    for i in tqdm(range(0, len(images), batch_size), desc="features", disable=not progress):
        x = images[i: i + batch_size].to(device=param.device, dtype=param.dtype)
        out.append(encoder(x).float().cpu())
    encoder.train(was_training)
    return torch.cat(out)[:, None]
