"""Checkpoints in safetensors: trainable weights, optimizer state, scheduler, RNG states, loop position.

A checkpoint is a folder::

    model.safetensors       the trainable parameters and all buffers (frozen weights come from the model's
                            own source: the config + seed, or the pre-trained files)
    optimizer.safetensors   every tensor of the optimizer state, keyed "state.<param index>.<name>"
    rng.safetensors         torch CPU (and CUDA) generator states
    state.json              step, epoch, batch position, history, optimizer param groups and scalar
                            states, scheduler state, Python/NumPy RNG states

Nothing is pickled, so loading a checkpoint can never run code.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file


def trainable_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters that require grad plus all buffers; tied (shared) tensors are kept once."""
    keep = {n for n, p in model.named_parameters() if p.requires_grad}
    keep |= {n for n, _ in model.named_buffers()}
    out, seen = {}, set()
    for name, tensor in model.state_dict(keep_vars=False).items():
        if name not in keep:
            continue
        key = (tensor.data_ptr(), tensor.shape, tensor.dtype)
        if tensor.numel() and key in seen:
            continue
        seen.add(key)
        out[name] = tensor.detach().contiguous().cpu()
    return out


def save_model_weights(model: torch.nn.Module, path: str | Path, trainable_only: bool = True) -> Path:
    """Save (trainable) weights of ``model`` to one safetensors file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if trainable_only:
        state = trainable_state_dict(model)
    else:
        state, seen = {}, set()
        for name, tensor in model.state_dict().items():
            key = (tensor.data_ptr(), tensor.shape, tensor.dtype)
            if tensor.numel() and key in seen:
                continue
            seen.add(key)
            state[name] = tensor.detach().contiguous().cpu()
    save_file(state, str(path))
    return path


def load_model_weights(model: torch.nn.Module, path: str | Path) -> list[str]:
    """Load a safetensors file into ``model`` (a subset of its weights is fine). Returns the loaded names.

    Names the model does not have are an error (a checkpoint from another architecture).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    state = load_file(str(path))
    own = model.state_dict()
    unknown = [k for k in state if k not in own]
    if unknown:
        raise ValueError(f"{path}: {len(unknown)} tensors do not belong to this model, e.g. {unknown[:3]}")
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise ValueError(f"{path}: {k} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}")
    model.load_state_dict(state, strict=False)
    return list(state)


def _optimizer_to_files(optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_from_files(optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for key, value in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(folder: str | Path, model, optimizer=None, scheduler=None, loop_state: dict | None = None) -> Path:
    """Write a resumable checkpoint folder (see the module docstring)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_model_weights(model, folder / "model.safetensors")
    meta: dict = {"loop": loop_state or {}}
    if optimizer is not None:
        tensors, opt_meta = _optimizer_to_files(optimizer)
        save_file(tensors, str(folder / "optimizer.safetensors"))
        meta["optimizer"] = opt_meta
    if scheduler is not None:
        # LambdaLR stores None for plain functions: the schedule itself is rebuilt from the config.
        meta["scheduler"] = scheduler.state_dict()
    rng = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            rng[f"torch_cuda_{i}"] = torch.cuda.get_rng_state(i)
    save_file(rng, str(folder / "rng.safetensors"))
    np_state = np.random.get_state()
    meta["rng"] = {"python": repr(random.getstate()),
                   "numpy": [np_state[0], np_state[1].tolist(), *[int(x) if isinstance(x, (int, np.integer)) else float(x) for x in np_state[2:]]]}
    (folder / "state.json").write_text(json.dumps(meta, indent=1))
    return folder


def load_checkpoint(folder: str | Path, model, optimizer=None, scheduler=None, restore_rng: bool = True) -> dict:
    """Restore what :func:`save_checkpoint` wrote; returns the saved ``loop_state``."""
    import ast

    folder = Path(folder)
    if not (folder / "state.json").is_file():
        raise FileNotFoundError(f"{folder} is not a checkpoint (no state.json)")
    meta = json.loads((folder / "state.json").read_text())
    load_model_weights(model, folder / "model.safetensors")
    if optimizer is not None:
        if "optimizer" not in meta:
            raise ValueError(f"{folder}: the checkpoint holds no optimizer state")
        _optimizer_from_files(optimizer, load_file(str(folder / "optimizer.safetensors")), meta["optimizer"])
    if scheduler is not None and "scheduler" in meta:
        scheduler.load_state_dict(meta["scheduler"])
    if restore_rng:
        rng = load_file(str(folder / "rng.safetensors"))
        torch.set_rng_state(rng["torch_cpu"])
        for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
            if f"torch_cuda_{i}" in rng:
                torch.cuda.set_rng_state(rng[f"torch_cuda_{i}"], i)
        random.setstate(ast.literal_eval(meta["rng"]["python"]))
        n = meta["rng"]["numpy"]
        np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), *n[2:]))
    return meta["loop"]


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The ``step_<n>`` folder with the largest n under ``output_dir`` (None if there is none)."""
    folders = [p for p in Path(output_dir).glob("step_*") if (p / "state.json").is_file()]
    if not folders:
        return None
    return max(folders, key=lambda p: int(p.name.split("_", 1)[1]))
