"""Dataset statistics that work the same on the world and on real datasets: label frequencies, report lengths,
vocabulary. Inputs are plain lists (texts, label rows), so any reader's records can be summarised."""
from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

import numpy as np

_WORD = re.compile(r"[a-z]+(?:[-'][a-z]+)*|\d+(?:\.\d+)?")


def words(text: str) -> list[str]:
    """Lower-cased word tokens (numbers kept as tokens)."""
    return _WORD.findall(text.lower())


def label_frequencies(labels: np.ndarray, names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per label: fraction positive (1), negative (0), uncertain (−1), not mentioned (NaN). ``labels`` (N, L)."""
    labels = np.asarray(labels, dtype=float)
    if labels.ndim != 2 or labels.shape[1] != len(names):
        raise ValueError(f"labels must be (N, {len(names)}), got {labels.shape}")
    n = max(len(labels), 1)
    out = {}
    for j, name in enumerate(names):
        col = labels[:, j]
        out[name] = {"positive": float((col == 1).sum() / n), "negative": float((col == 0).sum() / n),
                     "uncertain": float((col == -1).sum() / n), "missing": float(np.isnan(col).sum() / n)}
    return out


def report_stats(texts: Sequence[str]) -> dict[str, float]:
    """Length (words) distribution, vocabulary size and the share of distinct sentences."""
    toks = [words(t) for t in texts]
    lengths = np.array([len(t) for t in toks]) if toks else np.zeros(0)
    vocab = Counter(w for t in toks for w in t)
    sentences = [s.strip() for t in texts for s in re.split(r"(?<=[.!?])\s+", t) if s.strip()]
    return {"reports": len(texts), "words_mean": float(lengths.mean()) if len(lengths) else 0.0,
            "words_median": float(np.median(lengths)) if len(lengths) else 0.0,
            "words_min": int(lengths.min()) if len(lengths) else 0, "words_max": int(lengths.max()) if len(lengths) else 0,
            "vocabulary": len(vocab), "sentences": len(sentences),
            "distinct_sentences": len(set(sentences))}


def top_words(texts: Sequence[str], k: int = 20) -> list[tuple[str, int]]:
    return Counter(w for t in texts for w in words(t)).most_common(k)
