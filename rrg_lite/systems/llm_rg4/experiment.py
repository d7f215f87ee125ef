"""LLM-RG4's experiment rebuilt on the world: Table 4 (stage × ATF × TLW), Table 5 (mixed vs per-scenario),
original vs clean training and its hall., and the input controls — every variant × seed, tidy rows.

    prep = prepare(cfg)                                   # studies, frozen features, tokenizer, TLW weights,
                                                          # detector, warm LM: once for every variant and seed
    result = run_experiment(cfg, prep)                    # rows (one per variant, seed, scenario, control)
    summarize(result.rows); table4(result.rows); headlines(result, prep); paper_table()

Variants (:data:`VARIANTS`, the profile's ``variants`` picks some):

=====================================  ====================================================================
name                                   what it trains
=====================================  ====================================================================
``S1`` / ``S1 +TLW``                   Table 4 stage-1 rows: frontal ATF only, LLM frozen, sn (evaluated on sn)
``S2 interleaved`` (``+TLW``)          Table 4 "ATF ✗": the interleaved baseline, stage 1 then stage 2
``S2 ATF`` / ``S2 ATF +TLW``           Table 4 "ATF ✓"; ``S2 ATF +TLW`` is the full model (Table 5 "M")
``S2 ATF +TLW, original reports``      trained on the reports as written (input-agnostic sentences kept)
``S2 ATF +random-sentence weights``    TLW's control: as many up-weighted sentences per report, at random
``S2 ATF +oracle weights``             TLW with the world's own key-sentence tags
``S2 ATF +TLW, <sc> only``             Table 5 "S": trained on one scenario, the same number of steps
=====================================  ====================================================================

Every stage-2 variant starts from its own stage 1 (same fusion and weights, cached per seed). Every run is
scored on the held-out studies in the scenarios it was trained for: teacher-forced NLL of the clean target with
its own inputs and with **another patient's** (all inputs: "image gain"), greedy reports -> CheXpert F1-14 / F1-5
(micro, uncertain -> positive, the rule-based labeler standing in for CheXbert), BLEU-1/4, the recall of the
**lateral-only findings**, and **hall.** by the learned detector (DiscBERT's role). The full model also gets the
controls: a zeroed and another patient's lateral (mn, mw: lateral-only findings should drop) and another
patient's prior (sw, mw: NLL should rise). Per-study values are kept (``result.per_study``) for paired intervals
(:func:`paired`: per-study values averaged over seeds, then :func:`rrg_lite.metrics.significance.paired_bootstrap`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from rrg_lite.metrics.significance import paired_bootstrap, t_interval

from . import recipe as R
from .discriminator import DetectorConfig, fit_detector, hall_rate_from_flags, world_sentence_tags
from .scenarios import SCENARIOS, Scenario
from .tlw import TLWConfig, TokenLabeler, oracle_weights, random_sentence_weights, token_weights

__all__ = ["Variant", "VARIANTS", "Prepared", "prepare", "run_experiment", "ExperimentResult", "summarize",
           "table4", "table5", "paired", "headlines", "reference_hall", "paper_table", "PAPER_TABLE4",
           "PAPER_TABLE5"]


@dataclass(frozen=True)
class Variant:
    """One row of the ablation. stage: 1 or 2. fusion: "atf" | "interleaved". weights: "none" | "tlw" |
    "random" | "oracle". scenarios: what stage 2 trains on (and the run is scored on). original: train on the
    reports as written instead of the clean per-scenario targets."""

    name: str
    stage: int
    fusion: str = "atf"
    weights: str = "none"
    scenarios: tuple = SCENARIOS
    original: bool = False


VARIANTS = {v.name: v for v in (
    Variant("S1", 1, weights="none", scenarios=(Scenario.SN,)),
    Variant("S1 +TLW", 1, weights="tlw", scenarios=(Scenario.SN,)),
    Variant("S2 interleaved", 2, "interleaved", "none"),
    Variant("S2 interleaved +TLW", 2, "interleaved", "tlw"),
    Variant("S2 ATF", 2, "atf", "none"),
    Variant("S2 ATF +TLW", 2, "atf", "tlw"),
    Variant("S2 ATF +TLW, original reports", 2, "atf", "tlw", original=True),
    Variant("S2 ATF +random-sentence weights", 2, "atf", "random"),
    Variant("S2 ATF +oracle weights", 2, "atf", "oracle"),
    *(Variant(f"S2 ATF +TLW, {sc.value} only", 2, "atf", "tlw", scenarios=(sc,)) for sc in SCENARIOS),
)}
FULL_MODEL = "S2 ATF +TLW"
ORIGINAL = "S2 ATF +TLW, original reports"


@dataclass
class Prepared:
    """What every variant and seed shares: the data (features once), tokenizer, weights, detector, warm LM."""

    data: R.RG4Data
    tokenizer: object
    weights: dict                    # "tlw" / "random" / "oracle" -> {target text: TokenWeights}
    detector: object
    warm: dict | None
    seconds: dict = field(default_factory=dict)
    labeler_log: list = field(default_factory=list)


def _tlw_weights(cfg, data: R.RG4Data, seed: int) -> tuple[dict, list]:
    """Algorithm 1 on every training target (each scenario's and the original), from a labeler fitted on the
    training reports; the random-sentence control with the same count per report; the oracle from the world's tags."""
    texts, oracle = {}, {}
    for i in data.train_idx:
        for key in (*SCENARIOS, "original"):
            t = data.original[i] if key == "original" else data.targets[key][i]
            texts.setdefault(t, i)
            sents, flags = data.key_sentences[key][i]
            oracle.setdefault(t, (sents, flags))
    train_texts = [data.original[i] for i in data.train_idx]
    if cfg.tlw_source not in ("labeler", "oracle"):
        raise ValueError(f"tlw_source must be 'labeler' or 'oracle', got {cfg.tlw_source!r}")
    tcfg = TLWConfig(threshold=cfg.tlw_threshold, lam=cfg.tlw_lambda, steps=cfg.ig_steps)
    out = {"tlw": {}, "random": {}, "oracle": {}}
    log = []
    for t, (sents, flags) in oracle.items():
        out["oracle"][t] = oracle_weights(sents, flags, lam=cfg.tlw_lambda)
    if cfg.tlw_source == "labeler":
        torch.manual_seed(seed)
        labeler = TokenLabeler.from_reports(train_texts)
        log = labeler.fit(train_texts, data.labels[data.train_idx], epochs=cfg.labeler_epochs, seed=seed)
        for t, i in texts.items():
            out["tlw"][t] = token_weights(t, labeler, codes=data.labels[i], config=tcfg)
    else:
        out["tlw"] = out["oracle"]
    for k, t in enumerate(texts):
        out["random"][t] = random_sentence_weights(t, out["tlw"][t].num_key_sentences, seed=seed + k,
                                                   lam=cfg.tlw_lambda)
    return out, log


def prepare(cfg, studies=None, frontal=None, lateral=None) -> Prepared:
    """Everything the runs share, computed once: studies -> :class:`~.recipe.RG4Data` (frozen features), the
    tokenizer, TLW / random / oracle weights per training target, the hall. detector (fitted on the training
    reports' tagged sentences), and the warm LM (one for every seed: it stands in for *one* pre-trained LLM)."""
    t0 = time.perf_counter()
    studies = studies if studies is not None else R.world_studies(cfg)
    t1 = time.perf_counter()
    data = R.prepare_data(cfg, studies, frontal, lateral)
    t2 = time.perf_counter()
    tok = R.build_tokenizer(cfg, data)
    weights, log = _tlw_weights(cfg, data, cfg.seed)
    t3 = time.perf_counter()
    sents, tags = world_sentence_tags(studies[: cfg.n_train], sections=tuple(cfg.sections))
    detector, _ = fit_detector(sents, tags, DetectorConfig(epochs=cfg.detector_epochs, seed=cfg.seed))
    t4 = time.perf_counter()
    warm = R.warm_up_lm(cfg, tok, data, cfg.seed)
    t5 = time.perf_counter()
    return Prepared(data, tok, weights, detector, warm,
                    {"studies": t1 - t0, "features": t2 - t1, "tlw weights": t3 - t2, "detector": t4 - t3,
                     "LM warm-up": t5 - t4}, log)


# ---- scoring -----------------------------------------------------------------------------------------------------
def _lateral_hits(preds, lateral_only: np.ndarray) -> np.ndarray:
    """Per study: the share of its lateral-only findings the report states (positive or uncertain); NaN when the
    study has none. lateral_only (n, 14) bool."""
    from rrg_lite.metrics.chexpert_labeler import label_reports_chexpert

    said = np.isin(label_reports_chexpert(list(preds)), (1.0, -1.0))
    n_true = lateral_only.sum(1)
    hits = (said & lateral_only).sum(1)
    return np.where(n_true > 0, hits / np.maximum(n_true, 1), np.nan)


def _score(preds, refs, data: R.RG4Data, idx, scenario, detector) -> tuple[dict, dict]:
    from rrg_lite.metrics.clinical import clinical_efficacy_reports
    from rrg_lite.metrics.nlg import bleu

    preds = [p if p.strip() else "." for p in preds]
    ce = clinical_efficacy_reports(preds, refs, labeler="chexpert", uncertain="positive")
    b = bleu(preds, refs)
    lat = _lateral_hits(preds, data.lateral_only[idx])
    hall = hall_rate_from_flags(detector.flag_reports(preds), scenario)["hall."]
    row = {"F1-14": ce["CheXpert micro-F1-14"].value, "F1-5": ce["CheXpert micro-F1-5"].value,
           "B@1": b["BLEU-1"].value, "B@4": b["BLEU-4"].value,
           "lateral-only recall": float(np.nanmean(lat)) if np.isfinite(lat).any() else float("nan"),
           "hall.": hall.value}
    return row, {"lateral hit": lat, "hall.": hall.per_example}


@dataclass
class ExperimentResult:
    rows: list
    per_study: dict                  # (variant, seed, scenario value, control) -> {metric: (n_test,) array}
    predictions: dict                # same keys -> generated reports
    seconds: float = 0.0


def _weights_for(prep: Prepared, kind: str):
    return None if kind == "none" else prep.weights[kind]


def _train(cfg, prep: Prepared, v: Variant, seed: int, stage1_cache: dict):
    """Stage 1 (cached per fusion / weights / targets / seed), then stage 2 if the variant has one."""
    data = prep.data
    key = (v.fusion, v.weights, v.original, seed)
    t0 = time.perf_counter()
    model = R.build_model(cfg, prep.tokenizer, v.fusion, seed, prep.warm)
    if key in stage1_cache:
        model.fusion.load_state_dict(stage1_cache[key][0])
        s1 = stage1_cache[key][1]
    else:
        r = R.train_stage(model, data, 1, cfg.stage1_steps, cfg.stage1_lr, seed=seed, original=v.original,
                          weights=_weights_for(prep, v.weights), batch_size=cfg.batch_size,
                          warmup_ratio=cfg.warmup_ratio, precision=cfg.precision)
        s1 = r.seconds
        stage1_cache[key] = ({k: t.detach().clone() for k, t in model.fusion.state_dict().items()}, s1)
    s2 = 0.0
    if v.stage == 2:
        R.add_lora(model, cfg)
        r = R.train_stage(model, data, 2, cfg.stage2_steps, cfg.stage2_lr, scenarios=v.scenarios, seed=seed + 1,
                          original=v.original, weights=_weights_for(prep, v.weights), batch_size=cfg.batch_size,
                          warmup_ratio=cfg.warmup_ratio, precision=cfg.precision)
        s2 = r.seconds
    return model, {"stage 1 s": s1, "stage 2 s": s2, "build s": time.perf_counter() - t0 - s1 - s2}


def _evaluate(cfg, prep, model, v: Variant, seed: int, controls: bool, out: ExperimentResult, base: dict):
    data, idx = prep.data, prep.data.test_idx
    donor = R.other_patient(idx)
    gen = dict(batch_size=cfg.eval_batch_size, max_new_tokens=cfg.max_new_tokens)
    for sc in v.scenarios:
        refs = [data.targets[sc][i] for i in idx]
        t0 = time.perf_counter()
        nll = R.test_nll(model, data, idx, sc, batch_size=cfg.eval_batch_size)
        wrong = R.test_nll(model, data, idx, sc, R.Sources(frontal=donor, lateral=donor, prior=donor),
                           batch_size=cfg.eval_batch_size)
        preds = R.generate(model, data, idx, sc, **gen)
        scores, per = _score(preds, refs, data, idx, sc, prep.detector)
        key = (v.name, seed, sc.value, "true inputs")
        out.per_study[key] = {"NLL": nll, "NLL other patient": wrong, **per}
        out.predictions[key] = preds
        out.rows.append({**base, "scenario": sc.value, "control": "true inputs", "tokens": model.tokens_for(sc),
                         "NLL": float(nll.mean()), "image gain": float((wrong - nll).mean()), **scores,
                         "eval s": time.perf_counter() - t0})
        if not controls:
            continue
        swaps = []
        if sc.has_lateral:
            swaps += [("zeroed lateral", R.Sources(zero_lateral=True)),
                      ("other patient's lateral", R.Sources(lateral=donor))]
        if sc.has_prior:
            swaps += [("other patient's prior", R.Sources(prior=donor))]
        for name, src in swaps:
            t0 = time.perf_counter()
            nll_c = R.test_nll(model, data, idx, sc, src, batch_size=cfg.eval_batch_size)
            preds_c = R.generate(model, data, idx, sc, src, **gen)
            scores_c, per_c = _score(preds_c, refs, data, idx, sc, prep.detector)
            key = (v.name, seed, sc.value, name)
            out.per_study[key] = {"NLL": nll_c, **per_c}
            out.predictions[key] = preds_c
            out.rows.append({**base, "scenario": sc.value, "control": name, "tokens": model.tokens_for(sc),
                             "NLL": float(nll_c.mean()), "image gain": float("nan"), **scores_c,
                             "eval s": time.perf_counter() - t0})


def run_experiment(cfg, prep: Prepared, variants=None, seeds=None, controls_for=(FULL_MODEL,),
                   progress: bool = False) -> ExperimentResult:
    """Train and score every (variant, seed); ``controls_for``: the variants that also get the input controls."""
    from tqdm.auto import tqdm

    names = list(variants or cfg.variants)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown LLM-RG4 variants {unknown}; choose from {list(VARIANTS)}")
    seeds = list(seeds if seeds is not None else cfg.seeds)
    out = ExperimentResult([], {}, {})
    t0 = time.perf_counter()
    cache: dict = {}
    for seed in seeds:
        for name in tqdm(names, desc=f"LLM-RG4 seed {seed}", disable=not progress):
            v = VARIANTS[name]
            model, secs = _train(cfg, prep, v, seed, cache)
            base = {"variant": name, "seed": seed, "stage": v.stage, "ATF": v.fusion == "atf",
                    "TLW": v.weights, "trained on": "+".join(s.value for s in v.scenarios), **secs}
            _evaluate(cfg, prep, model, v, seed, name in controls_for, out, base)
    out.seconds = time.perf_counter() - t0
    return out


# ---- summaries ---------------------------------------------------------------------------------------------------
METRICS = ("F1-14", "F1-5", "B@1", "B@4", "lateral-only recall", "hall.", "NLL", "image gain")


def summarize(rows, metrics=METRICS, by=("variant", "scenario", "control")):
    """Mean over seeds with a 95 % t-interval per (variant, scenario, control): ``<m>``, ``<m> lo``, ``<m> hi``."""
    import pandas as pd

    df = pd.DataFrame(rows)
    out = []
    for keys, g in df.groupby(list(by), sort=False):
        row = dict(zip(by, keys)) | {"n seeds": g["seed"].nunique(), "tokens": int(g["tokens"].iloc[0])}
        for m in metrics:
            row[m], row[f"{m} lo"], row[f"{m} hi"] = t_interval(g[m].to_numpy())
        out.append(row)
    return pd.DataFrame(out)


def table4(rows, metrics=("F1-14", "F1-5", "B@1", "B@4", "hall.", "image gain")):
    """Table 4 rebuilt: per variant, the true-input rows averaged over its scenarios per seed (the paper averages
    stage-2 rows over the four scenarios), then mean and t-interval over seeds; N. = the largest token count."""
    import pandas as pd

    df = pd.DataFrame(rows)
    df = df[(df["control"] == "true inputs") & df["variant"].isin([v for v in VARIANTS if "only" not in v])]
    out = []
    for name, g in df.groupby("variant", sort=False):
        per_seed = g.groupby("seed")[list(metrics)].mean()
        row = {"variant": name, "stage": int(g["stage"].iloc[0]), "ATF": bool(g["ATF"].iloc[0]),
               "TLW": g["TLW"].iloc[0], "N.": int(g["tokens"].max()), "n seeds": len(per_seed)}
        for m in metrics:
            row[m], row[f"{m} lo"], row[f"{m} hi"] = t_interval(per_seed[m].to_numpy())
        out.append(row)
    return pd.DataFrame(out)


def table5(rows, metrics=("F1-14", "B@4", "lateral-only recall")):
    """Table 5 rebuilt: per scenario, the per-scenario model (S) beside the mixed full model (M)."""
    import pandas as pd

    df = pd.DataFrame(rows)
    df = df[df["control"] == "true inputs"]
    out = []
    for sc in SCENARIOS:
        for label, name in (("S", f"{FULL_MODEL}, {sc.value} only"), ("M", FULL_MODEL)):
            g = df[(df["variant"] == name) & (df["scenario"] == sc.value)]
            if len(g) == 0:
                continue
            row = {"scenario": sc.value, "model": label, "n seeds": len(g)}
            for m in metrics:
                row[m], row[f"{m} lo"], row[f"{m} hi"] = t_interval(g[m].to_numpy())
            out.append(row)
    return pd.DataFrame(out)


def _seed_mean(per_study: dict, variant: str, scenario: str, control: str, metric: str, seeds=None) -> np.ndarray:
    arrays = [v[metric] for (n, s, sc, c), v in per_study.items()
              if n == variant and sc == scenario and c == control and (seeds is None or s in seeds)]
    if not arrays:
        raise KeyError(f"no per-study {metric!r} for {variant!r} / {scenario} / {control}")
    import warnings

    with warnings.catch_warnings():              # a study without lateral-only findings is NaN in every seed
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.stack(arrays).astype(float), axis=0)


