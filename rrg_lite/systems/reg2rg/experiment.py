"""Reg2RG's ablations rebuilt on the world: Tables V (LFD), VI (TXT / GEO / GLB), VII (RRA) and the controls.

    data = prepare(cfg)                              # studies → cached frozen features (once), tokenizer
    rows, runs = run_experiment(cfg, data)           # every variant × seed, plus the controls on Reg2RG
    summarize(rows)                                  # mean over seeds with a 95 % t-interval
    compare(runs, "Reg2RG", "without LFD", "CE F1 (paper)")   # paired bootstrap over test studies (and seeds)
    image_gain(runs)                                 # own tokens vs another patient's, paired, per study
    paper_table()                                    # the paper's numbers (SYSTEMS.md §2)

Trained models (:data:`.recipe.VARIANTS`): Reg2RG; without LFD (Table V); GLB only = RadFM, TXT, TXT+GEO,
TXT+GEO+GLB, all without RRA (Table VI; the last is Table VII's "without RRA"); RRA trained on unshuffled
regions and tested on shuffled ones (control). Every variant of a seed starts from the same warm LM.

Test-time controls on each seed's Reg2RG (no retraining): **another patient's tokens** — every region's tokens
(texture, geometry) and the global tokens come from other test studies, region by region from a study that has
the same area (:func:`swap_patients`), so the prompt and the slot → area pairing stay and only the patient
changes (CE should fall to chance, recognition need not); **constant mask** — every region's geometry input is
the mean training mask (the geometry token says nothing). Global tokens only is the GLB model.

Metrics per run (:func:`rrg_lite.systems.reg2rg.recipe.score_reports`): prefix-stripped BLEU-1/4, ROUGE-L;
CT-18 CE from the world's labeler, P / R and F1 both ways; region recognition (RRA models); teacher-forced test
NLL with the model's own tokens and with another patient's (``image gain`` = the difference, nats per token).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch

from . import recipe
from .recipe import VARIANTS, RegionFeatures

__all__ = ["ExperimentData", "prepare", "oracle_region_features", "swap_patients", "constant_mask", "run_experiment", "summarize",
           "compare", "image_gain", "recognition_table", "paper_table", "PAPER_TABLES", "PAPER_RECOGNITION",
           "CONTROLS"]

CONTROLS = ("Reg2RG · another patient's tokens", "Reg2RG · constant mask")


@dataclass
class ExperimentData:
    train: list[RegionFeatures]
    test: list[RegionFeatures]
    bundle: object
    tokenizer: object
    seconds: float


def prepare(cfg, progress: bool = False, bundle=None, variants: Sequence[str] | None = None) -> ExperimentData:
    """Studies (world or RadGenome folder) → frozen features once for every variant and seed → tokenizer.

    ``bundle``: the CT encoder (default :func:`.recipe.ct_encoder`); ``variants`` (default ``cfg.variants``)
    decide whether the masked uncropped volumes are encoded (only an ``lfd=False`` variant reads them)."""
    from .features import ABLATIONS

    t0 = time.perf_counter()
    studies, n_train = recipe.load_region_studies(cfg, progress)
    bundle = bundle or recipe.ct_encoder(cfg)
    masked = any(not ABLATIONS[VARIANTS[v].features]["lfd"] for v in (variants or cfg.variants))
    feats = recipe.extract_region_features(cfg, bundle, studies, progress=progress, masked=masked)
    if cfg.standardize_regions:
        feats = recipe.standardize_regions(feats, n_train)
    train, test = feats[:n_train], feats[n_train:]
    if len(train) < 2 or len(test) < 2:
        raise ValueError(f"reg2rg: need at least 2 training and 2 test studies, got {len(train)} and {len(test)}")
    return ExperimentData(train, test, bundle, recipe.build_text_tokenizer(cfg, train), time.perf_counter() - t0)


def oracle_region_features(studies: Sequence[recipe.RegionStudy], areas: Sequence[str], mask_shape,
                           num_tokens: int = 64, width: int = 64, scale: float = 3.0) -> list[RegionFeatures]:
    """A perfect f_V: features that hold the answer, to tell an encoder failure from a pipeline failure.

    Every token of region j carries a one-hot of its area (channels ``0 … len(areas)-1``) and the study's 18
    CT-RATE labels (channels 10 … 27), times ``scale``; the global tokens carry the labels. Geometry inputs are the
    real masks (f_M's input). Shapes as :class:`.recipe.RegionFeatures` with N = ``num_tokens``, E = ``width``."""
    from rrg_lite.data.regions import resize_mask

    if width < 28 or len(areas) > 10:
        raise ValueError("oracle_region_features needs width >= 28 and at most 10 areas")
    out = []
    for st in studies:
        lab = torch.as_tensor(np.asarray(st.labels, np.float32)) * scale
        R_ = len(st.regions)
        tex = torch.zeros(R_, num_tokens, width)
        for r, a in enumerate(st.regions):
            tex[r, :, list(areas).index(a)] = scale
        tex[:, :, 10:28] = lab
        glb = torch.zeros(1, num_tokens, width)
        glb[0, :, 10:28] = lab
        geo = torch.stack([torch.as_tensor(resize_mask(m, mask_shape)) for m in st.masks])[:, None].half()
        out.append(RegionFeatures(st.study_id, list(st.regions), dict(st.reports), np.asarray(st.labels), glb, tex,
                                  tex.clone(), geo))
    return out


def swap_patients(test: Sequence[RegionFeatures], seed: int = 0) -> list[RegionFeatures]:
    """Each study keeps its areas, reports and order, but every region's features come from another study with
    that area (the next one in a seeded cyclic order of the studies that have it), and the global features from
    the next study in a seeded derangement. Needs every area in at least two studies."""
    n = len(test)
    if n < 2:
        raise ValueError("swap_patients needs at least two studies")
    rng = np.random.default_rng(seed)
    cycle = [int(i) for i in rng.permutation(n)]
    nxt = {cycle[k]: cycle[(k + 1) % n] for k in range(n)}
    holders: dict[str, list[int]] = {}
    for i in cycle:
        for a in test[i].regions:
            holders.setdefault(a, []).append(i)
    out = []
    for i, f in enumerate(test):
        tex, msk, geo = [], [], []
        for a in f.regions:
            h = holders[a]
            if len(h) < 2:
                raise ValueError(f"swap_patients: area {a!r} is in one test study only; no other patient to take")
            j = h[(h.index(i) + 1) % len(h)]
            r = test[j].regions.index(a)
            tex.append(test[j].texture_features[r])
            msk.append(None if test[j].masked_features is None else test[j].masked_features[r])
            geo.append(test[j].geometry[r])
        out.append(replace(f, global_features=test[nxt[i]].global_features, texture_features=torch.stack(tex),
                           masked_features=None if None in msk else torch.stack(msk), geometry=torch.stack(geo)))
    return out


def constant_mask(test: Sequence[RegionFeatures], train: Sequence[RegionFeatures]) -> list[RegionFeatures]:
    """Every region's geometry input = the mean of all training regions' (one constant mask: geometry off)."""
    mean = torch.cat([f.geometry.float() for f in train]).mean(0, keepdim=True).half()
    return [replace(f, geometry=mean.expand(len(f.regions), *mean.shape[1:]).clone()) for f in test]


def _evaluate(cfg, model, test, tok, variant, name, seed):
    """Score one model on ``test``: metrics dict + per-study arrays."""
    lcfg = model.lfd.config
    shuffle = variant.rra            # RRA models are tested on shuffled orders (the train-unshuffled control too)
    ex = recipe.test_examples(test, tok, variant, lcfg, cfg.test_order_seed, shuffle=shuffle)
    gen_ex = recipe.test_examples(test, tok, variant, lcfg, cfg.test_order_seed, shuffle=shuffle, with_target=False)
    nll = recipe.teacher_forced_nll(model, ex, cfg.eval_batch_size)
    preds = recipe.generate(cfg, model, gen_ex)
    scores = recipe.score_reports(preds, [e["reference"] for e in ex], [e["order"] for e in ex] if variant.rra
                                  else None, areas=cfg.regions)
    per = scores.pop("per_study")
    per["nll"] = nll
    return {"variant": name, "seed": seed, "test NLL": float(nll.mean()), **scores}, per, preds


def run_experiment(cfg, data: ExperimentData, variants: Sequence[str] | None = None,
                   seeds: Sequence[int] | None = None, progress: bool = False):
    """Train and score every (variant, seed), and the controls on each seed's Reg2RG.

    Returns ``(rows, runs)``: ``rows`` one dict per (variant or control, seed) with the metrics, ``image gain``
    (test NLL with another patient's tokens minus with its own, nats/token) and ``train s``; ``runs[(name, seed)]``
    = ``{"per_study": {...}, "preds": [...]}`` for paired intervals and for reading the reports.
    """
    variants = list(variants or cfg.variants)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"reg2rg: unknown variants {unknown}; known: {list(VARIANTS)}")
    seeds = list(cfg.seeds if seeds is None else seeds)
    tok, rows, runs = data.tokenizer, [], {}
    swapped = swap_patients(data.test, seed=cfg.test_order_seed)
    const = constant_mask(data.test, data.train)
    for seed in seeds:
        warm = recipe.warm_up_lm(cfg, tok, data.train, seed)
        for name in variants:
            v = VARIANTS[name]
            t0 = time.perf_counter()
            model = recipe.build_model(cfg, data.bundle, tok, v, seed, warm)
            recipe.train_model(cfg, model, data.train, v, seed, progress=progress)
            train_s = time.perf_counter() - t0
            row, per, preds = _evaluate(cfg, model, data.test, tok, v, name, seed)
            ex_sw = recipe.test_examples(swapped, tok, v, model.lfd.config, cfg.test_order_seed, shuffle=v.rra)
            per["nll_swapped"] = recipe.teacher_forced_nll(model, ex_sw, cfg.eval_batch_size)
            row["test NLL (another patient)"] = float(per["nll_swapped"].mean())
            row["image gain"] = row["test NLL (another patient)"] - row["test NLL"]
            row["train s"] = train_s
            rows.append(row)
            runs[(name, seed)] = {"per_study": per, "preds": preds}
            if name == "Reg2RG":
                for control, feats in zip(CONTROLS, (swapped, const)):
                    crow, cper, cpreds = _evaluate(cfg, model, feats, tok, v, control, seed)
                    rows.append(crow)
                    runs[(control, seed)] = {"per_study": cper, "preds": cpreds}
    return rows, runs


