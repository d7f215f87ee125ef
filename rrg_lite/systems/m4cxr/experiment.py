"""M4CXR's ablation (Table VIII) and its controls, rebuilt on the synthetic world: variants × seeds -> tidy rows.

    result = run_experiment(cfg)                  # data, tokenizer, warm LMs, stage 1 per projector, stage 2 per variant
    summarize(result.rows)                        # mean over seeds with a 95 % t-interval, per variant
    paired(result, "Exp1 single-turn", "M4CXR (CoT)")        # CoT - single-turn CE micro-F1, paired bootstrap
    paired(result, CONTROL_WRONG_IMAGE, "M4CXR (CoT)")       # the image's worth
    headline(result)                              # every paired comparison above at once
    paper_table()                                 # the paper's Table VIII

Variants (:data:`VARIANTS`), each trained from the same warm LM and the same stage-1 projector of its seed:

=================================  ==================================================================================
variant                            what changes (paper)
=================================  ==================================================================================
``M4CXR (CoT)``                    everything: the task mix of every type, multi-turn CoT MRG, C-Abstractor
``Exp1 single-turn``               MRG trained and tested single-turn (Table VIII Exp1)
``Exp3 w/o image understanding``   no classification / grounding tasks in stage 2 (Exp3)
``Exp4 w/o VQA``                   no VQA / difference VQA / instruction tasks (Exp4)
``linear projector``               LLaVA's MLP on every patch token (K = N = 64: four times the tokens)
``pool-only projector``            the C-Abstractor's token count (16) with no convolutions (Honeybee's control)
=================================  ==================================================================================

(Table VIII's Exp2, single-turn MRG plus a separate classification task, is not rebuilt.)

Controls on the full model (:data:`CONTROLS`): the report generated after the *true* turn 1 (oracle: the upper
bound of CoT), after another patient's true turn 1 (shows that the report follows turn 1), and with another
study's image in both turns (the image's worth); grounding has the mean-training-box chance baseline
(:func:`rrg_lite.metrics.grounding.mean_box_baseline`). Every variant also gets the teacher-forced image gain:
the NLL of the test reports with another study's image minus with its own (nats per token).

Metrics (Sec. IV-C): CheXpert labeler (offline stand-in for CheXbert) micro / macro F1 over 14 and 5 labels with
uncertain = negative; turn-1 F1 of the findings list; BLEU-4 and ROUGE-L in M4CXR's tokenisation; phrase
grounding mIoU and Acc@0.5; VQA exact-match accuracy and BLEU-1.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from . import recipe as R
from .instructions import IU, TASK_TYPES, TASKS, VQA

__all__ = ["VARIANTS", "CONTROLS", "CONTROL_ORACLE", "CONTROL_OTHER_TURN1", "CONTROL_WRONG_IMAGE", "MEAN_BOX",
           "PAPER_TABLE_VIII", "ExperimentResult", "variant_spec", "evaluate_model", "run_experiment",
           "summarize", "paired", "headline", "paper_table"]

VARIANTS: dict[str, dict] = {
    "M4CXR (CoT)": {"projector": "c-abstractor", "drop": (), "cot": True},
    "Exp1 single-turn": {"projector": "c-abstractor", "drop": (), "cot": False},
    "Exp3 w/o image understanding": {"projector": "c-abstractor", "drop": (IU,), "cot": True},
    "Exp4 w/o VQA": {"projector": "c-abstractor", "drop": (VQA,), "cot": True},
    "linear projector": {"projector": "linear", "drop": (), "cot": True},
    "pool-only projector": {"projector": "pool-only", "drop": (), "cot": True},
}
MAIN = "M4CXR (CoT)"
CONTROL_ORACLE = "M4CXR (CoT), oracle turn 1"
CONTROL_OTHER_TURN1 = "M4CXR (CoT), another patient's turn 1"
CONTROL_WRONG_IMAGE = "M4CXR (CoT), another study's image"
MEAN_BOX = "mean training box (grounding chance)"
CONTROLS = (CONTROL_ORACLE, CONTROL_OTHER_TURN1, CONTROL_WRONG_IMAGE)

#: Table VIII (MIMIC-CXR test; mF1-14 / MF1-14 / BLEU-4 / ROUGE-L / MS-CXR mIoU / VQA BLEU-1), from SYSTEMS.md §4.
PAPER_TABLE_VIII = {
    "M4CXR (CoT)": {"mF1-14": 60.6, "MF1-14": 40.0, "BLEU-4": 10.3, "ROUGE-L": 28.5, "mIoU": 57.9, "VQA BLEU-1": 66.4},
    "Exp1 single-turn": {"mF1-14": 50.0, "MF1-14": 33.1, "BLEU-4": 9.3, "ROUGE-L": 27.7, "mIoU": 56.1,
                         "VQA BLEU-1": 66.1},
    "Exp2 single-turn + classification": {"mF1-14": 58.5, "MF1-14": 37.5, "BLEU-4": 0.6, "ROUGE-L": 10.9,
                                          "mIoU": 56.3, "VQA BLEU-1": 66.6},
    "Exp3 w/o image understanding": {"mF1-14": 60.6, "MF1-14": 38.2, "BLEU-4": 10.1, "ROUGE-L": 28.2,
                                     "mIoU": float("nan"), "VQA BLEU-1": 67.9},
    "Exp4 w/o VQA": {"mF1-14": 59.3, "MF1-14": 38.3, "BLEU-4": 10.1, "ROUGE-L": 28.0, "mIoU": 57.9,
                     "VQA BLEU-1": 36.1},
}
F1 = "CheXpert micro-F1-14"


def variant_spec(name: str) -> dict:
    """The variant's projector, task list and CoT flag."""
    if name not in VARIANTS:
        raise ValueError(f"unknown M4CXR variant {name!r}; choose from {list(VARIANTS)}")
    spec = dict(VARIANTS[name])
    spec["tasks"] = tuple(t for t in TASKS if TASK_TYPES[t] not in spec["drop"])
    return spec


