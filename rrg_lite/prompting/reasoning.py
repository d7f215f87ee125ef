"""μ²-LLM's CT Report Reasoning Synthesis: five LLM stages from a report to VQA pairs and a reasoning narrative.

For each study (a record with ``study_id``, ``report`` and optionally ``image``)::

    1 questions  report ──────────────────────────► numbered list ──(QUESTION_RE)──► questions
    2 answer     report + question ───────────────► "Thinking: …" / "Answer: …" ──► (thinking, answer)
    3 filter     report + question + answer ──────► "Yes" / "No"        } a tuple survives only if the LLM says
                 heuristics on thinking + answer: non-English, vacuous,  } "Yes" AND no heuristic fires
                 contradiction (a change over time the report cannot know)
    4 refine     thinking ────────────────────────► the same thinking, as if read from the image
    5 synthesis  all surviving (question, thinking, answer) of a study ► "report thinking" narrative with
                 Findings / Impression / Follow-up Rationale sections

Each stage writes ``<out_dir>/stage<k>_<name>.jsonl`` (every record with its provenance: stage, model, prompt
version, cached-call key), rejected items go to ``rejected.jsonl`` with their stage and reason, and the counts go to
``stats.json``. The final dataset is ``reasoning.jsonl``: one line per study with its image, report, VQA pairs and
report thinking. All calls go through an :class:`~rrg_lite.prompting.runner.LLMRunner`, so a killed run restarted
with the same cache replays its finished calls and writes the same files.

Command line (full scale against any OpenAI-compatible server)::

    python -m rrg_lite.prompting.reasoning --records reports.jsonl --out out/ \\
        --base-url http://localhost:8000/v1 --model meta-llama/Llama-3.1-8B-Instruct --concurrency 16
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..data.atomic import write_text_atomic
from .cache import CacheLockedError
from .jsonl import provenance, read_jsonl, write_jsonl
from .parsing import MalformedReply, extract_questions, extract_thinking_answer, parse_yes_no
from .runner import CallFailure, LLMRunner
from .templates import TEMPLATES, PromptTemplate

__all__ = ["Mu2ReasoningPipeline", "heuristic_rejections", "is_non_english", "is_vacuous", "contradiction",
           "parse_report_thinking", "records_from_manifest", "STAGES"]

STAGES = ("questions", "answer", "filter", "refine", "report_thinking")

_EN_STOPWORDS = frozenset(
    "the a an of in is are was were and or with to it its this that there no not on at for as be by which from "
    "i we my me so but than then these those has have had can may seen shows show".split())
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def is_non_english(text: str, min_stopword_share: float = 0.12, max_non_ascii: float = 0.03) -> bool:
    """A cheap language check: English prose has many English function words and few non-ASCII letters."""
    words = _WORD.findall(text.lower())
    if not words:
        return False
    letters = "".join(words)
    non_ascii = sum(ord(c) > 127 for c in letters) / len(letters)
    share = sum(w in _EN_STOPWORDS for w in words) / len(words)
    return non_ascii > max_non_ascii or (len(words) >= 5 and share < min_stopword_share)


def is_vacuous(thinking: str, context: str, min_words: int = 8) -> bool:
    """Too short to reason, or sharing no content word with the report and question it is about."""
    words = _WORD.findall(thinking.lower())
    if len(words) < min_words:
        return True
    content = {w for w in words if len(w) > 3 and w not in _EN_STOPWORDS}
    context_words = {w for w in _WORD.findall(context.lower()) if len(w) > 3}
    return not (content & context_words)


_CHANGE_CLAIM = re.compile(r"\b(improv\w*|worsen\w*|resolv\w*|decreas\w*|increas\w* in size|progress\w*|regress\w*|"
                           r"unchanged|stable|compared (with|to) the prior)\b", re.I)
_HAS_PRIOR = re.compile(r"\b(prior|previous|compared|comparison|since|interval\w*|unchanged|stable)\b", re.I)
_IMPROVED = re.compile(r"\b(improv\w*|resolv\w*|decreas\w*|unchanged|stable|regress\w*)\b", re.I)


_ADJECTIVES = frozenset("small large tiny mild moderate severe left right focal bilateral".split())


def contradiction(text: str, report: str) -> str | None:
    """Domain rules for pathophysiologic contradictions; returns the rule that fired, or ``None``.

    - ``change_without_prior``: the text claims a change over time but the report compares with nothing;
    - ``new_but_improved``: the report calls a finding new (first detected) and the text calls it improved/stable.
    """
    claim = _CHANGE_CLAIM.search(text)
    if claim and not _HAS_PRIOR.search(report):
        return "change_without_prior"
    for new in re.finditer(r"\bnew(?:ly)?((?: [\w-]+){1,4})", report, re.I):
        # the finding's noun: the first real word after "new" ("a new 8 mm nodule" -> "nodule")
        words = [w for w in new.group(1).lower().split() if w.isalpha() and len(w) > 3 and w not in _ADJECTIVES]
        if not words:
            continue
        noun = words[0]
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            if noun in sentence.lower() and _IMPROVED.search(sentence):
                return "new_but_improved"
    return None


def heuristic_rejections(thinking: str, answer: str, report: str, question: str = "") -> list[str]:
    """The stage-3 heuristics that reject a tuple (empty list = keep)."""
    reasons = []
    if is_non_english(thinking) or is_non_english(answer):
        reasons.append("non_english")
    if is_vacuous(thinking, report + " " + question):
        reasons.append("vacuous")
    rule = contradiction(thinking + " " + answer, report)
    if rule:
        reasons.append(f"contradiction:{rule}")
    return reasons


_SECTIONS = ("Findings Rationale:", "Impression Rationale:", "Follow-up Rationale:")


def parse_report_thinking(reply: str) -> str:
    """Stage-5 rule: non-empty, with the three rationale sections in order."""
    text = (reply or "").strip()
    if not text:
        raise MalformedReply("empty", "the reply is empty")
    positions = [text.find(s) for s in _SECTIONS]
    if min(positions) < 0 or positions != sorted(positions):
        missing = [s for s, p in zip(_SECTIONS, positions) if p < 0]
        raise MalformedReply("missing_sections", f"sections missing or out of order: {missing or 'order'}")
    return text


def _non_empty(reply: str) -> str:
    text = (reply or "").strip()
    if not text:
        raise MalformedReply("empty", "the reply is empty")
    return text


def records_from_manifest(study_records, sections=("findings", "impression")) -> list[dict]:
    """Pipeline records (``study_id``, ``report``, ``image``) from :class:`rrg_lite.data.manifest.StudyRecord`s
    (CT-RATE, AMOS-MM, ... read by :mod:`rrg_lite.data.formats`); studies without report text are skipped."""
    out = []
    for r in study_records:
        text = "\n\n".join(f"{s.upper()}: {r.report[s]}" for s in sections if r.report.get(s))
        if text.strip():
            image = r.images_of()[0].path if r.images_of() else None
            out.append({"study_id": r.study_id, "report": text, "image": image})
    return out


class Mu2ReasoningPipeline:
    """Runs the five stages over records and writes JSONL outputs with provenance into ``out_dir``.

    ``request_kwargs`` (``model``, ``temperature``, ``top_p``, ``max_tokens``, ``seed``) go into every request;
    ``templates`` maps stage name → :class:`~rrg_lite.prompting.templates.PromptTemplate` to swap wording (bump the
    version). ``max_questions`` caps questions per report (after extraction, counted).
    """

    def __init__(self, runner: LLMRunner, out_dir: str | Path, *, templates: Mapping[str, PromptTemplate] | None = None,
                 request_kwargs: Mapping[str, Any] | None = None, max_questions: int | None = None,
                 require_question_mark: bool = False):
        self.runner = runner
        self.out_dir = Path(out_dir)
        self.templates = {s: TEMPLATES[f"mu2.{s}"] for s in STAGES}
        self.templates.update(templates or {})
        self.request_kwargs = dict(request_kwargs or {})
        self.max_questions = max_questions
        self.require_question_mark = require_question_mark

    def _request(self, stage: str, **fields):
        return self.templates[stage].request(**self.request_kwargs, **fields)

    def _prov(self, stage: str, completion) -> dict:
        return provenance(stage, self.runner.model_name, self.templates[stage].id, completion.key)

    def run(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Run all stages; returns (and writes) the statistics."""
        ids = [str(r.get("study_id", "")) for r in records]
        if len(set(ids)) != len(ids) or "" in ids:
            raise ValueError("every record needs a unique, non-empty 'study_id'")
        for r in records:
            if not str(r.get("report", "")).strip():
                raise ValueError(f"record {r.get('study_id')!r} has an empty report")
        by_id = {str(r["study_id"]): r for r in records}
        rejected: list[dict] = []
        stats: dict[str, Any] = {"studies": len(records)}

        def reject(stage, study_id, reason, **extra):
            rejected.append({"stage": stage, "study_id": study_id, "reason": reason, **extra})

        # 1. questions -------------------------------------------------------------------------------------------
        parse_q = lambda text: extract_questions(text, self.require_question_mark)  # noqa: E731
        results = self.runner.map([self._request("questions", report=r["report"]) for r in records], parse_q,
                                  desc="1 questions")
        questions, per_report, capped = [], [], 0
        for record, res in zip(records, results):
            sid = str(record["study_id"])
            if isinstance(res, CallFailure):
                reject("questions", sid, res.reason)
                continue
            qs = res.parsed
            if self.max_questions is not None and len(qs) > self.max_questions:
                capped += len(qs) - self.max_questions
                qs = qs[: self.max_questions]
            per_report.append(len(qs))
            for i, q in enumerate(qs):
                questions.append({"study_id": sid, "question_index": i, "question": q,
                                  "provenance": self._prov("questions", res)})
        write_jsonl(self.out_dir / "stage1_questions.jsonl", questions)
        stats["questions"] = {"reports_with_questions": len(per_report), "questions": len(questions),
                              "per_report_mean": statistics.fmean(per_report) if per_report else 0.0,
                              "per_report_min": min(per_report, default=0),
                              "per_report_max": max(per_report, default=0), "dropped_by_cap": capped}

        # 2. thinking + answer -----------------------------------------------------------------------------------
        results = self.runner.map([self._request("answer", report=by_id[q["study_id"]]["report"],
                                                 question=q["question"]) for q in questions],
                                  extract_thinking_answer, desc="2 answers")
        answered = []
        for q, res in zip(questions, results):
            if isinstance(res, CallFailure):
                reject("answer", q["study_id"], res.reason, question=q["question"])
                continue
            thinking, answer = res.parsed
            answered.append({**q, "thinking": thinking, "answer": answer, "provenance": self._prov("answer", res)})
        write_jsonl(self.out_dir / "stage2_answers.jsonl", answered)
        stats["answer"] = {"in": len(questions), "out": len(answered)}

        # 3. filter: LLM yes/no + heuristics --------------------------------------------------------------------
        results = self.runner.map([self._request("filter", report=by_id[a["study_id"]]["report"],
                                                 question=a["question"], answer=a["answer"]) for a in answered],
                                  parse_yes_no, desc="3 filter")
        accepted, reasons = [], Counter()
        for a, res in zip(answered, results):
            why = []
            if isinstance(res, CallFailure):
                why.append(f"filter_call:{res.reason}")
            elif not res.parsed:
                why.append("llm_no")
            why += heuristic_rejections(a["thinking"], a["answer"], by_id[a["study_id"]]["report"], a["question"])
            if why:
                reasons.update(why)
                reject("filter", a["study_id"], why[0], all_reasons=why, question=a["question"], answer=a["answer"])
                continue
            accepted.append({**a, "provenance": self._prov("filter", res)})
        write_jsonl(self.out_dir / "stage3_filtered.jsonl", accepted)
        stats["filter"] = {"in": len(answered), "out": len(accepted), "reasons": dict(sorted(reasons.items()))}

        # 4. refine thinking ------------------------------------------------------------------------------------
        results = self.runner.map([self._request("refine", narrative=a["thinking"]) for a in accepted], _non_empty,
                                  desc="4 refine")
        refined, still_report = [], 0
        for a, res in zip(accepted, results):
            if isinstance(res, CallFailure):
                reject("refine", a["study_id"], res.reason, question=a["question"])
                continue
            still_report += bool(re.search(r"\breport\b", res.parsed, re.I))
            refined.append({**a, "thinking_raw": a["thinking"], "thinking": res.parsed,
                            "provenance": self._prov("refine", res)})
        write_jsonl(self.out_dir / "stage4_refined.jsonl", refined)
        stats["refine"] = {"in": len(accepted), "out": len(refined), "still_mentions_report": still_report}

        # 5. report thinking ------------------------------------------------------------------------------------
        per_study: dict[str, list[dict]] = {}
        for a in refined:
            per_study.setdefault(a["study_id"], []).append(a)
        order = [sid for sid in by_id if sid in per_study]
        for sid in by_id:
            if sid not in per_study and not any(r["study_id"] == sid and r["stage"] == "questions" for r in rejected):
                reject("report_thinking", sid, "no_accepted_qa")
        thinking_before = ["\n\n".join(f"Question: {a['question']}\nThinking: {a['thinking']}\nAnswer: {a['answer']}"
                                       for a in per_study[sid]) for sid in order]
        results = self.runner.map([self._request("report_thinking", thinking_before=t) for t in thinking_before],
                                  parse_report_thinking, desc="5 report thinking")
        final = []
        for sid, res in zip(order, results):
            if isinstance(res, CallFailure):
                reject("report_thinking", sid, res.reason)
                continue
            record = by_id[sid]
            final.append({
                "study_id": sid, "image": record.get("image"), "report": record["report"],
                "qa": [{"question": a["question"], "thinking": a["thinking"], "answer": a["answer"]}
                       for a in per_study[sid]],
                "report_thinking": res.parsed,
                "provenance": {**self._prov("report_thinking", res),
                               "prompts": {s: self.templates[s].id for s in STAGES}},
            })
        write_jsonl(self.out_dir / "reasoning.jsonl", final)
        stats["report_thinking"] = {"in": len(order), "out": len(final)}

        stats["rejected_by_stage"] = dict(Counter(r["stage"] for r in rejected))
        stats["llm"] = dict(sorted(self.runner.stats.items()))
        stats["model"] = self.runner.model_name
        write_jsonl(self.out_dir / "rejected.jsonl", rejected)
        write_text_atomic(self.out_dir / "stats.json", json.dumps(stats, indent=2, sort_keys=True))
        return stats


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (2: the request cache stayed locked by another process)."""
    from .cache import RequestCache
    from .clients import OpenAICompatibleClient

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", required=True, help="JSONL with study_id, report (and image) per line")
    ap.add_argument("--out", required=True)
    ap.add_argument("--base-url", required=True, help="OpenAI-compatible API root, e.g. http://localhost:8000/v1")
    ap.add_argument("--model", required=True)
    ap.add_argument("--api-key-env", default=None, help="name of the environment variable holding the API key")
    ap.add_argument("--cache", default=None, help="SQLite cache (default: <out>/llm_cache.sqlite)")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--retries", type=int, default=4)
    ap.add_argument("--backoff", type=float, default=0.5, help="first retry waits this long (s), then doubles")
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--max-questions", type=int, default=None)
    args = ap.parse_args(argv)
    client = OpenAICompatibleClient(args.base_url, model=args.model, api_key_env=args.api_key_env)
    cache_path = Path(args.cache or Path(args.out) / "llm_cache.sqlite")
    cache = RequestCache(cache_path)
    runner = LLMRunner(client, cache, max_concurrency=args.concurrency, timeout_s=args.timeout,
                       max_retries=args.retries, backoff_s=args.backoff)
    pipeline = Mu2ReasoningPipeline(runner, args.out, max_questions=args.max_questions,
                                    request_kwargs={"model": args.model, "temperature": args.temperature})
    try:
        stats = pipeline.run(read_jsonl(args.records))
    except CacheLockedError as err:
        # Another process holds the SQLite cache; the replies it blocked were spilled to a side file (not lost),
        # so the fix is to free the cache and rerun, not to read a traceback. Its lock ends with that process:
        # do not delete the cache's -wal file, which holds committed replies.
        saved = f"; this run's replies were saved to {err.unsaved_path} and reused on rerun" if err.unsaved_path else ""
        print(f"rrg_lite.prompting.reasoning: error: the request cache {cache_path} is locked by another process; "
              f"wait for the other run to finish (or stop the stale process holding the lock), then rerun{saved}",
              file=sys.stderr)
        return 2
    print(json.dumps({k: stats[k] for k in ("studies", "questions", "filter", "report_thinking")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
