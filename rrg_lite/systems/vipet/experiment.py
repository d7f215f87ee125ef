"""The ViPET-VLM ablation rebuilt: Table 1's fusion × L_align block, the controls, seeds and paired intervals.

    prep = prepare(cfg)                                   # crops, stage-1a encoders, frozen V_PET / V_CT, R@5
    res = run_experiment(cfg, prep)                       # every variant × seed: rows, predictions, per-crop read-outs
    summarize(res.rows)                                   # mean over seeds with a 95 % t-interval
    paired_f1(res, prep, "PET only", "ViPET-VLM")         # malignancy F1 difference, paired bootstrap over crops
    image_gain(res, "ViPET-VLM"); attention_table(res, prep); paper_table()

==========================  ===============================================  ====================================
row (``VARIANTS``)          visual tokens the projector reads                paper
==========================  ===============================================  ====================================
PET only                    V_PET                                            Table 1 "w/o fusion & w/o reg"
PET only + L_align          V_PET, stage 3 + λ·L_align                       "w/o fusion only"
fusion (w/o L_align)        Z_cross = PetCtFusion(V_PET, V_CT)               "w/o reg only"
ViPET-VLM                   Z_cross, stage 3 + λ·L_align                     "ViPET-VLM"
CT only                     V_CT                                             control
concatenation               [V_PET; V_CT] through the FFN (2N tokens)        control (a related codebase's)
CT as query                 PetCtFusion(query="ct")                          control
random ROI                  Z_cross, + λ·L_align toward a random ROI of the  control for L_align
                            same size per crop (:func:`.alignment.random_roi_like`)
==========================  ===============================================  ====================================

Evaluation-time controls on every trained model (no extra training): **wrong image** — each test crop gets the
visual tokens of the same region of another patient (:func:`.recipe.wrong_ct_index`): the NLL gap is what *this*
image is worth; **wrong CT** (variants that read CT) — Z_cross recomputed with another patient's CT and the reports
generated again: the fusion's gain over PET only must vanish. **Attention share** — the share of the answer
tokens' visual attention (Eq. 10) on the high-SUV ROI tokens, before/after L_align, against the ROI's share of
tokens (a model attending uniformly).

Every variant of a seed starts from the same warm LM, the same frozen encoder features and (for the fused rows)
one fusion module per fusion configuration and seed: only the studied part changes. The headline metric is
malignancy F1 (:func:`rrg_lite.metrics.petct_facts.malignancy_f1`, micro over lesions): PET decides malignancy in
the world, CT the size and position, and the fact metrics say which the model got right.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import recipe as R
from .alignment import random_roi_like
from .fusion import FusionConfig

__all__ = ["Variant", "VARIANTS", "PAPER_TABLE1", "PAPER_TABLE2", "Prepared", "ExperimentResult", "prepare",
           "run_variant", "run_experiment", "summarize", "paired_f1", "image_gain", "attention_table", "paper_table"]


@dataclass(frozen=True)
class Variant:
    """One row: which tokens (``source`` "pet" | "ct" | "fused"), the fusion's config overrides, and L_align's ROI
    (None = no L_align, "true" = the high-SUV ROI, "random" = a random ROI of the same size)."""

    source: str
    fusion: tuple = ()
    align: str | None = None
    paper_row: str | None = None

    def fusion_config(self, dim: int, heads: int) -> FusionConfig:
        return FusionConfig(dim=dim, num_heads=heads, **dict(self.fusion))


VARIANTS: dict[str, Variant] = {
    "PET only": Variant("pet", paper_row="w/o fusion & w/o reg"),
    "PET only + L_align": Variant("pet", align="true", paper_row="w/o fusion only"),
    "fusion (w/o L_align)": Variant("fused", paper_row="w/o reg only"),
    "ViPET-VLM": Variant("fused", align="true", paper_row="ViPET-VLM"),
    "CT only": Variant("ct"),
    "concatenation": Variant("fused", fusion=(("mode", "concat_tokens"),)),
    "CT as query": Variant("fused", fusion=(("query", "ct"),)),
    "random ROI": Variant("fused", align="random"),
}

_COLS = ("BLEU-4", "ROUGE-1", "ROUGE-L", "BERT")
#: Table 1 of the paper (report generation, ×100; ViMed-PET), SYSTEMS.md §1.
PAPER_TABLE1 = {
    "LLaVA-Med": (0.01, 50.08, 27.89, 64.63), "M3D": (0.04, 41.01, 23.53, 67.21), "RadFM": (0.06, 54.23, 28.33, 69.49),
    "GPT-4o (few-shot)": (31.12, 67.96, 52.76, 81.09), "w/o fusion & w/o reg": (53.30, 77.79, 68.60, 88.35),
    "w/o fusion only": (54.02, 77.92, 70.58, 88.36), "w/o reg only": (53.72, 77.86, 69.11, 88.44),
    "ViPET-VLM": (55.70, 78.63, 72.04, 89.74),
}
#: Table 2 of the paper (VQA, ×100).
PAPER_TABLE2 = {
    "GPT-4o (few-shot)": (3.01, 49.35, 30.09, 71.92), "w/o fusion & w/o reg": (31.14, 65.61, 51.22, 82.50),
    "w/o fusion only": (33.12, 66.47, 51.18, 83.27), "w/o reg only": (31.70, 65.93, 51.24, 82.91),
    "ViPET-VLM": (33.41, 67.35, 54.02, 84.01),
}


@dataclass
class Prepared:
    """What every run shares: the crops, the stage-1a encoders, their frozen features, the tokenizer, R@5."""

    data: R.PetCtData
    encoders: dict
    features: R.FrozenFeatures
    tokenizer: object
    retrieval: dict
    seconds: dict = field(default_factory=dict)


def prepare(cfg, progress: bool = False) -> Prepared:
    """Crops → stage 1a (f_PET, f_CT, Eq. 3–4) → frozen V_PET, V_CT (once) → R@5 of each encoder on the test crops."""
    t0 = time.perf_counter()
    data = R.load_petct_data(cfg)
    t1 = time.perf_counter()
    encoders = R.train_stage1_encoders(cfg, data, seed=cfg.seed, progress=progress)
    t2 = time.perf_counter()
    feats = R.frozen_features(encoders, data)
    te = data.split("test")
    retrieval = {m: encoders[m].retrieval(images[te], texts[te], k=5)
                 for m, images, texts in (("pet", data.pet, data.pet_texts), ("ct", data.ct, data.ct_texts))}
    return Prepared(data, encoders, feats, R.build_text_tokenizer(data), retrieval,
                    {"data": t1 - t0, "stage 1a": t2 - t1, "features": time.perf_counter() - t2})


@dataclass
class ExperimentResult:
    """rows: one dict per (variant, seed); predictions[(variant, seed)]: test reports; wrong_ct[(variant, seed)]:
    the reports with another patient's CT; per_crop[(variant, seed)]: arrays over test crops ("nll", "nll wrong
    image", "nll wrong CT", "share" over crops with an ROI)."""

    rows: list[dict]
    predictions: dict
    wrong_ct: dict
    per_crop: dict
    seconds: float = 0.0


