"""Findings: what is abnormal in a patient, as structured records, and how each one is drawn into a volume.

A :class:`Finding` is the ground truth that everything else is derived from: the label vector, the report
sentences, the boxes and the questions. Drawing happens in two steps so that a prior study can re-draw the same
lesion at another size:

1. *sampling* (:func:`sample_ct_findings`) decides kind, place (mm), size and the drawing parameters;
2. *rendering* (:func:`render_findings`) voxelises them on a grid: some change the anatomy before it is painted
   (an enlarged heart, a pericardial effusion), some relabel voxels (a pleural effusion), most blend an HU value
   into a few ellipsoids ("blobs") restricted to their organ.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .phantom import LABEL, Anatomy, Ellipsoid, Grid, Shell

# ---------------------------------------------------------------------------------------------------------------
# The record
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Finding:
    """One abnormality of one study.

    kind:           catalog key, e.g. ``"lung_nodule"`` (see :data:`CT_KINDS`, :data:`rrg_lite.world.xray.CXR_KINDS`)
    label:          the label-space name it sets (CT-RATE or CheXpert), or None for findings outside the space
    region:         Reg2RG region ("lung", "pleura", ...) it is reported under
    body_part:      "chest", "abdomen" or "pelvis"
    organ:          structure it sits in ("lung_right", "liver", ...)
    location:       words for the place ("right upper lobe", "left kidney")
    side:           "right", "left", "bilateral" or None
    size_mm:        largest diameter (nodules, masses), depth (effusions) or None for diffuse findings
    center_mm:      (z, y, x) in the patient frame, or None
    severity:       "mild", "moderate", "severe" or None
    hypermetabolic: PET: True / False; None when the kind is never FDG-avid in the world
    suv_max:        PET SUVmax of the lesion (None without PET)
    change:         vs the prior: "new", "increased", "decreased", "unchanged", "resolved"; None without prior
    prior_size_mm:  size in the prior study (None if absent then or not sized)
    certainty:      "definite" or "uncertain" (X-ray hedging → CheXpert −1)
    views:          X-ray views it is visible on, e.g. ("frontal", "lateral") or ("lateral",)
    params:         drawing parameters (blobs, HU, ...), internal
    """

    kind: str
    label: str | None
    region: str
    body_part: str
    organ: str
    location: str
    side: str | None = None
    size_mm: float | None = None
    center_mm: tuple[float, float, float] | None = None
    severity: str | None = None
    hypermetabolic: bool | None = None
    suv_max: float | None = None
    change: str | None = None
    prior_size_mm: float | None = None
    certainty: str = "definite"
    views: tuple[str, ...] = ("frontal", "lateral")
    subtype: str | None = None
    id: int = 0
    params: dict = field(default_factory=dict, repr=False)

    @property
    def present(self) -> bool:
        """False only for a finding that resolved since the prior (it is in the record to be reported as such)."""
        return self.change != "resolved"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record without drawing parameters."""
        d = asdict(self)
        d.pop("params")
        d["views"] = list(self.views)
        if d["center_mm"] is not None:
            d["center_mm"] = [round(float(v), 2) for v in d["center_mm"]]
        for k in ("size_mm", "prior_size_mm", "suv_max"):
            if d[k] is not None:
                d[k] = round(float(d[k]), 1)
        return d


# ---------------------------------------------------------------------------------------------------------------
# The CT catalog
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """A kind of finding: which label it sets, where it lives, how common it is, what sizes it takes."""

    name: str
    label: str | None
    region: str
    body_part: str
    prevalence: float
    size_range: tuple[float, float] | None = None
    can_be_active: bool = False      # may be hypermetabolic on PET
    sizable: bool = True             # reports a size (and can increase/decrease)


#: Chest CT kinds: the first 18 are CT-RATE's labels (one kind each), then region findings outside the label space.
CT_KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("medical_material", "Medical material", "heart", "chest", 0.12, None, sizable=False),
    Kind("arterial_calcification", "Arterial wall calcification", "mediastinum", "chest", 0.28, None, sizable=False),
    Kind("cardiomegaly", "Cardiomegaly", "heart", "chest", 0.11, None, sizable=False),
    Kind("pericardial_effusion", "Pericardial effusion", "heart", "chest", 0.07, (8, 22)),
    Kind("coronary_calcification", "Coronary artery wall calcification", "heart", "chest", 0.26, None,
         sizable=False),
    Kind("hiatal_hernia", "Hiatal hernia", "esophagus", "chest", 0.14, (25, 50), sizable=False),
    Kind("lymphadenopathy", "Lymphadenopathy", "mediastinum", "chest", 0.25, (12, 30), can_be_active=True),
    Kind("emphysema", "Emphysema", "lung", "chest", 0.20, None, sizable=False),
    Kind("atelectasis", "Atelectasis", "lung", "chest", 0.25, None, sizable=False),
    Kind("lung_nodule", "Lung nodule", "lung", "chest", 0.45, (6, 30), can_be_active=True),
    Kind("lung_opacity", "Lung opacity", "lung", "chest", 0.35, (20, 55)),
    Kind("fibrotic_sequela", "Pulmonary fibrotic sequela", "lung", "chest", 0.27, None, sizable=False),
    Kind("pleural_effusion", "Pleural effusion", "pleura", "chest", 0.12, (12, 45)),
    Kind("mosaic_attenuation", "Mosaic attenuation pattern", "lung", "chest", 0.08, None, sizable=False),
    Kind("peribronchial_thickening", "Peribronchial thickening", "trachea and bronchie", "chest", 0.10, None,
         sizable=False),
    Kind("consolidation", "Consolidation", "lung", "chest", 0.17, (30, 70), can_be_active=True),
    Kind("bronchiectasis", "Bronchiectasis", "lung", "chest", 0.10, None, sizable=False),
    Kind("septal_thickening", "Interlobular septal thickening", "lung", "chest", 0.08, None, sizable=False),
    # outside CT-RATE's label space, reported per region
    Kind("thyroid_nodule", None, "thyroid", "chest", 0.10, (8, 20)),
    Kind("breast_nodule", None, "breast", "chest", 0.05, (10, 25), can_be_active=True),
    Kind("bone_lesion", None, "bone", "chest", 0.06, (10, 22), can_be_active=True),
    # abdomen and pelvis (AMOS-MM-like per-body-part findings; Reg2RG's "abdomen" region)
    Kind("liver_cyst", None, "abdomen", "abdomen", 0.14, (10, 40)),
    Kind("liver_lesion", None, "abdomen", "abdomen", 0.08, (15, 45), can_be_active=True),
    Kind("hepatic_steatosis", None, "abdomen", "abdomen", 0.12, None, sizable=False),
    Kind("hepatomegaly", None, "abdomen", "abdomen", 0.06, None, sizable=False),
    Kind("splenomegaly", None, "abdomen", "abdomen", 0.06, None, sizable=False),
    Kind("renal_cyst", None, "abdomen", "abdomen", 0.12, (10, 35)),
    Kind("renal_calculus", None, "abdomen", "abdomen", 0.08, (4, 10)),
    Kind("cholelithiasis", None, "abdomen", "abdomen", 0.08, (6, 14), sizable=False),
    Kind("pelvic_lymphadenopathy", None, "abdomen", "pelvis", 0.06, (15, 30), can_be_active=True),
    Kind("pelvic_free_fluid", None, "abdomen", "pelvis", 0.06, None, sizable=False),
)}