def paired(per_study: dict, a: tuple, b: tuple, metric: str, n_boot: int = 1000, seed: int = 0) -> dict:
    """Paired bootstrap of B − A on the same test studies; ``a`` / ``b`` = (variant, scenario, control). Each
    study's value is averaged over the seeds first (the studies are the independent units); studies where either
    side is NaN (e.g. no lateral-only finding) are left out and counted in ``n``."""
    xa, xb = _seed_mean(per_study, *a, metric), _seed_mean(per_study, *b, metric)
    ok = np.isfinite(xa) & np.isfinite(xb)
    res = paired_bootstrap(xa[ok], xb[ok], n_boot=n_boot, seed=seed)
    return {**res, "n": int(ok.sum()), "metric": metric, "a": a, "b": b, "mean a": float(xa[ok].mean()),
            "mean b": float(xb[ok].mean())}


def headlines(result: ExperimentResult, n_boot: int = 1000) -> dict:
    """The chapter's claims as paired intervals (B − A over the test studies, seeds averaged):

    - ``mn vs sn`` / ``mw vs sw``: lateral-only recall of the full model with the lateral view vs without;
    - ``zeroed lateral`` / ``other patient's lateral``: the drop of lateral-only recall in mn when the lateral is
      taken away (B = control, so < 0 is the expected sign);
    - ``image gain``: NLL with another patient's inputs − NLL with the true ones, per scenario (> 0: uses them);
    - ``NLL: mn / mw, zeroed or other patient's lateral``: the NLL change when the lateral is taken away (> 0: used);
    - ``other patient's prior``: NLL change in sw / mw when the prior report is another patient's (> 0 expected);
    - ``hall. original vs clean``: hall. of the model trained on original reports − on clean ones (> 0 expected).
    """
    ps, out = result.per_study, {}
    have = {(k[0], k[2], k[3]) for k in ps}
    M, T = FULL_MODEL, "true inputs"

    def add(name, a, b, metric):
        if a in have and b in have:
            out[name] = paired(ps, a, b, metric, n_boot)

    add("lateral-only recall: mn vs sn", (M, "sn", T), (M, "mn", T), "lateral hit")
    add("lateral-only recall: mw vs sw", (M, "sw", T), (M, "mw", T), "lateral hit")
    add("lateral-only recall: mn, zeroed lateral", (M, "mn", T), (M, "mn", "zeroed lateral"), "lateral hit")
    add("lateral-only recall: mn, other patient's lateral", (M, "mn", T), (M, "mn", "other patient's lateral"),
        "lateral hit")
    for sc in SCENARIOS:
        if (M, sc.value, T) in have:
            xa = _seed_mean(ps, M, sc.value, T, "NLL")
            xb = _seed_mean(ps, M, sc.value, T, "NLL other patient")
            res = paired_bootstrap(xa, xb, n_boot=n_boot)
            out[f"image gain (NLL, other patient's inputs): {sc.value}"] = {**res, "n": len(xa), "metric": "NLL"}
    for sc in ("mn", "mw"):
        for c in ("zeroed lateral", "other patient's lateral"):
            add(f"NLL: {sc}, {c}", (M, sc, T), (M, sc, c), "NLL")
    add("NLL: sw, other patient's prior", (M, "sw", T), (M, "sw", "other patient's prior"), "NLL")
    add("NLL: mw, other patient's prior", (M, "mw", T), (M, "mw", "other patient's prior"), "NLL")
    for sc in SCENARIOS:
        add(f"hall.: original vs clean training, {sc.value}", (M, sc.value, T), (ORIGINAL, sc.value, T), "hall.")
    return out


