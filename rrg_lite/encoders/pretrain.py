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


class LabelProbe(nn.Module):
    """encoder + LayerNorm + linear head on the mean patch token; ``forward(images, labels) -> {"loss", "logits"}``."""

    def __init__(self, encoder: nn.Module, num_labels: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(nn.LayerNorm(encoder.embed_dim), nn.Linear(encoder.embed_dim, num_labels))

    def forward(self, images, labels=None):
        logits = self.head(self.encoder(images).mean(1))
        loss = F.binary_cross_entropy_with_logits(logits, labels.float()) if labels is not None else None
        return {"loss": loss, "logits": logits}


def _collate(rows):
    images, labels = zip(*rows)
    return {"images": torch.stack(images), "labels": torch.stack(labels)}


def pretrain_on_labels(encoder: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig) -> TrainResult:
    """Train ``encoder`` (in place) to predict ``labels`` (n, L) in {0, 1} from ``images`` (n, C, *spatial)."""
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} label vectors")
    probe = LabelProbe(encoder, labels.shape[1])
    return train(probe, TensorDataset(images, labels), cfg, collate_fn=_collate)


@torch.no_grad()
def extract_features(encoder: nn.Module, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Frozen-encoder features for every image: (n, C, *spatial) -> (n, 1, N, E) (T = 1 frame)."""
    was_training = encoder.training
    encoder.eval()
    out = torch.cat([encoder(images[i: i + batch_size]) for i in range(0, len(images), batch_size)])
    encoder.train(was_training)
    return out[:, None]