#: Which structures a kind needs inside the scan (kinds whose organ is outside the scan range are never drawn).
_NEEDS = {
    "liver_cyst": "liver", "liver_lesion": "liver", "hepatic_steatosis": "liver", "hepatomegaly": "liver",
    "splenomegaly": "spleen", "renal_cyst": "kidney_right", "renal_calculus": "kidney_right",
    "cholelithiasis": "gallbladder", "pelvic_lymphadenopathy": "bladder", "pelvic_free_fluid": "bladder",
}

SEVERITIES = ("mild", "moderate", "severe")


def balanced_prevalence(p: float, cfg) -> float:
    p = min(1.0, p * cfg.prevalence_scale)
    return (1 - cfg.label_balance) * p + cfg.label_balance * 0.5


# ---------------------------------------------------------------------------------------------------------------
# Sampling helpers
# ---------------------------------------------------------------------------------------------------------------


def _in_shape(e: Ellipsoid, p, margin: float = 1.0) -> bool:
    """Is point ``p`` (mm) inside ellipsoid ``e`` grown by ``margin``?"""
    z, y, x = (np.asarray(p, dtype=float) - np.asarray(e.center))
    c, s = np.cos(e.yaw), np.sin(e.yaw)
    yy = (c * y - s * x) / (e.radii[1] * margin)
    xx = (s * y + c * x) / (e.radii[2] * margin)
    return (z / (e.radii[0] * margin)) ** 2 + yy ** 2 + xx ** 2 <= 1.0


def point_in(rng: np.random.Generator, e: Ellipsoid, rmax: float = 0.7, zn: tuple[float, float] = (-1.0, 1.0),
             yn: tuple[float, float] = (-1.0, 1.0), xn: tuple[float, float] = (-1.0, 1.0),
             avoid: tuple = ()) -> np.ndarray:
    """A point (mm) inside ellipsoid ``e`` at normalised radius ≤ ``rmax`` with normalised coords in the ranges,
    and outside the ``avoid`` list of (ellipsoid, margin) — the organs painted over ``e``."""
    c, s = np.cos(e.yaw), np.sin(e.yaw)
    best = None
    for _ in range(400):
        u = rng.uniform(-1, 1, size=3)
        if not (np.linalg.norm(u) <= rmax and zn[0] <= u[0] <= zn[1] and yn[0] <= u[1] <= yn[1]
                and xn[0] <= u[2] <= xn[1]):
            continue
        dz, dy, dx = u[0] * e.radii[0], u[1] * e.radii[1], u[2] * e.radii[2]
        # inverse of the rotation used in Ellipsoid.radius2
        p = np.array([e.center[0] + dz, e.center[1] + c * dy + s * dx, e.center[2] - s * dy + c * dx])
        best = p if best is None else best
        if not any(_in_shape(o, p, m) for o, m in avoid):
            return p
    return best if best is not None else np.asarray(e.center, dtype=float)


def lung_blockers(an: Anatomy) -> tuple:
    """Shapes painted over the lungs (with safety margins: the heart may still grow with cardiomegaly)."""
    o = an.organs
    return ((o["heart"], 1.55), (o["mediastinum"], 1.25), (o["liver"], 1.15), (o["liver_left"], 1.2),
            (o["stomach"], 1.2), (o["spleen"], 1.2))


def lobe_of(anatomy: Anatomy, side: str, p: np.ndarray) -> str:
    """Lobe name from the position inside the lung (upper/middle/lower by height and depth)."""
    lung = anatomy.organs[f"lung_{side}"]
    zn = (p[0] - lung.center[0]) / lung.radii[0]
    yn = (p[1] - lung.center[1]) / lung.radii[1]
    if side == "right":
        if zn < -0.2:
            return "right upper lobe"
        if zn < 0.3 and yn < 0:
            return "right middle lobe"
        return "right lower lobe"
    return "left upper lobe" if zn < 0.1 else "left lower lobe"


