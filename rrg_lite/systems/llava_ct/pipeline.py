"""Chapter 5's training and evaluation in one call, for ``python -m rrg_lite.run mllm_from_parts``.

:func:`run` chains the functions the notebook calls, cell by cell, without the plots: data
(:func:`~.recipe.load_ct_report_data`), the frozen encoder and its features, the LM, the three stages
(text → align → LoRA, checkpoints in ``<output_dir>/<stage>``), greedy reports for the held-out studies with
the same four models as the chapter's table (text-only, stage 1, stage 2, stage 2 with another study's image),
and their scores. Under ``accelerate launch`` every process trains its share of each batch and generates its
share of the reports; process 0 writes the results.

Outputs in ``output_dir``: ``results.json`` (scores, timings, the profile), ``reports.jsonl`` (one line per
held-out study and model), the stages' checkpoints and final weights (:mod:`rrg_lite.train.checkpoint`). With
``feature_cache`` set, the frozen features go to disk there (sharded safetensors, keyed by encoder weights,
studies and preprocessing) and training reads them lazily, one batch at a time.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import torch

from . import recipe

__all__ = ["run", "MODELS"]

MODELS = ("text-only baseline", "stage 1 (image, frozen LM)", "stage 2 (image, LoRA)", "stage 2, another study's image")


def _main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def run(cfg, progress: bool = False) -> dict:
    """Train and evaluate chapter 5 under profile ``cfg`` (``rrg_lite.profiles.mllm``); returns the results dict.

    The frozen encoder computes the features on the profile's ``device``; training and generation follow
    Accelerate's device.
    """
    from rrg_lite.encoders.pretrain import extract_features, probe_auc, train_label_probe
    from rrg_lite.mllm.model import MultimodalLM
    from rrg_lite.mllm.prompt import MLLMCollator
    from rrg_lite.mllm.stages import apply_lora, configure_stage
    from rrg_lite.profiles import resolve_device
    from rrg_lite.tokenizers.pooling import SpatialPoolingProjector
    from rrg_lite.train.evaluate import generate_reports, score_generated
    from rrg_lite.train.loop import TrainConfig

    seed, timings = cfg.seed, {}
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    data = recipe.load_ct_report_data(cfg, seed=seed, progress=progress)
    if cfg.standardize:
        data = data.standardize(inplace=True)
    train_idx, test_idx = data.split("train"), data.split("test")
    timings["data"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    encoder = recipe.build_encoder(cfg, in_channels=data.volumes[0].shape[0], seed=seed)
    auc = None
    if cfg.encoder_epochs:
        probe, _ = train_label_probe(
            encoder, data.volumes[train_idx], data.labels[train_idx],
            TrainConfig(lr=cfg.encoder_lr, batch_size=cfg.batch_size, epochs=cfg.encoder_epochs, warmup_steps=10,
                        seed=seed, log_every=20, desc="encoder", progress=progress), pool=cfg.probe_pool)
        auc = float(probe_auc(probe, data.volumes[test_idx], data.labels[test_idx]).mean())
    encoder.to(resolve_device(cfg.device))
    if cfg.feature_cache:
        features = recipe.CachedFeatures(_feature_cache(cfg, encoder, data, progress))  # lazy (n, 1, N, E)
    else:
        features = extract_features(encoder, data.volumes, progress=progress)  # (n, 1, N, E) in memory
    encoder.cpu()
    timings["encoder"] = time.perf_counter() - t0

    lm, tok = recipe.build_language_model(cfg, data.reports[train_idx],
                                          extra_texts=[recipe.IMAGE_PROMPT, recipe.TEXT_PROMPT], seed=seed)
    projector = SpatialPoolingProjector(encoder.embed_dim, lm.config.hidden_size, grid=encoder.grid,
                                        kernel=tuple(cfg.pool_kernel))
    mllm = MultimodalLM(lm, tok, {"image": projector})
    collate = MLLMCollator(tok.pad_token_id)
    text_train = recipe.report_examples(mllm, None, data.reports[train_idx], with_image=False)
    image_train = recipe.report_examples(mllm, features[train_idx], data.reports[train_idx])
    common = dict(collate=collate, batch_size=cfg.batch_size, grad_accum=cfg.grad_accum,
                  mixed_precision=cfg.precision, progress=progress,
                  resume_from="latest" if cfg.output_dir and cfg.resume else None)
    t0 = time.perf_counter()
    runs = {}
    configure_stage(mllm, "text")
    if cfg.text_steps:
        runs["0 text"] = recipe.train_stage(mllm, text_train, steps=cfg.text_steps, lr=cfg.text_lr, seed=seed,
                                            name="0 text", output_dir=recipe.stage_dir(cfg, "0 text"), **common)
    configure_stage(mllm, "align")
    runs["1 align"] = recipe.train_stage(mllm, image_train, steps=cfg.align_steps, lr=cfg.align_lr, seed=seed + 1,
                                         name="1 align", output_dir=recipe.stage_dir(cfg, "1 align"), **common)
    stage1_projector = copy.deepcopy(mllm.projectors["image"].state_dict())
    apply_lora(mllm, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
               target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"))
    configure_stage(mllm, "lora")
    runs["2 LoRA"] = recipe.train_stage(mllm, image_train, steps=cfg.lora_steps, lr=cfg.lora_lr, seed=seed + 2,
                                        name="2 LoRA", output_dir=recipe.stage_dir(cfg, "2 LoRA"), **common)
    timings["LM training"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    refs = data.reports[test_idx]
    test_features = features[test_idx]
    gen = dict(batch_size=cfg.gen_batch_size, max_new_tokens=cfg.max_new_tokens, progress=progress)
    preds = {MODELS[2]: generate_reports(mllm, recipe.report_examples(mllm, test_features, None), **gen)}
    if len(refs) >= 2:
        preds[MODELS[3]] = generate_reports(
            mllm, recipe.report_examples(mllm, test_features[recipe.derangement(len(refs), seed)], None), **gen)
    stage2_projector = copy.deepcopy(mllm.projectors["image"].state_dict())
    mllm.projectors["image"].load_state_dict(stage1_projector)
    with mllm.lm.disable_adapter():
        preds[MODELS[0]] = generate_reports(
            mllm, recipe.report_examples(mllm, None, None, with_image=False, n=len(refs)), **gen)
        preds[MODELS[1]] = generate_reports(mllm, recipe.report_examples(mllm, test_features, None), **gen)
    mllm.projectors["image"].load_state_dict(stage2_projector)
    timings["generation"] = time.perf_counter() - t0
    scores = {name: {k: float(v) for k, v in score_generated(p, refs, labeler="ctrate").items()}
              for name, p in preds.items()}
    results = {"chapter": "mllm_from_parts", "profile": cfg.name, "config": cfg.as_dict(),
               "n_train": data.n_train, "n_test": len(refs), "encoder_probe_mean_auc": auc,
               "final_loss": {k: r.history[-1]["loss"] for k, r in runs.items() if r.history},
               "checkpoints": {k: r.last_checkpoint for k, r in runs.items()},
               "scores": scores, "timings": {k: round(v, 2) for k, v in timings.items()}}
    if cfg.output_dir and _main_process():
        _write(Path(cfg.output_dir), results, data.study_ids[data.n_train:], refs, preds)
    return results


def _feature_cache(cfg, encoder, data, progress: bool):
    """The frozen encoder's features on disk (:mod:`rrg_lite.encoders.features`), computed once per encoder
    weights + studies + preprocessing: a second run, or another chapter with the same settings, reads them."""
    from rrg_lite.encoders.features import build_feature_cache

    preprocessing = {"data_root": None if cfg.data_root is None else str(cfg.data_root),
                     "volume_shape": list(cfg.volume_shape), "windows": cfg.windows, "standardize": cfg.standardize,
                     "world": cfg.world if cfg.data_root is None else None, "seed": cfg.seed}
    return build_feature_cache(encoder, data.volumes, cfg.feature_cache, ids=data.study_ids,
                               preprocessing=preprocessing, encoder_name=cfg.encoder, batch_size=cfg.batch_size,
                               progress=progress)


def _write(out: Path, results: dict, study_ids, refs, preds) -> None:
    import json

    from rrg_lite.train.checkpoint import jsonable, write_json_atomic

    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", jsonable(results))
    with open(out / "reports.jsonl", "w") as f:
        for name, texts in preds.items():
            for sid, ref, text in zip(study_ids, refs, texts):
                f.write(json.dumps({"model": name, "study_id": sid, "reference": ref, "generated": text}) + "\n")
