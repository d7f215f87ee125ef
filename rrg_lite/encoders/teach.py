"""Pre-training the book's small encoders on the world: labels, dense patch targets, and CLIP against the reports.

    enc, extras, log = pretrain_encoder(data, spec)       # data: rrg_lite.encoders.data.EncoderData

The loss is a weighted sum of up to three objectives (``spec["objective"]``, e.g. ``"labels+dense+clip"``)::

    labels: BCE( head(mean ⊕ max of the patch tokens), study labels )          (n, L)   what is in the study
    dense:  BCE( patch_head(token j), patch targets )                         (n, N, L) where it is — from the masks
    clip:   InfoNCE( image_proj(mean ⊕ max), text(report) ), τ fixed or learned     which report is this image's

The first two are supervision the world gives for free (its labels and lesion masks); real datasets give labels
(CT-RATE, CheXpert) but no masks. The third needs only image–report pairs: it is how M3D-CLIP, CT-CLIP and
ViPET-VLM's stage 1 train their encoders, and it works on any report dataset.

The encoder is a :class:`SeeingEncoder`: a :class:`~rrg_lite.encoders.vit.ViT` behind a fixed per-voxel
standardisation fitted on the training studies (every phantom shares one anatomy, so what differs between studies
— a lesion, an effusion — is a small change on a large constant; standardising makes the change what the ViT sees
first, the 3-D analogue of subtracting ImageNet's mean image).
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from rrg_lite.encoders.text import NgramTextEncoder
from rrg_lite.encoders.vit import ViT
from rrg_lite.train.contrastive import LogitScale, info_nce

OBJECTIVES = ("labels", "dense", "clip")


class SeeingEncoder(nn.Module):
    """(m, C, *spatial) -> (m, N, E): ``vit((x − mean) / std)``; ``mean``/``std`` (C, *spatial) are buffers.

    Has the attributes the MLLM needs (``spatial_dims``, ``in_channels``, ``img_size``, ``num_patches``,
    ``embed_dim``, ``grid``), so it drops in wherever a ViT does.
    """

    def __init__(self, vit: ViT, mean: torch.Tensor | None = None, std: torch.Tensor | None = None):
        super().__init__()
        self.vit = vit
        shape = (vit.in_channels, *vit.img_size)
        self.register_buffer("mean", torch.zeros(shape) if mean is None else mean.float().reshape(shape).clone())
        self.register_buffer("std", torch.ones(shape) if std is None else std.float().reshape(shape).clone())
        for k in ("spatial_dims", "in_channels", "img_size", "num_patches", "embed_dim", "grid", "patch_size"):
            setattr(self, k, getattr(vit, k))

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit(self.standardize(x.to(self.mean.dtype)))


class StandardizedTokens(nn.Module):
    """A frozen encoder whose output tokens are z-scored per (token, channel) with its training studies' statistics.

    (m, C, *spatial) -> (m, N, E). The tokens of a small world-trained encoder are mostly a constant (position
    embeddings, the anatomy every phantom shares): what differs between studies is a few per cent of their size.
    A projector trained for a few hundred steps then sees an almost constant input and the LM learns to ignore it;
    standardised, the difference between studies is the whole input. Same attributes as the encoder it wraps.
    """

    def __init__(self, encoder: nn.Module, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.encoder = encoder
        self.register_buffer("mean", mean.float().clone())      # (N, E)
        self.register_buffer("std", std.float().clone())        # (N, E)
        for k in ("spatial_dims", "in_channels", "img_size", "num_patches", "embed_dim", "grid", "patch_size"):
            setattr(self, k, getattr(encoder, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.encoder(x) - self.mean) / self.std


@torch.no_grad()
def token_stats(enc: nn.Module, images: torch.Tensor, batch_size: int = 64, floor: float = 1e-3):
    """Per-(token, channel) mean and std (+ ``floor``) of ``enc``'s output over ``images``: two (N, E) tensors."""
    was = enc.training
    enc.eval()
    tok = torch.cat([enc(images[i: i + batch_size]) for i in range(0, len(images), batch_size)])
    enc.train(was)
    return voxel_stats(tok, floor)                     # the same per-position statistics as the input's


