"""μ²-LLM's second stage as functions (chapter 7): the SFT model, GREEN-ranked preference pairs, DPO.

    arch = sft_arch(cfg)                                            # the μ² architecture (rrg_lite.profiles.mu2)
    encoder, train_samples, test_samples = preference_samples(cfg, arch)
    sft, text_tok, sft_run = sft_model(cfg, arch, train_samples)    # trained here, or read from cfg.sft_checkpoint
    train_cached = cached_examples(sft, train_samples)              # visual tokens computed once (frozen tokenizer)
    pairs, stats = preference_pairs(cfg, sft, train_samples, train_cached)
    dpo_data = dpo_dataset(sft, text_tok, train_samples, train_cached, pairs)
    policy, objective = train_dpo(cfg, sft, text_tok, dpo_data, beta)

The generic parts are shared: sampling and ranking (:mod:`rrg_lite.train.preference`), the DPO loss
(:mod:`rrg_lite.train.dpo`), the loop (:mod:`rrg_lite.train.loop`). What is μ²'s own is here: its question
samples, its architecture, and the SFT hand-off between chapters 6 and 7 — :func:`save_sft` writes a
self-describing folder (:mod:`rrg_lite.mllm.saving`: weights in safetensors, the LM's config, the text tokenizer
with its chat template, and μ²'s architecture) that :func:`load_sft` rebuilds by path, with no other input.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch

from . import ablation as mu2

__all__ = ["SFT_VARIANT", "sft_arch", "preference_samples", "save_sft", "load_sft", "sft_model", "cached_examples",
           "evaluate_green", "preference_pairs", "dpo_dataset", "train_dpo"]

SFT_VARIANT = "μ² (SFT)"
_ARCH_FIELDS = ("encoder", "encoder_weights", "encoder_width", "encoder_depth", "encoder_heads", "llm", "data_root",
                "feature_cache", "precision", "device")
# what a run sets for itself even when the architecture comes from an SFT checkpoint (paths and devices differ)
_RUN_FIELDS = ("data_root", "encoder_weights", "feature_cache", "precision", "device")


def sft_arch(cfg) -> SimpleNamespace:
    """The μ² architecture and preprocessing of chapter 7, with its SFT settings.

    Without ``cfg.sft_checkpoint``: the μ² profile of the same name as ``cfg`` (a ``dpo`` profile) with ``cfg``'s
    shared fields (so ``-p llm …`` / ``-p encoder_weights …`` reach it). With one: the architecture saved in the
    checkpoint (:func:`save_sft`) — frames, sizes and tokenizer must be the ones the SFT model was trained with —
    with this run's data root, encoder weights, precision and device. ``n_train``/``n_test`` are ``cfg``'s.
    """
    from rrg_lite.profiles import load_profile

    if cfg.sft_checkpoint is not None:
        from rrg_lite.mllm.saving import load_mllm_config

        base = dict(load_mllm_config(cfg.sft_checkpoint)["config"]["arch"])
        base.update({k: cfg[k] for k in _RUN_FIELDS if cfg[k] is not None})
    else:
        base = load_profile("mu2", cfg.name, **{k: cfg[k] for k in _ARCH_FIELDS if k in cfg}).as_dict()
    return SimpleNamespace(**{**base, "steps": cfg.sft_steps, "lr": cfg.sft_lr, "batch_size": cfg.batch_size,
                              "seed": cfg.seed, "n_train": cfg.n_train, "n_test": cfg.n_test})


def _frame_encoder(arch, seed: int):
    """The CPU profile's frozen frame encoder: a random tiny ViT (chapter 7 only needs *some* frozen features)."""
    from rrg_lite.encoders.vit import vit3d

    torch.manual_seed(seed)
    return vit3d(img_size=(arch.slices_per_frame, arch.ct_size, arch.ct_size), patch_size=tuple(arch.patch_size),
                 embed_dim=arch.encoder_width).eval()


