"""Rewriting reports with an LLM: μ²'s paraphrasing and translation, LLM-RG4's judge → rewrite loop.

- :func:`paraphrase_reports` (μ² A.1): restyle a report after a few example reports without changing its meaning.
  A ``labeler`` (report text → labels, e.g. the CT-RATE or CheXpert labeler of :mod:`rrg_lite.metrics`) checks that
  meaning survived: a paraphrase whose labels differ from the original's is discarded and counted.
- :func:`translate_reports` (μ² A.3): translate between two languages.
- :func:`rg4_rewrite_reports` (LLM-RG4): make a report say only what a given input scenario supports
  (e.g. "frontal view only, no prior": no comparisons, no lateral-view statements, no communications). Each round a
  *judge* lists the unsupported sentences — the LLM with the ``rg4.judge`` prompt, or any cheap callable such as
  a trained classifier (LLM-RG4's DiscBERT) — and the LLM rewrites with the problems found so far in its prompt
  (the paper's "dynamic prompt"). At most ``max_rounds`` rounds (the paper uses 3); a report still judged
  unsupported, or whose labels changed, is discarded.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Callable, Hashable, Mapping, Sequence

from .jsonl import provenance, write_jsonl
from .parsing import MalformedReply
from .runner import CallFailure, LLMRunner
from .templates import TEMPLATES

__all__ = ["paraphrase_reports", "translate_reports", "rg4_rewrite_reports", "parse_judgment", "rg4_inputs"]

Labeler = Callable[[str], Hashable]


def _text(reply: str) -> str:
    text = (reply or "").strip().strip("'").strip()
    if not text:
        raise MalformedReply("empty", "the reply is empty")
    return text


def rg4_inputs(lateral: bool, prior: bool) -> str:
    """LLM-RG4's four scenarios in words: sn (frontal), mn (+ lateral), sw (+ prior report), mw (both)."""
    views = "frontal and lateral views" if lateral else "frontal view only, no lateral view"
    return f"{views}; {'the prior report' if prior else 'no prior report'}"


def parse_judgment(reply: str) -> list[str]:
    """``"OK"`` → no problems; ``"- sentence"`` lines → the unsupported sentences."""
    text = (reply or "").strip()
    if text.rstrip(".").upper() == "OK":
        return []
    items = [line[2:].strip() for line in text.splitlines() if line.startswith("- ") and line[2:].strip()]
    if not items:
        raise MalformedReply("not_judgment" if text else "empty", f"expected 'OK' or '- ' lines, got {text[:80]!r}")
    return items


