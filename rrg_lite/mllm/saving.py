"""Save a :class:`~rrg_lite.mllm.model.MultimodalLM` to a folder and load it back: the hand-off between chapters.

The μ² chapter trains its SFT model and saves it; the preference-optimisation chapter loads it by path
(its profile's ``sft_checkpoint``)::

    save_pretrained_mllm(mllm, "runs/mu2/sft", config={"profile": cfg_dict, "variant": "μ² (SFT)", "seed": 0})
    mllm, config = load_mllm("runs/mu2/sft", build=lambda config, lm, tokenizer: build_mllm(..., lm=lm))

A saved folder::

    model.safetensors     every tensor of the MLLM (LM incl. LoRA adapters, projectors, encoder), tied ones once
    mllm.json             the caller's config (what built the architecture), slots, LM class and dtype,
                          the LoRA config if any, the projector classes (for reading; nothing is imported from it)
    lm_config.json        the language model's 🤗 config (rebuilds it with ``from_config``: no download, no code)
    tokenizer/            the text tokenizer (``save_pretrained``)

Written into ``.tmp-<name>`` and renamed, so a folder that exists is complete. The projectors (visual
tokenizers) and the encoder are rebuilt by the caller's ``build(config, lm, tokenizer)`` — the same function
that built them the first time — and then every weight is loaded strictly: a missing or unexpected tensor, or a
shape that differs, is an error that names the file.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from rrg_lite.train.checkpoint import CheckpointError, jsonable, read_json, read_safetensors, write_json_atomic

__all__ = ["save_pretrained_mllm", "load_mllm", "load_mllm_config"]

FORMAT = 1


def _lora_config(lm) -> dict | None:
    cfgs = getattr(lm, "peft_config", None)
    if not cfgs:
        return None
    if list(cfgs) != ["default"]:
        raise ValueError(f"only one LoRA adapter named 'default' can be saved, the LM has {list(cfgs)}")
    d = cfgs["default"].to_dict()
    return {k: (sorted(v) if isinstance(v, set) else v) for k, v in d.items()}


def _base_lm(lm):
    """The 🤗 model under a PEFT wrapper (or ``lm`` itself)."""
    return lm.get_base_model() if hasattr(lm, "get_base_model") else lm


def save_pretrained_mllm(mllm, folder: str | Path, config: Mapping[str, Any] | None = None,
                         merge_lora: bool = False) -> Path:
    """Write ``mllm`` (all weights, LM config, tokenizer) and ``config`` (JSON-able) to ``folder``, atomically.

    ``merge_lora=True`` folds LoRA adapters into the LM weights first (on a copy of nothing: ``mllm`` is changed),
    so that the saved model is a plain LM — e.g. an SFT model that DPO then fine-tunes with fresh adapters.
    """
    from rrg_lite.train.checkpoint import save_model_weights

    folder = Path(folder)
    if merge_lora and hasattr(mllm.lm, "merge_and_unload"):
        mllm.lm = mllm.lm.merge_and_unload()
    base = _base_lm(mllm.lm)
    tmp = folder.with_name(f".tmp-{folder.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model_weights(mllm, tmp / "model.safetensors", trainable_only=False)
    write_json_atomic(tmp / "lm_config.json", base.config.to_dict())
    mllm.tokenizer.save_pretrained(str(tmp / "tokenizer"))
    dtype = next(base.parameters()).dtype
    write_json_atomic(tmp / "mllm.json", {
        "format": FORMAT,
        "config": jsonable(dict(config or {})),
        "slots": dict(mllm.slots),
        "lm_class": type(base).__name__,
        "lm_dtype": str(dtype).removeprefix("torch."),
        "lora": jsonable(_lora_config(mllm.lm)),
        "projectors": {slot: f"{type(p).__module__}.{type(p).__qualname__}" for slot, p in mllm.projectors.items()},
        "encoder": None if mllm.encoder is None else f"{type(mllm.encoder).__module__}.{type(mllm.encoder).__qualname__}",
    })
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def load_mllm_config(folder: str | Path) -> dict:
    """The ``mllm.json`` of a saved folder (its ``"config"`` is what the caller stored)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no saved MLLM folder (expected model.safetensors, mllm.json, lm_config.json, "
                              "tokenizer/ written by save_pretrained_mllm)")
    meta = read_json(folder / "mllm.json")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{folder / 'mllm.json'}: format {meta.get('format')!r}, this version reads {FORMAT}")
    return meta


def load_mllm(folder: str | Path, build: Callable[[dict, Any, Any], Any], dtype: torch.dtype | str | None = None):
    """Rebuild a saved MLLM: ``(mllm, config)``.

    The LM is rebuilt from ``lm_config.json`` (``AutoModelForCausalLM.from_config``, no download, no remote code)
    and wrapped in LoRA again if it had adapters; the tokenizer is read from ``tokenizer/``; ``build(config, lm,
    tokenizer)`` returns the :class:`~rrg_lite.mllm.model.MultimodalLM` around them (projectors, encoder), and all
    weights are then loaded strictly. ``dtype`` casts the loaded model (default: as saved).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    meta = load_mllm_config(folder)
    lm_cfg = read_json(folder / "lm_config.json")
    model_type = lm_cfg.pop("model_type", None)
    if model_type is None:
        raise CheckpointError(f"{folder / 'lm_config.json'}: no model_type")
    config = AutoConfig.for_model(model_type, **lm_cfg)
    with torch.random.fork_rng(devices=[]):  # the random init is overwritten below; leave the caller's RNG alone
        lm = AutoModelForCausalLM.from_config(config)
    if meta.get("lora"):
        from peft import LoraConfig, get_peft_model

        lora = {k: v for k, v in meta["lora"].items() if k in LoraConfig.__dataclass_fields__}
        lm = get_peft_model(lm, LoraConfig(**lora))
    tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
    mllm = build(meta["config"], lm, tokenizer)
    state = read_safetensors(folder / "model.safetensors")
    own = mllm.state_dict()
    unexpected = sorted(set(state) - set(own))
    if unexpected:
        raise CheckpointError(f"{folder / 'model.safetensors'}: {len(unexpected)} tensors the rebuilt model does not "
                              f"have, e.g. {unexpected[:3]} (does build() make the saved architecture?)")
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise CheckpointError(f"{folder / 'model.safetensors'}: {k} is {tuple(v.shape)}, the rebuilt model has "
                                  f"{tuple(own[k].shape)}")
    result = mllm.load_state_dict(state, strict=False)
    # tied weights are stored once: a missing key is fine only if it shares storage with a loaded one
    loaded_ptrs = {t.data_ptr() for n, t in mllm.state_dict().items() if n in state}
    missing = [k for k in result.missing_keys if mllm.state_dict()[k].data_ptr() not in loaded_ptrs]
    if missing:
        raise CheckpointError(f"{folder / 'model.safetensors'}: {len(missing)} weights of the rebuilt model are not "
                              f"in the file, e.g. {missing[:3]}")
    if dtype is not None:
        mllm.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
    return mllm.eval(), meta["config"]