def preference_samples(cfg, arch):
    """``(encoder, train_samples, test_samples)``: one question per study and body part, with frozen features.

    ``cfg.data_root is None``: the world's CT studies (answers = the present findings, as in chapter 6's CPU
    profile), features from a random frozen tiny ViT. Else an AMOS-MM folder read exactly as chapter 6 reads it
    (:func:`.ablation.prepare_manifest`: volumes one at a time, min-max, resized, framed, encoded; splits
    ``train`` and ``validation``).
    """
    if cfg.data_root is not None:
        data = mu2.prepare_manifest(arch, seed=cfg.seed)
        return data.encoder, data.train, data.test
    from rrg_lite.profiles import resolve_device
    from rrg_lite.world.ct import generate_ct_cohort

    encoder = _frame_encoder(arch, cfg.seed).to(resolve_device(getattr(arch, "device", "auto")))
    studies = generate_ct_cohort(cfg.n_train + cfg.n_test, seed=cfg.world_seed)
    frames = [mu2.ct_to_frames(s.ct, arch.slices_per_frame, arch.num_frames, arch.hu_range) for s in studies]
    features = mu2.encode_frames(encoder, frames)
    train, _ = mu2.body_part_samples(studies[: cfg.n_train], features[: cfg.n_train], seed=cfg.seed,
                                     answers="positive")
    test, _ = mu2.body_part_samples(studies[cfg.n_train:], features[cfg.n_train:], seed=cfg.seed + 1,
                                    answers="positive")
    return encoder, train, test


def save_sft(folder: str | Path, mllm, text_tokenizer, arch, variant: str = SFT_VARIANT, seed: int = 0,
             extra: dict | None = None) -> Path:
    """Write the SFT model so that chapter 7 (or any script) can rebuild it from ``folder`` alone.

    The shared hand-off format (:func:`rrg_lite.mllm.saving.save_pretrained_mllm`: every weight in safetensors,
    the LM's 🤗 config, the text tokenizer with its chat template) with μ²'s architecture and variant as its
    config (``extra``: more JSON-able facts, e.g. ``{"stage": "dpo", "beta": 0.1}``). ``text_tokenizer`` must be
    the MLLM's own (it is saved from ``mllm.tokenizer``).
    """
    from rrg_lite.mllm.saving import save_pretrained_mllm

    if text_tokenizer is not mllm.tokenizer and len(text_tokenizer) != len(mllm.tokenizer):
        raise ValueError("save_sft: text_tokenizer is not the model's tokenizer")
    arch_dict = arch.as_dict() if hasattr(arch, "as_dict") else {k: v for k, v in vars(arch).items()
                                                                  if not k.startswith("_")}
    return save_pretrained_mllm(mllm, folder, config={"system": "mu2", "variant": variant, "seed": seed,
                                                      "arch": arch_dict, **(extra or {})})


def load_sft(folder: str | Path):
    """``(mllm, text_tokenizer, arch)`` rebuilt from a folder written by :func:`save_sft` (no download)."""
    from rrg_lite.mllm.saving import load_mllm, load_mllm_config
    from rrg_lite.train.checkpoint import CheckpointError

    folder = Path(folder)
    meta = load_mllm_config(folder)
    if meta["config"].get("system") != "mu2":
        raise CheckpointError(f"{folder}: not an SFT model written by save_sft (its config names no μ² "
                              "architecture); pass <chapter 6 output_dir>/sft")

    def build(config, lm, tokenizer):
        return mu2.build_mllm(SimpleNamespace(**config["arch"]), config["variant"], tokenizer, config["seed"], lm=lm)

    mllm, config = load_mllm(folder, build=build)
    return mllm, mllm.tokenizer, SimpleNamespace(**config["arch"])


def sft_model(cfg, arch, train_samples):
    """``(sft, text_tokenizer, TrainResult | None)``: read from ``cfg.sft_checkpoint``, or trained here (μ² SFT)."""
    from rrg_lite.mllm.text import build_word_tokenizer

    if cfg.sft_checkpoint is not None:
        sft, text_tok, _ = load_sft(cfg.sft_checkpoint)
        return sft.eval(), text_tok, None
    if arch.llm == "tiny":
        text_tok = build_word_tokenizer([s.answer for s in train_samples] + [s.question for s in train_samples])
    else:
        text_tok = mu2.text_tokenizer_for(arch, train_samples)
    sft, run = mu2.train_variant(arch, SFT_VARIANT, cfg.seed, text_tok, train_samples)
    return sft.eval(), text_tok, run


def cached_examples(model, samples, blank: bool = False, batch_size: int = 48) -> list[dict]:
    """Generation examples (no targets) with the model's visual tokens computed once: the tokenizer is frozen."""
    from rrg_lite.train.preference import cache_visual_tokens

    examples = mu2.make_examples(model, samples, with_target=False, blank_image=blank)
    return cache_visual_tokens(model, examples, batch_size=batch_size)