# ---- summaries ----------------------------------------------------------------------------------------------------
def summarize(rows, metrics: Sequence[str] | None = None, confidence: float = 0.95):
    """Mean over seeds and a t-interval per variant and metric (NaN with one seed): a DataFrame indexed by
    variant with ``<metric>``, ``<metric> lo``, ``<metric> hi`` and ``n seeds`` (the package's
    :func:`rrg_lite.metrics.significance.summarize_seeds`)."""
    from rrg_lite.metrics.significance import summarize_seeds

    return summarize_seeds(rows, metrics, by="variant", confidence=confidence)


def _ce_stat(kind: str):
    from rrg_lite.metrics.clinical import weighted_prf
    from rrg_lite.metrics.ctrate_labeler import binarize

    def stat(rows: np.ndarray) -> float:
        L = rows.shape[1] // 2
        v = weighted_prf(binarize(rows[:, :L]).astype(int), binarize(rows[:, L:]).astype(int))
        return v[kind]
    return stat


_CE = {"CE F1 (paper)": "F1_harmonic", "CE F1 (evaluator)": "F1_weighted", "CE P": "P", "CE R": "R"}


def _rows(runs, name, metric, seeds):
    """Per (seed, study) rows for ``metric``: CE label rows (pred | ref), or a per-study value."""
    parts = []
    for s in seeds:
        per = runs[(name, s)]["per_study"]
        if metric in _CE:
            parts.append(np.concatenate([per["pred_codes"], per["ref_codes"]], axis=1))
        elif metric == "recognition acc":
            parts.append(per["slot_correct"])
        elif metric == "test NLL":
            parts.append(per["nll"])
        else:
            raise ValueError(f"compare: no per-study values for {metric!r}; use one of "
                             f"{list(_CE) + ['recognition acc', 'test NLL']}")
    return np.concatenate(parts)


