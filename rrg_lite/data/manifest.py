"""One manifest record per study, whatever dataset it came from.

Readers in :mod:`rrg_lite.data.formats` turn CT-RATE, RadGenome-ChestCT, AMOS-MM, MIMIC-CXR and PET/CT folders
(real or written by :mod:`rrg_lite.world.writers`) into :class:`StudyRecord` objects; datasets in
:mod:`rrg_lite.data.datasets` load the images they point to. Records are plain data (paths, strings, numbers) and
round-trip through JSON lines (:func:`write_manifest`, :func:`read_manifest`).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable


class DataFormatError(ValueError):
    """A dataset file that does not have the expected format; the message names the file and the problem.

    ``hint`` (optional) says what to do about it; the converter CLIs print it after the message.
    """

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


@dataclass
class ImageRef:
    """One image or volume of a study.

    path:      file (NIfTI, DICOM folder, PNG/JPEG)
    modality:  "CT", "PET" or "XR"
    view:      X-ray view position ("PA", "AP", "LATERAL", "LL") or None
    role:      "current" or "prior"
    meta:      reading hints: ``rescale_slope``/``rescale_intercept`` to apply, spacing, units ...
    """

    path: str
    modality: str
    view: str | None = None
    role: str = "current"
    meta: dict = field(default_factory=dict)

    @property
    def is_frontal(self) -> bool:
        return self.view in ("PA", "AP", "AP AXIAL", "PA LLD", "AP LLD", "AP RLD", "PA RLD")

    @property
    def is_lateral(self) -> bool:
        return self.view in ("LATERAL", "LL", "RL")


@dataclass
class StudyRecord:
    """Everything a chapter needs to know about one study, with paths instead of pixels.

    report:            sections {"findings", "impression", "indication", "comparison", "technique", ...}
    region_reports:    RadGenome region → text
    body_part_reports: AMOS-MM body part → text
    pet_ct_parts:      PET region → {"pet": text, "ct": text}
    labels:            label name → value (1/0 for CT-RATE; 1/0/−1/None for CheXpert; None = not mentioned)
    label_space:       "ct-rate", "chexpert" or None
    masks:             region or organ → mask file
    boxes, qa:         lists of dicts (world annotations, MS-CXR-like boxes, AMOS-MM VQA)
    prior_study_id:    the same patient's previous study in this manifest, or None
    prior_report:      that study's report sections (LLM-RG4 feeds the prior report to the model)
    """

    study_id: str
    dataset: str
    split: str = "train"
    patient_id: str | None = None
    images: list[ImageRef] = field(default_factory=list)
    report: dict[str, str] = field(default_factory=dict)
    region_reports: dict[str, str] = field(default_factory=dict)
    body_part_reports: dict[str, str] = field(default_factory=dict)
    pet_ct_parts: dict[str, dict[str, str]] = field(default_factory=dict)
    labels: dict[str, float | None] = field(default_factory=dict)
    label_space: str | None = None
    masks: dict[str, str] = field(default_factory=dict)
    boxes: list[dict] = field(default_factory=list)
    qa: list[dict] = field(default_factory=list)
    prior_study_id: str | None = None
    prior_report: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    # convenience -------------------------------------------------------------------------------------------
    def images_of(self, modality: str | None = None, role: str = "current") -> list[ImageRef]:
        return [im for im in self.images if (modality is None or im.modality == modality) and im.role == role]

    @property
    def findings(self) -> str:
        return self.report.get("findings", "")

    @property
    def impression(self) -> str:
        return self.report.get("impression", "")

    def report_text(self, sections=("findings", "impression")) -> str:
        return " ".join(self.report[s] for s in sections if self.report.get(s))

    def label_vector(self, names: Iterable[str]) -> list[float]:
        """Labels in the order of ``names``; missing or not-mentioned labels become NaN."""
        out = []
        for n in names:
            v = self.labels.get(n)
            out.append(float("nan") if v is None else float(v))
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        d["labels"] = {k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else v)
                       for k, v in self.labels.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "StudyRecord":
        d = dict(d)
        d["images"] = [ImageRef(**im) for im in d.get("images", [])]
        return cls(**d)


def write_manifest(records: Iterable[StudyRecord], path: str | Path) -> Path:
    """Records → JSON lines (one study per line, keys sorted: byte-reproducible).

    Written atomically (:mod:`rrg_lite.data.atomic`): a run killed while writing leaves the previous manifest (or
    none), never a silently partial one.
    """
    from .atomic import atomic_open

    path = Path(path)
    with atomic_open(path, "w") as fh:
        for r in records:
            fh.write(json.dumps(r.to_dict(), sort_keys=True, ensure_ascii=False) + "\n")
    return path


def read_manifest(path: str | Path) -> list[StudyRecord]:
    """JSON lines → records; a bad line raises :class:`DataFormatError` naming the file and the line."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"{path}: manifest file not found")
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(StudyRecord.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError) as exc:
            raise DataFormatError(f"{path}:{i}: not a manifest record ({exc})") from exc
    return out


def link_priors(records: list[StudyRecord], order_key=lambda r: r.meta.get("order", 0)) -> list[StudyRecord]:
    """Set ``prior_study_id``/``prior_report`` from each patient's previous study (by ``order_key``). In place."""
    by_patient: dict[str, list[StudyRecord]] = {}
    for r in records:
        if r.patient_id is not None:
            by_patient.setdefault(r.patient_id, []).append(r)
    for rs in by_patient.values():
        rs.sort(key=order_key)
        for prev, cur in zip(rs, rs[1:]):
            cur.prior_study_id = prev.study_id
            cur.prior_report = dict(prev.report)
    return records