@dataclass
class ExperimentResult:
    """Tidy rows (one per variant or control and seed), the generated reports, the references, timings."""

    rows: list[dict]
    reports: dict[tuple[str, int], list[str]]
    refs: list[str]
    turn1: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    models: dict = field(default_factory=dict)
    sampler_tables: dict = field(default_factory=dict)


def _scores(reports: list[str], refs: list[str]) -> dict[str, float]:
    from rrg_lite.metrics.clinical import clinical_efficacy_reports

    from .evaluation import report_nlg

    reports = [r if r.strip() else "." for r in reports]     # an empty report scores zero, not an error
    ce = clinical_efficacy_reports(reports, refs, uncertain="negative")
    nlg = report_nlg(reports, refs)
    return {"mF1-14": ce[F1].value, "MF1-14": ce["CheXpert macro-F1-14"].value,
            "mF1-5": ce["CheXpert micro-F1-5"].value, "MF1-5": ce["CheXpert macro-F1-5"].value,
            "BLEU-4": nlg["BLEU-4"].value, "ROUGE-L": nlg["ROUGE-L"].value}


def evaluate_model(mllm, data: R.M4CXRData, cfg, cot: bool, seed: int = 0, controls: bool = False) -> dict:
    """Every number of one trained model: ``{"row": {...}, "reports", "turn1", "controls": {name: (row, reports)}}``."""
    from rrg_lite.metrics.grounding import grounding_results
    from rrg_lite.metrics.vqa import vqa_scores

    from .evaluation import turn1_scores

    insts = R.test_instructions(data, cot=cot)
    refs = [i["messages"][-1]["content"] for i in insts]
    ids = [i["study_id"] for i in insts]
    donors = R.shifted(ids, seed)
    index = {f.study_id: k for k, f in enumerate(data.facts)}
    ref_codes = np.stack([data.labels[index[s]] for s in ids])
    if cot:
        turn1, reports = R.generate_cot(mllm, data, insts, cfg)
    else:
        turn1, reports = None, R.generate_single_turn(mllm, data, insts, cfg)
    row = _scores(reports, refs)
    if turn1 is not None:
        row["turn-1 mF1-14"] = turn1_scores(turn1, ref_codes)["turn-1 micro-F1-14"].value
    gain = R.answer_nll(mllm, data, insts, cfg.eval_batch_size, donors) - R.answer_nll(mllm, data, insts,
                                                                                      cfg.eval_batch_size)
    row["image gain (nats)"] = float(gain.mean())
    if cot:   # the findings list is where the image matters most: its NLL gain on its own
        g1 = (R.answer_nll(mllm, data, insts, cfg.eval_batch_size, donors, turn="first")
              - R.answer_nll(mllm, data, insts, cfg.eval_batch_size, turn="first"))
        row["turn-1 image gain (nats)"] = float(g1.mean())
    answers, boxes = R.ground_phrases(mllm, data, cfg, seed)
    g = grounding_results(answers, boxes)
    row["mIoU"], row["Acc@0.5"] = g["mIoU"].value, g["Acc@0.5"].value
    vqa_pred, vqa_ref = R.answer_vqa(mllm, data, cfg, seed)
    v = vqa_scores(vqa_pred, vqa_ref) if vqa_pred else {}
    row["VQA acc"] = v["VQA accuracy"].value if v else float("nan")
    row["VQA BLEU-1"] = v["VQA BLEU-1"].value if v else float("nan")
    out = {"row": row, "reports": reports, "turn1": turn1, "refs": refs, "controls": {}}
    if controls and cot:
        true_turn1 = [i["messages"][2]["content"] for i in insts]
        by_id = dict(zip(ids, true_turn1))
        _, oracle = R.generate_cot(mllm, data, insts, cfg, turn1=true_turn1)
        _, other = R.generate_cot(mllm, data, insts, cfg, turn1=[by_id[d] for d in donors])
        t1w, wrong = R.generate_cot(mllm, data, insts, cfg, donors=donors)
        out["controls"][CONTROL_ORACLE] = ({**_scores(oracle, refs), "turn-1 mF1-14": 1.0}, oracle)
        out["controls"][CONTROL_OTHER_TURN1] = (_scores(other, refs), other)
        wrong_row = _scores(wrong, refs)
        wrong_row["turn-1 mF1-14"] = turn1_scores(t1w, ref_codes)["turn-1 micro-F1-14"].value
        out["controls"][CONTROL_WRONG_IMAGE] = (wrong_row, wrong)
    return out