def lobe_range(lobe: str) -> dict:
    """Normalised-coordinate limits that keep a sampled point inside ``lobe``."""
    return {
        "right upper lobe": dict(zn=(-0.85, -0.3)), "right middle lobe": dict(zn=(-0.1, 0.2), yn=(-0.8, -0.2)),
        "right lower lobe": dict(zn=(0.35, 0.8), yn=(0.0, 0.8)), "left upper lobe": dict(zn=(-0.85, 0.0)),
        "left lower lobe": dict(zn=(0.3, 0.8)),
    }[lobe]


LOBES = ("right upper lobe", "right middle lobe", "right lower lobe", "left upper lobe", "left lower lobe")


def blob(center, radii, yaw: float = 0.0) -> dict:
    return {"c": tuple(float(v) for v in center), "r": tuple(float(v) for v in radii), "yaw": float(yaw)}


def layer(blobs, hu: float, within=None, mode: str = "set", weight: float = 1.0) -> dict:
    """A drawing layer: blend (``set``) or add (``add``) ``hu`` over ``blobs``, only on ``within`` structures."""
    return {"blobs": list(blobs), "hu": float(hu), "within": tuple(within) if within else None, "mode": mode,
            "weight": float(weight)}


def severity_of(x: float, lo: float, hi: float) -> str:
    t = (x - lo) / max(hi - lo, 1e-6)
    return SEVERITIES[0] if t < 0.34 else SEVERITIES[1] if t < 0.67 else SEVERITIES[2]


# ---------------------------------------------------------------------------------------------------------------
# CT sampling: one function per kind, returning a Finding with drawing parameters
# ---------------------------------------------------------------------------------------------------------------
LUNGS = ("lung_right", "lung_left")


def _size(rng, kind: Kind, cfg) -> float:
    lo, hi = kind.size_range
    return float(rng.uniform(lo, hi) * cfg.lesion_size_scale)


def _make(kind: Kind, **kw) -> Finding:
    return Finding(kind=kind.name, label=kind.label, region=kind.region, body_part=kind.body_part, **kw)


def lung_lesion(rng, an, kind, cfg, hu, shape=(1.0, 1.0, 1.0), lobes=LOBES, within=LUNGS):
    lobe = lobes[rng.integers(len(lobes))]
    side = lobe.split()[0]
    size = _size(rng, kind, cfg)
    c = point_in(rng, an.organs[f"lung_{side}"], rmax=0.8, avoid=lung_blockers(an), **lobe_range(lobe))
    r = np.array(shape) * size / 2.0 * rng.uniform(0.85, 1.15, size=3)
    r[np.argmax(r)] = size / 2.0
    f = _make(kind, organ=f"lung_{side}", location=lobe, side=side, size_mm=size, center_mm=tuple(c))
    f.params["layers"] = [layer([blob(c, r, rng.uniform(0, np.pi))], hu, within=within)]
    return f


