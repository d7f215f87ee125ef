"""CT (and PET/CT) studies: one seeded patient → volume, masks, findings, report, labels, boxes, questions."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from . import qa as QA
from .config import WorldConfig, study_seeds
from .findings import (CT_KINDS, Finding, apply_to_anatomy, make_prior, relabel, render_intensity,
                       sample_ct_findings)
from .phantom import (LABEL, SCAN_RANGES, Anatomy, Grid, add_vessels, finish_ct, hu_from_labels, make_grid,
                      organ_masks, paint, region_masks, sample_anatomy)
from .report import Report, ct_noun, ct_rate_vector, ct_report, petct_report
from .vocab import REGIONS

#: Kinds that can be present on the prior and gone now.
RESOLVABLE = ("pleural_effusion", "lung_opacity", "consolidation", "atelectasis", "pericardial_effusion",
              "lymphadenopathy")

#: Findings without blobs get their mask from these structures of the label map.
_STRUCTURE_MASK = {
    "cardiomegaly": ("heart",), "pericardial_effusion": ("pericardial_fluid",), "hepatomegaly": ("liver",),
    "splenomegaly": ("spleen",), "hepatic_steatosis": ("liver",), "pleural_effusion": ("pleural_fluid",),
}


@dataclass
class CTStudy:
    """One CT (or PET/CT) study. Arrays are (D, H, W) = (z: head→feet, y: front→back, x: patient right→left).

    ct:        float32 HU
    spacing:   (sz, sy, sx) mm, in the array's axis order
    pet:       float32 SUV, co-registered, or None
    labelmap:  uint8 fine structures (:data:`rrg_lite.world.phantom.STRUCTURES`)
    lesion_map: uint8, finding id + 1 where a finding is drawn (0 elsewhere; smaller findings win overlaps)
    findings:  list of :class:`~rrg_lite.world.findings.Finding` (incl. ``change == "resolved"`` ones)
    report:    :class:`~rrg_lite.world.report.Report` (``.findings``, ``.impression``, ``.region_reports``,
               ``.body_parts``, ``.pet_ct_parts``, ``.text()``)
    labels:    int64 (18,) CT-RATE vector
    qa:        list of question/answer dicts
    prior:     an earlier :class:`CTStudy` of the same patient, or None
    """

    study_id: str
    patient_id: str
    ct: np.ndarray
    spacing: tuple[float, float, float]
    grid: Grid
    labelmap: np.ndarray
    lesion_map: np.ndarray
    findings: list[Finding]
    report: Report
    labels: np.ndarray
    qa: list[dict]
    pet: np.ndarray | None = None
    prior: "CTStudy | None" = None
    age: int = 60
    sex: str = "M"
    scan_range: str = "cap"
    physiological: dict = field(default_factory=dict)
    diaphragm_index: int = 0

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.ct.shape)

    @property
    def affine(self) -> np.ndarray:
        """NIfTI affine of the (x, y, z)-transposed array (axes point Left, Posterior, Inferior)."""
        return self.grid.affine_lpi

    @property
    def region_masks(self) -> dict[str, np.ndarray]:
        return region_masks(self.labelmap, self.diaphragm_index)

    @property
    def organ_masks(self) -> dict[str, np.ndarray]:
        return organ_masks(self.labelmap)

    @property
    def masks(self) -> dict[str, np.ndarray]:
        """The ten Reg2RG regions and the organs, bool (D, H, W) each (computed on access, not stored)."""
        return {**self.region_masks, **self.organ_masks}

    def finding_mask(self, finding_id: int) -> np.ndarray:
        """bool (D, H, W): where finding ``finding_id`` is drawn (organ-level findings: the whole organ)."""
        f = self.findings[finding_id]
        if f.kind in _STRUCTURE_MASK:
            return np.isin(self.labelmap, [LABEL[s] for s in _STRUCTURE_MASK[f.kind]])
        return self.lesion_map == finding_id + 1

    @property
    def boxes(self) -> list[dict]:
        """3-D boxes ``[z0, y0, x0, z1, y1, x1]`` (voxel indices, end exclusive) of findings, organs and regions."""
        out = []
        for f in self.findings:
            if f.present:
                b = bbox3d(self.finding_mask(f.id))
                if b is not None:
                    out.append({"label": f.label or f.kind, "kind": "finding", "box": b, "finding_id": f.id})
        for kind, masks in (("organ", self.organ_masks), ("region", self.region_masks)):
            for name, m in masks.items():
                b = bbox3d(m)
                if b is not None:
                    out.append({"label": name, "kind": kind, "box": b, "finding_id": None})
        return out


def bbox3d(mask: np.ndarray) -> list[int] | None:
    if not mask.any():
        return None
    out = []
    for ax in range(3):
        other = tuple(i for i in range(3) if i != ax)
        idx = np.nonzero(mask.any(axis=other))[0]
        out.append((int(idx[0]), int(idx[-1]) + 1))
    return [out[0][0], out[1][0], out[2][0], out[0][1], out[1][1], out[2][1]]


def render_ct(an: Anatomy, findings: list[Finding], grid: Grid, rng: np.random.Generator, cfg: WorldConfig):
    """Voxelise anatomy + findings → (hu float32, labelmap uint8, finding masks {id: bool}, changed anatomy)."""
    an2 = apply_to_anatomy(findings, an)
    labels = paint(an2, grid)
    relabel(findings, an2, grid, labels)
    hu = hu_from_labels(an2, labels)
    masks = render_intensity(findings, grid, hu, labels)
    for f in findings:
        if f.present and f.kind in _STRUCTURE_MASK:
            masks[f.id] = np.isin(labels, [LABEL[s] for s in _STRUCTURE_MASK[f.kind]])
    union = np.zeros(grid.shape, bool)
    for m in masks.values():
        union |= m
    add_vessels(an2, grid, hu, labels, exclude=union)
    ct = finish_ct(hu, rng, cfg.noise_hu, cfg.blur_vox)
    return ct, labels, masks, an2


def _scan_grid(rng, an: Anatomy, cfg: WorldConfig, scan_range: str, depth: int | None = None) -> Grid:
    z0, z1 = SCAN_RANGES[scan_range]
    zs = an.levels["z_scale"]
    z0, z1 = z0 * zs + rng.uniform(-8, 8), z1 * zs + rng.uniform(-8, 8)
    if depth is None:
        depth = int(rng.integers(cfg.ct_depth[0], cfg.ct_depth[1] + 1))
    return make_grid((z0, z1), depth, cfg.ct_size, cfg.fov_mm)


def make_ct_study(seed: int | np.random.SeedSequence, cfg: WorldConfig | None = None, study_id: str = "ct_0",
                  patient_id: str | None = None, scan_range: str | None = None) -> CTStudy:
    """One seeded CT study (with PET if ``cfg.pet``, with a prior if drawn with ``cfg.p_prior_ct``).

    Findings drawn entirely outside the scanned volume are dropped before the report is written, so the record,
    the image and the report always agree.
    """
    cfg = cfg or WorldConfig()
    scan_range = scan_range or cfg.scan_range
    rng = np.random.default_rng(seed)
    an = sample_anatomy(rng)
    age = int(rng.integers(25, 90))
    grid = _scan_grid(rng, an, cfg, scan_range)
    z_range = (grid.origin[0], grid.origin[0] + grid.shape[0] * grid.spacing[0])
    findings = sample_ct_findings(rng, an, cfg, z_range, age=age)
    has_prior = rng.random() < cfg.p_prior_ct
    prior_findings = None
    if has_prior:
        other = sample_ct_findings(rng, an, cfg, z_range, age=age)
        have = {f.kind for f in findings}
        extra = [f for f in other if f.kind not in have and f.kind in RESOLVABLE][:1]
        # kinds outside CT_KINDS (PET/CT's normal-size node) have a size in mm
        sizable = lambda f: getattr(CT_KINDS.get(f.kind), "sizable", True) and f.size_mm is not None  # noqa: E731
        findings, prior_findings = make_prior(rng, findings, extra, sizable=sizable)
    ct, labels, masks, an2 = render_ct(an, findings, grid, rng, cfg)
    # drop findings that did not land in the volume (renumber ids, keep masks aligned)
    keep = [f for f in findings if not f.present or (f.id in masks and masks[f.id].any())]
    findings, masks = _renumber(keep, masks)
    prior = None
    if has_prior:
        pgrid = _scan_grid(rng, an, cfg, scan_range)
        pct, plabels, pmasks, _ = render_ct(an, prior_findings, pgrid, rng, cfg)
        pkeep = [f for f in prior_findings if f.id in pmasks and pmasks[f.id].any()]
        prior_findings, pmasks = _renumber(pkeep, pmasks)
        prior = _assemble(rng, f"{study_id}_prior", patient_id or study_id, pct, pgrid, plabels, pmasks,
                          prior_findings, cfg, an, scan_range, age, has_prior=False)
    return _assemble(rng, study_id, patient_id or study_id, ct, grid, labels, masks, findings, cfg, an,
                     scan_range, age, has_prior=has_prior, prior=prior)


def _renumber(findings, masks):
    new_masks = {}
    for i, f in enumerate(findings):
        if f.id in masks:
            new_masks[i] = masks[f.id]
        f.id = i
    return findings, new_masks


def _assemble(rng, study_id, patient_id, ct, grid, labels, masks, findings, cfg, an, scan_range, age, has_prior,
              prior=None) -> CTStudy:
    lesion_map = np.zeros(grid.shape, np.uint8)
    # big (diffuse) findings first, small ones last, so that a nodule inside an emphysematous lung keeps its voxels
    for fid, m in sorted(masks.items(), key=lambda kv: -int(kv[1].sum())):
        lesion_map[m] = fid + 1
    pet, phys = None, {}
    if cfg.pet:
        from .pet import make_pet
        pet, phys = make_pet(rng, an, labels, findings, masks, cfg)
        report = petct_report(rng, findings, cfg, scan_range, phys, has_prior)
    else:
        report = ct_report(rng, findings, cfg, scan_range, has_prior)
    diaphragm = int(np.clip(round(grid.to_index((an.levels["diaphragm"], 0, 0))[0]), 0, grid.shape[0]))
    qa = QA.ct_qa(rng, findings, cfg.qa_per_study, ct_noun, pet=cfg.pet, has_prior=has_prior,
                  regions=tuple(REGIONS[i] for i in rng.choice(len(REGIONS), 2, replace=False)))
    return CTStudy(study_id=study_id, patient_id=patient_id, ct=ct, spacing=tuple(float(s) for s in grid.spacing),
                   grid=grid, labelmap=labels, lesion_map=lesion_map, findings=findings, report=report,
                   labels=ct_rate_vector(findings), qa=qa, pet=pet, prior=prior, age=age, sex=an.sex,
                   scan_range=scan_range, physiological=phys, diaphragm_index=diaphragm)


def iter_ct_cohort(n: int, seed: int = 0, cfg: WorldConfig | None = None, prefix: str = "ct",
                   progress: bool = False) -> Iterator[CTStudy]:
    """Yield ``n`` CT studies one at a time (constant memory); study i depends only on (seed, i)."""
    seeds = study_seeds(seed, n)
    it = range(n)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, desc="CT studies")
    for i in it:
        yield make_ct_study(seeds[i], cfg, study_id=f"{prefix}_{i:05d}", patient_id=f"{prefix}p_{i:05d}")


def generate_ct_cohort(n: int, seed: int = 0, cfg: WorldConfig | None = None, prefix: str = "ct",
                       progress: bool = False) -> list[CTStudy]:
    """``n`` seeded CT studies in memory (about 1 MB each at the CPU size)."""
    return list(iter_ct_cohort(n, seed, cfg, prefix, progress))


def generate_petct_cohort(n: int, seed: int = 0, cfg: WorldConfig | None = None, prefix: str = "petct",
                          progress: bool = False) -> list[CTStudy]:
    """Whole-body PET/CT studies (``scan_range="whole_body"``, ``pet=True``)."""
    cfg = (cfg or WorldConfig()).replace(pet=True, scan_range="whole_body")
    return list(iter_ct_cohort(n, seed, cfg, prefix, progress))