def compare(runs, a: str, b: str, metric: str = "CE F1 (paper)", n_boot: int = 1000, seed: int = 0) -> dict:
    """Paired bootstrap of ``b − a`` over the (seed, test study) pairs both were scored on
    (:func:`rrg_lite.metrics.significance.paired_bootstrap`): ``{"a", "b", "delta", "low", "high", "p_value"}``.
    CE metrics are recomputed on each resample (corpus-level F1); others are per-study means."""
    from rrg_lite.metrics.significance import paired_bootstrap

    seeds = sorted(s for (n, s) in runs if n == a and (b, s) in runs)
    if not seeds:
        raise ValueError(f"compare: no seed has both {a!r} and {b!r}")
    stat = _ce_stat(_CE[metric]) if metric in _CE else None
    return paired_bootstrap(_rows(runs, a, metric, seeds), _rows(runs, b, metric, seeds), stat=stat,
                            n_boot=n_boot, seed=seed)


def image_gain(runs, name: str = "Reg2RG", n_boot: int = 1000, seed: int = 0) -> dict:
    """Test NLL with another patient's tokens minus with the study's own, averaged over seeds per test study,
    with a paired bootstrap interval over the studies (> 0: the model reads *this* patient's tokens)."""
    from rrg_lite.metrics.significance import paired_bootstrap

    keys = sorted(s for (n, s) in runs if n == name)
    own = np.mean([runs[(name, s)]["per_study"]["nll"] for s in keys], axis=0)
    other = np.mean([runs[(name, s)]["per_study"]["nll_swapped"] for s in keys], axis=0)
    r = paired_bootstrap(own, other, n_boot=n_boot, seed=seed)
    return {"gain": r["delta"], "low": r["low"], "high": r["high"], "p_value": r["p_value"], "n": len(own),
            "seeds": len(keys)}