def _sample_kind(name: str, rng: np.random.Generator, an: Anatomy, cfg) -> Finding:
    k = CT_KINDS[name]
    C = cfg.lesion_contrast
    heart = an.organs["heart"]
    if name == "lung_nodule":
        return lung_lesion(rng, an, k, cfg, -850 + 890 * C)
    if name == "lung_opacity":  # ground-glass: lung density rises by a few hundred HU
        f = lung_lesion(rng, an, k, cfg, -850 + 400 * C, shape=(1.0, 0.9, 0.8))
        return f
    if name == "consolidation":
        f = lung_lesion(rng, an, k, cfg, -850 + 880 * C, shape=(1.0, 0.8, 0.7),
                         lobes=("right lower lobe", "left lower lobe", "right middle lobe", "right upper lobe"))
        return f
    if name == "atelectasis":
        side = ("right", "left")[rng.integers(2)]
        lung = an.organs[f"lung_{side}"]
        c = point_in(rng, lung, rmax=0.95, zn=(0.3, 0.7), yn=(0.5, 0.8), avoid=lung_blockers(an))
        sev = SEVERITIES[rng.integers(2)]
        r = (9.0 if sev == "mild" else 14.0, 12.0, 30.0)
        f = _make(k, organ=f"lung_{side}", location=f"{side} lower lobe", side=side, center_mm=tuple(c),
                  severity=sev)
        f.params["layers"] = [layer([blob(c, r, rng.uniform(-0.3, 0.3))], -850 + 860 * C, within=(f"lung_{side}",))]
        return f
    if name == "pleural_effusion":
        side = ("right", "left", "bilateral")[rng.choice(3, p=[0.4, 0.3, 0.3])]
        depth = _size(rng, k, cfg)
        f = _make(k, organ="pleura", location=f"{side} pleural space" if side != "bilateral" else "both pleural spaces",
                  side=side, size_mm=depth, severity=severity_of(depth, *k.size_range))
        f.params["effusion"] = {"sides": ["right", "left"] if side == "bilateral" else [side], "depth": depth}
        lung = an.organs["lung_right" if side != "left" else "lung_left"]
        f.center_mm = (lung.center[0] + 0.6 * lung.radii[0], lung.center[1] + 0.7 * lung.radii[1], lung.center[2])
        return f
    if name == "emphysema":
        sev = SEVERITIES[rng.choice(3, p=[0.5, 0.35, 0.15])]
        n = {"mild": 4, "moderate": 8, "severe": 14}[sev]
        blobs = []
        for _ in range(n):
            side = ("right", "left")[rng.integers(2)]
            c = point_in(rng, an.organs[f"lung_{side}"], rmax=0.85, zn=(-0.9, 0.1), avoid=lung_blockers(an))
            blobs.append(blob(c, [rng.uniform(8, 16) * cfg.lesion_size_scale] * 3))
        f = _make(k, organ="lungs", location="both upper lobes", side="bilateral", severity=sev)
        f.params["layers"] = [layer(blobs, -1000, within=LUNGS, weight=min(1.0, 0.9 * C))]
        return f
    if name == "fibrotic_sequela":
        blobs = []
        for _ in range(int(rng.integers(3, 6))):
            side = ("right", "left")[rng.integers(2)]
            c = point_in(rng, an.organs[f"lung_{side}"], rmax=0.9, zn=(-0.9, -0.2), avoid=lung_blockers(an))
            blobs.append(blob(c, (5.0, 5.0, rng.uniform(20, 35)), rng.uniform(0, np.pi)))
        f = _make(k, organ="lungs", location="both lung apices", side="bilateral")
        f.params["layers"] = [layer(blobs, -850 + 700 * C, within=LUNGS)]
        return f
    if name == "bronchiectasis":
        side = ("right", "left", "bilateral")[rng.integers(3)]
        sides = ["right", "left"] if side == "bilateral" else [side]
        walls, lumens = [], []
        for s in sides:
            for _ in range(int(rng.integers(3, 6))):
                c = point_in(rng, an.organs[f"lung_{s}"], rmax=0.75, zn=(0.2, 0.75), avoid=lung_blockers(an))
                ro = rng.uniform(8, 11) * cfg.lesion_size_scale
                walls.append(blob(c, (ro, ro, ro)))
                lumens.append(blob(c, (ro * 0.6,) * 3))
        loc = "both lower lobes" if side == "bilateral" else f"{side} lower lobe"
        f = _make(k, organ="lungs", location=loc, side=side)
        f.params["layers"] = [layer(walls, -850 + 800 * C, within=LUNGS), layer(lumens, -1000, within=LUNGS)]
        return f
    if name == "mosaic_attenuation":
        f = _make(k, organ="lungs", location="both lungs", side="bilateral")
        f.params["field"] = {"seed": int(rng.integers(2 ** 31)), "amp": 140.0 * C}
        return f
    if name == "septal_thickening":
        f = _make(k, organ="lungs", location="both lungs", side="bilateral")
        f.params["septal"] = {"amp": 380.0 * C, "period": 3}
        return f
    if name == "peribronchial_thickening":
        blobs = []
        for s in ("right", "left"):
            br = an.organs[f"bronchus_{s}"]
            for t in np.linspace(0, 1, 4):
                z = br.zs[0] + t * (br.zs[-1] - br.zs[0]) + 10
                y = br.centers[0][0] + t * (br.centers[-1][0] - br.centers[0][0])
                x = br.centers[0][1] + t * (br.centers[-1][1] - br.centers[0][1]) * 1.3
                blobs.append(blob((z, y, x), (9.0, 9.0, 9.0)))
        f = _make(k, organ="bronchi", location="both main bronchi", side="bilateral")
        f.params["layers"] = [layer(blobs, 30 * C, within=LUNGS + ("mediastinum",))]
        return f
    if name == "lymphadenopathy":
        size = _size(rng, k, cfg)
        stations = {"right paratracheal": (an.levels["carina"] - 35, -12.0, -18.0),
                    "subcarinal": (an.levels["carina"] + 18, 5.0, 0.0),
                    "prevascular": (an.levels["carina"] - 15, -40.0, 5.0),
                    "left hilar": (an.levels["carina"] + 25, -5.0, 42.0),
                    "right hilar": (an.levels["carina"] + 25, -5.0, -42.0)}
        name_ = list(stations)[rng.integers(len(stations))]
        c = np.array(stations[name_]) + rng.uniform(-4, 4, 3)
        f = _make(k, organ="mediastinum", location=name_, size_mm=size, center_mm=tuple(c),
                  side="right" if "right" in name_ else "left" if "left" in name_ else None)
        f.params["layers"] = [layer([blob(c, (size / 2, size / 2.4, size / 2.2))], 40 + 5 * C,
                                    within=("mediastinum", "lung_right", "lung_left", "fat", "soft_tissue",
                                            "aorta", "esophagus"))]
        return f
    if name == "cardiomegaly":
        sev = SEVERITIES[rng.choice(3, p=[0.5, 0.35, 0.15])]
        f = _make(k, organ="heart", location="heart", severity=sev, center_mm=tuple(heart.center))
        f.params["scale"] = {"organ": "heart", "factor": {"mild": 1.22, "moderate": 1.32, "severe": 1.45}[sev]}
        return f
    if name == "pericardial_effusion":
        th = _size(rng, k, cfg)
        f = _make(k, organ="heart", location="pericardium", size_mm=th, center_mm=tuple(heart.center),
                  severity=severity_of(th, *k.size_range))
        f.params["pericardial"] = {"thickness": th}
        return f
    if name == "coronary_calcification":
        blobs = []
        for _ in range(int(rng.integers(3, 6))):
            c = point_in(rng, heart, rmax=1.0, yn=(-1.0, -0.2), zn=(-0.7, 0.3))
            c = np.asarray(heart.center) + (c - np.asarray(heart.center)) * 0.95
            blobs.append(blob(c, (4.5, 4.5, 4.5)))
        f = _make(k, organ="heart", location="coronary arteries", center_mm=tuple(blobs[0]["c"]))
        f.params["layers"] = [layer(blobs, 950 * C, within=("heart",))]
        return f
    if name == "arterial_calcification":
        aorta = an.organs["aorta"]
        blobs = []
        for _ in range(int(rng.integers(4, 8))):
            z = rng.uniform(aorta.zs[0] + 10, an.levels["diaphragm"] - 10)
            cy, cx = np.interp(z, aorta.zs, [c[0] for c in aorta.centers]), np.interp(z, aorta.zs, [c[1] for c in aorta.centers])
            a = rng.uniform(0, 2 * np.pi)
            blobs.append(blob((z, cy + 10 * np.sin(a), cx + 10 * np.cos(a)), (4.5, 4.5, 4.5)))
        f = _make(k, organ="aorta", location="thoracic aorta", center_mm=tuple(blobs[0]["c"]))
        f.params["layers"] = [layer(blobs, 950 * C, within=("aorta", "mediastinum", "lung_left", "lung_right",
                                                               "soft_tissue", "fat", "esophagus"))]
        return f
    if name == "medical_material":
        sub = ("pacemaker", "sternotomy wires")[rng.integers(2)]
        if sub == "pacemaker":
            gen = (an.levels["lung_apex"] + 40, -an.levels["body_ry"] + 18, 85.0)
            tip = (heart.center[0] + 10, heart.center[1] - 10, heart.center[2] - 10)
            pts = [np.asarray(gen) + t * (np.asarray(tip) - np.asarray(gen)) for t in np.linspace(0.15, 1, 8)]
            blobs = [blob(gen, (18, 6, 24))] + [blob(p, (3.5, 3.5, 3.5)) for p in pts]
            f = _make(k, organ="heart", location="left chest wall and right ventricle", center_mm=tuple(tip),
                      subtype=sub)
        else:
            st = an.organs["sternum"]
            blobs = [blob((z, st.centers[0][0], 0.0), (3.5, 11, 11)) for z in np.linspace(st.zs[0] + 15, st.zs[1] - 15, 5)]
            f = _make(k, organ="sternum", location="sternum", center_mm=tuple(blobs[2]["c"]), subtype=sub)
        f.params["layers"] = [layer(blobs, 2500, within=None)]
        return f
    if name == "hiatal_hernia":
        size = _size(rng, k, cfg)
        c = (an.levels["diaphragm"] - size / 3, 20.0, 25.0)
        f = _make(k, organ="esophagus", location="esophageal hiatus", center_mm=tuple(c))
        f.params["layers"] = [layer([blob(c, (size / 2, size / 2.5, size / 2))], 20 * C,
                                    within=("lung_right", "lung_left", "mediastinum", "esophagus", "soft_tissue",
                                            "fat", "aorta")),
                              layer([blob((c[0] - size / 6, c[1] - size / 8, c[2]), (size / 5,) * 3)], -900,
                                    within=("lung_right", "lung_left", "mediastinum", "esophagus", "soft_tissue",
                                            "fat", "aorta"))]
        return f
    if name == "thyroid_nodule":
        side = ("right", "left")[rng.integers(2)]
        th = an.organs[f"thyroid_{side}"]
        size = _size(rng, k, cfg)
        c = th.center
        f = _make(k, organ="thyroid", location=f"{side} thyroid lobe", side=side, size_mm=size, center_mm=tuple(c))
        f.params["layers"] = [layer([blob(c, (size / 2,) * 3)], 90 - 70 * C, within=("thyroid", "soft_tissue"))]
        return f
    if name == "breast_nodule":
        side = ("right", "left")[rng.integers(2)]
        br = an.organs[f"breast_{side}"]
        size = _size(rng, k, cfg)
        c = point_in(rng, br, rmax=0.4)
        f = _make(k, organ="breast", location=f"{side} breast", side=side, size_mm=size, center_mm=tuple(c))
        f.params["layers"] = [layer([blob(c, (size / 2,) * 3)], -30 + 80 * C, within=("breast", "fat"))]
        return f
    if name == "bone_lesion":
        sub = ("sclerotic", "lytic")[rng.integers(2)]
        spine = an.organs["spine"]
        z = rng.uniform(an.levels["lung_apex"] + 20, an.levels["diaphragm"])
        c = (z, spine.centers[0][0], 0.0)
        size = _size(rng, k, cfg)
        f = _make(k, organ="spine", location="thoracic vertebral body", size_mm=size, center_mm=tuple(c), subtype=sub)
        f.params["layers"] = [layer([blob(c, (size / 2,) * 3)], 400 + (500 if sub == "sclerotic" else -350) * C,
                                    within=("spine",))]
        return f
    # abdomen
    if name in ("liver_cyst", "liver_lesion"):
        size = _size(rng, k, cfg)
        liver = an.organs["liver"]
        o = an.organs
        c = point_in(rng, liver, rmax=0.6, avoid=((o["gallbladder"], 1.4), (o["stomach"], 1.3), (o["kidney_right"], 1.3),
                                                   (o["lung_right"], 1.05), (o["spleen"], 1.3), (o["pancreas"], 1.3)))
        seg = "right hepatic lobe" if c[2] < -20 else "left hepatic lobe"
        f = _make(k, organ="liver", location=seg, size_mm=size, center_mm=tuple(c))
        target = (an.hu["liver"] - 55 * C) if name == "liver_cyst" else (an.hu["liver"] - 32 * C)
        f.params["layers"] = [layer([blob(c, (size / 2,) * 3)], target, within=("liver",))]
        return f
    if name == "hepatic_steatosis":
        sev = SEVERITIES[rng.choice(3, p=[0.5, 0.35, 0.15])]
        f = _make(k, organ="liver", location="liver", severity=sev, center_mm=tuple(an.organs["liver"].center))
        f.params["organ_hu"] = {"organ": "liver", "hu": {"mild": 28.0, "moderate": 12.0, "severe": -8.0}[sev]}
        return f
    if name in ("hepatomegaly", "splenomegaly"):
        organ = "liver" if name == "hepatomegaly" else "spleen"
        f = _make(k, organ=organ, location=organ, center_mm=tuple(an.organs[organ].center))
        f.params["scale"] = {"organ": organ, "factor": 1.2 if organ == "liver" else 1.5}
        return f
    if name in ("renal_cyst", "renal_calculus"):
        side = ("right", "left")[rng.integers(2)]
        kid = an.organs[f"kidney_{side}"]
        size = _size(rng, k, cfg)
        c = point_in(rng, kid, rmax=0.5, avoid=((an.organs["liver"], 1.05), (an.organs["spleen"], 1.1)))
        f = _make(k, organ=f"kidney_{side}", location=f"{side} kidney", side=side, size_mm=size, center_mm=tuple(c))
        hu = 5 + (an.hu["kidney_right"] - 5) * (1 - C) if name == "renal_cyst" else 950 * C
        f.params["layers"] = [layer([blob(c, (size / 2,) * 3)], hu, within=(f"kidney_{side}",))]
        return f
    if name == "cholelithiasis":
        gb = an.organs["gallbladder"]
        size = _size(rng, k, cfg)
        c = np.asarray(gb.center) + np.array([gb.radii[0] * 0.4, 0, 0])
        f = _make(k, organ="gallbladder", location="gallbladder", size_mm=size, center_mm=tuple(c))
        f.params["layers"] = [layer([blob(c, (max(size / 2, 4.0),) * 3)], 700 * C, within=("gallbladder",))]
        return f
    if name == "pelvic_lymphadenopathy":
        side = ("right", "left")[rng.integers(2)]
        b = an.organs["bladder"]
        size = _size(rng, k, cfg)
        c = (b.center[0] - 45, b.center[1] + 35, (-1 if side == "right" else 1) * 60.0)
        f = _make(k, organ="pelvis", location=f"{side} external iliac", side=side, size_mm=size, center_mm=tuple(c))
        f.params["layers"] = [layer([blob(c, (size / 2,) * 3)], 45 + 5 * C, within=("soft_tissue", "bowel", "fat"))]
        return f
    if name == "pelvic_free_fluid":
        b = an.organs["bladder"]
        c = (b.center[0] - 10, b.center[1] + b.radii[1] + 12, 0.0)
        f = _make(k, organ="pelvis", location="pelvis", center_mm=tuple(c), severity="mild")
        f.params["layers"] = [layer([blob(c, (25, 12, 45))], 10 + 35 * (1 - C), within=("soft_tissue", "bowel"))]
        return f
    raise KeyError(f"unknown CT finding kind {name!r}")


