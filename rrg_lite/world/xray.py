"""Chest X-rays: the chest phantom voxelised and projected (frontal and lateral), with CheXpert's 14 labels.

A radiograph is the line integral of attenuation along the beam. Here the chest of the same anatomy model that
makes the CTs is voxelised on a chest grid, HU are turned into attenuation (μ ∝ 1 + HU/1000), and the volume is
summed front-to-back (frontal view) and side-to-side (lateral view). Dense things (bone, heart, fluid) come out
bright, air dark, as on a real film.

Some findings hide on one view, like in real life (:data:`ONE_VIEW`): a small effusion sits in the posterior
costophrenic recess, seen only on the lateral view; a retrocardiac opacity is masked by the heart on the frontal
view; a rib fracture and a small apical pneumothorax are seen only on the frontal view. Such a finding is drawn only
into the views its record lists, so "which view shows it" is known exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
from scipy import ndimage

from . import qa as QA
from .config import WorldConfig, study_seeds
from .findings import (Finding, Kind, lung_lesion, apply_to_anatomy, balanced_prevalence, blob, layer,
                       lung_blockers, make_prior, point_in, relabel, render_intensity)
from .phantom import (LABEL, SCAN_RANGES, Anatomy, Grid, add_vessels, hu_from_labels, make_grid, paint,
                      sample_anatomy)
from .report import Report, chexpert_vector, cxr_noun, cxr_report
from .vocab import FRONTAL_VIEWS, LATERAL_VIEWS

#: Chest X-ray kinds, one per CheXpert label ("No Finding" is derived). Prevalences roughly MIMIC-CXR's.
CXR_KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("enlarged_cardiomediastinum", "Enlarged Cardiomediastinum", "mediastinum", "chest", 0.05, None, sizable=False),
    Kind("cardiomegaly", "Cardiomegaly", "heart", "chest", 0.20, None, sizable=False),
    Kind("lung_opacity", "Lung Opacity", "lung", "chest", 0.20, (30, 60)),
    Kind("lung_lesion", "Lung Lesion", "lung", "chest", 0.05, (10, 35)),
    Kind("edema", "Edema", "lung", "chest", 0.12, None, sizable=False),
    Kind("consolidation", "Consolidation", "lung", "chest", 0.06, (40, 75)),
    Kind("pneumonia", "Pneumonia", "lung", "chest", 0.07, (30, 55)),
    Kind("atelectasis", "Atelectasis", "lung", "chest", 0.20, None, sizable=False),
    Kind("pneumothorax", "Pneumothorax", "pleura", "chest", 0.05, (15, 40)),
    Kind("pleural_effusion", "Pleural Effusion", "pleura", "chest", 0.22, (20, 50)),
    Kind("pleural_other", "Pleural Other", "pleura", "chest", 0.02, None, sizable=False),
    Kind("fracture", "Fracture", "bone", "chest", 0.03, None, sizable=False),
    Kind("support_devices", "Support Devices", "devices", "chest", 0.28, None, sizable=False),
)}

#: Kinds that may be visible on one view only, and which one.
ONE_VIEW: dict[str, str] = {"pleural_effusion": "lateral", "atelectasis": "lateral", "consolidation": "lateral",
                            "fracture": "frontal", "pneumothorax": "frontal", "pleural_other": "frontal"}
#: Kinds that can be present on the prior and gone now.
RESOLVABLE = ("pleural_effusion", "lung_opacity", "consolidation", "pneumonia", "atelectasis", "edema", "pneumothorax")
#: Kinds that can be reported with hedging (CheXpert "uncertain", −1).
HEDGEABLE = ("lung_opacity", "edema", "consolidation", "pneumonia", "atelectasis", "pleural_effusion", "lung_lesion")


def _retrocardiac(rng, an: Anatomy) -> np.ndarray:
    """A point of the left lower lobe behind the heart (its x range overlaps the heart's, it lies posterior)."""
    lung, h = an.organs["lung_left"], an.organs["heart"]
    for _ in range(100):
        p = point_in(rng, lung, rmax=0.9, zn=(0.0, 0.6), yn=(0.2, 0.9), xn=(-1.0, -0.2), avoid=lung_blockers(an))
        if abs(p[2] - h.center[2]) < 0.8 * h.radii[2]:
            return p
    return p


def _sample_cxr_kind(name: str, rng, an: Anatomy, cfg: WorldConfig, one_view: bool) -> Finding:
    k = CXR_KINDS[name]
    C = cfg.lesion_contrast

    def make(**kw):
        return Finding(kind=k.name, label=k.label, region=k.region, body_part="chest", **kw)

    if name == "enlarged_cardiomediastinum":
        f = make(organ="mediastinum", location="mediastinum", center_mm=tuple(an.organs["mediastinum"].center))
        f.params["scale"] = {"organ": "mediastinum", "factor": (1.0, 1.15, 1.9)}
        return f
    if name == "cardiomegaly":
        sev = ("mild", "moderate", "severe")[rng.choice(3, p=[0.5, 0.35, 0.15])]
        f = make(organ="heart", location="heart", severity=sev, center_mm=tuple(an.organs["heart"].center))
        f.params["scale"] = {"organ": "heart", "factor": {"mild": 1.22, "moderate": 1.32, "severe": 1.45}[sev]}
        return f
    if name in ("lung_opacity", "lung_lesion", "consolidation"):
        hu = {"lung_opacity": -850 + 500 * C, "lung_lesion": -850 + 890 * C, "consolidation": -850 + 880 * C}[name]
        lobes = ("right upper lobe", "right middle lobe", "right lower lobe", "left upper lobe", "left lower lobe")
        if one_view:
            lobes = ("left lower lobe",)  # retrocardiac
        f = lung_lesion(rng, an, k, cfg, hu, lobes=lobes)
        if one_view:  # tuck it behind the heart: medial, posterior left lower lobe
            c = _retrocardiac(rng, an)
            f.center_mm = tuple(c)
            f.params["layers"][0]["blobs"][0]["c"] = tuple(float(v) for v in c)
            f.location = "left lower lobe"
        f.side = f.location.split()[0]
        return f
    if name == "pneumonia":
        lobes = ("right lower lobe", "left lower lobe", "right middle lobe", "right upper lobe")
        lobe = lobes[rng.integers(len(lobes))]
        side = lobe.split()[0]
        from .findings import lobe_range
        size = float(rng.uniform(*k.size_range) * cfg.lesion_size_scale)
        blobs = [blob(point_in(rng, an.organs[f"lung_{side}"], rmax=0.8, avoid=lung_blockers(an), **lobe_range(lobe)),
                      (size / 2,) * 3)
                 for _ in range(3)]
        f = make(organ=f"lung_{side}", location=lobe, side=side, size_mm=size, center_mm=blobs[0]["c"])
        f.params["layers"] = [layer(blobs, -850 + 650 * C, within=("lung_right", "lung_left"))]
        return f
    if name == "edema":
        sev = ("mild", "moderate", "severe")[rng.choice(3, p=[0.5, 0.35, 0.15])]
        f = make(organ="lungs", location="both lungs", side="bilateral", severity=sev)
        f.params["edema"] = {"hilum_z": an.levels["carina"] + 30, "amp": {"mild": 250.0, "moderate": 350.0,
                                                                           "severe": 450.0}[sev] * C, "scale": 70.0}
        return f
    if name == "atelectasis":
        side = ("right", "left")[rng.integers(2)] if not one_view else "left"
        lung = an.organs[f"lung_{side}"]
        c = point_in(rng, lung, rmax=0.95, zn=(0.3, 0.7), yn=(0.4, 0.8), avoid=lung_blockers(an))
        if one_view:
            c = _retrocardiac(rng, an)
        f = make(organ=f"lung_{side}", location=f"{side} lower lobe", side=side, center_mm=tuple(c))
        f.params["layers"] = [layer([blob(c, (10.0, 22.0, 35.0), rng.uniform(-0.3, 0.3))], -850 + 860 * C,
                                    within=("lung_right", "lung_left"))]
        return f
    if name == "pleural_effusion":
        side = ("right", "left", "bilateral")[rng.choice(3, p=[0.4, 0.3, 0.3])] if not one_view else \
            ("right", "left")[rng.integers(2)]
        depth = float(rng.uniform(8, 14)) if one_view else float(rng.uniform(*k.size_range) * cfg.lesion_size_scale)
        f = make(organ="pleura", location=f"{side} pleural space" if side != "bilateral" else "both pleural spaces",
                 side=side, size_mm=depth,
                 severity="small" if depth < 20 else ("moderate" if depth < 35 else "large"))
        f.params["effusion"] = {"sides": ["right", "left"] if side == "bilateral" else [side], "depth": depth}
        lung = an.organs["lung_right" if side != "left" else "lung_left"]
        f.center_mm = (lung.center[0] + 0.8 * lung.radii[0], lung.center[1] + 0.8 * lung.radii[1], lung.center[2])
        return f
    if name == "pneumothorax":
        side = ("right", "left")[rng.integers(2)]
        rim = float(rng.uniform(*k.size_range)) if not one_view else float(rng.uniform(10, 16))
        lung = an.organs[f"lung_{side}"]
        f = make(organ=f"lung_{side}", location=f"{side} apex", side=side, size_mm=rim,
                 center_mm=(lung.center[0] - 0.7 * lung.radii[0], lung.center[1], lung.center[2]))
        f.params["ptx"] = {"side": side, "rim": rim}
        return f
    if name == "pleural_other":
        side = ("right", "left")[rng.integers(2)]
        lung = an.organs[f"lung_{side}"]
        sx = -1 if side == "right" else 1
        c = (lung.center[0] + rng.uniform(-30, 30), lung.center[1], lung.center[2] + sx * (lung.radii[2] - 4))
        f = make(organ="pleura", location=f"{side} lateral chest wall", side=side, center_mm=tuple(c))
        f.params["layers"] = [layer([blob(c, (35.0, 30.0, 5.0))], 350 * C,
                                    within=("lung_right", "lung_left", "soft_tissue", "rib", "fat"))]
        return f
    if name == "fracture":
        side = ("right", "left")[rng.integers(2)]
        sx = -1 if side == "right" else 1
        z = rng.uniform(an.levels["lung_apex"] + 60, an.levels["lung_apex"] + 180)
        c = (z, 0.0, sx * 0.9 * an.levels["body_rx"])
        f = make(organ="rib", location=f"{side} lateral rib", side=side, center_mm=tuple(c))
        f.params["layers"] = [layer([blob(c, (7.0, 9.0, 7.0))], 1100 * C, within=None)]
        return f
    if name == "support_devices":
        sub = ("endotracheal tube", "central venous catheter", "pacemaker")[rng.integers(3)]
        car = an.levels["carina"]
        if sub == "endotracheal tube":
            pts = [(z, -15.0, 0.0) for z in np.arange(-20.0, car - 40, 8.0)]
        elif sub == "central venous catheter":
            a, b = np.array([-15.0, -30.0, -45.0]), np.array([car - 10, -15.0, -12.0])
            pts = [tuple(a + t * (b - a)) for t in np.linspace(0, 1, 14)]
        else:
            h = an.organs["heart"]
            gen = np.array([an.levels["lung_apex"] + 40, -an.levels["body_ry"] + 18, 85.0])
            tip = np.array([h.center[0] + 10, h.center[1] - 10, h.center[2] - 10])
            pts = [tuple(gen + t * (tip - gen)) for t in np.linspace(0.15, 1, 10)]
            pts = [tuple(gen)] * 3 + pts
        f = make(organ="devices", location="chest", subtype=sub, center_mm=tuple(pts[-1]))
        # 6 mm beads: 4 mm ones fall between the voxels of the 64-voxel phantom grid and the tube vanishes
        f.params["layers"] = [layer([blob(p, (6.0, 6.0, 6.0)) for p in pts], 2500, within=None)]
        return f
    raise KeyError(f"unknown X-ray finding kind {name!r}")


def sample_cxr_findings(rng, an: Anatomy, cfg: WorldConfig) -> list[Finding]:
    """Each kind independently with its (balanced) prevalence, after a ``p_normal_xray`` draw for a normal study."""
    found = []
    normal = rng.random() < cfg.p_normal_xray
    for name, kind in CXR_KINDS.items():
        if normal and name != "support_devices":
            continue
        if rng.random() < balanced_prevalence(kind.prevalence, cfg):
            one_view = name in ONE_VIEW and rng.random() < cfg.p_one_view_only
            f = _sample_cxr_kind(name, rng, an, cfg, one_view)
            f.views = (ONE_VIEW[name],) if one_view else ("frontal", "lateral")
            if name in HEDGEABLE and rng.random() < cfg.p_uncertain:
                f.certainty = "uncertain"
            found.append(f)
    for i, f in enumerate(found):
        f.id = i
    return found


def _render_pneumothorax(findings, an: Anatomy, grid: Grid, hu: np.ndarray, labels: np.ndarray) -> dict:
    """Collapse the lung away from the apex and chest wall: air without lung markings, a visible pleural line."""
    masks = {}
    for f in findings:
        if not f.present or "ptx" not in f.params:
            continue
        side, rim = f.params["ptx"]["side"], f.params["ptx"]["rim"]
        lung = an.organs[f"lung_{side}"]
        inner = type(lung)((lung.center[0] + rim, lung.center[1], lung.center[2] - (rim if side == "left" else -rim) * 0.0),
                           (lung.radii[0] - rim, lung.radii[1] - rim * 0.3, lung.radii[2] - rim), lung.yaw)
        box = grid.bbox(lung.center, lung.half_extent())
        if box is None:
            continue
        out = inner.radius2(grid, box) > 1.0
        upper = (grid.axis(0)[box[0]] < lung.center[0])[:, None, None]
        m = (labels[box] == LABEL[f"lung_{side}"]) & out & upper
        hu[box][m] = -1000.0
        full = np.zeros(grid.shape, bool)
        full[box] = m
        masks[f.id] = full
    return masks


# ---------------------------------------------------------------------------------------------------------------
# Projection
# ---------------------------------------------------------------------------------------------------------------
MU_WATER = 0.02  # 1/mm, soft tissue at diagnostic energies


def project(hu: np.ndarray, spacing, view: str) -> np.ndarray:
    """Line integral of attenuation: frontal sums over y (front↔back), lateral over x (side↔side). (D, W) or (D, H)."""
    mu = np.clip(hu + 1000.0, 0.0, None) * (MU_WATER / 1000.0)
    if view == "frontal":
        return mu.sum(axis=1) * spacing[1]
    if view == "lateral":
        return mu.sum(axis=2) * spacing[2]
    raise ValueError(f"unknown view {view!r}; use 'frontal' or 'lateral'")


def to_image(line_integral: np.ndarray, size: int, view: str, rng, noise: float) -> tuple[np.ndarray, dict]:
    """Line integrals (D, N) → a square float32 image in [0, 1] (bright = dense) and the index→pixel mapping."""
    ref = 6.0 if view == "frontal" else 7.5
    img = np.clip(line_integral / ref, 0.0, 1.0) ** 0.8
    d, n = img.shape
    side = max(d, n)
    top, left = (side - d) // 2, (side - n) // 2
    sq = np.zeros((side, side), np.float32)
    sq[top:top + d, left:left + n] = img
    scale = size / side
    out = ndimage.zoom(sq, scale, order=1, grid_mode=True, mode="nearest")[:size, :size]
    if noise > 0:
        out = out + noise * rng.standard_normal(out.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32), {"top": top, "left": left, "scale": scale}


def box_2d(mask: np.ndarray, view: str, mapping: dict, size: int) -> list[float] | None:
    """Projected bbox of a 3-D mask as [x1, y1, x2, y2] pixels of the view's image (row = z, col = x or y)."""
    if not mask.any():
        return None
    axes = {"frontal": (0, 2), "lateral": (0, 1)}[view]
    lo, hi = [], []
    for ax in axes:
        other = tuple(i for i in range(3) if i != ax)
        idx = np.nonzero(mask.any(axis=other))[0]
        lo.append(idx[0])
        hi.append(idx[-1] + 1)
    s, top, left = mapping["scale"], mapping["top"], mapping["left"]
    y1, y2 = (lo[0] + top) * s, (hi[0] + top) * s
    x1, x2 = (lo[1] + left) * s, (hi[1] + left) * s
    return [float(np.clip(v, 0, size)) for v in (x1, y1, x2, y2)]


# ---------------------------------------------------------------------------------------------------------------
# Studies
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class XRayStudy:
    """One chest X-ray study.

    frontal:   float32 (S, S) in [0, 1]; lateral: same or None
    views:     {"frontal": "PA"|"AP", "lateral": "LATERAL"|"LL"} (MIMIC ``ViewPosition`` values)
    prior:     the same patient's earlier :class:`XRayStudy`, or None
    findings:  list of Finding (``views`` tells where each is visible; ``change`` vs the prior)
    report:    :class:`Report` with sections indication/comparison/findings/impression
    labels:    float32 (14,) CheXpert: 1, 0, −1, NaN
    boxes:     [{"label", "kind": finding|organ|region, "view", "box": [x1, y1, x2, y2] px, "finding_id"}]
    days:      study day (the prior has a smaller one), for MIMIC-style study ordering
    """

    study_id: str
    subject_id: str
    frontal: np.ndarray
    lateral: np.ndarray | None
    views: dict
    findings: list[Finding]
    report: Report
    labels: np.ndarray
    boxes: list[dict]
    qa: list[dict]
    prior: "XRayStudy | None" = None
    days: int = 0
    age: int = 60
    sex: str = "M"

    @property
    def images(self) -> dict[str, np.ndarray]:
        out = {"frontal": self.frontal}
        if self.lateral is not None:
            out["lateral"] = self.lateral
        return out


def _xray_grid(an: Anatomy, cfg: WorldConfig) -> Grid:
    z0, z1 = SCAN_RANGES["xray_chest"]
    zs = an.levels["z_scale"]
    s = cfg.fov_mm / cfg.xray_grid
    depth = int(round((z1 - z0) * zs / s))
    return make_grid((z0 * zs, z0 * zs + depth * s), depth, cfg.xray_grid, cfg.fov_mm)


def _render_views(an: Anatomy, findings: list[Finding], grid: Grid, views: tuple[str, ...], rng, cfg):
    """Images per view (each with only the findings visible on it), finding masks, organ masks, mappings."""
    images, mappings, masks_all, labels_all = {}, {}, None, None
    cache = {}
    for view in views:
        visible = [f for f in findings if view in f.views]
        key = tuple(f.id for f in visible)
        if key not in cache:
            an2 = apply_to_anatomy(visible, an)
            labels = paint(an2, grid)
            masks = relabel(visible, an2, grid, labels)
            hu = hu_from_labels(an2, labels)
            masks.update(_render_pneumothorax(visible, an2, grid, hu, labels))
            masks.update(render_intensity(visible, grid, hu, labels))
            for f in visible:
                if "scale" in f.params:
                    masks[f.id] = labels == LABEL[f.params["scale"]["organ"]]
            union = np.zeros(grid.shape, bool)
            for m in masks.values():
                union |= m
            add_vessels(an2, grid, hu, labels, exclude=union)
            cache[key] = (hu, labels, masks)
        hu, labels, masks = cache[key]
        images[view], mappings[view] = to_image(project(hu, grid.spacing, view), cfg.xray_size, view, rng,
                                                cfg.xray_noise)
    # masks of every finding (for boxes): union over the renders
    fmasks: dict[int, np.ndarray] = {}
    for hu, labels, masks in cache.values():
        labels_all = labels if labels_all is None else labels_all
        for fid, m in masks.items():
            fmasks[fid] = m if fid not in fmasks else (fmasks[fid] | m)
    return images, mappings, fmasks, labels_all


_ORGANS_2D = {"heart": ("heart",), "lung_right": ("lung_right",), "lung_left": ("lung_left",),
              "trachea": ("trachea",), "mediastinum": ("mediastinum", "aorta")}


def _boxes(findings, fmasks, labels, mappings, cfg) -> list[dict]:
    out = []
    for view, mp in mappings.items():
        for f in findings:
            if f.present and view in f.views and f.id in fmasks:
                b = box_2d(fmasks[f.id], view, mp, cfg.xray_size)
                if b is not None:
                    out.append({"label": f.label, "kind": "finding", "view": view, "box": b, "finding_id": f.id})
        for name, structs in _ORGANS_2D.items():
            b = box_2d(np.isin(labels, [LABEL[s] for s in structs]), view, mp, cfg.xray_size)
            if b is not None:
                out.append({"label": name, "kind": "organ", "view": view, "box": b, "finding_id": None})
        if view == "frontal":
            for side in ("right", "left"):
                lung = labels == LABEL[f"lung_{side}"]
                b = box_2d(lung, view, mp, cfg.xray_size)
                if b is None:
                    continue
                x1, y1, x2, y2 = b
                h, w = y2 - y1, x2 - x1
                out.append({"label": f"{side} upper zone", "kind": "region", "view": view,
                            "box": [x1, y1, x2, y1 + h / 3], "finding_id": None})
                out.append({"label": f"{side} lower zone", "kind": "region", "view": view,
                            "box": [x1, y1 + 2 * h / 3, x2, y2], "finding_id": None})
                cx1 = x1 if side == "right" else x2 - w / 3
                out.append({"label": f"{side} costophrenic angle", "kind": "region", "view": view,
                            "box": [cx1, y2 - h / 5, cx1 + w / 3, y2], "finding_id": None})
    return out


def _xray_study(rng, an, findings, cfg, study_id, subject_id, has_prior, days, age, prior=None) -> XRayStudy:
    grid = _xray_grid(an, cfg)
    views = ("frontal", "lateral") if rng.random() < cfg.p_lateral else ("frontal",)
    images, mappings, fmasks, labels = _render_views(an, findings, grid, views, rng, cfg)
    # a finding that hides on the only view this study has cannot be reported from it: keep it out of the record
    # ... and one that did not land in the phantom (a rare lesion fully covered by another organ) is left out too
    shown = [f for f in findings if not f.present or (any(v in views for v in f.views)
                                                       and f.id in fmasks and fmasks[f.id].any())]
    shown, fmasks = _renumber(shown, fmasks)
    report = cxr_report(rng, shown, cfg, has_prior, views)
    labs = chexpert_vector(shown, report)
    boxes = _boxes(shown, fmasks, labels, mappings, cfg)
    qa = QA.cxr_qa(rng, shown, labs, cfg.qa_per_study, cxr_noun, has_prior, "lateral" in views)
    frontal_code = FRONTAL_VIEWS[int(rng.integers(2))]
    view_codes = {"frontal": frontal_code}
    if "lateral" in views:
        view_codes["lateral"] = LATERAL_VIEWS[int(rng.integers(2))]
    return XRayStudy(study_id=study_id, subject_id=subject_id, frontal=images["frontal"],
                     lateral=images.get("lateral"), views=view_codes, findings=shown, report=report, labels=labs,
                     boxes=boxes, qa=qa, prior=prior, days=days, age=age, sex=an.sex)


def _renumber(findings, masks):
    """Give findings ids 0..n-1 in order, carrying their masks along."""
    new = {}
    for i, f in enumerate(findings):
        if f.id in masks:
            new[i] = masks[f.id]
    for i, f in enumerate(findings):
        f.id = i
    return findings, new


def make_xray_study(seed, cfg: WorldConfig | None = None, study_id: str = "cxr_0",
                    subject_id: str | None = None) -> XRayStudy:
    """One seeded chest X-ray study, with a prior study of the same patient if drawn (``cfg.p_prior_xray``)."""
    cfg = cfg or WorldConfig()
    rng = np.random.default_rng(seed)
    an = sample_anatomy(rng)
    age = int(rng.integers(25, 90))
    findings = sample_cxr_findings(rng, an, cfg)
    has_prior = rng.random() < cfg.p_prior_xray
    subject_id = subject_id or study_id
    days = int(rng.integers(30, 3000))
    prior = None
    if has_prior:
        other = sample_cxr_findings(rng, an, cfg)
        have = {f.kind for f in findings}
        extra = [f for f in other if f.kind not in have and f.kind in RESOLVABLE][:1]
        for f in extra:
            f.views = ("frontal", "lateral")
        findings, prior_findings = make_prior(rng, findings, extra)
        gap = int(rng.integers(1, 400))
        prior = _xray_study(rng, an, prior_findings, cfg, f"{study_id}_prior", subject_id, False, days - gap, age)
    study = _xray_study(rng, an, findings, cfg, study_id, subject_id, has_prior, days, age, prior=prior)
    return study


def iter_xray_cohort(n: int, seed: int = 0, cfg: WorldConfig | None = None, prefix: str = "cxr",
                     progress: bool = False) -> Iterator[XRayStudy]:
    seeds = study_seeds(seed, n)
    it = range(n)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, desc="X-ray studies")
    for i in it:
        yield make_xray_study(seeds[i], cfg, study_id=f"{prefix}_{i:05d}", subject_id=f"{prefix}p_{i:05d}")


def generate_xray_cohort(n: int, seed: int = 0, cfg: WorldConfig | None = None, prefix: str = "cxr",
                         progress: bool = False) -> list[XRayStudy]:
    """``n`` seeded chest X-ray studies in memory (about 130 kB each at 128×128 with a prior)."""
    return list(iter_xray_cohort(n, seed, cfg, prefix, progress))
