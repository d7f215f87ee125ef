"""What an encoder learns from: world studies turned into (images, labels, dense patch targets, reports, sizes).

    data = ct_encoder_data(n=600, seed=0)                      # chest CT, CT-RATE's 18 labels
    data = xray_encoder_data(n=600, seed=0, view="frontal")    # chest X-ray, CheXpert's 13 findings
    data.images        (n, C, *spatial) float32, the encoder's input (before its own standardisation)
    data.labels        (n, L) float32 {0, 1}: ground truth from the world's record (not from a report labeler)
    data.patch_targets (n, N, L) uint8: 1 where patch j of study i holds a voxel/pixel of a finding of label l
    data.sizes         (n, L) float32: voxels (CT, native grid) / box pixels (X-ray) of label l's findings, 0 if absent
    data.reports       list of n report texts (the CLIP partner of each image)

Labels are the world's ground truth, not a labeler's reading of the report, because the question here is "what can
the image show": a finding that the report hedges on is still in the image. On the X-ray a finding hidden on this
view (``Finding.views``) is *not* a positive for this view's encoder (it is not in the pixels); the study-level
label is kept in ``study_labels`` for the two-view probe.

The same functions read CT-RATE / MIMIC-CXR at full scale only through the loaders of :mod:`rrg_lite.data`;
dense targets exist only in the world (real datasets give study labels, which is what the CLIP path needs).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from rrg_lite.data.transforms import resize, window

CT_WINDOWS = ("lung", "mediastinum", "bone")


@dataclass
class EncoderData:
    images: torch.Tensor          # (n, C, *spatial) float32
    labels: torch.Tensor          # (n, L) float32
    patch_targets: torch.Tensor   # (n, N, L) uint8
    sizes: torch.Tensor           # (n, L) float32
    reports: list[str]
    label_names: tuple[str, ...]
    study_ids: list[str]
    study_labels: torch.Tensor | None = None   # (n, L): X-ray: present on any view of the study
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.reports)

    def subset(self, idx) -> "EncoderData":
        idx = torch.as_tensor(idx, dtype=torch.long) if not isinstance(idx, slice) else idx
        pick = (lambda xs: [xs[i] for i in idx.tolist()]) if not isinstance(idx, slice) else (lambda xs: xs[idx])
        return EncoderData(self.images[idx], self.labels[idx], self.patch_targets[idx], self.sizes[idx],
                           pick(self.reports), self.label_names, pick(self.study_ids),
                           None if self.study_labels is None else self.study_labels[idx], dict(self.extra))


def _grid(shape: Sequence[int], patch: Sequence[int]) -> tuple[int, ...]:
    for s, p in zip(shape, patch):
        if s % p:
            raise ValueError(f"patch size {tuple(patch)} must divide the input shape {tuple(shape)}")
    return tuple(s // p for s, p in zip(shape, patch))


def _patch_index(coords: np.ndarray, native: Sequence[int], shape: Sequence[int], patch: Sequence[int]) -> np.ndarray:
    """(k, d) voxel indices of the native array -> flat row-major patch indices on the resized input's patch grid."""
    grid = _grid(shape, patch)
    cell = [(s / n) / p for s, n, p in zip(shape, native, patch)]      # patches per native voxel, per axis
    idx = np.zeros(len(coords), np.int64)
    for ax, g in enumerate(grid):
        a = np.clip(((coords[:, ax] + 0.5) * cell[ax]).astype(np.int64), 0, g - 1)
        idx = idx * g + a
    return np.unique(idx)


def preprocess_ct(hu: np.ndarray, shape: Sequence[int] = (32, 64, 64), windows: Sequence = CT_WINDOWS) -> np.ndarray:
    """HU (D, H, W) -> float32 (len(windows), *shape): one [0, 1] channel per CT window, resized to one shape."""
    if hu.ndim != 3:
        raise ValueError(f"a CT volume must be (D, H, W), got shape {hu.shape}")
    chans = [resize(window(hu, w) if isinstance(w, str) else window(hu, *w), shape) for w in windows]
    return np.stack(chans).astype(np.float32)


def _ct_row(args):
    """One world CT study -> (volume, labels, patch targets, sizes, report, id); top level for a process pool."""
    from rrg_lite.world.ct import make_ct_study
    from rrg_lite.world.vocab import CT_RATE_LABELS

    seed, cfg, i, shape, windows, patch = args
    st = make_ct_study(seed, cfg, study_id=f"ct_{i:05d}", patient_id=f"ctp_{i:05d}")
    L = len(CT_RATE_LABELS)
    n_patches = int(np.prod(_grid(shape, patch)))
    targets = np.zeros((n_patches, L), np.uint8)
    sizes = np.zeros(L, np.float32)
    for f in st.findings:
        if not f.present or f.label is None:
            continue
        j = CT_RATE_LABELS.index(f.label)
        coords = np.argwhere(st.finding_mask(f.id))
        if len(coords):
            targets[_patch_index(coords, st.ct.shape, shape, patch), j] = 1
            sizes[j] += len(coords)
    return (preprocess_ct(st.ct, shape, windows), np.asarray(st.labels, np.float32), targets, sizes,
            st.report.text(), st.study_id)


