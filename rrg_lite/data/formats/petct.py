"""PET/CT reader: one folder per study with ``CT.nii.gz`` (HU), ``PET.nii.gz`` (SUV) and ``report.json``.

``report.json``: ``{"regions": {"head_neck": {"pet": ..., "ct": ...}, "chest": {...}, "abdomen_pelvis": {...}},
"findings": ..., "impression": ...}`` — the ViPET-VLM split of a report into PET and CT parts by region — or
ViMed-PET's own Vietnamese keys ``{"Đầu - cổ", "Lồng ngực", "Ổ bụng - khung chậu", "Hệ cơ - xương", "Kết luận"}``
(any Unicode normal form): the four sections become ``region_reports`` (head_neck, chest, abdomen_pelvis,
musculoskeletal) and the findings, "Kết luận" the impression; ``pet_ct_parts`` stay empty until the report is
split (:mod:`rrg_lite.prompting.petct`). Folders of
DICOM series (``CT/`` and ``PET/``) are converted to this layout by ``data_scripts/convert_petct.py`` (SUV from the
PET header).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from rrg_lite.world.petct_grammar import CONCLUSION_VI, SECTION_VI, nfc
from rrg_lite.world.vocab import PET_REGIONS

from ..manifest import DataFormatError, ImageRef, StudyRecord
from .common import Problems, read_annotations, text


def read_petct(root: str | Path, skip_bad: bool = False, split: str = "train",
               studies: Iterable[str] | None = None) -> list[StudyRecord]:
    """One record per study folder under ``root``; ``studies`` limits it to these folder names (in that order).

    Errors (or counted skips with ``skip_bad``): a missing file, ``report.json`` that is not JSON or not shaped as
    documented above (an object whose ``regions`` map region → {"pet", "ct"} text), an empty report.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(f"{root}: PET/CT folder not found")
    problems = Problems(skip_bad)
    ann = read_annotations(root / "world_annotations.jsonl")
    records = []
    if studies is None:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    else:
        folders = [root / s for s in studies]
    for d in folders:
        rp = d / "report.json"
        ct, pet = d / "CT.nii.gz", d / "PET.nii.gz"
        missing = [p.name for p in (rp, ct, pet) if not p.exists()]
        if missing:
            problems(d, f"missing {missing}")
            continue
        try:
            rep = json.loads(rp.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            problems(rp, f"not valid JSON ({exc})")
            continue
        shape_error = _report_shape_error(rep)
        if shape_error:
            problems(rp, shape_error)
            continue
        regions = rep.get("regions") or {}
        parts = {r: {"pet": text((regions.get(r) or {}).get("pet", "")), "ct": text((regions.get(r) or {}).get("ct", ""))}
                 for r in PET_REGIONS}
        sections = _vietnamese_sections(rep)
        findings = text(rep.get("findings", "")) or " ".join(v for p in parts.values() for v in p.values() if v) \
            or " ".join(v for k, v in sections.items() if k != "impression" and v)
        impression = text(rep.get("impression", "")) or sections.get("impression", "")
        if not findings and not impression:
            problems(rp, "empty report")
            continue
        rec = StudyRecord(study_id=d.name, dataset="petct", split=split, patient_id=d.name,
                          images=[ImageRef(str(ct), "CT"), ImageRef(str(pet), "PET", meta={"units": "SUVbw"})],
                          report={"findings": findings, "impression": impression}, pet_ct_parts=parts,
                          region_reports={k: v for k, v in sections.items() if k != "impression" and v},
                          meta={k: rep[k] for k in ("age", "sex", "tracer") if k in rep})
        if d.name in ann:
            rec.boxes, rec.qa = ann[d.name]["boxes"], ann[d.name]["qa"]
            rec.meta["world_findings"] = ann[d.name]["findings"]
        records.append(rec)
    problems.summary(str(root))
    if not records:
        raise DataFormatError(f"{root}: no usable PET/CT studies")
    return records


#: ViMed-PET's Vietnamese report keys (NFC) → the names the records use.
_VI_KEYS = {nfc(v): k for k, v in SECTION_VI.items()} | {nfc(CONCLUSION_VI): "impression"}


def _vietnamese_sections(rep: dict) -> dict[str, str]:
    """{head_neck, chest, abdomen_pelvis, musculoskeletal, impression} → text from ViMed-PET's Vietnamese keys."""
    return {_VI_KEYS[nfc(k)]: nfc(text(v)) for k, v in rep.items() if isinstance(k, str) and nfc(k) in _VI_KEYS}


def _report_shape_error(rep) -> str | None:
    """Why ``rep`` is not a report object as documented, or None."""
    if not isinstance(rep, dict):
        return f"expected a JSON object, got {type(rep).__name__}"
    for key, v in rep.items():
        if isinstance(key, str) and nfc(key) in _VI_KEYS and v is not None and not isinstance(v, str):
            return f"section {key!r} must be text, got {type(v).__name__}"
    regions = rep.get("regions")
    if regions is not None and not isinstance(regions, dict):
        return f"'regions' must be an object region → {{'pet', 'ct'}}, got {type(regions).__name__}"
    for name, part in (regions or {}).items():
        if part is not None and not isinstance(part, dict):
            return f"regions[{name!r}] must be an object with 'pet' and 'ct' text, got {type(part).__name__}"
        for key in ("pet", "ct"):
            v = (part or {}).get(key)
            if v is not None and not isinstance(v, str):
                return f"regions[{name!r}][{key!r}] must be text, got {type(v).__name__}"
    for key in ("findings", "impression"):
        if rep.get(key) is not None and not isinstance(rep[key], str):
            return f"{key!r} must be text, got {type(rep[key]).__name__}"
    return None