def paraphrase_reports(runner: LLMRunner, records: Sequence[Mapping[str, Any]], examples: Sequence[str],
                       out_dir: str | Path, *, labeler: Labeler | None = None,
                       request_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    template = TEMPLATES["mu2.rewrite"]
    shots = "\n\n".join(f"Example {i}:\n'''\n{e}\n'''" for i, e in enumerate(examples, 1))
    results = runner.map([template.request(examples=shots, report=r["report"], **dict(request_kwargs or {}))
                          for r in records], _text, desc="paraphrase")
    kept, rejected = [], []
    for record, res in zip(records, results):
        sid = str(record["study_id"])
        if isinstance(res, CallFailure):
            rejected.append({"study_id": sid, "reason": res.reason})
        elif labeler is not None and labeler(record["report"]) != labeler(res.parsed):
            rejected.append({"study_id": sid, "reason": "labels_changed", "paraphrase": res.parsed})
        else:
            kept.append({"study_id": sid, "report": record["report"], "paraphrase": res.parsed,
                         "provenance": provenance("paraphrase", runner.model_name, template.id, res.key)})
    write_jsonl(Path(out_dir) / "paraphrased.jsonl", kept)
    write_jsonl(Path(out_dir) / "paraphrase_rejected.jsonl", rejected)
    return {"in": len(records), "out": len(kept), "rejected": dict(Counter(r["reason"] for r in rejected))}


def translate_reports(runner: LLMRunner, records: Sequence[Mapping[str, Any]], source_lang: str, target_lang: str,
                      out_dir: str | Path, *, request_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    template = TEMPLATES["mu2.translate"]
    results = runner.map([template.request(source_lang=source_lang, target_lang=target_lang, text=r["report"],
                                           **dict(request_kwargs or {})) for r in records], _text, desc="translate")
    kept, rejected = [], []
    for record, res in zip(records, results):
        if isinstance(res, CallFailure):
            rejected.append({"study_id": str(record["study_id"]), "reason": res.reason})
            continue
        kept.append({"study_id": str(record["study_id"]), "source_lang": source_lang, "target_lang": target_lang,
                     "text": res.parsed, "provenance": provenance("translate", runner.model_name, template.id, res.key)})
    write_jsonl(Path(out_dir) / f"translated_{target_lang.lower()}.jsonl", kept)
    return {"in": len(records), "out": len(kept), "rejected": dict(Counter(r["reason"] for r in rejected))}


def rg4_rewrite_reports(runner: LLMRunner, records: Sequence[Mapping[str, Any]], out_dir: str | Path, *,
                        labeler: Labeler | None = None, judge: Callable[[str, str], list[str]] | None = None,
                        max_rounds: int = 3, request_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Each record needs ``study_id``, ``report`` and ``inputs`` (a description of the scenario's inputs)."""
    kwargs = dict(request_kwargs or {})
    judge_t, rewrite_t = TEMPLATES["rg4.judge"], TEMPLATES["rg4.rewrite"]
    state = {str(r["study_id"]): {"record": r, "text": r["report"], "history": [], "rounds": 0} for r in records}
    active, rejected, done = list(state), [], []

    def judge_all(ids):
        if judge is not None:
            return {i: judge(state[i]["text"], state[i]["record"]["inputs"]) for i in ids}
        res = runner.map([judge_t.request(inputs=state[i]["record"]["inputs"], report=state[i]["text"], **kwargs)
                          for i in ids], parse_judgment, desc="RG4 judge")
        return {i: r if isinstance(r, CallFailure) else r.parsed for i, r in zip(ids, res)}

    for round_ in range(max_rounds + 1):
        if not active:
            break
        verdicts = judge_all(active)
        to_rewrite = []
        for i in active:
            v = verdicts[i]
            if isinstance(v, CallFailure):
                rejected.append({"study_id": i, "reason": f"judge:{v.reason}"})
            elif not v:
                done.append(i)
            elif round_ == max_rounds:
                rejected.append({"study_id": i, "reason": "unresolved", "problems": v})
            else:
                state[i]["history"].extend(v)
                to_rewrite.append(i)
        if not to_rewrite:
            break
        res = runner.map([rewrite_t.request(inputs=state[i]["record"]["inputs"], report=state[i]["text"],
                                            problems="\n".join(f"- {p}" for p in state[i]["history"]), **kwargs)
                          for i in to_rewrite], _text, desc=f"RG4 rewrite {round_ + 1}")
        active = []
        for i, r in zip(to_rewrite, res):
            if isinstance(r, CallFailure):
                rejected.append({"study_id": i, "reason": f"rewrite:{r.reason}"})
                continue
            state[i].update(text=r.parsed, rounds=state[i]["rounds"] + 1, key=r.key)
            active.append(i)

    kept = []
    for i in state:  # input order
        if i not in done:
            continue
        s = state[i]
        if labeler is not None and labeler(s["record"]["report"]) != labeler(s["text"]):
            rejected.append({"study_id": i, "reason": "labels_changed"})
            continue
        kept.append({"study_id": i, "inputs": s["record"]["inputs"], "report": s["record"]["report"],
                     "rewritten": s["text"], "rounds": s["rounds"], "removed": s["history"],
                     "provenance": provenance("rg4_rewrite", runner.model_name, rewrite_t.id, s.get("key"))})
    order = {i: n for n, i in enumerate(state)}
    rejected.sort(key=lambda r: order[r["study_id"]])
    write_jsonl(Path(out_dir) / "rg4_rewritten.jsonl", kept)
    write_jsonl(Path(out_dir) / "rg4_rejected.jsonl", rejected)
    return {"in": len(records), "out": len(kept), "rounds": dict(Counter(k["rounds"] for k in kept)),
            "rejected": dict(Counter(r["reason"] for r in rejected))}
