"""Natural-language-generation metrics, computed by the field's own libraries.

* BLEU-1..4, METEOR 1.5, ROUGE-L and CIDEr come from **pycocoevalcap** (the MS-COCO caption code that R2Gen
  and most RRG papers call). BLEU is *corpus-level* (n-gram counts summed over all reports, closest
  reference length for the brevity penalty); ROUGE-L is the mean over reports of an LCS F-measure with
  beta = 1.2; CIDEr is pycocoevalcap's CIDEr (TF-IDF n-grams 1-4 with document frequencies from the
  references of the evaluated set, Gaussian length penalty sigma = 6, clipped counts, x10 — the variant
  often called CIDEr-D); METEOR is the METEOR 1.5 jar (``-l en -norm``), whose corpus score aggregates
  statistics over all segments. The scorers are called directly on normalised text (see
  :mod:`rrg_lite.metrics.text`), not through PTBTokenizer.
* ROUGE-1/2/L from Google's **rouge-score** package with the Porter stemmer on (as RadEval uses it):
  per-report F-measure, averaged.

This module adds only plumbing (input checks, one JVM per call, per-report numbers and sufficient statistics
for resampling); every number is the library's. ``tests/test_metrics_nlg.py`` checks equality with direct
library calls to 1e-9 on 500+ report pairs.
"""
from __future__ import annotations

import math
import re
import shutil
import subprocess
import threading
import warnings
from typing import Sequence

import numpy as np

from .result import MetricResult
from .text import check_pairs, normalize

__all__ = ["JavaNotFoundError", "MetricTimeoutError", "java_available", "bleu", "bleu_from_stats", "rouge_l", "cider",
           "meteor", "METEOR_MAX_WORDS", "rouge_score_f", "coco_metrics"]


class JavaNotFoundError(RuntimeError):
    """METEOR needs a Java runtime (``java`` on PATH); the other metrics do not."""


class MetricTimeoutError(RuntimeError):
    """A metric (METEOR's Java process) did not finish within its time limit; it was stopped."""