def _inside(an: Anatomy, organ: str, z_range: tuple[float, float]) -> bool:
    c = an.organs[organ].center[0]
    return z_range[0] + 10 <= c <= z_range[1] - 10


def sample_ct_findings(rng: np.random.Generator, an: Anatomy, cfg, z_range: tuple[float, float],
                       age: float = 60.0) -> list[Finding]:
    """Draw the findings of one CT: each kind independently with its (balanced) prevalence.

    Age raises the chance of calcifications, emphysema and cardiomegaly (as in real cohorts, labels co-occur).
    Kinds whose organ lies outside ``z_range`` (e.g. pelvic findings on a chest CT) are skipped.
    """
    found = []
    age_factor = {"arterial_calcification": 1.8, "coronary_calcification": 1.8, "emphysema": 1.4,
                  "cardiomegaly": 1.4}
    for name, kind in CT_KINDS.items():
        need = _NEEDS.get(name)
        if need is not None and not _inside(an, need, z_range):
            continue
        p = kind.prevalence * (age_factor.get(name, 1.0) * (age - 25) / 35 if name in age_factor else 1.0)
        if rng.random() < balanced_prevalence(p, cfg):
            found.append(_sample_kind(name, rng, an, cfg))
    for i, f in enumerate(found):
        f.id = i
        kind = CT_KINDS[f.kind]
        if kind.can_be_active:
            f.hypermetabolic = bool(rng.random() < cfg.p_hypermetabolic)
        else:
            f.hypermetabolic = None if f.kind not in ("liver_cyst", "renal_cyst", "thyroid_nodule") else False
    # ViPET-VLM's hard cases, drawn after all else so that CT and X-ray keep their random stream; not with priors
    # (a prior would change a twin's size apart from its lesion's, and ct.py's prior logic knows only CT_KINDS)
    if cfg.pet and cfg.p_prior_ct == 0:
        found += pet_hard_cases(rng, an, found, cfg)
        for i, f in enumerate(found):
            f.id = i
    return found