def build_vit(spec: dict, in_channels: int, img_size) -> ViT:
    """The ViT of an encoder spec (keys: patch_size, embed_dim, depth, heads, patch_embed, stem_cell, stem_width)."""
    return ViT(len(img_size), tuple(img_size), tuple(spec["patch_size"]), in_channels, spec["embed_dim"],
               spec["depth"], spec["heads"], patch_embed=spec["patch_embed"], stem_cell=tuple(spec["stem_cell"]),
               stem_width=spec["stem_width"], final_norm=spec.get("final_norm", True))


def voxel_stats(images: torch.Tensor, floor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-voxel mean and std over studies (n, C, *spatial); ``floor`` is added to the std (flat voxels stay finite)."""
    x = images.double()
    return x.mean(0).float(), (x.std(0) + floor).float()


def parse_objective(objective: str) -> set[str]:
    parts = {p.strip() for p in objective.split("+") if p.strip()}
    bad = parts - set(OBJECTIVES)
    if not parts or bad:
        raise ValueError(f"objective must be '+'-joined parts of {OBJECTIVES}, got {objective!r}")
    return parts


class PretrainHeads(nn.Module):
    """What pre-training adds on top of the encoder; ``image_proj``/``text``/``scale`` are kept for retrieval."""

    def __init__(self, embed_dim: int, num_labels: int, parts: set[str], clip_dim: int, temperature: float | None):
        super().__init__()
        self.label_head = nn.Sequential(nn.LayerNorm(2 * embed_dim), nn.Linear(2 * embed_dim, num_labels))
        self.patch_head = nn.Linear(embed_dim, num_labels) if "dense" in parts else None
        if "clip" in parts:
            self.image_proj = nn.Sequential(nn.LayerNorm(2 * embed_dim), nn.Linear(2 * embed_dim, clip_dim))
            self.text = NgramTextEncoder(dim=clip_dim)
            self.scale = LogitScale(0.07) if temperature is None else None
        else:
            self.image_proj = self.text = self.scale = None


def pooled(tokens: torch.Tensor) -> torch.Tensor:
    """(m, N, E) -> (m, 2E): mean and max over patches (a finding in one patch is not diluted N times)."""
    return torch.cat([tokens.mean(1), tokens.amax(1)], -1)


def pretrain_encoder(data, spec: dict, progress: bool = False) -> tuple[SeeingEncoder, PretrainHeads, dict]:
    """Pre-train a :class:`SeeingEncoder` on ``data`` (:class:`~rrg_lite.encoders.data.EncoderData`) per ``spec``.

    spec keys: the ViT's (see :func:`build_vit`), ``objective``, ``epochs``, ``lr``, ``batch_size``,
    ``weight_decay``, ``dense_weight``, ``clip_weight``, ``clip_dim``, ``temperature`` (None = learned),
    ``symmetric``, ``std_floor``, ``seed``. AdamW, linear warm-up then cosine decay, plain loop on the CPU/GPU of
    ``spec.get("device", "cpu")``. Returns (encoder in eval mode, heads, log with ``losses`` and ``seconds``).
    """
    parts = parse_objective(spec["objective"])
    device = torch.device(spec.get("device", "cpu"))
    images = data.images
    n, L = images.shape[0], data.labels.shape[1]
    if n < spec["batch_size"]:
        raise ValueError(f"{n} training studies is fewer than one batch of {spec['batch_size']}")
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec["seed"])
        mean, std = voxel_stats(images, spec["std_floor"])
        enc = SeeingEncoder(build_vit(spec, images.shape[1], images.shape[2:]), mean, std).to(device)
        heads = PretrainHeads(enc.embed_dim, L, parts, spec["clip_dim"], spec["temperature"]).to(device)
        params = [p for m in (enc, heads) for p in m.parameters()]
        opt = torch.optim.AdamW(params, lr=spec["lr"], weight_decay=spec["weight_decay"])
        steps_per_epoch = n // spec["batch_size"]
        total = max(1, spec["epochs"] * steps_per_epoch)
        warm = max(1, total // 10)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * s / total)).item()))
        gen = torch.Generator().manual_seed(spec["seed"])
        tokenized = heads.text.tokenize(data.reports) if heads.text is not None else None
        losses = []
        enc.train()
        for epoch in range(spec["epochs"]):
            perm = torch.randperm(n, generator=gen)
            for b in range(steps_per_epoch):
                idx = perm[b * spec["batch_size"]: (b + 1) * spec["batch_size"]]
                tok = enc(images[idx].to(device))
                feat = pooled(tok)
                parts_loss = {}
                if "labels" in parts:
                    parts_loss["labels"] = F.binary_cross_entropy_with_logits(heads.label_head(feat),
                                                                              data.labels[idx].to(device))
                if "dense" in parts:
                    parts_loss["dense"] = spec["dense_weight"] * F.binary_cross_entropy_with_logits(
                        heads.patch_head(tok), data.patch_targets[idx].to(device).float())
                if "clip" in parts:
                    ids, offsets = _select_tokens(tokenized, idx, len(data.reports))
                    text = heads.text(ids.to(device), offsets.to(device))
                    tau = spec["temperature"] if heads.scale is None else 1.0 / heads.scale()
                    parts_loss["clip"] = spec["clip_weight"] * info_nce(heads.image_proj(feat), text, tau,
                                                                        symmetric=spec["symmetric"])
                loss = sum(parts_loss.values())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                losses.append({k: v.item() for k, v in parts_loss.items()})
            if progress:
                print(f"epoch {epoch + 1}/{spec['epochs']}: " + ", ".join(
                    f"{k} {sum(d[k] for d in losses[-steps_per_epoch:]) / steps_per_epoch:.4f}" for k in losses[-1]))
    enc.eval()
    heads.eval()
    return enc.cpu(), heads.cpu(), {"losses": losses, "seconds": time.perf_counter() - t0, "steps": total,
                                    "threads": torch.get_num_threads(), "n_train": n}


def _select_tokens(tokenized, idx: torch.Tensor, n: int):
    """Rows ``idx`` of a tokenised corpus (ids, offsets) -> (ids, offsets) of just those texts."""
    ids, offsets = tokenized
    ends = torch.cat([offsets[1:], torch.tensor([len(ids)])])
    pieces = [ids[offsets[i]: ends[i]] for i in idx.tolist()]
    new_offsets = torch.tensor([0] + [len(p) for p in pieces[:-1]]).cumsum(0)
    return torch.cat(pieces), new_offsets


@torch.no_grad()
def embed_reports(heads: PretrainHeads, reports: list[str]) -> torch.Tensor:
    """(n, clip_dim) text embeddings from the CLIP text tower (needs a ``clip`` objective)."""
    if heads.text is None:
        raise ValueError("this encoder was pre-trained without the clip objective: it has no text tower")
    return heads.text.encode(reports)


@torch.no_grad()
def embed_images(enc: SeeingEncoder, heads: PretrainHeads, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """(n, clip_dim) image embeddings in the shared CLIP space."""
    if heads.image_proj is None:
        raise ValueError("this encoder was pre-trained without the clip objective: it has no image projection")
    return torch.cat([heads.image_proj(pooled(enc(images[i: i + batch_size])))
                      for i in range(0, len(images), batch_size)])


@torch.no_grad()
def occlusion_map(enc: SeeingEncoder, score, image: torch.Tensor) -> torch.Tensor:
    """How much each patch matters: score(full) − score(patch j replaced by the mean anatomy), over the patch grid.

    ``score``: (m, N, E) tokens -> (m,) (e.g. a probe's logit for one label). ``image``: (C, *spatial).
    Returns ``grid``-shaped drops (positive = hiding this patch lowers the score). One forward per patch.
    """
    x = image[None].repeat(enc.num_patches + 1, *([1] * image.ndim))
    grid, patch = enc.grid, enc.patch_size
    for j in range(enc.num_patches):
        rest, sl = j, []
        for g, p in zip(reversed(grid), reversed(patch)):
            sl.insert(0, slice((rest % g) * p, (rest % g + 1) * p))
            rest //= g
        x[(j + 1, slice(None), *sl)] = enc.mean[(slice(None), *sl)]
    s = score(enc(x))
    return (s[0] - s[1:]).reshape(grid)