def _mean_box_row(data: R.M4CXRData, seed: int) -> dict:
    from rrg_lite.data.boxes import parse_box
    from rrg_lite.metrics.grounding import mean_box_baseline

    train_boxes = [b for f in data.train for _, b in f.phrases]
    insts = R.test_instructions(data, "phrase_grounding", seed=seed)
    test_boxes = [parse_box(i["messages"][-1]["content"]) for i in insts]
    if not train_boxes or not test_boxes:
        return {"mIoU": float("nan"), "Acc@0.5": float("nan")}
    g = mean_box_baseline(train_boxes, test_boxes)
    return {"mIoU": g["mIoU"].value, "Acc@0.5": g["Acc@0.5"].value}


def run_experiment(cfg, data: R.M4CXRData | None = None, tok=None, variants: Sequence[str] | None = None,
                   seeds: Sequence[int] | None = None, controls: bool = True, keep_models: bool = False,
                   progress: bool = False, warm: dict | None = None) -> ExperimentResult:
    """Train and evaluate every (variant, seed) of the profile; the frozen features (``data``) are computed once.

    Per seed: one warm LM (shared by all variants), one stage-1 projector per projector kind (shared by the
    variants that use it), then stage 2 per variant. ``controls``: the CoT model's controls and the mean-box row.
    ``warm``: seed -> warm LM state (:func:`.recipe.warm_up_lm`); seeds it lacks are warmed up and added to it, so
    a later call with the same data and tokenizer (e.g. more variants) reuses the warm-ups.
    """
    from tqdm.auto import tqdm

    timer = {}
    t0 = time.perf_counter()
    data = data if data is not None else R.load_data(cfg)
    tok = tok if tok is not None else R.build_text_tokenizer(data)
    timer["data"] = time.perf_counter() - t0
    variants = list(variants or cfg.variants)
    for v in variants:
        variant_spec(v)                                  # unknown names fail before any training
    seeds = list(seeds if seeds is not None else cfg.seeds)
    rows, reports, turn1, models, tables = [], {}, {}, {}, {}
    refs = None
    timer.update({"warm-up": 0.0, "stage 1": 0.0, "stage 2": 0.0, "evaluation": 0.0})
    warm_states = {} if warm is None else warm
    for seed in tqdm(seeds, desc="seeds", disable=not progress):
        t = time.perf_counter()
        if seed not in warm_states:
            warm_states[seed] = R.warm_up_lm(cfg, tok, data, seed)
        warm = warm_states[seed]
        timer["warm-up"] += time.perf_counter() - t
        stage1 = {}
        for name in variants:
            spec = variant_spec(name)
            t = time.perf_counter()
            if spec["projector"] not in stage1:
                stage1[spec["projector"]] = R.train_stage1(cfg, tok, data, seed, warm, spec["projector"])[1]
            timer["stage 1"] += time.perf_counter() - t
            t = time.perf_counter()
            mllm, result, sampler = R.train_stage2(cfg, tok, data, seed, warm, stage1[spec["projector"]],
                                                   spec["projector"], spec["tasks"], spec["cot"])
            timer["stage 2"] += time.perf_counter() - t
            t = time.perf_counter()
            ev = evaluate_model(mllm, data, cfg, spec["cot"], seed, controls=controls and name == MAIN)
            timer["evaluation"] += time.perf_counter() - t
            refs = ev["refs"]
            rows.append({"variant": name, "seed": seed, **ev["row"], "train s": result.seconds,
                         "final loss": result.history[-1]["loss"] if result.history else float("nan")})
            reports[(name, seed)] = ev["reports"]
            if ev["turn1"] is not None:
                turn1[(name, seed)] = ev["turn1"]
            for cname, (crow, creports) in ev["controls"].items():
                rows.append({"variant": cname, "seed": seed, **crow})
                reports[(cname, seed)] = creports
            tables[(name, seed)] = sampler.table()
            if keep_models:
                models[(name, seed)] = mllm
        if controls:
            rows.append({"variant": MEAN_BOX, "seed": seed, **_mean_box_row(data, seed)})
    timer["total"] = time.perf_counter() - t0
    return ExperimentResult(rows, reports, refs or [], turn1, timer, models, tables)