# ---------------------------------------------------------------------------------------------------------------
# PET/CT hard cases (ViPET-VLM; only with cfg.pet): benign twins and normal-size hypermetabolic nodes
# ---------------------------------------------------------------------------------------------------------------
#: Kinds whose malignant lesions may get a CT-identical benign twin, and the chance they do.
TWIN_KINDS = ("lung_nodule", "liver_lesion", "breast_nodule", "bone_lesion", "lymphadenopathy",
              "pelvic_lymphadenopathy")
P_BENIGN_TWIN = 0.6
#: Chance of a PET/CT study having one normal-size (5–9 mm) but hypermetabolic lymph node: only PET shows it.
P_HOT_NORMAL_NODE = 0.4


def pet_hard_cases(rng: np.random.Generator, an: Anatomy, found: list[Finding], cfg) -> list[Finding]:
    """Extra findings for a PET/CT study without priors (see :mod:`rrg_lite.world.petct`).

    * a *benign twin* of a malignant lesion: the same kind, size, subtype, blob radii, yaw and HU, elsewhere in the
      same organ (re-drawn until it does not touch the original) and FDG-negative, so malignancy is only in PET;
      both carry ``params["twin_group"]``;
    * a *normal-size hypermetabolic node* (kind ``normal_size_node``, no CT-RATE label: it is not enlarged), drawn
      as a small soft-tissue node at a nodal station, marked ``params["pet_only"]`` (the CT half never reports it).
    """
    extra: list[Finding] = []
    group = 0
    for f in found:
        if f.kind not in TWIN_KINDS or not f.hypermetabolic or rng.random() >= P_BENIGN_TWIN:
            continue
        for _ in range(6):
            twin = _sample_kind(f.kind, rng, an, cfg)
            gap = np.linalg.norm(np.subtract(twin.center_mm, f.center_mm))
            if gap > (f.size_mm or 0.0) + 6.0:
                break
        else:
            continue
        twin.size_mm, twin.subtype, twin.hypermetabolic = f.size_mm, f.subtype, False
        for lay_t, lay_f in zip(twin.params["layers"], f.params["layers"]):
            lay_t["hu"] = lay_f["hu"]
            for b_t, b_f in zip(lay_t["blobs"], lay_f["blobs"]):
                b_t["r"], b_t["yaw"] = b_f["r"], b_f["yaw"]
        f.params["twin_group"] = twin.params["twin_group"] = group
        group += 1
        extra.append(twin)
    if rng.random() < P_HOT_NORMAL_NODE:
        extra.append(_normal_size_node(rng, an, cfg))
    return extra


