"""The ViPET-VLM recipe in functions: PET/CT region crops → stage 1a encoders → stage 1b fusion → stages 2–3.

    data = load_petct_data(cfg)                          # region crops (patient-level split), texts, ROI tokens
    encs = train_stage1_encoders(cfg, data)              # stage 1a: f_PET, f_CT (Eq. 3–4), in vipet.clip
    feats = frozen_features(encs, data)                  # v_PET, v_CT (n, N, E): computed ONCE, reused by every run
    fusion = train_fusion(cfg, feats, data, FusionConfig(...), seed)   # stage 1b: Eq. 5–8 + L_cross (Eq. 9)
    tokens = visual_tokens(feats, fusion, source="fused")              # (n, N_out, E), what the projector reads
    tok = build_text_tokenizer(data); warm = warm_up_lm(cfg, tok, data, seed)   # stand-in for a pre-trained LLM
    mllm = build_mllm(cfg, tok, warm, in_dim=E, seed=seed)
    train_stage2(cfg, mllm, report_examples(mllm, tokens, data, "train"), seed)           # projector only
    train_stage3(cfg, mllm, stage3_examples(cfg, mllm, tokens, data), seed, lam=cfg.lam)  # LoRA + projector (+ L_align)

==============================================  ===============================================================
paper (§3–4)                                    code
==============================================  ===============================================================
ViMed-PET: each study cut into head-neck,       :func:`make_petct_data` (world: :func:`rrg_lite.world.petct.split_regions`),
chest, abdomen-pelvis with an overlap           :func:`load_petct_folder` (a folder read by
                                                :func:`rrg_lite.data.formats.petct.read_petct`, cut by
                                                :func:`rrg_lite.data.petct.crop_regions`); split by patient
report split into PET / CT halves               the crops' ``pet_text`` / ``ct_text`` (world: from the record; real
                                                data: the folder's ``regions`` = the LLM split of rrg_lite.prompting)
stage 1a CLIP per modality (Eq. 3–4)            :func:`train_stage1_encoders` → :mod:`.clip`
stage 1b PET-query fusion + L_cross (Eq. 5–9)   :func:`train_fusion` (:class:`.fusion.PetCtFusion`, :func:`.fusion.one_way_clip_loss`)
projector: one linear layer                     :func:`build_mllm` (:class:`rrg_lite.tokenizers.linear.LinearProjector`, depth 1)
stage 2: projector only, single-turn report     :func:`train_stage2` (:func:`rrg_lite.mllm.stages.configure_stage` "align")
stage 3: LoRA + projector on single-/multi-     :func:`train_stage3` (:func:`rrg_lite.mllm.stages.apply_lora`, "lora";
turn VQA, optionally + λ·L_align (Eq. 10–12)    :meth:`rrg_lite.mllm.MultimodalLM.visual_attention` for Eq. 10,
                                                :func:`.alignment.attention_alignment_loss`, :func:`.alignment.final_loss`)
ROI S = image tokens in a thresholded PET       :func:`make_petct_data` (``roi``: :func:`.alignment.high_suv_mask` on the
                                                resized SUV, :func:`.alignment.token_roi_mask`)
==============================================  ===============================================================

Choices the paper leaves open (beside those of :mod:`.fusion`, :mod:`.alignment`, :mod:`.clip`): the crops are
resized to one shape (``volume_shape``) so one encoder reads every region; PET is SUV / ``suv_clip`` clipped to
[0, 1]; CT uses the package's windows. The LLM is a tiny Llama with *eager* attention (Eq. 10 needs the weights),
warmed up on the training texts alone (:func:`warm_up_lm`, the μ² chapter's stand-in for a pre-trained LLM), so
that stage 3's LoRA adapts a language model rather than a random one. The CPU target of stages 2–3 is the crop's
impression (``target="impression"``: every lesion with its size, SUVmax and suspicion in ~20 words, which is what
the fact metrics read); ``target="report"`` is the paper's full region report.

Imports: shared rooms only (data, encoders, metrics, mllm, tokenizers, train, world) and this system's modules.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .alignment import attention_alignment_loss, final_loss, high_suv_mask, token_roi_mask
from .clip import ModalityEncoder, clip_spec, train_modality_encoder
from .fusion import FusionConfig, PetCtFusion, one_way_clip_loss

__all__ = ["REPORT_PROMPT", "LESION_LABELS", "PetCtData", "preprocess_pet", "make_petct_data", "load_petct_folder",
           "load_petct_data", "train_stage1_encoders", "FrozenFeatures", "frozen_features", "train_fusion",
           "visual_tokens", "wrong_ct_index", "build_text_tokenizer", "warm_up_lm", "build_mllm", "report_examples",
           "stage3_examples", "train_stage2", "train_stage3", "generate_targets", "target_nll", "roi_share"]

#: The paper's stage-2 instruction (§3.2.2). The image comes right before the answer (chapter 5: a small LM finds
#: visual tokens next to the answer sooner than tokens at the start of the prompt).
REPORT_PROMPT = "Please write a detailed medical report for this medical image."
#: The label space of the stage-1a stand-in supervision: the world's PET/CT lesion types.
LESION_LABELS: tuple[str, ...] = ("lung_nodule", "thyroid_nodule", "breast_mass", "lymph_node", "consolidation",
                                  "bone_lesion", "liver_lesion", "cyst")


def _opt(cfg, key: str, default):
    """``cfg[key]`` if the profile (or a dict) has it and it is not None, else ``default``."""
    try:
        value = cfg[key]
    except (KeyError, AttributeError, TypeError):
        return default
    return default if value is None else value


# ---------------------------------------------------------------------------------------------------------------
# Data: region crops
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class PetCtData:
    """Region crops of PET/CT studies, train crops first (``n_train``); studies never straddle the split.

    ct (n, C, D, H, W) and pet (n, 1, D, H, W) float32 encoder inputs; roi (n, N) bool: tokens inside the
    thresholded PET; lesion_tokens / labels: per modality, (n, N, L) uint8 and (n, L) — the stage-1a stand-in
    supervision (None for real data); pet_texts / ct_texts: the report halves; reports: the full region report;
    targets: what stages 2–3 learn to write; facts: the world's lesion facts per crop (None for real data: the
    fact metrics then parse the reference text); qa / dialogues: per crop (empty for real data).
    """

    ct: torch.Tensor
    pet: torch.Tensor
    roi: torch.Tensor
    pet_texts: list[str]
    ct_texts: list[str]
    reports: list[str]
    targets: list[str]
    study_ids: list[str]
    regions: list[str]
    n_train: int
    patch_size: tuple[int, int, int]
    facts: list | None = None
    qa: list[list[dict]] = field(default_factory=list)
    dialogues: list[list[dict]] = field(default_factory=list)
    lesion_tokens: dict | None = None
    labels: dict | None = None
    skipped: list[str] = field(default_factory=list)   # studies left out, with the reason (counted, never silent)

    def __len__(self) -> int:
        return len(self.targets)

    def split(self, part: str) -> slice:
        if part not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {part!r}")
        return slice(0, self.n_train) if part == "train" else slice(self.n_train, len(self))

    @property
    def references(self) -> list:
        """What the fact metrics compare test predictions with: the facts (world) or the target texts."""
        test = self.split("test")
        return self.facts[test] if self.facts is not None else self.targets[test]


def preprocess_pet(suv: np.ndarray, shape: Sequence[int], suv_clip: float = 15.0) -> np.ndarray:
    """SUV (D, H, W) -> float32 (1, *shape): SUV / ``suv_clip`` clipped to [0, 1], resized (linear)."""
    from rrg_lite.data.transforms import resize

    suv = np.asarray(suv, dtype=np.float32)
    if suv.ndim != 3:
        raise ValueError(f"a PET volume must be (D, H, W), got shape {suv.shape}")
    if suv_clip <= 0:
        raise ValueError(f"preprocess_pet: suv_clip must be > 0, got {suv_clip}")
    return resize(np.clip(suv / suv_clip, 0.0, 1.0), tuple(shape))[None].astype(np.float32)


def _roi_tokens(suv: np.ndarray, shape, patch, threshold: float, rule) -> torch.Tensor:
    """The paper's ROI on the token grid: the SUV resized as the PET input is, thresholded, then patch-pooled."""
    from rrg_lite.data.transforms import resize

    return token_roi_mask(high_suv_mask(resize(np.asarray(suv, np.float32), tuple(shape)), threshold), patch, rule)


