"""M4CXR's sampling over task-datasets (Sec. V-D, Table VII, Table X): who gets how many training draws.

A *task-dataset* is one dataset used for one task (MIMIC-CXR for single-image MRG, VinDr-CXR for finding
grounding, ...); M4CXR trains on 50 of them. Every training example is drawn by first choosing a task-dataset
``k`` with probability ``p_k`` and then one of its items uniformly (with replacement, as the official
``MultiDataset`` does). The strategies of Table VII differ only in ``p``. With sizes ``n_k``, task types
``τ(k)`` ∈ {MRG, image understanding, VQA}, ``T`` = the task types present and ``K_τ`` the task-datasets of type τ::

    empirical   p_k = w_k / Σ_j w_j                 w = Table X's hand-tuned "dataset ratio" (sums 380/246/78 of 704
                                                    -> task types 0.54 / 0.35 / 0.11)
    D1          p_k = 1 / K                         per-task-dataset: uniform over task-datasets
    D2          p_k = n_k / Σ_j n_j                 per-size: proportional to size
    D3          p_k = 1/|T| · 1/|K_τ(k)|            per-task-type, then per-task-dataset inside the type
    D4          p_k = 1/|T| · n_k / Σ_{j∈K_τ(k)} n_j   per-task-type, then per-size inside the type
    type_ratios p_k = r_τ(k) · (w_k or n_k) / Σ_{j∈K_τ(k)} (w_j or n_j)   given type ratios r (default 0.54/0.35/0.11)

What the paper says and what it leaves open:

- D1–D4 are defined in one sentence each (Sec. V-D); the formulas above are those sentences. D2 is plain
  proportional-to-size: the paper mentions no cap, temperature or smoothing, so there is none here.
- "empirical" is *not* proportional to size: it is the per-task-dataset weights of Table X, tuned by hand
  ("we began with the per-size ratio and made further adjustments"). They are in :data:`TABLE_X` with the
  paper's training sizes. On a dataset list without hand-tuned weights (the synthetic world), the closest
  recipe is ``type_ratios`` — the paper's 0.54 / 0.35 / 0.11 between types, per-size inside a type (our
  choice; the paper does not say how it would split a type without its tuned weights).
- A task type with no task-dataset (Table VIII's Exp3 without image understanding, Exp4 without VQA) is not
  in ``T``: per-task-type strategies share the mass among the types present, and ``type_ratios`` renormalises
  the given ratios over them (the paper does not say how Exp3/Exp4 re-balanced; "increased proportion of VQA
  data" in Exp3 is consistent with renormalising).
- Equal total steps across strategies are the experiment's business (the sampler draws forever).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from .instructions import IU, MRG, TASK_TYPES, VQA

__all__ = ["TaskDataset", "TaskSampler", "STRATEGIES", "PAPER_TYPE_RATIOS", "TABLE_X", "strategy_probabilities",
           "realised_fractions"]

STRATEGIES = ("empirical", "D1", "D2", "D3", "D4", "type_ratios")
_ALIASES = {"per_task_dataset": "D1", "per_size": "D2", "per_task_type_dataset": "D3", "per_task_type_size": "D4"}
#: Sec. V-D: "approximately 54%, 35%, and 11% for MRG, image understanding, and VQA".
PAPER_TYPE_RATIOS: dict[str, float] = {MRG: 0.54, IU: 0.35, VQA: 0.11}
TASK_TYPE_ORDER = (MRG, IU, VQA)


@dataclass(frozen=True)
class TaskDataset:
    """One dataset used for one task. ``weight``: the hand-tuned (empirical) weight, where one exists."""

    task: str
    dataset: str
    size: int
    weight: float | None = None

    def __post_init__(self):
        if self.task not in TASK_TYPES:
            raise ValueError(f"TaskDataset {self.dataset!r}: unknown task {self.task!r}; tasks: {tuple(TASK_TYPES)}")
        if int(self.size) != self.size or self.size < 1:
            raise ValueError(f"TaskDataset {self.name}: size must be a positive integer, got {self.size}")
        if self.weight is not None and not self.weight > 0:
            raise ValueError(f"TaskDataset {self.name}: weight must be > 0, got {self.weight}")

    @property
    def name(self) -> str:
        return f"{self.task}/{self.dataset}"

    @property
    def task_type(self) -> str:
        return TASK_TYPES[self.task]


def _table_x() -> tuple[TaskDataset, ...]:
    rows = {  # task: [(dataset, training instances, dataset ratio)] — Table X
        "single_image_mrg": [("MIMIC-CXR", 270236, 200.0)],
        "multi_image_mrg": [("MIMIC-CXR", 151606, 120.0)],
        "multi_study_mrg": [("MIMIC-CXR", 68373, 60.0)],
        "disease_classification": [("BRAX", 40965, 7.0), ("CheXpert", 223414, 30.0), ("VinDr-CXR", 15000, 3.0),
                                   ("ChestX-ray14", 86523, 10.0), ("ChestX-Det10", 3578, 1.0), ("SIIM", 10675, 4.0),
                                   ("RSNA", 14863, 4.0), ("COVID-19 Radiography", 15153, 3.0)],
        "finding_grounding": [("VinDr-CXR", 15000, 2.0), ("ChestX-ray14", 50500, 10.0), ("ChestX-Det10", 3578, 2.0),
                              ("JSRT", 247, 0.1), ("SIIM", 10675, 4.0), ("RSNA", 14863, 1.0),
                              ("COVID-QU-Ex", 2796, 1.0), ("QaTa-COV19", 4194, 1.0)],
        "grounded_finding": [("VinDr-CXR", 4394, 2.0), ("ChestX-Det10", 2967, 2.0), ("JSRT", 154, 0.1),
                             ("SIIM", 2379, 2.0), ("RSNA", 6012, 1.0), ("COVID-QU-Ex", 1864, 1.0),
                             ("QaTa-COV19", 4194, 3.0)],
        "abnormality_detection": [("VinDr-CXR", 4394, 3.0), ("ChestX-Det10", 2967, 1.5), ("JSRT", 154, 0.1),
                                  ("SIIM", 2379, 2.0), ("RSNA", 6012, 1.0), ("COVID-QU-Ex", 1864, 1.5),
                                  ("QaTa-COV19", 4194, 1.5)],
        "multi_finding_grounding": [("ChestX-ray14", 50500, 10.0), ("VinDr-CXR", 15000, 2.0),
                                    ("ChestX-Det10", 3578, 2.0)],
        "organ_grounding": [("COVID-19 Radiography", 15153, 0.8), ("COVID-QU-Ex", 3728, 0.8)],
        "grounded_organ": [("COVID-19 Radiography", 15153, 0.8), ("COVID-QU-Ex", 3728, 0.8)],
        "grounded_phrase": [("MS-CXR", 638, 2.0), ("ImaGenome", 164229, 40.0)],
        "phrase_grounding": [("MS-CXR", 638, 2.0), ("ImaGenome", 164229, 40.0)],
        "anatomical_region_grounding": [("ImaGenome", 164229, 20.0)],
        "grounded_anatomical_region": [("ImaGenome", 164229, 20.0)],
        "vqa": [("MIMIC-CXR-VQA", 255919, 2.0), ("MIMIC-Diff-VQA", 553156, 2.0)],
        "difference_vqa": [("MIMIC-Diff-VQA", 129900, 4.0)],
        "instruction_following": [("RaDialog", 297964, 70.0)],
    }
    return tuple(TaskDataset(task, ds, n, w) for task, items in rows.items() for ds, n, w in items)


#: M4CXR's 50 task-datasets with their training sizes and empirical weights (Table X).
TABLE_X: tuple[TaskDataset, ...] = _table_x()


def _canonical(strategy: str) -> str:
    s = _ALIASES.get(strategy, strategy)
    if s not in STRATEGIES:
        raise ValueError(f"unknown sampling strategy {strategy!r}; choose one of {STRATEGIES} "
                         f"(aliases: {sorted(_ALIASES)})")
    return s


def strategy_probabilities(items: Sequence[TaskDataset], strategy: str = "empirical",
                           type_ratios: dict[str, float] | None = None) -> np.ndarray:
    """``p`` (K,) of the module docstring's formulas for ``items``; sums to 1."""
    items = list(items)
    if not items:
        raise ValueError("strategy_probabilities: no task-datasets given")
    names = [it.name for it in items]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"strategy_probabilities: task-datasets listed twice: {dup}")
    s = _canonical(strategy)
    sizes = np.array([it.size for it in items], dtype=float)
    if s == "empirical":
        missing = [it.name for it in items if it.weight is None]
        if missing:
            raise ValueError(f"'empirical' sampling needs a hand-tuned weight for every task-dataset; missing for "
                             f"{missing[:5]}{' ...' if len(missing) > 5 else ''} (use 'type_ratios' on data without "
                             f"Table X weights)")
        w = np.array([it.weight for it in items], dtype=float)
        return w / w.sum()
    if s == "D1":
        return np.full(len(items), 1.0 / len(items))
    if s == "D2":
        return sizes / sizes.sum()
    types = [it.task_type for it in items]
    present = [t for t in TASK_TYPE_ORDER if t in types]
    if s in ("D3", "D4"):
        share = {t: 1.0 / len(present) for t in present}
        within = "uniform" if s == "D3" else "size"
    else:  # type_ratios
        ratios = dict(PAPER_TYPE_RATIOS if type_ratios is None else type_ratios)
        unknown = sorted(set(ratios) - set(TASK_TYPE_ORDER))
        if unknown:
            raise ValueError(f"type_ratios: unknown task types {unknown}; types are {TASK_TYPE_ORDER}")
        lacking = [t for t in present if not ratios.get(t, 0) > 0]
        if lacking:
            raise ValueError(f"type_ratios: task type(s) {lacking} have task-datasets but no positive ratio")
        total = sum(ratios[t] for t in present)
        share = {t: ratios[t] / total for t in present}
        within = "weight" if all(it.weight is not None for it in items) else "size"
    p = np.zeros(len(items))
    for t in present:
        idx = [i for i, ty in enumerate(types) if ty == t]
        if within == "uniform":
            inner = np.full(len(idx), 1.0 / len(idx))
        else:
            v = np.array([items[i].weight if within == "weight" else items[i].size for i in idx], dtype=float)
            inner = v / v.sum()
        p[idx] = share[t] * inner
    return p