def summarize(rows: list[dict], metrics: Sequence[str] | None = None, confidence: float = 0.95):
    """Mean over seeds and a t-interval per variant: columns ``<m>``, ``<m> lo``, ``<m> hi``, ``n seeds``
    (:func:`rrg_lite.metrics.significance.summarize_seeds`, the summary every chapter's ablation uses)."""
    from rrg_lite.metrics.significance import summarize_seeds

    return summarize_seeds(rows, metrics, by="variant", confidence=confidence)


def paired(result: ExperimentResult, a: str, b: str, n_boot: int = 1000, seed: int = 0,
           metric: str = F1) -> dict:
    """Paired bootstrap of ``b - a`` on CE ``metric`` (default micro-F1-14, uncertain = negative), the reports of
    every seed both have pooled (each (seed, study) pair is one resampling unit).

    Returns :func:`rrg_lite.metrics.significance.paired_bootstrap`'s dict plus ``n`` and the seeds used."""
    from rrg_lite.metrics.clinical import clinical_efficacy_reports
    from rrg_lite.metrics.significance import paired_bootstrap

    seeds = sorted({s for (v, s) in result.reports if v == a} & {s for (v, s) in result.reports if v == b})
    if not seeds:
        raise ValueError(f"paired: no seed has reports of both {a!r} and {b!r} (have {sorted(set(result.reports))})")
    pa = [r or "." for s in seeds for r in result.reports[(a, s)]]
    pb = [r or "." for s in seeds for r in result.reports[(b, s)]]
    refs = result.refs * len(seeds)
    ra = clinical_efficacy_reports(pa, refs, uncertain="negative")[metric]
    rb = clinical_efficacy_reports(pb, refs, uncertain="negative")[metric]
    out = paired_bootstrap(ra, rb, n_boot=n_boot, seed=seed)
    out.update({"n": len(refs), "seeds": seeds, "a_name": a, "b_name": b, "metric": metric})
    return out


def headline(result: ExperimentResult, n_boot: int = 1000) -> dict[str, dict]:
    """The chapter's paired comparisons on CE micro-F1-14 (those whose reports exist in ``result``):
    CoT - single-turn, CoT - wrong image, oracle turn 1 - CoT, CoT - another patient's turn 1."""
    pairs = {"CoT - single-turn": ("Exp1 single-turn", MAIN),
             "CoT - another study's image": (CONTROL_WRONG_IMAGE, MAIN),
             "oracle turn 1 - CoT": (MAIN, CONTROL_ORACLE),
             "CoT - another patient's turn 1": (CONTROL_OTHER_TURN1, MAIN)}
    have = {v for v, _ in result.reports}
    return {name: paired(result, a, b, n_boot=n_boot) for name, (a, b) in pairs.items() if a in have and b in have}


def paper_table():
    """The paper's Table VIII as a DataFrame (MIMIC-CXR; percentages)."""
    import pandas as pd

    df = pd.DataFrame.from_dict(PAPER_TABLE_VIII, orient="index")
    df.attrs["source"] = "Park et al., M4CXR, Table VIII (CoT at test for the full model)"
    return df
