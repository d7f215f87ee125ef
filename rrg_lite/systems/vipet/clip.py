"""ViPET-VLM stage 1a: one encoder per modality, fine-tuned CLIP-style against its half of the report.

Paper (§3.2.1, Eq. 3–4): v_PET = f_PET(x_PET), t_PET = g_PET(R_PET), and the same for CT; each pair is trained with
a one-directional InfoNCE, image → text, cosine similarity::

    L_PET = −(1/N) Σ_i log  exp(sim(v_i, t_i)/τ) / Σ_j exp(sim(v_i, t_j)/τ)                     (3), CT: (4)

Code: :func:`train_modality_encoder` builds an :class:`rrg_lite.encoders.data.EncoderData` from region crops and
calls the package's encoder pre-training, :func:`rrg_lite.encoders.teach.pretrain_encoder` (a conv-stem hybrid
ViT, :mod:`rrg_lite.encoders.vit`, behind a per-voxel standardisation; the text tower is the hashed n-gram
:class:`rrg_lite.encoders.text.NgramTextEncoder`), with ``symmetric=False`` — Eq. 3–4 as written. One loop serves
the book; only the data (PET or CT crops, the matching report half) and the spec differ.

Why not :func:`rrg_lite.encoders.hub.get_encoder`: the hub's encoders are trained on whole chest CTs from the
world's label space and cached by spec; ViPET's encoders are trained on *region crops of whole-body PET/CT* and
on the *report halves* produced by the split — data that only this system builds, and cheap at CPU size (seconds),
so they are trained where they are used and the hub's specs and cache keys stay as they were.

What the paper leaves open and what we chose:

- τ: learned (CLIP's 0.07 start), as the package's CLIP heads do; text encoders train with the image encoder.
- pooling before the projection: mean ⊕ max of the patch tokens (the package's ``pooled``: a small lesion in
  one patch is not averaged away).
- ``objective``: the paper's is ``"clip"`` (the full profile). At CPU size a few hundred crops and a bag-of-n-grams
  text tower are too little for CLIP alone to make a PET encoder that sees a 5 mm node, so the CPU profile adds
  the world's free supervision (``"labels+dense+clip"``: lesion types per crop and where they are — for the PET
  encoder only the *hypermetabolic* ones, for the CT encoder every lesion). This is a stand-in for CT-ViT's
  pre-training, and the chapter says so.
- the tokens an MLLM reads are z-scored per (token, channel) with the training crops' statistics
  (:class:`rrg_lite.encoders.teach.StandardizedTokens`, the hub's convention for world-trained encoders).

Retrieval read-out (SYSTEMS.md: "templated near-duplicate reports make false negatives — deduplicate"):
:func:`retrieval_at_k` ranks the *distinct* texts of the test set; a hit is the crop's own text among the top k;
chance is k / (number of distinct texts).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rrg_lite.encoders.data import EncoderData
from rrg_lite.encoders.teach import (PretrainHeads, SeeingEncoder, StandardizedTokens, embed_images, embed_reports,
                                     pretrain_encoder, token_stats)

__all__ = ["CLIP_MODALITIES", "ModalityEncoder", "clip_spec", "train_modality_encoder", "retrieval_at_k"]

CLIP_MODALITIES = ("pet", "ct")

#: Spec keys :func:`rrg_lite.encoders.teach.pretrain_encoder` reads, with this system's CPU defaults.
_DEFAULT_SPEC = {"embed_dim": 64, "depth": 2, "heads": 4, "patch_embed": "conv_stem", "stem_cell": [2, 4, 4],
                 "stem_width": 64, "final_norm": False, "objective": "labels+dense+clip", "epochs": 10, "lr": 3e-3,
                 "batch_size": 32, "weight_decay": 0.05, "dense_weight": 1.0, "clip_weight": 0.5, "clip_dim": 64,
                 "temperature": None, "symmetric": False, "std_floor": 0.05, "seed": 0, "device": "cpu",
                 "patch_size": [4, 16, 16]}


def clip_spec(**overrides) -> dict:
    """The stage-1a encoder spec (keys of :func:`rrg_lite.encoders.teach.pretrain_encoder`) with ``overrides``.

    ``symmetric`` stays False unless overridden: Eq. 3–4 are image → text only.
    """
    unknown = set(overrides) - set(_DEFAULT_SPEC)
    if unknown:
        raise ValueError(f"clip_spec: unknown keys {sorted(unknown)}; known: {sorted(_DEFAULT_SPEC)}")
    spec = {**_DEFAULT_SPEC, **{k: v for k, v in overrides.items() if v is not None}}
    spec["patch_size"] = list(spec["patch_size"])
    return spec


@dataclass
class ModalityEncoder:
    """A stage-1a encoder: the frozen :class:`SeeingEncoder`, its CLIP heads and its token statistics."""

    modality: str
    encoder: SeeingEncoder
    heads: PretrainHeads
    token_mean: torch.Tensor       # (N, E)
    token_std: torch.Tensor        # (N, E)
    spec: dict
    log: dict = field(default_factory=dict)

    @property
    def mllm_encoder(self) -> torch.nn.Module:
        """(m, C, D, H, W) -> (m, N, E) standardised tokens: what fusion and the projector read."""
        return StandardizedTokens(self.encoder, self.token_mean, self.token_std).eval()

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """(n, C, D, H, W) -> (n, N, E) frozen, standardised tokens."""
        enc = self.mllm_encoder
        return torch.cat([enc(images[i: i + batch_size]).float() for i in range(0, len(images), batch_size)])

    @torch.no_grad()
    def retrieval(self, images: torch.Tensor, texts: list[str], k: int = 5) -> dict:
        """Image → text R@k on (images, texts) with the CLIP heads (see :func:`retrieval_at_k`)."""
        return retrieval_at_k(embed_images(self.encoder, self.heads, images), embed_reports(self.heads, texts), texts, k)


def train_modality_encoder(modality: str, images: torch.Tensor, texts: list[str], labels: torch.Tensor,
                           patch_targets: torch.Tensor, spec: dict, label_names=(), ids=None,
                           progress: bool = False) -> ModalityEncoder:
    """Stage 1a for one modality: f_mod trained with Eq. 3/4 (and the spec's other objectives) on its crops.

    images (n, C, D, H, W) float32; texts: n report halves (R_PET or R_CT); labels (n, L) {0, 1};
    patch_targets (n, N, L) uint8 on the encoder's token grid. ``spec``: :func:`clip_spec`.
    """
    if modality not in CLIP_MODALITIES:
        raise ValueError(f"train_modality_encoder: modality must be one of {CLIP_MODALITIES}, got {modality!r}")
    n = len(texts)
    if images.ndim != 5 or images.shape[0] != n or labels.shape[0] != n or patch_targets.shape[0] != n:
        raise ValueError(f"train_modality_encoder({modality}): images {tuple(images.shape)} (n, C, D, H, W), "
                         f"{n} texts, labels {tuple(labels.shape)} and patch targets {tuple(patch_targets.shape)} "
                         "must describe the same n crops")
    if "clip" in spec["objective"] and any(not t.strip() for t in texts):
        bad = next(i for i, t in enumerate(texts) if not t.strip())
        raise ValueError(f"train_modality_encoder({modality}): crop {bad} has an empty report half; the CLIP "
                         "objective needs a text for every image")
    data = EncoderData(images=images, labels=labels.float(), patch_targets=patch_targets,
                       sizes=torch.zeros(labels.shape), reports=list(texts), label_names=tuple(label_names),
                       study_ids=list(ids) if ids is not None else [str(i) for i in range(n)])
    enc, heads, log = pretrain_encoder(data, spec, progress=progress)
    mean, std = token_stats(enc, images)
    return ModalityEncoder(modality, enc, heads, mean, std, spec, {k: v for k, v in log.items() if k != "losses"})


def retrieval_at_k(image_emb: torch.Tensor, text_emb: torch.Tensor, texts: list[str], k: int = 5) -> dict:
    """Image → text recall@k over the *distinct* texts (duplicates merged: no false negatives from templates).

    image_emb (n, d), text_emb (n, d) (row i = text i); returns ``{"R@k", "chance", "n_texts", "n"}``; chance =
    k / n_texts (a random ranking).
    """
    if image_emb.shape[0] != len(texts) or text_emb.shape[0] != len(texts):
        raise ValueError(f"retrieval_at_k: {image_emb.shape[0]} images, {text_emb.shape[0]} text embeddings and "
                         f"{len(texts)} texts must be the same n")
    unique = list(dict.fromkeys(texts))
    first = {t: i for i, t in reversed(list(enumerate(texts)))}
    target = torch.tensor([unique.index(t) for t in texts])
    cand = torch.nn.functional.normalize(text_emb[[first[t] for t in unique]], dim=-1)
    sims = torch.nn.functional.normalize(image_emb, dim=-1) @ cand.T                      # (n, n_texts)
    kk = min(k, len(unique))
    hits = (sims.topk(kk, dim=1).indices == target[:, None]).any(1).float()
    return {f"R@{k}": float(hits.mean()), "chance": kk / len(unique), "n_texts": len(unique), "n": len(texts)}