class TaskSampler:
    """Seeded draws of task-datasets (and items in them) under one strategy.

    >>> sampler = TaskSampler(TABLE_X, "empirical", seed=0)
    >>> sampler.expected_fraction("task_type")      # {'mrg': 0.5398, 'image_understanding': 0.3494, 'vqa': 0.1108}
    >>> ks = sampler.sample(1000)                   # (1000,) indices into sampler.items
    """

    def __init__(self, items: Sequence[TaskDataset], strategy: str = "empirical", seed: int = 0,
                 type_ratios: dict[str, float] | None = None):
        self.items = tuple(items)
        self.strategy = _canonical(strategy)
        self.probabilities = strategy_probabilities(self.items, self.strategy, type_ratios)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def _key(self, it: TaskDataset, by: str) -> str:
        if by == "task_dataset":
            return it.name
        if by == "task":
            return it.task
        if by == "task_type":
            return it.task_type
        if by == "dataset":
            return it.dataset
        raise ValueError(f"by must be 'task_dataset', 'task', 'task_type' or 'dataset', got {by!r}")

    def expected_fraction(self, by: str = "task_dataset") -> dict[str, float]:
        """Share of draws each group gets in expectation (the formula), in the items' order of first appearance."""
        out: dict[str, float] = {}
        for it, p in zip(self.items, self.probabilities):
            k = self._key(it, by)
            out[k] = out.get(k, 0.0) + float(p)
        return out

    def sample(self, n: int) -> np.ndarray:
        """``n`` task-dataset indices (int64), drawn i.i.d. from ``probabilities`` with this sampler's stream."""
        if n < 0:
            raise ValueError(f"sample: n must be >= 0, got {n}")
        return self.rng.choice(len(self.items), size=n, p=self.probabilities)

    def sample_items(self, n: int) -> list[tuple[int, int]]:
        """``n`` (task-dataset index, item index) pairs; the item is uniform in its dataset, with replacement."""
        ks = self.sample(n)
        sizes = np.array([it.size for it in self.items])
        js = self.rng.integers(0, sizes[ks]) if n else np.zeros(0, dtype=np.int64)
        return [(int(k), int(j)) for k, j in zip(ks, js)]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        while True:
            yield self.sample_items(1)[0]

    def realised_fraction(self, draws: np.ndarray, by: str = "task_dataset") -> dict[str, float]:
        """Observed shares of ``draws`` (indices from :meth:`sample`), keyed like :meth:`expected_fraction`."""
        return realised_fractions(draws, [self._key(it, by) for it in self.items])

    def table(self):
        """A DataFrame: task, dataset, type, size, weight, p (the sampler's probabilities)."""
        import pandas as pd

        return pd.DataFrame([{"task": it.task, "dataset": it.dataset, "task_type": it.task_type, "size": it.size,
                              "weight": it.weight, "p": float(p)} for it, p in zip(self.items, self.probabilities)])


def realised_fractions(draws: np.ndarray, keys: Sequence[str]) -> dict[str, float]:
    """Share of ``draws`` (indices into ``keys``) per key; keys that were never drawn get 0."""
    draws = np.asarray(draws)
    if draws.size == 0:
        raise ValueError("realised_fractions: no draws")
    if draws.min() < 0 or draws.max() >= len(keys):
        raise ValueError(f"realised_fractions: draw indices must be in [0, {len(keys)}), got "
                         f"[{draws.min()}, {draws.max()}]")
    counts = np.bincount(draws, minlength=len(keys))
    out: dict[str, float] = {}
    for k, c in zip(keys, counts):
        out[k] = out.get(k, 0.0) + c / draws.size
    return out
