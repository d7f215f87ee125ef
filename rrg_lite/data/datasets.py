"""PyTorch datasets over manifest records (files on disk) or in-memory world studies: one sample dict per study.

CT sample (:class:`CTReportDataset`)::

    {"study_id": str, "ct": float32 (D, H, W) [after transform], "spacing": (sz, sy, sx),
     "pet": float32 (D, H, W) or None, "masks": bool (R, D, H, W) or None, "mask_names": [R region names],
     "report": str, "findings": str, "impression": str, "region_reports": {region: str},
     "body_part_reports": {part: str}, "labels": float32 (18,) (NaN = unknown), "qa": [...], "boxes": [...]}

X-ray sample (:class:`XRayReportDataset`)::

    {"study_id": str, "frontal": float32 (H, W), "lateral": float32 (H, W) or None,
     "prior_frontal": float32 (H, W) or None, "report": str, "findings": str, "impression": str,
     "prior_report": str, "views": [str], "labels": float32 (14,) (1, 0, −1, NaN), "boxes": [...], "qa": [...]}

``transform`` is any callable on the sample dict (e.g. :class:`rrg_lite.data.transforms.Compose`); arrays stay
NumPy until the collator (:mod:`rrg_lite.data.collate`) turns them into tensors. Every load error names the file.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from rrg_lite.world.vocab import CHEXPERT_LABELS, CT_RATE_LABELS, REGIONS

from .images import load_mask, load_volume, load_xray
from .manifest import DataFormatError, StudyRecord


def _report_text(sections: dict, which: Sequence[str]) -> str:
    return " ".join(sections[s] for s in which if sections.get(s))


class _ReportDataset(torch.utils.data.Dataset):
    """Items are manifest records or world studies; subclasses turn each kind into a sample dict."""

    items: list
    transform: Callable | None
    report_sections: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        item = self.items[i]
        sample = self._from_record(item) if isinstance(item, StudyRecord) else self._from_study(item)
        if not sample["report"]:
            raise DataFormatError(f"study {sample['study_id']}: empty report (sections {self.report_sections})")
        return self.transform(sample) if self.transform is not None else sample


class CTReportDataset(_ReportDataset):
    """CT (± PET, ± region masks) with its report, from records or from :class:`rrg_lite.world.ct.CTStudy` objects.

    regions:         which region masks to stack into ``masks`` (R, D, H, W) when ``with_masks``
    report_sections: which sections make ``report`` ("findings", "impression")
    """

    def __init__(self, items: Sequence, transform: Callable | None = None, with_masks: bool = False,
                 with_pet: bool = False, regions: Sequence[str] = REGIONS, label_names: Sequence[str] = CT_RATE_LABELS,
                 report_sections: Sequence[str] = ("findings", "impression")):
        self.items = list(items)
        self.transform = transform
        self.with_masks, self.with_pet = with_masks, with_pet
        self.regions, self.label_names = tuple(regions), tuple(label_names)
        self.report_sections = tuple(report_sections)

    def _from_study(self, st) -> dict:
        rep = st.report
        sections = {"findings": rep.findings, "impression": rep.impression}
        sample = {"study_id": st.study_id, "ct": st.ct, "spacing": tuple(st.spacing),
                  "pet": st.pet if self.with_pet else None,
                  "report": _report_text(sections, self.report_sections), **sections,
                  "region_reports": rep.region_reports, "body_part_reports": rep.body_parts,
                  "labels": np.asarray(st.labels, np.float32), "qa": st.qa, "boxes": None}
        if self.with_masks:
            m = st.region_masks
            sample["masks"] = np.stack([m[r] for r in self.regions])
            sample["mask_names"] = list(self.regions)
        return sample

    def _from_record(self, rec: StudyRecord) -> dict:
        cts = rec.images_of("CT")
        if not cts:
            raise DataFormatError(f"study {rec.study_id} ({rec.dataset}): no CT image in its record")
        ct, spacing = load_volume(cts[0])
        pet = None
        if self.with_pet:
            pets = rec.images_of("PET")
            if not pets:
                raise DataFormatError(f"study {rec.study_id} ({rec.dataset}): with_pet=True but the record has no PET")
            pet, pet_spacing = load_volume(pets[0])
            if pet.shape != ct.shape:
                raise DataFormatError(f"{pets[0].path}: PET shape {pet.shape} differs from CT shape {ct.shape}; "
                                      "resample PET to the CT grid first")
        sample = {"study_id": rec.study_id, "ct": ct, "spacing": spacing, "pet": pet,
                  "report": _report_text(rec.report, self.report_sections),
                  "findings": rec.findings, "impression": rec.impression, "region_reports": rec.region_reports,
                  "body_part_reports": rec.body_part_reports,
                  "labels": np.asarray(rec.label_vector(self.label_names), np.float32), "qa": rec.qa,
                  "boxes": rec.boxes or None}
        if self.with_masks:
            masks = []
            for r in self.regions:
                if r in rec.masks:
                    m = load_mask(rec.masks[r])
                    if m.shape != ct.shape:
                        raise DataFormatError(f"{rec.masks[r]}: mask shape {m.shape} differs from CT {ct.shape}")
                    masks.append(m)
                else:   # RadGenome drops empty regions: an absent mask file means an empty mask
                    masks.append(np.zeros(ct.shape, bool))
            sample["masks"] = np.stack(masks)
            sample["mask_names"] = list(self.regions)
        return sample


class XRayReportDataset(_ReportDataset):
    """Chest X-ray studies (frontal, optional lateral and prior) with reports, from records or world studies.

    For records, ``records_by_id`` (default: the items themselves) is used to find each study's prior.
    """

    def __init__(self, items: Sequence, transform: Callable | None = None,
                 report_sections: Sequence[str] = ("findings", "impression"), label_names=CHEXPERT_LABELS,
                 records_by_id: dict[str, StudyRecord] | None = None, include_agnostic: bool = True):
        self.items = list(items)
        self.transform = transform
        self.report_sections = tuple(report_sections)
        self.label_names = tuple(label_names)
        self.include_agnostic = include_agnostic
        self.by_id = records_by_id if records_by_id is not None else {
            r.study_id: r for r in self.items if isinstance(r, StudyRecord)}

    def _from_study(self, st) -> dict:
        rep = st.report
        sections = {s: rep.section(s, self.include_agnostic) for s in ("findings", "impression")}
        prior = st.prior
        return {"study_id": st.study_id, "frontal": st.frontal, "lateral": st.lateral,
                "prior_frontal": prior.frontal if prior is not None else None,
                "report": _report_text(sections, self.report_sections), **sections,
                "prior_report": prior.report.text(headers=False) if prior is not None else "",
                "views": list(st.views.values()), "labels": np.asarray(st.labels, np.float32), "boxes": st.boxes,
                "qa": st.qa}

    @staticmethod
    def _pick(rec: StudyRecord, role="current"):
        ims = rec.images_of("XR", role)
        frontal = next((im for im in ims if im.is_frontal), None)
        lateral = next((im for im in ims if im.is_lateral), None)
        return frontal, lateral

    def _from_record(self, rec: StudyRecord) -> dict:
        frontal, lateral = self._pick(rec)
        if frontal is None:
            raise DataFormatError(f"study {rec.study_id} ({rec.dataset}): no frontal (PA/AP) image")
        prior_frontal = None
        if rec.prior_study_id and rec.prior_study_id in self.by_id:
            pf, _ = self._pick(self.by_id[rec.prior_study_id])
            prior_frontal = load_xray(pf) if pf is not None else None
        return {"study_id": rec.study_id, "frontal": load_xray(frontal),
                "lateral": load_xray(lateral) if lateral is not None else None, "prior_frontal": prior_frontal,
                "report": _report_text(rec.report, self.report_sections), "findings": rec.findings,
                "impression": rec.impression, "prior_report": _report_text(rec.prior_report, ("findings", "impression")),
                "views": [im.view for im in rec.images_of("XR")],
                "labels": np.asarray(rec.label_vector(self.label_names), np.float32), "boxes": rec.boxes,
                "qa": rec.qa}

