"""One metric's answer: its value, the convention that produced it, and the per-report numbers behind it.

The same name means different numbers in different repositories ("BLEU-4" corpus-level or averaged per
sentence, "F1" micro or macro, uncertain labels counted as positive or not). Every function in
``rrg_lite.metrics`` therefore returns a :class:`MetricResult` whose ``convention`` says exactly which
variant it is, in words a reader can compare with a paper's methods section.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class MetricResult:
    """A metric value with its convention.

    Attributes:
        name: short name, e.g. ``"BLEU-4"``.
        value: the corpus-level number (what a paper's table reports).
        convention: how it was computed (implementation, tokenisation, averaging, model ...).
        per_example: (N,) float array of per-report scores where the metric has them (``None`` otherwise).
            For corpus-level metrics such as BLEU the mean of ``per_example`` is *not* ``value``.
        n: number of report pairs scored.
        notes: counted skips and warnings (e.g. "3 empty predictions"); never silent.
        extra: anything else worth keeping (sufficient statistics for resampling, sub-scores).
    """

    name: str
    value: float
    convention: str
    per_example: np.ndarray | None = None
    n: int = 0
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __float__(self) -> float:
        return float(self.value)

    def as_row(self) -> dict[str, Any]:
        """A flat dict for a results table."""
        return {"metric": self.name, "value": float(self.value), "n": self.n, "convention": self.convention,
                "notes": "; ".join(self.notes)}

    def __repr__(self) -> str:
        notes = f", notes={self.notes}" if self.notes else ""
        return f"MetricResult({self.name}={self.value:.4f}, n={self.n}, convention={self.convention!r}{notes})"


def results_table(results: dict[str, MetricResult]):
    """A pandas DataFrame with one row per metric (name, value, n, convention, notes)."""
    import pandas as pd

    return pd.DataFrame([r.as_row() for r in results.values()])