def _collect(fn, jobs, workers: int, progress: bool, desc: str):
    from tqdm.auto import tqdm

    if workers > 1:
        from rrg_lite.runtime import process_pool

        with process_pool(workers) as pool:          # spawn, never fork from inside a kernel
            return list(tqdm(pool.map(fn, jobs, chunksize=8), total=len(jobs), desc=desc, disable=not progress))
    return [fn(j) for j in tqdm(jobs, desc=desc, disable=not progress)]


def ct_encoder_data(n: int, seed: int = 0, world: dict | None = None, shape: Sequence[int] = (32, 64, 64),
                    windows: Sequence = CT_WINDOWS, patch_size: Sequence[int] = (8, 16, 16), workers: int = 1,
                    progress: bool = False) -> EncoderData:
    """``n`` seeded world CTs (``world``: :class:`~rrg_lite.world.config.WorldConfig` overrides; default chest range).

    Study i depends only on ``(seed, i)``, so any ``workers`` gives the same data.
    """
    from rrg_lite.world.config import WorldConfig, study_seeds
    from rrg_lite.world.vocab import CT_RATE_LABELS

    cfg = WorldConfig(**{"scan_range": "chest", **(world or {})})
    windows = tuple(tuple(w) if isinstance(w, (list, tuple)) else w for w in windows)
    jobs = [(s, cfg, i, tuple(shape), windows, tuple(patch_size)) for i, s in enumerate(study_seeds(seed, n))]
    rows = _collect(_ct_row, jobs, workers, progress, "CT studies")
    vol, lab, tgt, siz, rep, ids = zip(*rows)
    return EncoderData(torch.from_numpy(np.stack(vol)), torch.from_numpy(np.stack(lab)),
                       torch.from_numpy(np.stack(tgt)), torch.from_numpy(np.stack(siz)), list(rep),
                       tuple(CT_RATE_LABELS), list(ids))


#: CheXpert's 13 observations the world draws (``No Finding`` is their absence, not a thing in the pixels).
XRAY_LABELS = ("Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation",
               "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
               "Support Devices")


def _xray_row(args):
    from rrg_lite.world.xray import make_xray_study

    seed, cfg, i, view, size, patch = args
    st = make_xray_study(seed, cfg, study_id=f"cxr_{i:05d}", subject_id=f"cxrp_{i:05d}")
    L = len(XRAY_LABELS)
    image = st.images.get(view)
    here, anywhere = np.zeros(L, np.float32), np.zeros(L, np.float32)
    for f in st.findings:
        if f.present and f.label in XRAY_LABELS:
            anywhere[XRAY_LABELS.index(f.label)] = 1
            if view in f.views and image is not None:
                here[XRAY_LABELS.index(f.label)] = 1
    grid = _grid((size, size), (patch, patch))
    targets = np.zeros((grid[0] * grid[1], L), np.uint8)
    sizes = np.zeros(L, np.float32)
    native = cfg.xray_size
    for b in st.boxes:
        if b["kind"] != "finding" or b["view"] != view or b["label"] not in XRAY_LABELS:
            continue
        j = XRAY_LABELS.index(b["label"])
        x1, y1, x2, y2 = b["box"]
        sizes[j] += max(x2 - x1, 0) * max(y2 - y1, 0)
        s = size / native / patch          # patches per native pixel
        r0, r1 = int(y1 * s), min(int(np.ceil(y2 * s)), grid[0])
        c0, c1 = int(x1 * s), min(int(np.ceil(x2 * s)), grid[1])
        t = targets.reshape(grid[0], grid[1], L)
        t[r0:max(r1, r0 + 1), c0:max(c1, c0 + 1), j] = 1
    if image is None:
        img = np.zeros((1, size, size), np.float32)
    else:
        img = (resize(image, (size, size)) if image.shape != (size, size) else image)[None].astype(np.float32)
    return img, here, targets, sizes, st.report.text(), st.study_id, anywhere, image is not None


def xray_encoder_data(n: int, seed: int = 0, view: str = "frontal", world: dict | None = None, size: int = 128,
                      patch_size: int = 16, workers: int = 1, progress: bool = False) -> EncoderData:
    """``n`` seeded world chest X-ray studies, one ``view`` ("frontal" or "lateral") each.

    Studies without that view (30 % have no lateral) are dropped, so ``len(data) <= n``; ``extra["kept"]`` lists
    the indices of the kept studies in the cohort.
    """
    from rrg_lite.world.config import WorldConfig, study_seeds

    if view not in ("frontal", "lateral"):
        raise ValueError(f"view must be 'frontal' or 'lateral', got {view!r}")
    cfg = WorldConfig(**(world or {}))
    jobs = [(s, cfg, i, view, size, patch_size) for i, s in enumerate(study_seeds(seed, n))]
    rows = _collect(_xray_row, jobs, workers, progress, f"X-ray studies ({view})")
    kept = [i for i, r in enumerate(rows) if r[7]]
    rows = [rows[i] for i in kept]
    img, here, tgt, siz, rep, ids, anywhere, _ = zip(*rows)
    return EncoderData(torch.from_numpy(np.stack(img)), torch.from_numpy(np.stack(here)),
                       torch.from_numpy(np.stack(tgt)), torch.from_numpy(np.stack(siz)), list(rep), XRAY_LABELS,
                       list(ids), torch.from_numpy(np.stack(anywhere)), {"kept": kept, "view": view})
