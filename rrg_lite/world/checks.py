"""Consistency checks between a study's record, its images, its report and its labels.

They read the structured record and the sentence provenance, never the report text, so they test the generator,
not a parser. Each returns a list of problems (empty = consistent); the tests assert emptiness on many seeds.
"""
from __future__ import annotations

import numpy as np

from .report import chexpert_vector, ct_rate_vector
from .vocab import CHEXPERT_LABELS, CT_RATE_LABELS


def report_problems(findings, report) -> list[str]:
    """Every present finding has a positive sentence; every resolved one a comparison; nothing else is positive;
    no label is both stated absent and present."""
    out = []
    positive_ids = {i for s in report.sentences if s.tag == "finding" and s.section == "findings" for i in s.finding_ids}
    comparison_ids = {i for s in report.sentences if s.tag == "comparison" for i in s.finding_ids}
    ids = {f.id for f in findings}
    for f in findings:
        if f.present and f.id not in positive_ids:
            out.append(f"finding {f.id} ({f.kind}) has no sentence in the findings section")
        if not f.present and f.id not in comparison_ids:
            out.append(f"resolved finding {f.id} ({f.kind}) is not reported as resolved")
        if not f.present and f.id in positive_ids:
            out.append(f"resolved finding {f.id} ({f.kind}) is reported as present")
    for s in report.sentences:
        for i in s.finding_ids:
            if i not in ids:
                out.append(f"sentence {s.text!r} refers to unknown finding {i}")
    present_labels = {f.label for f in findings if f.present and f.label}
    clash = present_labels & report.negated_labels
    if clash:
        out.append(f"labels both present and negated: {sorted(clash)}")
    for s in report.sentences:
        if s.agnostic and s.finding_ids:
            out.append(f"input-agnostic sentence tied to findings: {s.text!r}")
    return out


def ct_problems(study) -> list[str]:
    out = report_problems(study.findings, study.report)
    if study.ct.dtype != np.float32 or study.ct.ndim != 3:
        out.append(f"ct must be float32 (D, H, W), got {study.ct.dtype} {study.ct.shape}")
    if not np.isfinite(study.ct).all():
        out.append("ct has non-finite values")
    if not np.array_equal(study.labels, ct_rate_vector(study.findings)):
        out.append("label vector does not match the findings")
    if len(study.labels) != len(CT_RATE_LABELS):
        out.append("label vector has the wrong length")
    for name, m in study.masks.items():
        if m.shape != study.ct.shape:
            out.append(f"mask {name} has shape {m.shape}, CT {study.ct.shape}")
    for f in study.findings:
        if f.present and not study.finding_mask(f.id).any():
            out.append(f"finding {f.id} ({f.kind}) is not drawn in the volume")
    for b in study.boxes:
        z0, y0, x0, z1, y1, x1 = b["box"]
        if not (0 <= z0 < z1 <= study.ct.shape[0] and 0 <= y0 < y1 <= study.ct.shape[1]
                and 0 <= x0 < x1 <= study.ct.shape[2]):
            out.append(f"box {b} outside the volume {study.ct.shape}")
    if study.pet is not None:
        if study.pet.shape != study.ct.shape:
            out.append("PET and CT are not on the same grid")
        if (study.pet < 0).any():
            out.append("negative SUV")
    if study.prior is not None:
        out += [f"prior: {p}" for p in ct_problems(study.prior)]
    return out


def xray_problems(study) -> list[str]:
    out = report_problems(study.findings, study.report)
    v = chexpert_vector(study.findings, study.report)
    if not np.array_equal(np.nan_to_num(v, nan=9), np.nan_to_num(study.labels, nan=9)):
        out.append("CheXpert vector does not match the record")
    if len(study.labels) != len(CHEXPERT_LABELS):
        out.append("label vector has the wrong length")
    for view, img in study.images.items():
        if img.dtype != np.float32 or img.ndim != 2 or img.min() < 0 or img.max() > 1:
            out.append(f"{view} image must be float32 (H, W) in [0, 1]")
    for b in study.boxes:
        img = study.images.get(b["view"])
        if img is None:
            out.append(f"box on missing view {b['view']}")
            continue
        x1, y1, x2, y2 = b["box"]
        if not (0 <= x1 < x2 <= img.shape[1] and 0 <= y1 < y2 <= img.shape[0]):
            out.append(f"box {b} outside the {b['view']} image {img.shape}")
    views = set(study.images)
    for f in study.findings:
        if f.present and not (set(f.views) & views):
            out.append(f"finding {f.id} ({f.kind}) is on no view of this study")
        if f.present:
            for view in f.views:
                if view in views and not any(b["finding_id"] == f.id and b["view"] == view for b in study.boxes):
                    out.append(f"finding {f.id} ({f.kind}) has no box on the {view} view")
            for b in study.boxes:
                if b["finding_id"] == f.id and b["view"] not in f.views:
                    out.append(f"finding {f.id} has a box on the {b['view']} view it is hidden on")
    if study.prior is not None:
        if study.prior.days >= study.days:
            out.append("prior is not earlier than the study")
        out += [f"prior: {p}" for p in xray_problems(study.prior)]
    return out