def java_available() -> bool:
    """True when a working ``java`` is on PATH."""
    exe = shutil.which("java")
    if exe is None:
        return False
    try:
        return subprocess.run([exe, "-version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _coco_dicts(preds: Sequence[str], refs: Sequence[str]) -> tuple[dict, dict]:
    """pycocoevalcap's input format: {id: [reference]} and {id: [hypothesis]}."""
    gts = {i: [r] for i, r in enumerate(refs)}
    res = {i: [p] for i, p in enumerate(preds)}
    return gts, res


def _prepare(preds, refs, normalize_as: str | None, on_none: str):
    p, r, notes = check_pairs(preds, refs, on_none=on_none)
    if normalize_as is not None:
        p, r = normalize(p, normalize_as), normalize(r, normalize_as)
    return p, r, notes


def _norm_name(normalize_as: str | None) -> str:
    return "text as given" if normalize_as is None else f"'{normalize_as}' normalisation"


# ----------------------------------------------------------------------------------------------------- BLEU
def bleu(preds, refs, normalize_as: str | None = "r2gen", on_none: str = "error") -> dict[str, MetricResult]:
    """Corpus BLEU-1..4 exactly as ``pycocoevalcap.bleu.Bleu(4)`` computes it.

    Returns ``{"BLEU-1": ..., "BLEU-4": ...}``; each result's ``per_example`` holds pycocoevalcap's
    per-report BLEU-n (smoothed with its tiny/small constants) and ``extra["stats"]`` the (N, 10) sufficient
    statistics ``[testlen, reflen, guess1..4, correct1..4]`` from which :func:`bleu_from_stats` recomputes
    the corpus score on any resample.
    """
    from pycocoevalcap.bleu.bleu_scorer import BleuScorer

    p, r, notes = _prepare(preds, refs, normalize_as, on_none)
    if not p:
        raise ValueError("BLEU needs at least one report pair, got empty lists")
    scorer = BleuScorer(n=4)
    for hyp, ref in zip(p, r):  # the same accumulation that pycocoevalcap.bleu.Bleu.compute_score does
        scorer += (hyp, [ref])
    corpus, per = scorer.compute_score(option="closest", verbose=0)
    # the reference length pycocoevalcap's "closest" option picks for each report
    closest = [min((abs(l - c["testlen"]), l) for l in c["reflen"])[1] for c in scorer.ctest]
    stats = np.array([[c["testlen"], rl, *c["guess"], *c["correct"]] for c, rl in zip(scorer.ctest, closest)],
                     dtype=np.int64)
    conv = (f"pycocoevalcap Bleu(4): corpus-level (n-gram counts summed over reports), closest reference length, "
            f"whitespace tokens after {_norm_name(normalize_as)}")
    return {f"BLEU-{k + 1}": MetricResult(f"BLEU-{k + 1}", float(corpus[k]), conv, np.asarray(per[k], dtype=float),
                                          len(p), list(notes), {"stats": stats, "order": k + 1})
            for k in range(4)}


def bleu_from_stats(stats: np.ndarray, order: int = 4) -> float:
    """Corpus BLEU-``order`` from summed sufficient statistics (same arithmetic as pycocoevalcap).

    Args:
        stats: (N, 10) int array ``[testlen, reflen, guess1..4, correct1..4]`` (rows may repeat: a bootstrap
            resample).
    """
    small, tiny = 1e-9, 1e-15  # pycocoevalcap's smoothing constants
    tot = stats.sum(axis=0)
    testlen, reflen, guess, correct = tot[0], tot[1], tot[2:6], tot[6:10]
    score = 1.0
    for k in range(order):
        score *= float(correct[k] + tiny) / (guess[k] + small)
    score = score ** (1.0 / order)
    ratio = (testlen + tiny) / (reflen + small)
    if ratio < 1:
        score *= math.exp(1 - 1 / ratio)
    return float(score)


# -------------------------------------------------------------------------------------------------- ROUGE-L
def rouge_l(preds, refs, normalize_as: str | None = "r2gen", on_none: str = "error") -> MetricResult:
    """pycocoevalcap ROUGE-L: LCS-based F-measure (beta = 1.2) per report, averaged."""
    from pycocoevalcap.rouge.rouge import Rouge

    p, r, notes = _prepare(preds, refs, normalize_as, on_none)
    gts, res = _coco_dicts(p, r)
    score, scores = Rouge().compute_score(gts, res)
    conv = f"pycocoevalcap Rouge: LCS F-measure beta=1.2 per report, mean; tokens split on ' ' after {_norm_name(normalize_as)}"
    return MetricResult("ROUGE-L", float(score), conv, np.asarray(scores, dtype=float), len(p), notes)


# ---------------------------------------------------------------------------------------------------- CIDEr
def cider(preds, refs, normalize_as: str | None = "r2gen", on_none: str = "error") -> MetricResult:
    """pycocoevalcap CIDEr (document frequencies from this set's references; see module docstring)."""
    from pycocoevalcap.cider.cider import Cider

    p, r, notes = _prepare(preds, refs, normalize_as, on_none)
    if not p:
        raise ValueError("CIDEr needs at least one report pair, got empty lists")
    conv = (f"pycocoevalcap Cider: n=1..4, sigma=6, idf from the evaluated references (corpus-dependent), "
            f"x10, mean over reports; {_norm_name(normalize_as)}")
    notes = list(notes)
    if not any(t.split() for t in r):
        # pycocoevalcap raises "max() arg is an empty sequence": no reference n-gram to take a frequency of
        notes.append("CIDEr: every reference is empty, so there is no n-gram to weight; 0 for every report")
        warnings.warn(notes[-1], RuntimeWarning, stacklevel=2)
        return MetricResult("CIDEr", 0.0, conv, np.zeros(len(p)), len(p), notes)
    gts, res = _coco_dicts(p, r)
    score, scores = Cider().compute_score(gts, res)
    if len(set(r)) == 1:
        # CIDEr-D's IDF is log(N / df(g)); with one (distinct) reference every n-gram has df = N, so IDF = 0
        notes.append(f"CIDEr is degenerate here: {'one report pair' if len(p) == 1 else 'all references are the same'}"
                     f" gives every n-gram an IDF of log(1) = 0, so the score is 0 whatever the prediction (even a "
                     f"perfect copy). CIDEr needs a corpus of different references: score many reports at once")
        warnings.warn(notes[-1], RuntimeWarning, stacklevel=2)
    return MetricResult("CIDEr", float(score), conv, np.asarray(scores, dtype=float), len(p), notes)


# --------------------------------------------------------------------------------------------------- METEOR
#: METEOR's alignment search grows fast with length (a 30k-character report ran for more than 6 minutes); longer
#: texts are cut to this many words, with a note. Radiology reports are rarely above 500 words.
METEOR_MAX_WORDS = 1000


def _meteor_safe(texts: list[str], what: str, max_words: int | None, notes: list[str]) -> list[str]:
    """Texts the METEOR jar's line protocol can carry: no '|||' (its field separator), no newlines; capped length."""
    out, n_sep, n_cut = [], 0, 0
    for t in texts:
        if "|||" in t or "\n" in t or "\r" in t:
            t = " ".join(re.sub(r"\|{3,}", " ", t).split())
            n_sep += 1
        if max_words is not None:
            words = t.split(" ")
            if len(words) > max_words:
                t = " ".join(words[:max_words])
                n_cut += 1
        out.append(t)
    if n_sep:
        notes.append(f"METEOR: {n_sep} {what} contained '|||' or line breaks, which the METEOR jar uses as separators; "
                     f"they were replaced by spaces for METEOR only")
    if n_cut:
        notes.append(f"METEOR: {n_cut} {what} longer than {max_words} words were cut to their first {max_words} words "
                     f"(METEOR's alignment time explodes on very long texts; raise max_words to score them whole)")
    return out


def meteor(preds, refs, normalize_as: str | None = "r2gen", on_none: str = "error",
           timeout_s: float | None = 300.0, max_words: int | None = METEOR_MAX_WORDS) -> MetricResult:
    """METEOR 1.5 through pycocoevalcap's jar wrapper: ONE Java process for the whole call.

    pycocoevalcap's ``Meteor()`` starts a JVM in its constructor; we build one per call, score all pairs in a
    single ``compute_score`` and stop the process before returning (not left to the garbage collector).

    Guards (each leaves a note; normal reports are scored exactly as pycocoevalcap scores them):
    - ``|||`` (the jar's field separator: one used to abort the call) and line breaks become spaces;
    - texts longer than ``max_words`` words are cut (``None``: no cap);
    - the Java process is stopped after ``timeout_s`` seconds (``None``: no limit) and
      :class:`MetricTimeoutError` says so.

    Raises:
        JavaNotFoundError: no ``java`` on PATH (other metrics still work; ``score_reports`` records the skip).
        MetricTimeoutError: the jar did not finish within ``timeout_s``.
    """
    from pycocoevalcap.meteor.meteor import Meteor

    p, r, notes = _prepare(preds, refs, normalize_as, on_none)
    if not p:
        raise ValueError("METEOR needs at least one report pair, got empty lists")
    notes = list(notes)
    p = _meteor_safe(p, "predictions", max_words, notes)
    r = _meteor_safe(r, "references", max_words, notes)
    if not java_available():
        raise JavaNotFoundError("METEOR needs Java (the METEOR 1.5 jar shipped with pycocoevalcap); no working "
                                "'java' on PATH. Install a JRE (e.g. apt-get install default-jre-headless) or skip "
                                "METEOR; BLEU, ROUGE, CIDEr and BERTScore do not need Java.")
    gts, res = _coco_dicts(p, r)
    scorer = Meteor()
    timed_out = threading.Event()

    def stop():   # from a timer thread: killing the JVM makes compute_score's readline return b''
        timed_out.set()
        scorer.meteor_p.kill()

    timer = threading.Timer(timeout_s, stop) if timeout_s is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        score, scores = scorer.compute_score(gts, res)
    except (ValueError, OSError) as err:  # the JVM died (or was stopped): readline() gave b'' or the pipe broke
        if timed_out.is_set():
            longest = max(len(t.split()) for t in p + r)
            raise MetricTimeoutError(f"METEOR did not finish within {timeout_s:g} s on {len(p)} report pairs (longest "
                                     f"text {longest} words) and was stopped; pass a larger timeout_s, a smaller "
                                     f"max_words, or leave METEOR out") from None
        proc = scorer.meteor_p
        msg = proc.stderr.read().decode(errors="replace")[-2000:] if proc.poll() is not None else ""
        raise RuntimeError(f"the METEOR Java process failed: {err}; stderr: {msg}") from None
    finally:
        if timer is not None:
            timer.cancel()
        _stop_meteor(scorer)
    conv = (f"METEOR 1.5 jar via pycocoevalcap (-l en -norm), corpus score from aggregated statistics, "
            f"one JVM per call; {_norm_name(normalize_as)}")
    return MetricResult("METEOR", float(score), conv, np.asarray(scores, dtype=float), len(p), notes)


def _stop_meteor(scorer) -> None:
    proc = scorer.meteor_p
    if scorer.lock.locked():
        # pycocoevalcap's compute_score leaves its lock held when it raises (no try/finally); its __del__ would then
        # block forever. We are its only user, so release it.
        scorer.lock.release()
    with scorer.lock:
        try:
            proc.stdin.close()
        except OSError:
            pass
        proc.kill()
        proc.wait()
    # pycocoevalcap's __del__ would close and kill again; make it harmless
    scorer.meteor_p = _DeadProcess()


class _DeadProcess:
    class _Pipe:
        def close(self):
            pass

    stdin = _Pipe()

    def kill(self):
        pass

    def wait(self):
        return 0


# ------------------------------------------------------------------------------------------ rouge-score F1s
class _UnicodeTokenizer:
    """rouge-score's default tokenizer keeps only [a-z0-9]; this one keeps any Unicode word (for Vietnamese)."""

    _word = re.compile(r"\w+", re.UNICODE)

    def tokenize(self, text: str) -> list[str]:
        return self._word.findall(text.lower())


def rouge_score_f(preds, refs, types: Sequence[str] = ("rouge1", "rouge2", "rougeL"), use_stemmer: bool = True,
                  unicode_tokens: bool = False, on_none: str = "error") -> dict[str, MetricResult]:
    """ROUGE-n / ROUGE-L F-measures from Google's ``rouge-score`` (Porter stemmer on by default, as RadEval).

    Text is passed as given: rouge-score lower-cases and keeps only ``[a-z0-9]`` tokens itself, so non-English
    text scores ~0; ``unicode_tokens=True`` swaps in a Unicode word tokenizer (a different, named convention).
    Returns ``{"ROUGE-1": ..., "ROUGE-2": ..., "ROUGE-L (rouge-score)": ...}``.
    """
    from rouge_score import rouge_scorer

    p, r, notes = check_pairs(preds, refs, on_none=on_none)
    tok = _UnicodeTokenizer() if unicode_tokens else None
    scorer = rouge_scorer.RougeScorer(list(types), use_stemmer=use_stemmer, tokenizer=tok)
    per = {t: np.empty(len(p)) for t in types}
    for i, (hyp, ref) in enumerate(zip(p, r)):
        s = scorer.score(ref, hyp)  # rouge-score's order: (target, prediction)
        for t in types:
            per[t][i] = s[t].fmeasure
    conv = (f"rouge-score {'' if use_stemmer else 'no '}Porter stemmer, "
            f"{'Unicode word' if unicode_tokens else 'default [a-z0-9]'} tokenizer, per-report F-measure, mean")
    names = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L (rouge-score)", "rougeLsum": "ROUGE-Lsum"}
    out = {}
    for t in types:
        name = names.get(t, t)
        out[name] = MetricResult(name, float(per[t].mean()) if len(p) else float("nan"), conv, per[t], len(p),
                                 list(notes))
    return out


# -------------------------------------------------------------------------------------- all COCO at once
def coco_metrics(preds, refs, normalize_as: str | None = "r2gen", use_meteor: bool = True, on_none: str = "error",
                 ) -> dict[str, MetricResult]:
    """BLEU-1..4, ROUGE-L, CIDEr and (if Java is there and ``use_meteor``) METEOR, on one normalisation.

    A missing Java does not fail the call: METEOR is left out and the reason is put in every result's notes.
    """
    out = bleu(preds, refs, normalize_as, on_none)
    out["ROUGE-L"] = rouge_l(preds, refs, normalize_as, on_none)
    out["CIDEr"] = cider(preds, refs, normalize_as, on_none)
    if use_meteor:
        try:
            out["METEOR"] = meteor(preds, refs, normalize_as, on_none)
        except (JavaNotFoundError, MetricTimeoutError) as err:
            for res in out.values():
                res.notes.append(f"METEOR skipped: {err}")
    return out