def _scores(preds: list[str], prep: Prepared) -> dict:
    from rrg_lite.metrics.nlg import bleu, rouge_score_f
    from rrg_lite.metrics.petct_facts import petct_fact_metrics

    data = prep.data
    refs_text = data.targets[data.split("test")]
    preds = [p if p.strip() else "." for p in preds]       # an empty report scores zero, not an error
    out = {k: v.value for k, v in petct_fact_metrics(preds, data.references).items()}
    out["BLEU-4"] = bleu(preds, refs_text)["BLEU-4"].value
    rouge = rouge_score_f(preds, refs_text, types=("rouge1", "rougeL"))
    out["ROUGE-1"], out["ROUGE-L"] = rouge["ROUGE-1"].value, rouge["ROUGE-L (rouge-score)"].value
    return out


def run_variant(cfg, prep: Prepared, name: str, seed: int, warm: dict | None, fusions: dict) -> tuple:
    """Train and score one (variant, seed). ``fusions``: (fusion config, seed) -> trained fusion, filled on demand
    and shared between variants. Returns (row, predictions, wrong-CT predictions or None, per-crop dict)."""
    from rrg_lite.metrics.petct_facts import malignancy_f1

    if name not in VARIANTS:
        raise ValueError(f"unknown ViPET variant {name!r}; choose from {list(VARIANTS)}")
    v, data, feats = VARIANTS[name], prep.data, prep.features
    t0 = time.perf_counter()
    fusion = None
    if v.source == "fused":
        fcfg = v.fusion_config(cfg.encoder_width, cfg.fusion_heads)
        key = (fcfg, seed)
        if key not in fusions:
            fusions[key] = R.train_fusion(cfg, feats, data, fcfg, seed)
        fusion = fusions[key]
    tokens = R.visual_tokens(feats, v.source, fusion)
    roi = None
    if v.align is not None:
        if v.fusion and dict(v.fusion).get("mode") == "concat_tokens":
            raise ValueError(f"{name}: L_align needs one token grid; concatenation has two")
        roi = data.roi if v.align == "true" else random_roi_like(data.roi, seed=1000 + seed, mode="scatter")
    mllm = R.build_mllm(cfg, prep.tokenizer, warm, tokens.shape[-1], seed)
    R.train_stage2(cfg, mllm, R.report_examples(mllm, tokens, data, "train"), seed)
    R.train_stage3(cfg, mllm, R.stage3_examples(cfg, mllm, tokens, data, roi=roi), seed,
                   lam=cfg.lam if roi is not None else 0.0)
    train_s = time.perf_counter() - t0
    mllm.eval()
    kw = dict(batch_size=cfg.eval_batch_size)
    preds = R.generate_targets(mllm, tokens, data, max_new_tokens=cfg.max_new_tokens, **kw)
    wrong = R.wrong_ct_index(data)
    per = {"nll": R.target_nll(mllm, tokens, data, **kw), "nll wrong image": R.target_nll(mllm, tokens[wrong], data, **kw)}
    row = {"variant": name, "seed": seed, **_scores(preds, prep)}
    wrong_preds = None
    if v.source in ("fused", "ct"):
        tokens_wct = R.visual_tokens(feats, v.source, fusion, ct_index=wrong)
        wrong_preds = R.generate_targets(mllm, tokens_wct, data, max_new_tokens=cfg.max_new_tokens, **kw)
        per["nll wrong CT"] = R.target_nll(mllm, tokens_wct, data, **kw)
        row["malignancy F1 (wrong CT)"] = malignancy_f1(wrong_preds, data.references).value
    if tokens.shape[1] == data.roi.shape[1]:                 # one token grid: the ROI is defined on it
        per["share"] = R.roi_share(mllm, tokens, data)
        row["ROI attention share"] = float(per["share"].mean())
    row["test NLL"] = float(per["nll"].mean())
    row["image gain (nats)"] = float((per["nll wrong image"] - per["nll"]).mean())
    row["train s"], row["total s"] = train_s, time.perf_counter() - t0
    return row, preds, wrong_preds, per