def _normal_size_node(rng: np.random.Generator, an: Anatomy, cfg) -> Finding:
    car, apex = an.levels["carina"], an.levels["lung_apex"]
    stations = {"right paratracheal": (car - 35, -12.0, -18.0), "subcarinal": (car + 18, 5.0, 0.0),
                "prevascular": (car - 15, -40.0, 5.0), "left hilar": (car + 25, -5.0, 42.0),
                "right hilar": (car + 25, -5.0, -42.0), "right supraclavicular": (apex - 15, -10.0, -45.0),
                "left supraclavicular": (apex - 15, -10.0, 45.0)}
    name = list(stations)[rng.integers(len(stations))]
    c = np.array(stations[name]) + rng.uniform(-3, 3, 3)
    size = float(rng.uniform(5.0, 9.0))          # short axis < 10 mm: normal size on CT, not scaled
    f = Finding(kind="normal_size_node", label=None, region="mediastinum", body_part="chest",
                organ="neck" if "supraclavicular" in name else "mediastinum", location=name,
                side="right" if "right" in name else "left" if "left" in name else None, size_mm=size,
                center_mm=tuple(c), hypermetabolic=True)
    f.params["layers"] = [layer([blob(c, (size / 2,) * 3)], 40 + 5 * cfg.lesion_contrast,
                                within=("mediastinum", "lung_right", "lung_left", "fat", "soft_tissue"))]
    f.params["pet_only"] = True
    return f


# ---------------------------------------------------------------------------------------------------------------
# Changes between a prior and the current study
# ---------------------------------------------------------------------------------------------------------------


def scale_finding(f: Finding, factor: float) -> Finding:
    """A copy of ``f`` whose drawn extent and size are multiplied by ``factor`` (blobs about their own centres)."""
    g = copy.deepcopy(f)
    if g.size_mm is not None:
        g.size_mm = float(g.size_mm * factor)
    for lay in g.params.get("layers", []):
        for b in lay["blobs"]:
            b["r"] = tuple(r * factor for r in b["r"])
    if "effusion" in g.params:
        g.params["effusion"]["depth"] *= factor
    if "pericardial" in g.params:
        g.params["pericardial"]["thickness"] *= factor
    return g


def make_prior(rng: np.random.Generator, current: list[Finding], extra: list[Finding],
               sizable=lambda f: f.size_mm is not None) -> tuple[list[Finding], list[Finding]]:
    """Decide each finding's change and build the prior's findings.

    ``current``: findings of the current study (their ``change`` is set here); ``extra``: candidate findings that
    were present before and have ``resolved`` now. Returns (current findings incl. resolved ones, prior findings).
    """
    prior = []
    for f in current:
        options = ["new", "unchanged", "increased", "decreased"] if sizable(f) else ["new", "unchanged"]
        probs = [0.3, 0.3, 0.2, 0.2] if sizable(f) else [0.45, 0.55]
        f.change = options[rng.choice(len(options), p=probs)]
        if f.change == "new":
            f.prior_size_mm = None
            continue
        factor = {"unchanged": 1.0, "increased": 1 / 1.6, "decreased": 1.6}[f.change]
        g = scale_finding(f, factor)
        g.change = None
        f.prior_size_mm = g.size_mm
        prior.append(g)
    out = list(current)
    for g in extra:
        h = copy.deepcopy(g)
        h.change = None
        prior.append(h)
        g.change = "resolved"
        g.prior_size_mm = g.size_mm
        out.append(g)
    for i, f in enumerate(out):
        f.id = i
    for i, f in enumerate(prior):
        f.id = i
    return out, prior


# ---------------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------------


def apply_to_anatomy(findings: list[Finding], an: Anatomy) -> Anatomy:
    """The anatomy as changed by findings that reshape organs (enlargement, pericardial effusion, ...)."""
    an = an.copy()
    for f in findings:
        if not f.present:
            continue
        if "scale" in f.params:
            organ, factor = f.params["scale"]["organ"], f.params["scale"]["factor"]
            old = an.organs[organ]
            new = old.scaled(factor)
            an.organs[organ] = new
            an.parts = [(n, new if s is old else s, o) for n, s, o in an.parts]
        if "pericardial" in f.params:
            heart = an.organs["heart"]
            th = f.params["pericardial"]["thickness"]
            outer = Ellipsoid(heart.center, tuple(r + th for r in heart.radii), heart.yaw)
            i = [s for _, s, _ in an.parts].index(heart)
            an.parts.insert(i + 1, ("pericardial_fluid", Shell(outer, heart),
                                    ("lung_right", "lung_left", "mediastinum", "soft_tissue", "fat")))
        if "organ_hu" in f.params:
            an.hu[f.params["organ_hu"]["organ"]] = f.params["organ_hu"]["hu"]
    return an


