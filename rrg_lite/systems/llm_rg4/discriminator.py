"""LLM-RG4's DiscBERT, small: a sentence classifier for input-agnostic content, and the "hall." rate it defines.

Some report sentences say what the inputs cannot support (Nguyen et al. 2023's categories, used by LLM-RG4):
**comparison** with a prior study, a **prior procedure**, the **view** of the image, a **communication** with
clinicians. LLM-RG4 trains DiscBERT (BERT's CLS token -> four binary heads; lr 2e-5, 15 epochs) on Llama3-70B's
judgements to (1) drive the data-rewriting loop and (2) score its generated reports::

    hall. = share of generated reports with ≥ 1 sentence flagged in a category the scenario does not allow
    allowed(sn) = {}      allowed(sw) = {comparison}      allowed(mn) = {view}      allowed(mw) = {comparison, view}

(comparisons are legitimate only with a prior report, views only with two views; prior procedures and
communications never are.) The paper's DiscBERT judges a whole report; we classify *sentences* and flag a report
when any sentence is flagged — the same rate, and the sentence flags say which sentence is at fault.

- :class:`InputAgnosticDetector` — the book's small text encoder (:class:`rrg_lite.encoders.text.NgramTextEncoder`,
  hashed word 1–2-grams -> mean -> MLP, in place of BERT) with four binary heads (one Linear(dim -> 4), a sigmoid
  per column) in :data:`rrg_lite.metrics.hallucination.CATEGORIES` order. :func:`fit_detector` trains it.
- :func:`world_sentence_tags` — training data from the world: its tagged sentences -> (text, 4 flags).
- :func:`head_scores` — per-head precision / recall / F1 against given tags.
- :func:`allowed_categories`, :func:`hall_rate_from_flags`, :func:`hallucination_rate` — the metric.

The rule-based detector of the same four categories stays in :mod:`rrg_lite.metrics.hallucination` (offline, no
training); this learned one is DiscBERT's role in the paper, and is what the chapter reports as "hall.".
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rrg_lite.encoders.text import NgramTextEncoder
from rrg_lite.metrics.clinical import prf_counts
from rrg_lite.metrics.hallucination import CATEGORIES
from rrg_lite.metrics.result import MetricResult
from rrg_lite.metrics.text import split_sentences

from .scenarios import Scenario, as_scenario

__all__ = ["CATEGORIES", "ALLOWED", "WORLD_TAG_TO_CATEGORY", "DetectorConfig", "InputAgnosticDetector",
           "fit_detector", "world_sentence_tags", "tags_to_array", "head_scores", "allowed_categories",
           "hall_rate_from_flags", "hallucination_rate"]

#: What each scenario may legitimately say (the rest of :data:`CATEGORIES` is a hallucination there).
ALLOWED: dict[Scenario, tuple[str, ...]] = {
    Scenario.SN: (), Scenario.SW: ("comparison",), Scenario.MN: ("view",), Scenario.MW: ("comparison", "view"),
}

#: The world's sentence tags -> the four categories. "comparison" sentences (a finding's change since the prior,
#: "Prior chest radiograph." in COMPARISON) and the input-agnostic "prior_comparison" are both comparisons;
#: "recommendation" is none of the four (LLM-RG4 keeps medical recommendations).
WORLD_TAG_TO_CATEGORY = {"comparison": "comparison", "prior_comparison": "comparison",
                         "prior_procedure": "prior_procedure", "view": "view", "communication": "communication"}


@dataclass(frozen=True)
class DetectorConfig:
    """:class:`InputAgnosticDetector` and :func:`fit_detector`'s knobs.

    dim, width, buckets, n: of the n-gram encoder (output width, hidden width, hash buckets, n-gram order).
    epochs: 15 as DiscBERT's; lr: Adam's (DiscBERT fine-tunes BERT at 2e-5; a model trained from scratch needs
    more); batch_size; threshold: a head flags a sentence when its sigmoid is above it; seed.
    """

    dim: int = 64
    width: int = 64
    buckets: int = 2 ** 14
    n: int = 2
    epochs: int = 15
    lr: float = 1e-2
    batch_size: int = 64
    threshold: float = 0.5
    seed: int = 0

    def __post_init__(self):
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"DetectorConfig.threshold must be in (0, 1), got {self.threshold}")
        for name in ("dim", "width", "buckets", "n", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"DetectorConfig.{name} must be >= 1, got {getattr(self, name)}")

    def as_dict(self) -> dict:
        return asdict(self)


def tags_to_array(tags: Sequence) -> np.ndarray:
    """Per-sentence tags -> (n, 4) bool in :data:`CATEGORIES` order. Each item is a collection of category names
    (``{"view"}``, ``()``) or already 4 flags."""
    rows = []
    for i, t in enumerate(tags):
        if isinstance(t, str):
            raise ValueError(f"tags[{i}] is a string {t!r}: give a set of categories, e.g. {{{t!r}}}")
        t = list(t)
        if len(t) == len(CATEGORIES) and all(isinstance(v, (bool, np.bool_, int, np.integer)) for v in t):
            rows.append([bool(v) for v in t])
            continue
        unknown = set(t) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"tags[{i}]: unknown categories {sorted(map(str, unknown))}; choose from {CATEGORIES}")
        rows.append([c in t for c in CATEGORIES])
    return np.array(rows, dtype=bool).reshape(len(rows), len(CATEGORIES))


class InputAgnosticDetector(nn.Module):
    """sentences -> (B, 4) logits, one binary head per category of :data:`CATEGORIES` (DiscBERT's four)."""

    def __init__(self, config: DetectorConfig | None = None, **overrides):
        super().__init__()
        if config is None:
            config = DetectorConfig(**overrides)
        elif overrides:
            raise ValueError("InputAgnosticDetector: pass either a DetectorConfig or keyword fields, not both")
        self.config = config
        self.encoder = NgramTextEncoder(dim=config.dim, buckets=config.buckets, n=config.n, width=config.width)
        self.heads = nn.Linear(config.dim, len(CATEGORIES))        # column j = head of CATEGORIES[j]

    def forward(self, sentences: Sequence[str]) -> torch.Tensor:
        return self.heads(self.encoder.encode(list(sentences)))

    @torch.no_grad()
    def predict_proba(self, sentences: Sequence[str]) -> np.ndarray:
        """(n, 4) sigmoid of each head (an empty list gives (0, 4))."""
        if len(sentences) == 0:
            return np.zeros((0, len(CATEGORIES)), dtype=np.float32)
        was = self.training
        self.eval()
        try:
            return torch.sigmoid(self(sentences)).cpu().numpy()
        finally:
            self.train(was)

    def flag_sentences(self, sentences: Sequence[str]) -> np.ndarray:
        """(n, 4) bool: head j above ``config.threshold``."""
        return self.predict_proba(sentences) > self.config.threshold

    def flag_reports(self, reports: Sequence[str]) -> list[np.ndarray]:
        """Per report, (n_sentences, 4) bool flags of its sentences (:func:`rrg_lite.metrics.text.split_sentences`)."""
        out = []
        for r in reports:
            if r is None or not isinstance(r, str):
                raise ValueError(f"flag_reports: every report must be a string, got {type(r).__name__}")
            out.append(self.flag_sentences(split_sentences(r)))
        return out


def fit_detector(sentences: Sequence[str], tags, config: DetectorConfig | None = None,
                 detector: InputAgnosticDetector | None = None) -> tuple[InputAgnosticDetector, list[float]]:
    """Train a detector on (sentence, tags) pairs with BCE per head; -> (detector, mean loss per epoch).

    ``tags``: (n, 4) bool or per-sentence collections of category names (see :func:`tags_to_array`). Seeded by
    ``config.seed`` (initialisation and batch order).
    """
    cfg = config or (detector.config if detector is not None else DetectorConfig())
    y = torch.from_numpy(tags_to_array(tags).astype(np.float32))
    if len(sentences) != len(y) or len(y) == 0:
        raise ValueError(f"fit_detector: {len(sentences)} sentences and {len(y)} tag rows (need as many, > 0)")
    torch.manual_seed(cfg.seed)
    det = detector if detector is not None else InputAgnosticDetector(cfg)
    opt = torch.optim.Adam(det.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(cfg.seed)
    history = []
    det.train()
    for _ in range(cfg.epochs):
        order = torch.randperm(len(y), generator=g).tolist()
        total = 0.0
        for k in range(0, len(order), cfg.batch_size):
            idx = order[k:k + cfg.batch_size]
            loss = F.binary_cross_entropy_with_logits(det([sentences[i] for i in idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history.append(total / len(y))
    det.eval()
    return det, history


def world_sentence_tags(studies, sections: Sequence[str] = ("findings", "impression")) -> tuple[list[str], np.ndarray]:
    """World X-ray studies -> (sentences, (n, 4) bool tags) of their reports' ``sections``, through
    :data:`WORLD_TAG_TO_CATEGORY` (every other tag: no category)."""
    texts, rows = [], []
    for st in studies:
        report = getattr(st, "report", st)
        for s in report.sentences:
            if s.section in sections:
                texts.append(s.text)
                cat = WORLD_TAG_TO_CATEGORY.get(s.tag)
                rows.append([c == cat for c in CATEGORIES])
    return texts, np.array(rows, dtype=bool).reshape(len(rows), len(CATEGORIES))


def head_scores(pred, true) -> dict[str, dict[str, float]]:
    """Per-head precision, recall, F1 and support of (n, 4) bool predictions against (n, 4) bool tags.

    A head that predicts nothing has precision 0 (and F1 0); a category with no true sentence has recall 0.
    """
    pred, true = np.asarray(pred, dtype=bool), np.asarray(true, dtype=bool)
    if pred.shape != true.shape or pred.ndim != 2 or pred.shape[1] != len(CATEGORIES):
        raise ValueError(f"head_scores: pred {pred.shape} and true {true.shape} must both be (n, {len(CATEGORIES)})")
    tp, fp, fn = (x.sum(0) for x in prf_counts(pred, true))
    out = {}
    for j, c in enumerate(CATEGORIES):
        p = tp[j] / (tp[j] + fp[j]) if tp[j] + fp[j] else 0.0
        r = tp[j] / (tp[j] + fn[j]) if tp[j] + fn[j] else 0.0
        out[c] = {"precision": float(p), "recall": float(r), "f1": float(2 * p * r / (p + r)) if p + r else 0.0,
                  "support": int(true[:, j].sum())}
    return out


def allowed_categories(scenario: Scenario | str) -> tuple[str, ...]:
    """The categories ``scenario`` may legitimately contain (:data:`ALLOWED`)."""
    return ALLOWED[as_scenario(scenario)]


def hall_rate_from_flags(flags: Sequence[np.ndarray], scenarios) -> dict[str, MetricResult]:
    """hall. from per-report sentence flags: a report counts when any sentence has a category its scenario does not
    allow.

    ``flags``: per report an (n_i, 4) bool array (n_i may be 0). ``scenarios``: one scenario for all, or one per
    report. Returns ``{"hall.": …, "hall. comparison": …, …}``; a per-category rate counts the reports with that
    category *where it is not allowed* (so "hall. view" is 0 in mn and mw by definition).
    """
    n = len(flags)
    if isinstance(scenarios, (str, Scenario)):
        scenarios = [scenarios] * n
    scenarios = [as_scenario(s) for s in scenarios]
    if len(scenarios) != n:
        raise ValueError(f"hall_rate_from_flags: {n} reports but {len(scenarios)} scenarios")
    per_cat = np.zeros((n, len(CATEGORIES)), dtype=bool)
    for i, (f, sc) in enumerate(zip(flags, scenarios)):
        f = np.asarray(f, dtype=bool).reshape(-1, len(CATEGORIES))
        banned = np.array([c not in ALLOWED[sc] for c in CATEGORIES])
        per_cat[i] = f.any(0) & banned
    any_ = per_cat.any(1).astype(float)
    counts = {s.value: sum(x is s for x in scenarios) for s in ALLOWED if any(x is s for x in scenarios)}
    conv = ("LLM-RG4 hall.: share of reports with a sentence flagged by the learned input-agnostic detector "
            "(DiscBERT-like) in a category the scenario does not allow (comparison needs a prior, view two views); "
            f"scenarios {counts}")
    nan = float("nan")
    out = {"hall.": MetricResult("hall.", float(any_.mean()) if n else nan, conv, any_, n)}
    for j, c in enumerate(CATEGORIES):
        v = per_cat[:, j].astype(float)
        out[f"hall. {c}"] = MetricResult(f"hall. {c}", float(v.mean()) if n else nan, conv, v, n)
    return out


def hallucination_rate(reports: Sequence[str], detector: InputAgnosticDetector, scenarios) -> dict[str, MetricResult]:
    """hall. of generated ``reports`` under ``scenarios`` (one for all or one per report) with ``detector``."""
    return hall_rate_from_flags(detector.flag_reports(reports), scenarios)
