"""Question/answer pairs from the structured record (closed yes/no and open questions).

Each pair is a dict ``{"question", "answer", "type": "closed"|"open", "category", "finding_id"}`` with categories
``presence``, ``location``, ``size``, ``region``, ``metabolism``, ``change``, ``view``. Answers come from the
record, never from the report text, so they are right by construction.
"""
from __future__ import annotations

import numpy as np

from .findings import Finding
from .vocab import CHEXPERT_LABELS, CT_RATE_LABELS


def _qa(q, a, t, cat, fid=None):
    return {"question": q, "answer": a, "type": t, "category": cat, "finding_id": fid}


def ct_qa(rng: np.random.Generator, findings: list[Finding], n: int, noun, pet: bool = False,
          has_prior: bool = False, regions=()) -> list[dict]:
    """Up to ``n`` questions about a CT (PET questions only when ``pet``, change questions only with a prior)."""
    pool = []
    present = {f.label for f in findings if f.present and f.label}
    for lab in CT_RATE_LABELS:
        pool.append(_qa(f"Is there {lab.lower()} in this CT scan?", "Yes" if lab in present else "No", "closed",
                        "presence"))
    for f in findings:
        if not f.present:
            continue
        nn = noun(f)
        if f.center_mm is not None and f.location:
            base = (f.label or f.kind.replace("_", " ")).lower()
            pool.append(_qa(f"Where is the {base} located?", f.location, "open", "location", f.id))
        if f.size_mm is not None:
            pool.append(_qa(f"What is the size of the {nn}?", f"{int(round(f.size_mm))} mm", "open", "size", f.id))
        if pet and f.hypermetabolic is not None:
            pool.append(_qa(f"Is the {nn} hypermetabolic on PET?", "Yes" if f.hypermetabolic else "No", "closed",
                            "metabolism", f.id))
    for f in findings:
        if has_prior and f.change is not None:
            pool.append(_qa(f"How has the {noun(f)} changed compared with the prior study?", f.change, "open",
                            "change", f.id))
    for region in regions:
        names = sorted({noun(f) for f in findings if f.present and f.region == region})
        pool.append(_qa(f"What abnormalities are seen in the {region}?", ", ".join(names) if names else "None",
                        "open", "region"))
    return _choose(rng, pool, n)


def cxr_qa(rng: np.random.Generator, findings: list[Finding], labels: np.ndarray, n: int, noun,
           has_prior: bool, has_lateral: bool) -> list[dict]:
    pool = []
    for lab, v in zip(CHEXPERT_LABELS, labels):
        if lab == "No Finding" or np.isnan(v) or v == -1:
            continue
        pool.append(_qa(f"Is there {lab.lower()} in this chest X-ray?", "Yes" if v == 1 else "No", "closed",
                        "presence"))
    for f in findings:
        if not f.present:
            continue
        nn = noun(f)
        if f.location and f.kind not in ("support_devices",):
            pool.append(_qa(f"Where is the {f.label.lower()}?", f.location, "open", "location", f.id))
        if f.size_mm is not None:
            pool.append(_qa(f"What is the size of the {nn}?", f"{int(round(f.size_mm))} mm", "open", "size", f.id))
        if has_lateral:
            views = "both views" if len(f.views) == 2 else f"{f.views[0]} view only"
            pool.append(_qa(f"On which view is the {nn} visible?", views, "open", "view", f.id))
        if has_prior and f.change is not None:
            pool.append(_qa(f"How has the {nn} changed compared with the prior study?", f.change, "open", "change",
                            f.id))
    return _choose(rng, pool, n)


def _choose(rng, pool, n):
    if len(pool) <= n:
        return pool
    # keep a mix: open questions first (fewer, more informative), then closed ones
    idx = rng.permutation(len(pool))
    open_ = [pool[i] for i in idx if pool[i]["type"] == "open"]
    closed = [pool[i] for i in idx if pool[i]["type"] == "closed"]
    k = min(len(open_), n // 2 + n % 2)
    return open_[:k] + closed[: n - k]