def run_experiment(cfg, prep: Prepared | None = None, variants=None, seeds=None, progress: bool = False) -> ExperimentResult:
    """Every (variant, seed) of the profile (or the given lists); warm LMs once per seed, fusions once per config."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    prep = prep or prepare(cfg)
    variants = list(variants or cfg.variants)
    seeds = list(seeds if seeds is not None else cfg.seeds)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown ViPET variants {unknown}; choose from {list(VARIANTS)}")
    res = ExperimentResult([], {}, {}, {})
    fusions: dict = {}
    for seed in seeds:
        warm = R.warm_up_lm(cfg, prep.tokenizer, prep.data, seed)
        for name in tqdm(variants, desc=f"ViPET ablation s{seed}", disable=not progress):
            row, preds, wrong, per = run_variant(cfg, prep, name, seed, warm, fusions)
            res.rows.append(row)
            res.predictions[(name, seed)] = preds
            res.per_crop[(name, seed)] = per
            if wrong is not None:
                res.wrong_ct[(name, seed)] = wrong
    res.seconds = time.perf_counter() - t0
    return res


# ---------------------------------------------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------------------------------------------
def summarize(rows: list[dict], metrics=None, confidence: float = 0.95):
    """Mean over seeds and a t-interval per variant and metric: DataFrame with ``<m>``, ``<m> lo``, ``<m> hi``,
    ``n seeds`` (NaN interval with one seed; :func:`rrg_lite.metrics.significance.summarize_seeds`)."""
    from rrg_lite.metrics.significance import summarize_seeds

    return summarize_seeds(rows, metrics, by="variant", confidence=confidence)


def _pooled(res: ExperimentResult, prep: Prepared, name: str, which: str = "predictions"):
    """Predictions of ``name`` over all its seeds (seed-major) and the references repeated to match."""
    store = res.predictions if which == "predictions" else res.wrong_ct
    seeds = sorted(s for (v, s) in store if v == name)
    if not seeds:
        raise ValueError(f"no {which} for variant {name!r} in this result")
    refs = list(prep.data.references)
    return [p for s in seeds for p in store[(name, s)]], refs * len(seeds), seeds


def paired_f1(res: ExperimentResult, prep: Prepared, a: str, b: str, b_wrong_ct: bool = False, n_boot: int = 1000,
              seed: int = 0) -> dict:
    """Malignancy F1 of ``b`` minus ``a`` with a paired bootstrap over (seed, crop) rows (the same crops, the same
    seeds: every seed's reports are rows of one pooled set). ``b_wrong_ct``: ``b``'s reports with the wrong CT.
    Returns :func:`rrg_lite.metrics.significance.paired_bootstrap`'s dict."""
    from rrg_lite.metrics.petct_facts import malignancy_f1
    from rrg_lite.metrics.significance import paired_bootstrap

    pa, ra, sa = _pooled(res, prep, a)
    pb, rb, sb = _pooled(res, prep, b, "wrong_ct" if b_wrong_ct else "predictions")
    if sa != sb:
        raise ValueError(f"paired_f1: {a!r} has seeds {sa}, {b!r} has {sb}; pair runs of the same seeds")
    return paired_bootstrap(malignancy_f1(pa, ra), malignancy_f1(pb, rb), n_boot=n_boot, seed=seed)


def image_gain(res: ExperimentResult, name: str, control: str = "nll wrong image", n_boot: int = 1000) -> dict:
    """Per test crop: NLL with the control's tokens minus NLL with its own, averaged over seeds; its mean with a
    bootstrap 95 % interval over crops: ``{"value", "low", "high", ...}`` (> 0: the model reads *this* image)."""
    from rrg_lite.metrics.significance import bootstrap_ci

    pers = [p for (v, s), p in sorted(res.per_crop.items()) if v == name and control in p]
    if not pers:
        raise ValueError(f"no {control!r} read-out for variant {name!r}")
    gain = np.mean([p[control] - p["nll"] for p in pers], axis=0)
    return bootstrap_ci(gain, n_boot=n_boot)


def attention_table(res: ExperimentResult, prep: Prepared, n_boot: int = 1000):
    """Attention share on the ROI tokens per variant (mean over seeds per crop, bootstrap interval over crops) beside
    the ROI's share of tokens (uniform attention): a DataFrame."""
    import pandas as pd

    from rrg_lite.metrics.significance import bootstrap_ci

    te = prep.data.roi[prep.data.split("test")]
    te = te[te.any(1)]
    uniform = float(te.float().mean(1).mean())
    out = {}
    for name in dict.fromkeys(v for v, _ in res.per_crop):
        shares = [p["share"] for (v, _), p in sorted(res.per_crop.items()) if v == name and "share" in p]
        if shares:
            ci = bootstrap_ci(np.mean(shares, axis=0), n_boot=n_boot)
            out[name] = {"ROI share": ci["value"], "lo": ci["low"], "hi": ci["high"], "uniform": uniform,
                         "n crops": len(shares[0])}
    return pd.DataFrame.from_dict(out, orient="index")


def paper_table(table: int = 1):
    """The paper's Table 1 (report generation) or Table 2 (VQA), ×100, as a DataFrame (ViMed-PET; no seeds, no
    CIs; "w/o fusion" = PET only)."""
    import pandas as pd

    if table not in (1, 2):
        raise ValueError(f"paper_table: table must be 1 or 2, got {table}")
    df = pd.DataFrame.from_dict(PAPER_TABLE1 if table == 1 else PAPER_TABLE2, orient="index", columns=list(_COLS))
    df.attrs["source"] = f"ViPET-VLM (papers/vipet_vlm.txt), Table {table}; SYSTEMS.md §1"
    return df
