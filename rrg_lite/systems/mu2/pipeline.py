"""Chapters 6 and 7 in one call each, for ``python -m rrg_lite.run mu2`` / ``… preference_optimisation``.

:func:`run_tokenizer_ablation` is chapter 6 without the plots: the world (or an AMOS-MM folder) → frozen features
→ questions, then the tokenizer ablation (:func:`.ablation.run_ablation`: every variant × seed trained and
scored), its summary with intervals, and the μ² SFT model of the first seed saved to ``<output_dir>/sft`` —
the folder chapter 7 takes as ``sft_checkpoint``.

:func:`run_preference` is chapter 7 without the plots (:mod:`.preference`): the SFT model (read from
``sft_checkpoint`` or trained), held-out GREEN, preference pairs, DPO for every β, held-out GREEN again.

Outputs in ``output_dir``: ``results.json``; chapter 6 also ``sft/`` and per-run checkpoints in ``runs/``;
chapter 7 also ``pairs.jsonl`` and ``dpo_beta_<β>/model`` (the DPO policy, loadable by path with
:func:`.preference.load_sft`) with its training run in ``dpo_beta_<β>/train``.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from . import ablation as mu2
from . import preference as recipe

__all__ = ["run_tokenizer_ablation", "run_preference"]


def _main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def _write_results(cfg, results: dict) -> None:
    from rrg_lite.train.checkpoint import jsonable, write_json_atomic

    if cfg.output_dir and _main_process():
        Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(cfg.output_dir) / "results.json", jsonable(results))


def run_tokenizer_ablation(cfg, progress: bool = False) -> dict:
    """Chapter 6's ablation under profile ``cfg`` (``rrg_lite.profiles.mu2``); returns the results dict."""
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    world = mu2.prepare_world(cfg, seed=cfg.seed) if cfg.dataset == "world" else mu2.prepare_manifest(cfg, seed=cfg.seed)
    oracle = cfg.ablation_features == "oracle"
    if oracle and not world.oracle_train:
        raise ValueError("ablation_features='oracle' needs the synthetic world (real data has no oracle features)")
    train_set, test_set = (world.oracle_train, world.oracle_test) if oracle else (world.train, world.test)
    text_tok = mu2.text_tokenizer_for(cfg, train_set)
    seconds_data = time.perf_counter() - t0
    t0 = time.perf_counter()
    runs_dir = None if cfg.output_dir is None else str(Path(cfg.output_dir) / "runs")
    rows, predictions, models = mu2.run_ablation(cfg, text_tok, train_set, test_set, variants=list(cfg.variants),
                                                 seeds=cfg.seeds, output_dir=runs_dir)
    metrics = [m for m in ("test NLL", "image gain", "BLEU-4", "ROUGE-1", "METEOR", "GREEN (offline)") if m in rows[0]]
    summary = mu2.summarize(rows, metrics)
    results = {"chapter": "mu2", "profile": cfg.name, "config": cfg.as_dict(),
               "n_train_questions": len(train_set), "n_test_questions": len(test_set), "skipped": len(world.skipped),
               "rows": rows, "summary": summary.reset_index(names="variant").to_dict(orient="records"),
               "seconds": {"data": round(seconds_data, 2), "ablation": round(time.perf_counter() - t0, 2)}}
    key = (recipe.SFT_VARIANT, cfg.seeds[0])
    if cfg.output_dir and key in models and _main_process():
        results["sft_checkpoint"] = str(recipe.save_sft(Path(cfg.output_dir) / "sft", models[key], text_tok, cfg))
    _write_results(cfg, results)
    return results


def run_preference(cfg, progress: bool = False) -> dict:
    """Chapter 7 under profile ``cfg`` (``rrg_lite.profiles.dpo``); returns the results dict."""
    from rrg_lite.metrics.significance import paired_bootstrap
    from rrg_lite.train.preference import report_lengths, write_pairs

    torch.manual_seed(cfg.seed)
    arch = recipe.sft_arch(cfg)
    _, train_samples, test_samples = recipe.preference_samples(cfg, arch)
    sft, text_tok, sft_run = recipe.sft_model(cfg, arch, train_samples)
    train_cached = recipe.cached_examples(sft, train_samples)
    test_cached = recipe.cached_examples(sft, test_samples)
    refs = [s.answer for s in test_samples]
    sft_preds, sft_green, sft_ci = recipe.evaluate_green(cfg, sft, test_cached, refs)
    pairs, pair_stats = recipe.preference_pairs(cfg, sft, train_samples, train_cached)
    out = Path(cfg.output_dir) if cfg.output_dir else None
    if out is not None and _main_process():
        out.mkdir(parents=True, exist_ok=True)
        write_pairs(out / "pairs.jsonl", pairs)
    results = {"chapter": "preference_optimisation", "profile": cfg.name, "config": cfg.as_dict(),
               "sft": {"source": cfg.sft_checkpoint or "trained here",
                       "final_loss": sft_run.history[-1]["loss"] if sft_run is not None and sft_run.history else None,
                       "GREEN": sft_ci, "words": float(report_lengths(sft_preds).mean())},
               "pairs": pair_stats, "dpo": {}}
    if not pairs:
        results["dpo"] = "no preference pairs: every question was dropped (see 'pairs')"
        _write_results(cfg, results)
        return results
    dpo_data = recipe.dpo_dataset(sft, text_tok, train_samples, train_cached, pairs)
    for beta in sorted(set([*cfg.betas, cfg.beta])):
        run_dir = None if out is None else out / f"dpo_beta_{beta:g}"
        policy, objective = recipe.train_dpo(cfg, sft, text_tok, dpo_data, beta,
                                             output_dir=None if run_dir is None else str(run_dir / "train"))
        preds, green, ci = recipe.evaluate_green(cfg, policy, test_cached, refs)
        diff = paired_bootstrap(sft_green, green, n_boot=cfg.bootstrap, seed=cfg.seed)
        results["dpo"][f"{beta:g}"] = {"GREEN": ci, "delta_vs_sft": diff, "words": float(report_lengths(preds).mean()),
                                       "distinct_answers": len(set(preds)), "final": objective.summary(5)}
        if run_dir is not None and _main_process():  # loadable by path like the SFT model (load_sft)
            recipe.save_sft(run_dir / "model", policy, text_tok, arch,
                            extra={"stage": "dpo", "beta": beta, "sft": cfg.sft_checkpoint or "trained here"})
    _write_results(cfg, results)
    return results