def recognition_table(rows, variant: str = "Reg2RG"):
    """Table III on the world: per-area recognition F1 (mean over seeds) of one RRA variant."""
    import pandas as pd

    df = pd.DataFrame([r for r in rows if r["variant"] == variant])
    cols = [c for c in df.columns if c.startswith("recognition F1 ")]
    return pd.DataFrame({"F1": df[cols].mean(), "F1 sd": df[cols].std()}).rename(
        index=lambda c: c[len("recognition F1 "):])


#: The paper's numbers (RadGenome-ChestCT; CE = P/R/F1 with F1 = 2PR/(P+R); NLG ×100 BL-1/BL-4/METEOR/ROUGE-L).
PAPER_TABLES = {
    "Table V (LFD)": {
        "without LFD": (.349, .140, .200, 46.85, 25.69, 43.74, 37.64),
        "Reg2RG": (.423, .181, .253, 47.25, 24.87, 44.07, 36.65),
    },
    "Table VI (features, without RRA)": {
        "GLB (RadFM)": (.382, .131, .195, 44.20, 23.65, 39.94, 31.53),
        "TXT": (.336, .089, .141, 43.72, 20.77, 39.82, 35.12),
        "TXT+GEO": (.394, .143, .210, 45.31, 23.35, 41.79, 37.20),
        "TXT+GEO+GLB (without RRA)": (.372, .176, .239, 46.21, 23.53, 42.94, 37.01),
    },
    "Table VII (RRA)": {
        "TXT+GEO+GLB (without RRA)": (.372, .176, .239, 46.21, 23.53, 42.94, 37.01),
        "Reg2RG": (.423, .181, .253, 47.25, 24.87, 44.07, 36.65),
    },
}
PAPER_RECOGNITION = {"abdomen": .997, "bone": .997, "breast": .964, "esophagus": .998, "heart": .996, "lung": .443,
                     "mediastinum": .994, "pleura": .442, "thyroid": .960, "trachea and bronchie": .988}


def paper_table():
    """The paper's Tables V–VII as one DataFrame (rows: table, variant)."""
    import pandas as pd

    cols = ["CE P", "CE R", "CE F1 (paper)", "BLEU-1", "BLEU-4", "METEOR", "ROUGE-L"]
    rows = [{"table": t, "variant": v, **dict(zip(cols, vals))} for t, d in PAPER_TABLES.items()
            for v, vals in d.items()]
    df = pd.DataFrame(rows).set_index(["table", "variant"])
    df.attrs["source"] = ("Reg2RG (papers/reg2rg.txt), Tables V–VII; Table III's region recognition F1 is "
                          "PAPER_RECOGNITION")
    return df