def _mask_tokens(mask: np.ndarray, shape, patch) -> torch.Tensor:
    """A lesion mask (native grid) -> (N,) bool tokens it touches on the resized grid (linear resize > 0.05, so a
    lesion smaller than a resized voxel is not lost)."""
    from rrg_lite.data.transforms import resize

    return token_roi_mask(resize(mask.astype(np.float32), tuple(shape)) > 0.05, patch, "any")


def _world_crop_rows(study, pcfg, shape, patch, windows, suv_clip, threshold, rule, target):
    from rrg_lite.encoders.data import preprocess_ct
    from rrg_lite.world.petct import split_regions

    rows = []
    for c in split_regions(study, pcfg):
        n_tok = int(np.prod([s // p for s, p in zip(shape, patch)]))
        tokens = {m: np.zeros((n_tok, len(LESION_LABELS)), np.uint8) for m in ("pet", "ct")}
        labels = {m: np.zeros(len(LESION_LABELS), np.float32) for m in ("pet", "ct")}
        for fa in c.facts:
            j = LESION_LABELS.index(fa.lesion_type)
            t = _mask_tokens(c.finding_mask(fa.finding_id), shape, patch).numpy()
            for m in ("ct", "pet") if fa.malignant else ("ct",):   # PET sees only what takes up FDG
                tokens[m][t, j] = 1
                labels[m][j] = 1.0
        rows.append({"ct": preprocess_ct(c.ct, shape, windows), "pet": preprocess_pet(c.pet, shape, suv_clip),
                     "roi": _roi_tokens(c.pet, shape, patch, threshold, rule), "pet_text": c.pet_text,
                     "ct_text": c.ct_text, "report": c.text(), "target": c.impression if target == "impression"
                     else c.text(), "study_id": c.study_id, "region": c.region, "facts": c.facts, "qa": c.qa,
                     "dialogue": c.dialogue, "tokens": tokens, "labels": labels})
    return rows


#: What an empty report half reads as (a region whose CT or PET says nothing still needs a CLIP partner text).
EMPTY_HALF = "Nothing is reported."


def _stack(rows: list[dict], n_train: int, patch, with_world: bool) -> PetCtData:
    for r in rows:
        r["pet_text"], r["ct_text"] = r["pet_text"] or EMPTY_HALF, r["ct_text"] or EMPTY_HALF
    data = PetCtData(
        ct=torch.from_numpy(np.stack([r["ct"] for r in rows])), pet=torch.from_numpy(np.stack([r["pet"] for r in rows])),
        roi=torch.stack([torch.as_tensor(r["roi"]) for r in rows]), pet_texts=[r["pet_text"] for r in rows],
        ct_texts=[r["ct_text"] for r in rows], reports=[r["report"] for r in rows],
        targets=[r["target"] for r in rows], study_ids=[r["study_id"] for r in rows],
        regions=[r["region"] for r in rows], n_train=n_train, patch_size=tuple(patch),
        qa=[r.get("qa", []) for r in rows], dialogues=[r.get("dialogue", []) for r in rows])
    if with_world:
        data.facts = [r["facts"] for r in rows]
        data.lesion_tokens = {m: torch.from_numpy(np.stack([r["tokens"][m] for r in rows])) for m in ("pet", "ct")}
        data.labels = {m: torch.from_numpy(np.stack([r["labels"][m] for r in rows])) for m in ("pet", "ct")}
    return data


def _world_study_rows(args):
    """One world study -> its crop rows, or ``(study_id, reason)`` when the study is refused (top level: a process
    pool pickles it)."""
    from rrg_lite.world.ct import make_ct_study

    study_seed, cfg, pcfg, i, rest = args
    study = make_ct_study(study_seed, cfg, study_id=f"petct_{i:05d}", patient_id=f"petctp_{i:05d}")
    try:
        return _world_crop_rows(study, pcfg, *rest)
    except ValueError as err:
        # the world's record and its PET reading rule disagree for ~1 % of studies (lesion_facts refuses them):
        # a counted skip, so every kept crop has consistent facts
        return (study.study_id, str(err))


def make_petct_data(n_train: int, n_test: int, seed: int = 0, shape=(8, 64, 64), patch_size=(4, 16, 16),
                    windows: Sequence = ("lung", "mediastinum", "bone"), world: dict | None = None,
                    overlap: int | None = None, suv_clip: float = 15.0, suv_threshold: float = 2.5,
                    roi_rule="any", target: str = "impression", qa_per_crop: int = 3, workers: int = 1) -> PetCtData:
    """``n_train + n_test`` world PET/CT studies (one patient each) → their 3 region crops each.

    The first ``n_train`` studies' crops train, the rest are held out: the three crops of a patient are never
    split (SYSTEMS.md §1: "split by patient"). ``world``: :class:`rrg_lite.world.config.WorldConfig` overrides.
    Study i depends only on (seed, i), so ``workers > 1`` (a spawned process pool) gives the same data.
    Studies the world's own check refuses are skipped and listed in ``data.skipped``.
    """
    from rrg_lite.world.config import WorldConfig
    from rrg_lite.world.ct import study_seeds
    from rrg_lite.world.petct import PetCtConfig

    if target not in ("impression", "report"):
        raise ValueError(f"make_petct_data: target must be 'impression' or 'report', got {target!r}")
    if n_train < 1 or n_test < 2:
        raise ValueError(f"make_petct_data: need n_train >= 1 and n_test >= 2 studies, got {n_train}, {n_test}")
    cfg = WorldConfig(**(world or {})).replace(pet=True, scan_range="whole_body")
    pcfg = PetCtConfig(overlap=overlap, qa_per_crop=qa_per_crop, seed=seed)
    rest = (tuple(shape), tuple(patch_size), tuple(windows), suv_clip, suv_threshold, roi_rule, target)
    jobs = [(s, cfg, pcfg, i, rest) for i, s in enumerate(study_seeds(seed, n_train + n_test))]
    if workers > 1:
        from rrg_lite.runtime import process_pool

        with process_pool(workers) as pool:          # spawned workers, one thread each
            results = list(pool.map(_world_study_rows, jobs, chunksize=8))
    else:
        results = [_world_study_rows(j) for j in jobs]
    rows, n_train_crops, skipped = [], 0, []
    for i, res in enumerate(results):
        if isinstance(res, tuple):
            skipped.append(f"{res[0]}: {res[1]}")
        else:
            rows += res
        if i == n_train - 1:
            n_train_crops = len(rows)
    data = _stack(rows, n_train_crops, patch_size, with_world=True)
    data.skipped = skipped
    return data


def load_petct_folder(root: str | Path, n_train: int, n_test: int = 0, shape=(8, 64, 64), patch_size=(4, 16, 16),
                      windows: Sequence = ("lung", "mediastinum", "bone"), boundaries=(0.3, 0.55),
                      overlap: int | None = None, suv_clip: float = 15.0, suv_threshold: float = 2.5,
                      roi_rule="any") -> PetCtData:
    """A PET/CT folder (``<study>/CT.nii.gz``, ``PET.nii.gz``, ``report.json`` with ``regions``; the layout of
    :func:`rrg_lite.data.formats.petct.read_petct`) → region crops. Studies in folder order; the first ``n_train``
    train, the next ``n_test`` (0 = all the rest) are held out.

    A real study has no anatomy record: the region boundaries are fractions of the depth from the top
    (``boundaries``, head-neck | chest | abdomen-pelvis; ViMed-PET's own cuts are not published). The target is
    the region's CT + PET halves; there are no lesion facts (the fact metrics parse the reference text), no
    stand-in labels (use the ``"clip"`` objective) and no VQA.
    """
    from rrg_lite.data.formats.petct import read_petct
    from rrg_lite.data.images import load_volume
    from rrg_lite.data.manifest import DataFormatError
    from rrg_lite.data.petct import crop_regions
    from rrg_lite.encoders.data import preprocess_ct

    records = read_petct(root)
    if len(records) < n_train + max(n_test, 2):
        raise DataFormatError(f"{root}: {len(records)} PET/CT studies, fewer than n_train={n_train} + n_test="
                              f"{max(n_test, 2)}")
    records = records[: n_train + n_test] if n_test else records
    f1, f2 = boundaries
    if not 0 < f1 < f2 < 1:
        raise ValueError(f"load_petct_folder: boundaries must be fractions 0 < b1 < b2 < 1, got {boundaries}")
    rows, n_train_crops = [], 0
    for i, rec in enumerate(records):
        ct, _ = load_volume(rec.images_of("CT")[0])
        pet, _ = load_volume(rec.images_of("PET")[0])
        if ct.shape != pet.shape:
            raise DataFormatError(f"{root}/{rec.study_id}: CT {ct.shape} and PET {pet.shape} are not on one grid "
                                  "(resample the PET onto the CT with rrg_lite.data.petct.resample_like)")
        depth = ct.shape[0]
        cuts = (max(1, int(round(f1 * depth))), min(depth - 1, int(round(f2 * depth))))
        for region, vols in crop_regions({"CT": ct, "PET": pet}, cuts, overlap).items():
            part = rec.pet_ct_parts.get(region, {})
            pet_text, ct_text = part.get("pet", ""), part.get("ct", "")
            report = " ".join(t for t in (ct_text, pet_text) if t)
            if not report:
                raise DataFormatError(f"{root}/{rec.study_id}/report.json: region {region!r} has no PET or CT text")
            rows.append({"ct": preprocess_ct(vols["CT"], shape, windows),
                         "pet": preprocess_pet(vols["PET"], shape, suv_clip),
                         "roi": _roi_tokens(vols["PET"], shape, patch_size, suv_threshold, roi_rule),
                         "pet_text": pet_text, "ct_text": ct_text, "report": report, "target": report,
                         "study_id": rec.study_id, "region": region})
        if i == n_train - 1:
            n_train_crops = len(rows)
    return _stack(rows, n_train_crops, patch_size, with_world=False)


def load_petct_data(cfg) -> PetCtData:
    """The profile's crops: the world (``data_root=None``) or a PET/CT folder."""
    common = dict(shape=tuple(cfg.volume_shape), patch_size=tuple(cfg.patch_size), windows=tuple(cfg.windows),
                  overlap=_opt(cfg, "overlap", None), suv_clip=cfg.suv_clip, suv_threshold=cfg.suv_threshold,
                  roi_rule=cfg.roi_rule)
    if cfg.data_root is None:
        return make_petct_data(cfg.n_train, cfg.n_test, seed=cfg.world_seed, world=_opt(cfg, "world", None),
                               target=cfg.target, qa_per_crop=cfg.qa_per_crop, workers=_opt(cfg, "workers", 1),
                               **common)
    return load_petct_folder(cfg.data_root, cfg.n_train, cfg.n_test, boundaries=tuple(cfg.region_boundaries), **common)


# ---------------------------------------------------------------------------------------------------------------
# Stage 1a and frozen features
# ---------------------------------------------------------------------------------------------------------------
def train_stage1_encoders(cfg, data: PetCtData, seed: int = 0, progress: bool = False) -> dict[str, ModalityEncoder]:
    """Stage 1a: ``{"pet": f_PET, "ct": f_CT}`` trained on the training crops against R_PET / R_CT (Eq. 3–4)."""
    spec = clip_spec(objective=cfg.clip_objective, epochs=cfg.clip_epochs, lr=cfg.clip_lr,
                     batch_size=cfg.clip_batch_size,
                     embed_dim=cfg.encoder_width, patch_size=list(cfg.patch_size), clip_weight=cfg.clip_weight,
                     seed=seed, device="cpu")
    needs_world = any(p in spec["objective"] for p in ("labels", "dense"))
    if needs_world and data.labels is None:
        raise ValueError(f"clip_objective {spec['objective']!r} needs the world's lesion labels; real data has none "
                         "(use clip_objective='clip')")
    tr = data.split("train")
    n_tok = data.roi.shape[1]
    out = {}
    for m, images, texts in (("pet", data.pet, data.pet_texts), ("ct", data.ct, data.ct_texts)):
        labels = data.labels[m][tr] if data.labels is not None else torch.zeros(tr.stop, len(LESION_LABELS))
        tokens = data.lesion_tokens[m][tr] if data.lesion_tokens is not None else \
            torch.zeros(tr.stop, n_tok, len(LESION_LABELS), dtype=torch.uint8)
        out[m] = train_modality_encoder(m, images[tr], texts[tr], labels, tokens, spec, LESION_LABELS,
                                        data.study_ids[tr], progress=progress)
    return out


@dataclass
class FrozenFeatures:
    """v_PET and v_CT of every crop, (n, N, E) each, from the frozen stage-1a encoders (computed once)."""

    pet: torch.Tensor
    ct: torch.Tensor


def frozen_features(encoders: dict[str, ModalityEncoder], data: PetCtData) -> FrozenFeatures:
    feats = FrozenFeatures(encoders["pet"].features(data.pet), encoders["ct"].features(data.ct))
    if feats.pet.shape[1] != data.roi.shape[1]:
        raise ValueError(f"the PET encoder gives {feats.pet.shape[1]} tokens but the ROI has {data.roi.shape[1]}: "
                         "patch_size must be the encoder's")
    return feats


# ---------------------------------------------------------------------------------------------------------------
# Stage 1b: fusion + L_cross
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class TrainedFusion:
    fusion: PetCtFusion
    losses: list[float]


def train_fusion(cfg, feats: FrozenFeatures, data: PetCtData, fusion_cfg: FusionConfig, seed: int = 0) -> TrainedFusion:
    """Stage 1b: PetCtFusion (Eq. 5–8) and a text encoder g_full trained with L_cross (Eq. 9): pooled Z_cross vs
    the full region report, image → text. The encoders stay frozen (their features are inputs)."""
    from rrg_lite.encoders.text import NgramTextEncoder

    tr = data.split("train")
    v_pet, v_ct = feats.pet[tr], feats.ct[tr]
    n, bs = v_pet.shape[0], min(cfg.fusion_batch_size, v_pet.shape[0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fusion = PetCtFusion(fusion_cfg)
        text = NgramTextEncoder(dim=fusion_cfg.dim)
        ids, offsets = text.tokenize(data.reports[tr])
        ends = torch.cat([offsets[1:], torch.tensor([len(ids)])])
        params = list(fusion.parameters()) + list(text.parameters())
        opt = torch.optim.AdamW(params, lr=cfg.fusion_lr, weight_decay=0.01)
        gen = torch.Generator().manual_seed(seed)
        losses = []
        for step in range(cfg.fusion_steps):
            idx = torch.randperm(n, generator=gen)[:bs]
            pieces = [ids[offsets[i]: ends[i]] for i in idx.tolist()]
            offs = torch.tensor([0] + [len(p) for p in pieces[:-1]]).cumsum(0)
            z = fusion(v_pet[idx], v_ct[idx])                                  # (B, N_out, E)
            loss = one_way_clip_loss(z, text(torch.cat(pieces), offs))         # Eq. 9, τ = 0.07
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    fusion.eval()
    for p in fusion.parameters():
        p.requires_grad_(False)
    return TrainedFusion(fusion, losses)


@torch.no_grad()
def visual_tokens(feats: FrozenFeatures, source: str, fusion: TrainedFusion | None = None,
                  ct_index: torch.Tensor | None = None, batch_size: int = 256) -> torch.Tensor:
    """The tokens the projector reads, (n, N_out, E): ``source`` = "pet" (V_PET), "ct" (V_CT) or "fused"
    (``fusion`` applied to V_PET and V_CT). ``ct_index`` (n,): crop i is fused with crop ``ct_index[i]``'s CT (the
    wrong-CT control)."""
    if source == "pet":
        return feats.pet
    if source == "ct":
        return feats.ct if ct_index is None else feats.ct[ct_index]
    if source != "fused":
        raise ValueError(f"visual_tokens: source must be 'pet', 'ct' or 'fused', got {source!r}")
    if fusion is None:
        raise ValueError("visual_tokens(source='fused') needs the trained fusion")
    v_ct = feats.ct if ct_index is None else feats.ct[ct_index]
    return torch.cat([fusion.fusion(feats.pet[i: i + batch_size], v_ct[i: i + batch_size])
                      for i in range(0, len(v_ct), batch_size)])


def wrong_ct_index(data: PetCtData, part: str = "test") -> torch.Tensor:
    """(n,) donor per crop: crop i of ``part`` gets the same-region crop of the next study of ``part`` (cyclic),
    another patient; crops of the other part keep their own. Same region, so the anatomy the CT shows is alike and
    only *this patient's* CT is missing."""
    idx = torch.arange(len(data))
    rng = range(*data.split(part).indices(len(data)))
    by_region: dict[str, list[int]] = {}
    for i in rng:
        by_region.setdefault(data.regions[i], []).append(i)
    for region, crops in by_region.items():
        if len({data.study_ids[i] for i in crops}) < 2:
            raise ValueError(f"wrong_ct_index: the {part} split needs the {region} crops of at least two studies")
        for j, i in enumerate(crops):
            idx[i] = crops[(j + 1) % len(crops)]
    return idx


# ---------------------------------------------------------------------------------------------------------------
# Language model and examples
# ---------------------------------------------------------------------------------------------------------------
def _dialogue_with_image_last(messages: list[dict]) -> list[dict]:
    """The world's dialogue with the ``<image>`` moved to the end of the first user turn (see REPORT_PROMPT)."""
    out = [dict(m) for m in messages]
    first = out[0]["content"].replace("<image>", "").strip()
    out[0]["content"] = f"{first} <image>"
    return out


def build_text_tokenizer(data: PetCtData):
    """A word-level tokenizer over the training crops' targets, questions, answers and dialogues (CPU LLM)."""
    from rrg_lite.mllm.text import build_word_tokenizer

    tr = data.split("train")
    texts = list(data.targets[tr]) + [REPORT_PROMPT]
    for qa in data.qa[tr]:
        texts += [q["question"] + " " + q["answer"] for q in qa]
    for d in data.dialogues[tr]:
        texts += [m["content"].replace("<image>", "") for m in d]
    return build_word_tokenizer(texts)


def _new_lm(cfg, tok, seed: int):
    from rrg_lite.mllm.lm import tiny_llama

    if cfg.llm != "tiny":
        raise ValueError("this recipe's CPU path builds a tiny Llama; a pre-trained LLM (the paper's Mistral-7B) "
                         "needs its own tokenizer and loading (rrg_lite.mllm.lm.load_causal_lm with "
                         "attn_implementation='eager') — not wired yet")
    return tiny_llama(tok, hidden_size=cfg.llm_hidden, num_layers=cfg.llm_layers, num_heads=4, num_kv_heads=2,
                      seed=seed, attn_implementation="eager")   # eager: Eq. 10 reads the attention weights


def _train(cfg, model, examples, steps: int, lr: float, seed: int, desc: str, loss_fn=None, keep=()):
    from rrg_lite.mllm.prompt import MLLMCollator
    from rrg_lite.train.loop import TrainConfig, train

    tc = TrainConfig(lr=lr, batch_size=cfg.batch_size, max_steps=steps, warmup_steps=min(10, steps // 10),
                     schedule="cosine", seed=seed, progress=False, desc=desc, log_every=max(1, steps),
                     mixed_precision=cfg.precision)
    collate = MLLMCollator(model.tokenizer.pad_token_id, keep=keep)
    return train(model, examples, tc, collate_fn=collate, loss_fn=loss_fn)


def warm_up_lm(cfg, tok, data: PetCtData, seed: int) -> dict | None:
    """Text-only warm-up of the tiny LM on the training texts (reports, QA, dialogues without images) for
    ``cfg.lm_warmup_steps``: the stand-in for a pre-trained LLM. Returns its state dict (every variant of a seed
    starts from it, so only the visual side differs)."""
    from rrg_lite.mllm.dialogue import encode_dialogue
    from rrg_lite.mllm.prompt import MLLMCollator, encode_example
    from rrg_lite.train.loop import TrainConfig, train

    if not cfg.lm_warmup_steps:
        return None
    lm = _new_lm(cfg, tok, seed)
    tr = data.split("train")
    ex = [encode_example(tok, REPORT_PROMPT, t, num_visual_tokens={}) for t in data.targets[tr]]
    for qa in data.qa[tr]:
        ex += [encode_example(tok, q["question"], q["answer"], num_visual_tokens={}) for q in qa]
    for d in data.dialogues[tr]:
        msgs = [{**m, "content": m["content"].replace("<image>", "").strip()} for m in d]
        e = encode_dialogue(tok, msgs, num_visual_tokens={})
        ex.append({k: e[k] for k in ("input_ids", "attention_mask", "labels")})
    tc = TrainConfig(lr=cfg.lr, batch_size=cfg.batch_size, max_steps=cfg.lm_warmup_steps, warmup_steps=10,
                     schedule="cosine", seed=seed, progress=False, desc=f"LM warm-up s{seed}",
                     mixed_precision=cfg.precision)
    train(lm, ex, tc, collate_fn=MLLMCollator(tok.pad_token_id))
    return {k: v.detach().clone() for k, v in lm.state_dict().items()}


def build_mllm(cfg, tok, lm_state: dict | None, in_dim: int, seed: int):
    """A :class:`MultimodalLM`: the (warm) tiny Llama, eager attention, and the paper's one-linear-layer projector."""
    from rrg_lite.mllm.model import MultimodalLM
    from rrg_lite.tokenizers.linear import LinearProjector

    lm = _new_lm(cfg, tok, seed)
    if lm_state is not None:
        lm.load_state_dict(lm_state)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        proj = LinearProjector(in_dim, cfg.llm_hidden, depth=1)
    return MultimodalLM(lm, tok, {"image": proj})


def _features(tokens: torch.Tensor, i: int) -> torch.Tensor:
    return tokens[i][None, None]                         # (1 image, T = 1, N, E)


def report_examples(mllm, tokens: torch.Tensor, data: PetCtData, part: str, with_target: bool = True,
                    roi: torch.Tensor | None = None) -> list[dict]:
    """Single-turn report examples of ``part``; ``tokens`` (n, N, E) for *all* crops; ``roi`` (n, N) bool adds a
    per-example ``roi`` (for L_align)."""
    n_tok = tokens.shape[1]
    out = []
    for i in range(*data.split(part).indices(len(data))):
        ex = mllm.encode_example(f"{REPORT_PROMPT} <image>", data.targets[i] if with_target else None,
                                 num_images=1, num_patches=n_tok)
        ex["features"] = _features(tokens, i)
        if roi is not None:
            ex["roi"] = roi[i]
        out.append(ex)
    return out


def stage3_examples(cfg, mllm, tokens: torch.Tensor, data: PetCtData, roi: torch.Tensor | None = None) -> list[dict]:
    """Stage 3's training mixture over the training crops: ``cfg.stage3_tasks`` ⊆ {"report", "qa", "dialogue"}
    (single-turn report, single-turn VQA, multi-turn dialogue with the loss on every assistant turn)."""
    tasks = tuple(cfg.stage3_tasks)
    unknown = set(tasks) - {"report", "qa", "dialogue"}
    if unknown or not tasks:
        raise ValueError(f"stage3_tasks must be a non-empty subset of report, qa, dialogue; got {list(tasks)}")
    n_tok = tokens.shape[1]
    out = report_examples(mllm, tokens, data, "train", roi=roi) if "report" in tasks else []
    for i in range(*data.split("train").indices(len(data))):
        extra = []
        if "qa" in tasks:
            extra += [mllm.encode_example(f"{q['question']} <image>", q["answer"], num_images=1, num_patches=n_tok)
                      for q in data.qa[i]]
        if "dialogue" in tasks and data.dialogues[i]:
            e = mllm.encode_dialogue(_dialogue_with_image_last(data.dialogues[i]), num_images=1, num_patches=n_tok)
            extra.append({k: e[k] for k in ("input_ids", "attention_mask", "labels")})
        for ex in extra:
            ex["features"] = _features(tokens, i)
            if roi is not None:
                ex["roi"] = roi[i]
        out += extra
    return out


def train_stage2(cfg, mllm, examples: list[dict], seed: int):
    """Stage 2: the projector only (encoders, fusion and LLM frozen) on the single-turn report instruction."""
    from rrg_lite.mllm.stages import configure_stage

    configure_stage(mllm, "align")
    return _train(cfg, mllm, [{k: v for k, v in e.items() if k != "roi"} for e in examples], cfg.stage2_steps,
                  cfg.stage2_lr, seed, f"stage 2 s{seed}")


def _align_loss(lam: float, reading: str):
    """loss_fn for the training loop: L_llm + λ·L_align (Eq. 12) in one forward pass (Eq. 10 from its attentions)."""
    from rrg_lite.mllm.inference import unwrap_model

    def loss_fn(model, batch):
        roi = torch.stack(batch.pop("roi"))
        va = unwrap_model(model).visual_attention(**batch, queries="targets")
        align = attention_alignment_loss(va.attention, roi.to(va.attention.device), reading=reading)
        return final_loss(va.output.loss, align, lam)
    return loss_fn


def train_stage3(cfg, mllm, examples: list[dict], seed: int, lam: float = 0.0):
    """Stage 3: LoRA (r = ``cfg.lora_r``) + projector on ``examples`` (:func:`stage3_examples`); with ``lam > 0``
    the loss is L_llm + λ·L_align (every example needs its ``roi``)."""
    from rrg_lite.mllm.stages import apply_lora, configure_stage

    apply_lora(mllm, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=0.0)
    configure_stage(mllm, "lora")
    if lam > 0:
        if any("roi" not in e for e in examples):
            raise ValueError("train_stage3 with lam > 0 needs every example's roi (stage3_examples(..., roi=...))")
        return _train(cfg, mllm, examples, cfg.stage3_steps, cfg.stage3_lr, seed, f"stage 3 s{seed}",
                      loss_fn=_align_loss(lam, cfg.align_reading), keep=("roi",))
    return _train(cfg, mllm, [{k: v for k, v in e.items() if k != "roi"} for e in examples], cfg.stage3_steps,
                  cfg.stage3_lr, seed, f"stage 3 s{seed}")


# ---------------------------------------------------------------------------------------------------------------
# Evaluation read-outs
# ---------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def generate_targets(mllm, tokens: torch.Tensor, data: PetCtData, part: str = "test", batch_size: int = 64,
                     max_new_tokens: int = 64) -> list[str]:
    """Greedy reports for the crops of ``part`` from ``tokens`` (n, N, E)."""
    from rrg_lite.train.evaluate import generate_reports

    ex = report_examples(mllm, tokens, data, part, with_target=False)
    return generate_reports(mllm, ex, batch_size=batch_size, max_new_tokens=max_new_tokens, progress=False)


@torch.no_grad()
def target_nll(mllm, tokens: torch.Tensor, data: PetCtData, part: str = "test", batch_size: int = 64) -> np.ndarray:
    """Teacher-forced mean NLL (nats per target token) of each crop's target: (n_part,)."""
    from rrg_lite.mllm.inference import batched_inference
    from rrg_lite.mllm.prompt import MLLMCollator

    ex = report_examples(mllm, tokens, data, part)
    nll = batched_inference(mllm, ex, lambda m, b: -m.sequence_logprobs(
        b["input_ids"], b["attention_mask"], b["labels"], features=b["features"], average=True),
        batch_size=batch_size, collate=MLLMCollator(mllm.tokenizer.pad_token_id))
    return torch.stack(nll).numpy() if nll else np.zeros(0)


@torch.no_grad()
def roi_share(mllm, tokens: torch.Tensor, data: PetCtData, roi: torch.Tensor | None = None, part: str = "test",
              batch_size: int = 32) -> np.ndarray:
    """Share of the answer tokens' visual attention (Eq. 10) on the ROI tokens, per crop of ``part`` that has an
    ROI: (n_with_roi,). ``roi`` defaults to the data's high-SUV ROI."""
    from rrg_lite.mllm.prompt import MLLMCollator

    from .alignment import roi_attention_share

    roi = data.roi if roi is None else roi
    ex = [e for e in report_examples(mllm, tokens, data, part, roi=roi) if bool(e["roi"].any())]
    collate = MLLMCollator(mllm.tokenizer.pad_token_id, keep=("roi",))
    mllm.eval()
    out = []
    for i in range(0, len(ex), batch_size):
        b = collate(ex[i: i + batch_size])
        r = torch.stack(b.pop("roi"))
        va = mllm.visual_attention(**b, queries="targets")
        out.append(roi_attention_share(va.attention, r))
    return torch.cat(out).numpy() if out else np.zeros(0)