def reference_hall(prep: Prepared) -> dict:
    """hall. of the *references* on the test studies — exactly from the world's tags and by the detector — for
    the clean per-scenario targets and the original reports (the paper's Table 2: 2.3 % clean vs 88.5 % original
    on MIMIC-CXR's sn test set)."""
    data, idx = prep.data, prep.data.test_idx
    out = {}
    for sc in SCENARIOS:
        for name, texts, flags in (("clean", [data.targets[sc][i] for i in idx], [data.flags[sc][i] for i in idx]),
                                   ("original", [data.original[i] for i in idx],
                                    [data.flags_original[i] for i in idx])):
            tags = hall_rate_from_flags(flags, sc)["hall."].value
            det = hall_rate_from_flags(prep.detector.flag_reports(texts), sc)["hall."].value
            out[(sc.value, name)] = {"world tags": tags, "detector": det}
    return out


# ---- the paper's numbers -------------------------------------------------------------------------------------------
PAPER_SOURCE = "LLM-RG4 (papers/llm_rg4.txt), MIMIC-RG4 test set; Table 4 stage-2 rows averaged over the scenarios"
#: Table 4: (stage, ATF, TLW, N.) -> F-14, F-5, B@1, B@4.
PAPER_TABLE4 = {
    "S1": {"stage": 1, "ATF": None, "TLW": False, "N.": 128, "F1-14": .519, "F1-5": .563, "B@1": .388, "B@4": .126},
    "S1 +TLW": {"stage": 1, "ATF": None, "TLW": True, "N.": 128, "F1-14": .580, "F1-5": .619, "B@1": .400,
                "B@4": .129},
    "S2 interleaved": {"stage": 2, "ATF": False, "TLW": False, "N.": 502, "F1-14": .551, "F1-5": .582, "B@1": .468,
                       "B@4": .201},
    "S2 interleaved +TLW": {"stage": 2, "ATF": False, "TLW": True, "N.": 502, "F1-14": .577, "F1-5": .603,
                            "B@1": .469, "B@4": .197},
    "S2 ATF": {"stage": 2, "ATF": True, "TLW": False, "N.": 204, "F1-14": .556, "F1-5": .580, "B@1": .467,
               "B@4": .205},
    "S2 ATF +TLW": {"stage": 2, "ATF": True, "TLW": True, "N.": 204, "F1-14": .585, "F1-5": .610, "B@1": .472,
                    "B@4": .199},
}
#: Table 5: scenario -> per-scenario (S) and mixed (M) F1 and B@4.
PAPER_TABLE5 = {"sn": {"F1 S": .599, "F1 M": .609, "B@4 S": .186, "B@4 M": .196},
                "sw": {"F1 S": .592, "F1 M": .610, "B@4 S": .173, "B@4 M": .186},
                "mn": {"F1 S": .528, "F1 M": .559, "B@4 S": .202, "B@4 M": .216},
                "mw": {"F1 S": .531, "F1 M": .563, "B@4 S": .179, "B@4 M": .197}}
#: Table 3 hall. of the full model per scenario, and Table 2's references (sn).
PAPER_HALL = {"sn": .014, "sw": .021, "mn": .008, "mw": .002, "reference clean (sn)": .023,
              "reference original (sn)": .885}


def paper_table(which: int = 4):
    """The paper's Table 4 (default) or Table 5 as a DataFrame (``attrs["source"]`` says where from)."""
    import pandas as pd

    if which not in (4, 5):
        raise ValueError(f"paper_table: which must be 4 or 5, got {which!r}")
    df = pd.DataFrame.from_dict(PAPER_TABLE4 if which == 4 else PAPER_TABLE5, orient="index")
    df.attrs["source"] = PAPER_SOURCE
    return df
