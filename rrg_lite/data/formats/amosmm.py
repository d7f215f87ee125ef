"""AMOS-MM reader: ``dataset.json`` with, per case, the image path and a report whose findings are split by body part.

Accepted shapes of one case (the public release's exact keys vary between versions, so both forms are read)::

    {"image": "imagesTr/amos_0001.nii.gz",
     "labels": {"report": {"findings": {"chest": "...", "abdomen": "...", "pelvis": "..."}, "impression": "..."},
                "qa": [{"question": "...", "answer": "...", ...}]}}
    {"image": "...", "report": {"findings": "...", "impression": "..."}}     # findings as one string
"""
from __future__ import annotations

import json
from pathlib import Path

from rrg_lite.world.vocab import BODY_PARTS

from ..manifest import DataFormatError, ImageRef, StudyRecord
from .common import Problems, read_annotations, text

_SPLIT_KEYS = {"train": ("train", "training"), "validation": ("validation", "val", "valid"), "test": ("test",)}


def read_amosmm(root: str | Path, split: str = "train", json_name: str = "dataset.json",
                require_images: bool = True, skip_bad: bool = False) -> list[StudyRecord]:
    root = Path(root)
    path = root / json_name
    if not path.exists():
        raise DataFormatError(f"{path}: AMOS-MM dataset.json not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: not valid JSON ({exc})",
                              hint="fix the JSON (python -m json.tool shows where it breaks)") from exc
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: expected a JSON object with split lists, got {type(data).__name__}")
    keys = _SPLIT_KEYS.get(split, (split,))
    items = next((data[k] for k in keys if k in data), None)
    if items is None:
        raise DataFormatError(f"{path}: no {split!r} list (looked for keys {keys}); has {list(data)}")
    if not isinstance(items, list):
        raise DataFormatError(f"{path}: {split!r} must be a list of cases, got {type(items).__name__}")
    problems = Problems(skip_bad)
    ann = read_annotations(root / "world_annotations.jsonl")
    records = []
    for i, item in enumerate(items):
        where = f"{path}[{split}][{i}]"
        if not isinstance(item, dict) or "image" not in item:
            problems(where, "case has no 'image' key")
            continue
        rel = item["image"]
        if not isinstance(rel, str) or not rel.strip():
            # an empty path would resolve to the dataset folder itself and pass the existence check
            problems(where, f"'image' must be a non-empty path, got {rel!r}")
            continue
        img = (root / rel) if not Path(rel).is_absolute() else Path(rel)
        if require_images and not img.is_file():
            problems(where, f"image {img} not found")
            continue
        bad = _case_shape_error(item)
        if bad:
            problems(where, bad)
            continue
        rep = (item.get("labels") or {}).get("report") or item.get("report") or {}
        fnd = rep.get("findings", "")
        parts = {}
        if isinstance(fnd, dict):
            parts = {p: text(fnd.get(p, "")) for p in BODY_PARTS if text(fnd.get(p, ""))}
            findings = " ".join(parts.values())
        else:
            findings = text(fnd)
        impression = text(rep.get("impression", ""))
        if not findings and not impression:
            problems(where, "empty report (no findings and no impression)")
            continue
        qa = (item.get("labels") or {}).get("qa") or item.get("qa") or []
        stem = Path(rel).name.split(".nii")[0]
        rec = StudyRecord(study_id=stem, dataset="amos-mm", split=split, patient_id=stem,
                          images=[ImageRef(str(img), "CT")], report={"findings": findings, "impression": impression},
                          body_part_reports=parts, qa=list(qa), meta={"image": rel})
        if rel in ann:
            rec.boxes = ann[rel]["boxes"]
            rec.meta["world_findings"] = ann[rel]["findings"]
        records.append(rec)
    problems.summary(str(path))
    if not records:
        raise DataFormatError(f"{path}: no usable {split} cases")
    return records


def _case_shape_error(item: dict) -> str | None:
    """Why a case is not shaped as documented above (so that no raw AttributeError escapes), or None."""
    labels = item.get("labels")
    if labels is not None and not isinstance(labels, dict):
        return f"'labels' must be an object, got {type(labels).__name__}"
    rep = (labels or {}).get("report") or item.get("report") or {}
    if not isinstance(rep, dict):
        return f"'report' must be an object with 'findings' and 'impression', got {type(rep).__name__}"
    fnd = rep.get("findings", "")
    if isinstance(fnd, dict):
        for part, v in fnd.items():
            if v is not None and not isinstance(v, str):
                return f"findings[{part!r}] must be text, got {type(v).__name__}"
    elif fnd is not None and not isinstance(fnd, str):
        return f"'findings' must be text or an object body part → text, got {type(fnd).__name__}"
    if rep.get("impression") is not None and not isinstance(rep["impression"], str):
        return f"'impression' must be text, got {type(rep['impression']).__name__}"
    qa = (labels or {}).get("qa") or item.get("qa") or []
    if not isinstance(qa, list) or not all(isinstance(q, dict) for q in qa):
        return "'qa' must be a list of objects {question, answer, ...}"
    return None