def evaluate_green(cfg, model, examples, refs):
    """``(predictions, per-answer GREEN, bootstrap CI)`` of greedy answers against ``refs`` (offline GREEN)."""
    from rrg_lite.metrics.green import green_offline
    from rrg_lite.metrics.significance import bootstrap_ci
    from rrg_lite.train.evaluate import generate_reports

    preds = generate_reports(model, examples, batch_size=48, max_new_tokens=cfg.max_new_tokens, progress=False)
    result = green_offline(preds, refs, labeler=cfg.green_labeler, on_none="empty")
    return preds, result.per_example, bootstrap_ci(result.per_example, n_boot=cfg.bootstrap, seed=cfg.seed)


def _cases(samples) -> list[dict]:
    return [{"id": f"{s.study_id}/{s.part}", "question": s.question, "reference": s.answer, "image": s.study_id}
            for s in samples]


def preference_pairs(cfg, sft, train_samples, train_cached):
    """``(pairs, stats)``: ``cfg.num_samples`` sampled answers per training question, best vs worst by GREEN."""
    from rrg_lite.train.preference import build_preference_pairs, green_scorer, mllm_sampler

    cases = _cases(train_samples)
    by_id = {c["id"]: ex for c, ex in zip(cases, train_cached)}
    sampler = mllm_sampler(sft, lambda case: by_id[case["id"]], temperature=cfg.temperature, top_p=cfg.top_p,
                           max_new_tokens=cfg.max_new_tokens, batch_size=48)
    scorer = green_scorer(cfg.green_labeler, model_path=cfg.green_model)
    return build_preference_pairs(cases, sampler, scorer, num_samples=cfg.num_samples, batch_size=96, seed=cfg.seed,
                                  progress=False,
                                  provenance={"scorer": cfg.green_model or f"offline GREEN ({cfg.green_labeler})",
                                              "temperature": cfg.temperature, "top_p": cfg.top_p})


def dpo_dataset(sft, text_tokenizer, train_samples, train_cached, pairs) -> list[dict]:
    """The pairs as DPO examples with the frozen SFT model's log-probabilities precomputed (the reference)."""
    from rrg_lite.mllm.prompt import MLLMCollator
    from rrg_lite.train.dpo import precompute_reference_logps
    from rrg_lite.train.preference import pair_examples

    cases = _cases(train_samples)
    prompts = {c["id"]: mu2._prompt(c["question"]) for c in cases}
    visual = {c["id"]: {"visual_embeds": ex["visual_embeds"]} for c, ex in zip(cases, train_cached)}
    return precompute_reference_logps(sft, pair_examples(sft, pairs, prompts, visual),
                                      MLLMCollator(text_tokenizer.pad_token_id), batch_size=32)


def train_dpo(cfg, sft, text_tokenizer, dpo_data, beta: float, output_dir: str | None = None):
    """``(policy, objective)``: DPO from a copy of ``sft``; only the language model trains (the tokenizer stays)."""
    import copy

    from rrg_lite.mllm.prompt import MLLMCollator
    from rrg_lite.train.dpo import DPOCollator, DPOObjective
    from rrg_lite.train.loop import TrainConfig, train

    policy = copy.deepcopy(sft)
    for name, p in policy.named_parameters():
        p.requires_grad_(name.startswith("lm."))
    objective = DPOObjective(policy, beta=beta, reference=cfg.reference)
    tc = TrainConfig(lr=cfg.dpo_lr, batch_size=cfg.dpo_batch_size, max_steps=cfg.dpo_steps, schedule="cosine",
                     warmup_steps=max(1, cfg.dpo_steps // 10), seed=cfg.seed, progress=False, log_every=5,
                     desc=f"DPO β={beta}", mixed_precision=cfg.precision, output_dir=output_dir,
                     resume_from="latest" if output_dir is not None and cfg.resume else None)
    collate = MLLMCollator(text_tokenizer.pad_token_id)
    train(policy, dpo_data, tc, collate_fn=DPOCollator(collate, text_tokenizer.pad_token_id), loss_fn=objective,
          run_config={"beta": beta, "reference": cfg.reference})
    return policy.eval(), objective
