"""Checking a labeler: agreement with expected labels on hand-written sentences or on the world's true labels.

A sentence set is a CSV with columns ``labeler`` ("chexpert" or "ctrate"), ``sentence``, ``label`` and
``expected`` (1, 0, -1 or "blank"): one row per asserted (sentence, label) pair; labels a row does not name are
not checked. :func:`sentence_set_agreement` returns one row per label with the share of assertions the
labeler gets exactly right (4 classes: positive / negative / uncertain / blank).

:func:`label_agreement` compares a labeler's codes with true codes: exact 4-class agreement, and micro-F1 of
the binarised labels (uncertain as positive, the clinical-efficacy default).
"""
from __future__ import annotations

import numpy as np

from .clinical import micro_f1_from_binary
from .ctrate_labeler import binarize

__all__ = ["sentence_set_agreement", "label_agreement"]


def _labeler(name: str):
    if name == "chexpert":
        from .chexpert_labeler import CHEXPERT_LABELER
        return CHEXPERT_LABELER
    if name == "ctrate":
        from .ctrate_labeler import CTRATE_LABELER
        return CTRATE_LABELER
    raise ValueError(f"unknown labeler {name!r} (expected 'chexpert' or 'ctrate')")


def sentence_set_agreement(path: str):
    """Per-label agreement on a hand-written sentence CSV; returns (per-label DataFrame, row-level DataFrame)."""
    import pandas as pd

    df = pd.read_csv(path, dtype={"expected": str})
    missing = {"labeler", "sentence", "label", "expected"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    got = []
    for i, row in df.iterrows():
        lab = _labeler(row["labeler"])
        if row["label"] not in lab.labels:
            raise ValueError(f"{path}: row {i + 2}: {row['label']!r} is not a {row['labeler']} label")
        v = lab.label_one(row["sentence"])[lab.labels.index(row["label"])]
        got.append("blank" if np.isnan(v) else str(int(v)))
    df = df.assign(got=got, ok=[g == e.strip() for g, e in zip(got, df["expected"])])
    per_label = (df.groupby(["labeler", "label"])["ok"].agg(["mean", "count"])
                 .rename(columns={"mean": "agreement", "count": "n"}).reset_index())
    return per_label, df


def label_agreement(pred_codes: np.ndarray, true_codes: np.ndarray, labels) -> dict:
    """Exact agreement, binary micro-F1 and per-label exact agreement between two (N, L) code arrays."""
    p = np.nan_to_num(np.asarray(pred_codes, dtype=float), nan=9.0)
    t = np.nan_to_num(np.asarray(true_codes, dtype=float), nan=9.0)
    if p.shape != t.shape:
        raise ValueError(f"label arrays differ in shape: {p.shape} vs {t.shape}")
    return {
        "exact_agreement": float((p == t).mean()),
        "micro_f1_binary": micro_f1_from_binary(binarize(pred_codes), binarize(true_codes)),
        "per_label_exact": {name: float((p[:, j] == t[:, j]).mean()) for j, name in enumerate(labels)},
    }