def relabel(findings: list[Finding], an: Anatomy, grid: Grid, labels: np.ndarray) -> dict[int, np.ndarray]:
    """Findings that turn tissue into another structure (pleural effusion → ``pleural_fluid``). In place.

    Returns finding id → its bool mask.
    """
    masks = {}
    for f in findings:
        if not f.present or "effusion" not in f.params:
            continue
        depth = f.params["effusion"]["depth"]
        total = np.zeros(grid.shape, bool)
        for side in f.params["effusion"]["sides"]:
            lung = an.organs[f"lung_{side}"]
            box = grid.bbox(lung.center, lung.half_extent())
            if box is None:
                continue
            r2 = lung.radius2(grid, box)
            z = grid.axis(0)[box[0]][:, None, None]
            y = grid.axis(1)[box[1]][None, :, None]
            x = grid.axis(2)[box[2]][None, None, :]
            zz = ((z - lung.center[0]) / lung.radii[0]) ** 2
            xx = ((x - lung.center[2]) / lung.radii[2]) ** 2
            back = lung.center[1] + lung.radii[1] * np.sqrt(np.clip(1 - zz - xx, 0, 1))  # posterior surface
            lower = z > lung.center[0] + 0.1 * lung.radii[0] - depth
            fluid = (r2 <= 1.0) & (back - y < depth) & lower
            fluid &= labels[box] == LABEL[f"lung_{side}"]
            labels[box][fluid] = LABEL["pleural_fluid"]
            total[box] |= fluid
        masks[f.id] = total
    return masks


def _render_layer(lay: dict, grid: Grid, hu: np.ndarray, labels: np.ndarray, mask_out: np.ndarray | None,
                  first: bool) -> None:
    within = None if lay["within"] is None else [LABEL[s] for s in lay["within"]]
    for b in lay["blobs"]:
        e = Ellipsoid(b["c"], b["r"], b["yaw"])
        box, w = e.occupancy(grid, supersample=3 if max(b["r"]) < 3 * max(grid.spacing) else 1)
        if box is None:
            continue
        if within is not None:
            w = w * np.isin(labels[box], within)
        w = w * lay["weight"]
        view = hu[box]
        if lay["mode"] == "set":
            view += w * (lay["hu"] - view)
        else:
            view += w * lay["hu"]
        if first and mask_out is not None:
            m = w >= 0.3
            if not m.any() and w.max() > 0:   # sub-voxel lesion: keep its brightest voxel
                m = w == w.max()
            mask_out[box] |= m


def render_intensity(findings: list[Finding], grid: Grid, hu: np.ndarray, labels: np.ndarray,
                     deltas: dict | None = None) -> dict[int, np.ndarray]:
    """Blend the findings' HU into ``hu`` (in place). Returns finding id → bool mask of the finding.

    If ``deltas`` is a dict, each finding's own HU change is stored there (id → float32 array) so that an X-ray
    can leave a finding out of one view.
    """
    masks = {}
    for f in findings:
        if not f.present:
            continue
        before = hu.copy() if deltas is not None else None
        m = np.zeros(grid.shape, bool)
        if "layers" in f.params:
            for i, lay in enumerate(f.params["layers"]):
                _render_layer(lay, grid, hu, labels, m, first=(i == 0))
        if "field" in f.params:
            _mosaic(f.params["field"], grid, hu, labels, m)
        if "septal" in f.params:
            _septal(f.params["septal"], grid, hu, labels, m)
        if "edema" in f.params:
            _edema(f.params["edema"], grid, hu, labels, m)
        if any(k in f.params for k in ("layers", "field", "septal", "edema")):
            masks[f.id] = m
        if deltas is not None:
            deltas[f.id] = hu - before
    return masks


def _lungs(labels):
    return (labels == LABEL["lung_right"]) | (labels == LABEL["lung_left"])


def _mosaic(p: dict, grid: Grid, hu, labels, m) -> None:
    """Patchy lung: a smooth random field splits the lungs into darker and brighter lobules."""
    from scipy import ndimage

    r = np.random.default_rng(p["seed"])
    coarse = r.standard_normal((max(2, grid.shape[0] // 4), max(2, grid.shape[1] // 8), max(2, grid.shape[2] // 8)))
    fieldv = ndimage.zoom(coarse, [a / b for a, b in zip(grid.shape, coarse.shape)], order=1)[: grid.shape[0], : grid.shape[1], : grid.shape[2]]
    lung = _lungs(labels)
    hu += (lung * np.sign(fieldv) * p["amp"]).astype(np.float32)
    m |= lung & (fieldv < 0)


def _septal(p: dict, grid: Grid, hu, labels, m) -> None:
    """Interlobular septa: a fine grid of bright lines in the lung periphery and bases."""
    from scipy import ndimage

    lung = _lungs(labels)
    inner = ndimage.binary_erosion(lung, iterations=2)
    periph = lung & ~inner
    d, h, w = np.indices(grid.shape)
    lines = ((h % p["period"]) == 0) | ((w % p["period"]) == 0)
    lower = d >= grid.shape[0] * 0.15
    sel = periph & lines & lower
    hu[sel] += p["amp"]
    m |= sel


def _edema(p: dict, grid: Grid, hu, labels, m) -> None:
    """Pulmonary oedema: lung density rising toward both hila (bat-wing), on both sides."""
    lung = _lungs(labels)
    z, y, x = np.meshgrid(grid.axis(0), grid.axis(1), grid.axis(2), indexing="ij")
    dist = np.sqrt((z - p["hilum_z"]) ** 2 + (y - 0.0) ** 2 + (np.abs(x) - 40.0) ** 2)
    add = p["amp"] * np.exp(-dist / p["scale"])
    hu += (lung * add).astype(np.float32)
    m |= lung & (add > 0.3 * p["amp"])
