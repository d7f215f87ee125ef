"""Which parameters learn in which stage (the LLaVA / M4CXR recipe), and LoRA through PEFT.

=========  =======================================================  =====================================
stage      trainable                                                used for
=========  =======================================================  =====================================
``align``  projectors (visual tokenizers)                           stage 1: align vision to the frozen LM
``lora``   projectors + LoRA adapters of the LM                     stage 2: instruction / report tuning
``full``   projectors + every LM weight                             full fine-tuning (small LMs)
``text``   every LM weight (no projector)                           text-only LM training / baseline
=========  =======================================================  =====================================

``train_encoder=True`` adds the vision encoder to any stage (M4CXR tunes Rad-DINO in stage 2).
"""
from __future__ import annotations

from typing import Sequence

from torch import nn

STAGES = ("align", "lora", "full", "text")


def apply_lora(mllm, r: int = 8, alpha: int = 32, dropout: float = 0.05,
               target_modules: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj")):
    """Wrap ``mllm.lm`` in a PEFT LoRA model (W + (alpha/r) * B A on ``target_modules``); returns ``mllm``.

    Defaults follow M4CXR (r=8, alpha=32, dropout=0.05). The base weights are frozen by PEFT.
    """
    from peft import LoraConfig, get_peft_model

    if hasattr(mllm.lm, "peft_config"):
        raise ValueError("the LM already has LoRA adapters")
    names = {n.rsplit(".", 1)[-1] for n, _ in mllm.lm.named_modules()}
    missing = [t for t in target_modules if t not in names]
    if missing:
        raise ValueError(f"LoRA target modules {missing} are not in the LM (it has e.g. {sorted(names)[:12]})")
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules),
                        task_type="CAUSAL_LM", bias="none")
    mllm.lm = get_peft_model(mllm.lm, config)
    return mllm


def configure_stage(mllm, stage: str, train_encoder: bool = False) -> dict[str, int]:
    """Set ``requires_grad`` for ``stage``; returns trainable / total parameter counts per part."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose one of {STAGES}")
    has_lora = hasattr(mllm.lm, "peft_config")
    if stage == "lora" and not has_lora:
        raise ValueError("stage 'lora' needs LoRA adapters: call apply_lora(mllm, ...) first")
    for p in mllm.parameters():
        p.requires_grad_(False)
    if stage in ("align", "lora", "full"):
        for p in mllm.projectors.parameters():
            p.requires_grad_(True)
    if stage == "lora":
        for name, p in mllm.lm.named_parameters():
            if "lora_" in name:
                p.requires_grad_(True)
    if stage in ("full", "text"):
        for p in mllm.lm.parameters():
            p.requires_grad_(True)
    if train_encoder:
        if mllm.encoder is None:
            raise ValueError("train_encoder=True but the model has no encoder")
        for p in mllm.encoder.parameters():
            p.requires_grad_(True)
    return count_parameters(mllm)


def count_parameters(mllm) -> dict[str, int]:
    """Trainable and total parameters of the encoder, the projectors and the LM (tied weights counted once)."""
    def count(module: nn.Module | None):
        if module is None:
            return 0, 0
        seen, total, trainable = set(), 0, 0
        for p in module.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            total += p.numel()
            trainable += p.numel() if p.requires_grad else 0
        return trainable, total

    out = {}
    for part, module in (("encoder", mllm.encoder), ("projectors", mllm.projectors), ("lm", mllm.lm)):
        out[f"{part}_trainable"], out[f"{part}_total"] = count(module)
    out["trainable"] = sum(v for k, v in out.items() if k.endswith("_trainable"))
    out["total"] = sum(v for k, v in out.items() if k.endswith("_total"))
    return out
