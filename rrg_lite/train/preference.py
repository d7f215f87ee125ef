"""Preference data for DPO, the μ²-LLM way: sample reports from the SFT model, rank them with GREEN.

For every training case (image + question + reference report):

1. sample ``num_samples`` reports from the SFT model (temperature, top-p; seeded);
2. score each sample against the reference with GREEN (:func:`green_scorer`; any ``score_fn`` works);
3. chosen = the best-scoring sample, rejected = the worst-scoring one;
4. drop the case — counted, with its reason — if its best score is 0 (``best_zero``: nothing to prefer, the model
   got every finding wrong), if all samples score the same (``no_preference``: no signal), or if any score is
   missing (``unscored``: the judge failed).

Ties are broken deterministically: the *earliest* sample among the best is chosen and the *latest* among the worst
is rejected. The pairs are written as JSONL, one line per kept case:
``{"id", "image", "question", "reference", "chosen", "rejected", "chosen_score", "rejected_score", "scores",
"samples", "provenance"}`` — ``scores``/``samples`` hold every sample, so other pairings (e.g. best vs median) can be
rebuilt without sampling again.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = ["rank_samples", "build_preference_pairs", "green_scorer", "mllm_sampler", "write_pairs", "read_pairs",
           "cache_visual_tokens", "pair_examples", "report_lengths", "hedge_rate", "HEDGES"]

SampleFn = Callable[[Sequence[Mapping[str, Any]], int, int], list[list[str]]]
ScoreFn = Callable[[Sequence[str], Sequence[str]], list[float]]


def rank_samples(scores: Sequence[float]) -> tuple[int, int, str | None]:
    """``(chosen_index, rejected_index, drop_reason)``; ``drop_reason`` is None for a usable pair."""
    if not scores:
        return -1, -1, "no_samples"
    if any(s is None or (isinstance(s, float) and math.isnan(s)) for s in scores):
        return -1, -1, "unscored"
    best, worst = max(scores), min(scores)
    chosen = scores.index(best)                                   # earliest best
    rejected = len(scores) - 1 - list(reversed(scores)).index(worst)  # latest worst
    if best <= 0:
        return chosen, rejected, "best_zero"
    if best == worst:
        return chosen, rejected, "no_preference"
    return chosen, rejected, None


def build_preference_pairs(cases: Sequence[Mapping[str, Any]], sample_fn: SampleFn, score_fn: ScoreFn, *,
                           num_samples: int = 4, batch_size: int = 16, seed: int = 0,
                           provenance: Mapping[str, Any] | None = None,
                           progress: bool = True) -> tuple[list[dict], dict[str, Any]]:
    """Sample, score and pair. ``cases`` need ``id``, ``reference`` and (for the JSONL) ``image`` and ``question``.

    ``sample_fn(cases, num_samples, seed) -> [[report, ...] per case]``; ``score_fn(preds, refs) -> [score, ...]``.
    Returns ``(pairs, stats)``; ``stats`` counts kept and dropped cases by reason and the score spread.
    """
    if num_samples < 2:
        raise ValueError("a preference pair needs at least 2 samples per case")
    pairs: list[dict] = []
    dropped: Counter = Counter()
    spreads = []
    for start in tqdm(range(0, len(cases), batch_size), desc="sample + score", disable=not progress):
        chunk = cases[start:start + batch_size]
        samples = sample_fn(chunk, num_samples, seed + start)
        if len(samples) != len(chunk) or any(len(s) != num_samples for s in samples):
            raise ValueError(f"sample_fn returned {[len(s) for s in samples]} samples for {len(chunk)} cases; "
                             f"expected {num_samples} each")
        flat_preds = [s for per_case in samples for s in per_case]
        flat_refs = [c["reference"] for c in chunk for _ in range(num_samples)]
        flat_scores = list(score_fn(flat_preds, flat_refs))
        if len(flat_scores) != len(flat_preds):
            raise ValueError(f"score_fn returned {len(flat_scores)} scores for {len(flat_preds)} reports")
        for i, case in enumerate(chunk):
            scores = [None if s is None else float(s) for s in flat_scores[i * num_samples:(i + 1) * num_samples]]
            c, r, reason = rank_samples(scores)
            if reason is not None:
                dropped[reason] += 1
                continue
            spreads.append(scores[c] - scores[r])
            pairs.append({
                "id": case["id"], "image": case.get("image"), "question": case.get("question"),
                "reference": case["reference"], "chosen": samples[i][c], "rejected": samples[i][r],
                "chosen_score": scores[c], "rejected_score": scores[r], "scores": scores, "samples": samples[i],
                "provenance": {"num_samples": num_samples, "seed": seed, **dict(provenance or {})},
            })
    stats = {"cases": len(cases), "pairs": len(pairs), "dropped": dict(dropped),
             "mean_score_gap": sum(spreads) / len(spreads) if spreads else 0.0}
    return pairs, stats


def green_scorer(labeler: str = "ct", model_path: str | None = None, batch_size: int = 8) -> ScoreFn:
    """Per-report GREEN as a ``score_fn``.

    Without ``model_path``: the offline approximation (:func:`rrg_lite.metrics.green.green_offline`, rule-based,
    fast). With ``model_path`` (a local folder with the GREEN model's weights): the official GREEN judge
    (:func:`rrg_lite.metrics.green.green_official`), as μ²-LLM ranks its samples.
    """
    from rrg_lite.metrics.green import green_offline, green_official

    def score(preds: Sequence[str], refs: Sequence[str]) -> list[float]:
        # an empty sample is a valid (bad) report: score it as such rather than letting the metric refuse it
        preds = [p if p.strip() else "." for p in preds]
        if model_path is not None:
            result = green_official(list(preds), list(refs), model_path=model_path, batch_size=batch_size)
        else:
            result = green_offline(list(preds), list(refs), labeler=labeler, on_none="empty")
        return [None if math.isnan(v) else float(v) for v in result.per_example]

    return score


def mllm_sampler(mllm, make_example: Callable[[Mapping[str, Any]], dict], *, temperature: float = 1.0,
                 top_p: float = 0.95, max_new_tokens: int = 128, batch_size: int = 16) -> SampleFn:
    """A ``sample_fn`` drawing from a :class:`~rrg_lite.mllm.model.MultimodalLM`.

    ``make_example(case)`` returns the prompt example (``mllm.encode_example(prompt, num_images=...)`` plus its
    ``features``/``images``), without a target.
    """
    from rrg_lite.train.evaluate import generate_reports

    def sample(cases, num_samples: int, seed: int) -> list[list[str]]:
        texts = generate_reports(mllm, [make_example(c) for c in cases], batch_size=batch_size,
                                 max_new_tokens=max_new_tokens, progress=False, do_sample=True,
                                 temperature=temperature, top_p=top_p, num_return_sequences=num_samples, seed=seed)
        return [texts[i * num_samples:(i + 1) * num_samples] for i in range(len(cases))]

    return sample


def write_pairs(path: str | Path, pairs: Sequence[dict]) -> int:
    from rrg_lite.prompting.jsonl import write_jsonl

    return write_jsonl(path, pairs)


_REQUIRED = ("id", "image", "question", "chosen", "rejected", "chosen_score", "rejected_score", "scores")


def read_pairs(path: str | Path) -> list[dict]:
    """Read preference JSONL, checking every line has the fields DPO needs."""
    from rrg_lite.prompting.jsonl import read_jsonl

    pairs = read_jsonl(path)
    for i, p in enumerate(pairs, 1):
        missing = [k for k in _REQUIRED if k not in p]
        if missing:
            raise ValueError(f"{path}:{i}: preference pair lacks {missing}")
        if not isinstance(p["chosen"], str) or not isinstance(p["rejected"], str):
            raise ValueError(f"{path}:{i}: chosen and rejected must be report texts")
    return pairs


# ------------------------------------------------------------------ MLLM glue: cached visual tokens, pair examples
def cache_visual_tokens(mllm, examples: Sequence[dict], batch_size: int = 32, slot: str = "image",
                        shard: bool | str = "auto") -> list[dict]:
    """Replace each example's ``features`` by the visual tokens the (frozen) tokenizer makes of them.

    Returns copies with ``visual_embeds`` (n_images, K, D) (on the CPU) and no ``features``. With the tokenizer
    frozen, DPO then trains the language model only and skips the tokenizer's forward (much cheaper on a CPU).
    The tokens are computed with the example's own prompt (μ²'s tokenizer reads the question), exactly as in
    ``mllm(...)``, on the model's device (:func:`rrg_lite.mllm.inference.batched_inference`).
    """
    from rrg_lite.mllm.inference import batched_inference, unwrap_model
    from rrg_lite.mllm.prompt import MLLMCollator

    base = unwrap_model(mllm)
    captured: list[torch.Tensor] = []

    def tokens(model, batch):
        captured.clear()
        base.build_inputs(batch["input_ids"], batch["attention_mask"], None, features=batch["features"])
        counts = [f.shape[0] for f in batch["features"]]
        return list(torch.split(torch.cat(captured), counts))  # one (n_images, K, D) per example

    hook = base.projectors[slot].register_forward_hook(lambda mod, args, out: captured.append(out.detach()))
    items = [{k: v for k, v in e.items() if k != "labels"} for e in examples]
    try:
        per_example = batched_inference(mllm, items, tokens, batch_size=batch_size,
                                        collate=MLLMCollator(base.tokenizer.pad_token_id), shard=shard)
    finally:
        hook.remove()
    out: list[dict] = []
    for e, t in zip(examples, per_example):
        new = {k: v for k, v in e.items() if k != "features"}
        new["visual_embeds"] = t.clone()
        out.append(new)
    return out


def pair_examples(mllm, pairs: Sequence[Mapping[str, Any]], prompts: Mapping[str, str],
                  visual: Mapping[str, Mapping[str, torch.Tensor]]) -> list[dict]:
    """DPO examples ``{"chosen": ex, "rejected": ex}`` for :class:`~rrg_lite.train.dpo.DPOCollator`.

    ``prompts[id]`` is the case's prompt text (with its ``<image>``), ``visual[id]`` its visual inputs, e.g.
    ``{"visual_embeds": tokens}`` from :func:`cache_visual_tokens` or ``{"features": feats}``.
    """
    out = []
    for p in pairs:
        sides = {}
        for side in ("chosen", "rejected"):
            ex = mllm.encode_example(prompts[p["id"]], p[side])
            ex.update(visual[p["id"]])
            sides[side] = ex
        out.append({**sides, "id": p["id"]})
    return out


# ------------------------------------------------------------------------------ what DPO can exploit, measured
HEDGES = re.compile(r"\b(may|might|possibl[ey]|probabl[ey]|cannot be excluded|can ?not be ruled out|suspicious for|"
                    r"suggest(s|ive|ing)?|likely|questionable|versus|vs\.?|clinical correlation)\b", re.IGNORECASE)


def report_lengths(texts: Sequence[str]) -> np.ndarray:
    """Words per report: (N,)."""
    return np.array([len(t.split()) for t in texts], dtype=float)


def hedge_rate(texts: Sequence[str]) -> float:
    """Share of reports with at least one hedging phrase ("may", "cannot be excluded", "likely", ...)."""
    return float(np.mean([bool(HEDGES.search(t)) for t in texts])) if texts else float("nan")
