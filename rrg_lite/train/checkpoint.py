"""Checkpoints: resumable state through 🤗 Accelerate, final weights in safetensors, and the checks that keep a
run from resuming the wrong thing.

A run's ``output_dir``::

    output_dir/
      run.json                      the config of the run that owns the folder (TrainConfig + the caller's run_config)
      checkpoints/
        step_<n>/                   one complete resumable checkpoint (Accelerate's ``save_state`` folder)
          model.safetensors         trainable weights + buffers (frozen weights come from the model's own source);
                                    under DeepSpeed / FSDP, Accelerate's sharded model files instead
          optimizer.bin             optimizer state (Accelerate, torch.save; read back with weights_only=True)
          random_states_<rank>.pkl  each process's Python / NumPy / torch / CUDA RNG (Accelerate, weights_only)
          trainer_state.json        loop position, loss history, scheduler state, the config, the process count
          complete.json             written last: every file of the folder with its size
        .tmp-step_<n>/              a checkpoint being written; renamed to step_<n> only once complete.json is in it
      final/                        written when the run reaches its last step
        model.safetensors           the trained weights (trainable + buffers, or every weight)
        config.json                 the config that made them

Guarantees (each has a test in ``tests/test_train_checkpoints.py``):

- "latest" is the highest ``step_<n>`` that holds ``complete.json`` whose listed sizes match the files: a folder
  left half-written by a kill is never picked (it is still named ``.tmp-…``), nor a complete one truncated later;
- a resume compares the checkpoint's stored config with the current one and refuses, naming the differing keys
  (:func:`config_differences`); keys that do not change the trajectory (logging, paths, save cadence) are ignored;
- a truncated or corrupt file raises :class:`CheckpointError` naming the file, never a raw ``SafetensorError`` /
  ``JSONDecodeError``.

Only Accelerate's optimizer and RNG files are pickles; Accelerate reads them with ``torch.load(weights_only=True)``
(no code can run). Weights are safetensors and metadata JSON.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

CHECKPOINTS = "checkpoints"
FINAL = "final"
RUN_FILE = "run.json"
STATE_FILE = "trainer_state.json"
COMPLETE_FILE = "complete.json"
MODEL_FILE = "model.safetensors"

#: TrainConfig keys that do not change what a run computes: a resume may change them freely.
NON_TRAJECTORY_KEYS = frozenset({
    "resume_from", "stop_after_steps", "progress", "desc", "output_dir", "save_every", "keep_last", "num_workers",
    "overwrite_output_dir", "log_every", "final_weights",
})


class CheckpointError(ValueError):
    """A checkpoint or run folder that cannot be used as asked (the message names the file and the problem)."""


# ------------------------------------------------------------------------------------------------ small file I/O
def read_json(path: str | Path) -> Any:
    """``json.loads`` of a file, with errors that name it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err}); the file is truncated or corrupt") from None


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write JSON to a temporary sibling, fsync, then rename over ``path`` (a kill leaves the old file or none)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, default=_json_default)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def _json_default(obj):
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.dtype):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def jsonable(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists, ...), so stored and current configs compare equal."""
    return json.loads(json.dumps(obj, default=_json_default))


# --------------------------------------------------------------------------------------------------- weights
def trainable_state_dict(model: torch.nn.Module, everything: bool = False) -> dict[str, torch.Tensor]:
    """Parameters that require grad plus all buffers (or every tensor with ``everything``); tied tensors once."""
    keep = {n for n, p in model.named_parameters() if p.requires_grad or everything}
    keep |= {n for n, _ in model.named_buffers()}
    out, seen = {}, set()
    for name, tensor in model.state_dict(keep_vars=False).items():
        if name not in keep and not everything:
            continue
        key = (tensor.data_ptr(), tensor.shape, tensor.dtype)
        if tensor.numel() and key in seen:
            continue
        seen.add(key)
        out[name] = tensor.detach().contiguous().cpu()
    return out


def save_model_weights(model: torch.nn.Module, path: str | Path, trainable_only: bool = True) -> Path:
    """Save (trainable) weights of ``model`` to one safetensors file, atomically (temp file, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file(trainable_state_dict(model, everything=not trainable_only), str(tmp), metadata={"format": "pt"})
    os.replace(tmp, path)
    return path


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """``safetensors.torch.load_file`` with errors that name the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no weights file")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot read the safetensors file ({err}); it is truncated or corrupt") from None


def load_model_weights(model: torch.nn.Module, path: str | Path) -> list[str]:
    """Load a safetensors file into ``model`` (a subset of its weights is fine). Returns the loaded names.

    Names the model does not have, or shapes that differ, are an error (a checkpoint from another architecture).
    """
    path = Path(path)
    state = read_safetensors(path)
    own = model.state_dict()
    unknown = [k for k in state if k not in own]
    if unknown:
        raise CheckpointError(f"{path}: {len(unknown)} tensors do not belong to this model, e.g. {unknown[:3]}")
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise CheckpointError(f"{path}: {k} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}")
    model.load_state_dict(state, strict=False)
    return list(state)


# ------------------------------------------------------------------------------------------ folder bookkeeping
def _step_of(folder: Path) -> int | None:
    name = folder.name
    if not name.startswith("step_"):
        return None
    try:
        return int(name[5:])
    except ValueError:
        return None


def verify_checkpoint(folder: str | Path) -> dict:
    """Check that ``folder`` is a complete checkpoint: ``complete.json`` present and every listed file at its size.

    Returns the parsed ``complete.json``; raises :class:`CheckpointError` naming the first bad file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such checkpoint folder")
    marker = folder / COMPLETE_FILE
    if not marker.is_file():
        raise CheckpointError(f"{folder}: incomplete checkpoint (no {COMPLETE_FILE}: the run stopped while writing it)")
    info = read_json(marker)
    for name, size in info.get("files", {}).items():
        f = folder / name
        if not f.is_file():
            raise CheckpointError(f"{f}: listed in {COMPLETE_FILE} but missing")
        if f.stat().st_size != size:
            raise CheckpointError(f"{f}: {f.stat().st_size} bytes, {COMPLETE_FILE} says {size}: the file is truncated "
                                  "or was changed after the checkpoint was written")
    return info


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """The complete, intact ``step_<n>`` checkpoints under ``output_dir/checkpoints``, oldest first."""
    root = Path(output_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    good = []
    for p in root.iterdir():
        if p.is_dir() and _step_of(p) is not None:
            try:
                verify_checkpoint(p)
            except CheckpointError:
                continue
            good.append(p)
    return sorted(good, key=_step_of)


def damaged_checkpoints(output_dir: str | Path) -> dict[Path, str]:
    """``step_<n>`` folders under ``output_dir/checkpoints`` that fail :func:`verify_checkpoint`, with the reason."""
    root = Path(output_dir) / CHECKPOINTS
    bad = {}
    for p in sorted(root.glob("step_*")) if root.is_dir() else []:
        try:
            verify_checkpoint(p)
        except CheckpointError as err:
            bad[p] = str(err)
    return bad


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The complete checkpoint with the most steps under ``output_dir`` (None if there is none).

    Half-written (``.tmp-step_<n>``, no ``complete.json``) and truncated checkpoints are skipped, so a kill
    while saving falls back to the previous good one.
    """
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def prune_checkpoints(output_dir: str | Path, keep_last: int | None) -> list[Path]:
    """Delete all but the newest ``keep_last`` complete checkpoints (and stale ``.tmp-`` folders); returns deleted."""
    root = Path(output_dir) / CHECKPOINTS
    deleted = []
    if root.is_dir():
        for p in root.glob(".tmp-step_*"):
            shutil.rmtree(p, ignore_errors=True)
            deleted.append(p)
    if keep_last is None:
        return deleted
    for p in list_checkpoints(output_dir)[:-keep_last] if keep_last > 0 else list_checkpoints(output_dir):
        shutil.rmtree(p, ignore_errors=True)
        deleted.append(p)
    return deleted


def run_owner(output_dir: str | Path) -> dict | None:
    """The stored ``run.json`` of ``output_dir`` (None for a folder that holds no run)."""
    path = Path(output_dir) / RUN_FILE
    return read_json(path) if path.is_file() else None


def holds_a_run(output_dir: str | Path) -> bool:
    """Whether ``output_dir`` already holds a training run (its config, checkpoints or final weights)."""
    out = Path(output_dir)
    return (out / RUN_FILE).is_file() or bool(list_checkpoints(out)) or (out / FINAL / MODEL_FILE).is_file() \
        or any((p / "state.json").is_file() for p in out.glob("step_*"))  # the pre-Accelerate layout


def clear_run(output_dir: str | Path) -> None:
    """Remove a previous run's files from ``output_dir`` (run.json, checkpoints/, final/); other files stay."""
    out = Path(output_dir)
    for name in (CHECKPOINTS, FINAL):
        shutil.rmtree(out / name, ignore_errors=True)
    (out / RUN_FILE).unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------- config comparison
def _flatten(d: Mapping, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


class _Absent:
    def __repr__(self):
        return "<absent>"


_ABSENT = _Absent()


def config_differences(stored: Mapping, current: Mapping, ignore: Iterable[str] = ()) -> list[tuple[str, Any, Any]]:
    """``[(key, stored value, current value)]`` for every (dotted, nested) key whose values differ.

    Keys whose last part is in ``ignore`` are skipped. A key present on one side only counts as a difference.
    """
    ignore = set(ignore)
    a, b = _flatten(jsonable(dict(stored))), _flatten(jsonable(dict(current)))
    missing = _ABSENT
    out = []
    for key in sorted(set(a) | set(b)):
        if key.rsplit(".", 1)[-1] in ignore:
            continue
        va, vb = a.get(key, missing), b.get(key, missing)
        if va != vb:
            out.append((key, va, vb))
    return out


def check_same_config(stored: Mapping, current: Mapping, where: str | Path, ignore: Iterable[str] = NON_TRAJECTORY_KEYS) -> None:
    """Raise :class:`CheckpointError` listing the keys where ``stored`` (from ``where``) and ``current`` differ."""
    diff = config_differences(stored, current, ignore)
    if diff:
        lines = "; ".join(f"{k}: stored {a!r}, now {b!r}" for k, a, b in diff[:12])
        more = f" (and {len(diff) - 12} more)" if len(diff) > 12 else ""
        raise CheckpointError(
            f"{where} was written by a run with a different config — {len(diff)} differing key(s): {lines}{more}. "
            "Resume with the same config, or start a new run (another output_dir, or overwrite_output_dir=True)"
        )


# ------------------------------------------------------------------------------------ Accelerate state, atomically
def _sharded(accelerator) -> bool:
    """Whether Accelerate saves the model itself (DeepSpeed / FSDP / Megatron shard it across processes)."""
    from accelerate.utils import DistributedType

    return accelerator.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP, DistributedType.MEGATRON_LM)


def save_training_state(accelerator, folder: str | Path, model: torch.nn.Module, trainer_state: Mapping) -> Path:
    """Write a resumable checkpoint to ``folder`` (``.../checkpoints/step_<n>``) with Accelerate's ``save_state``.

    Call it on every process. Everything is written into ``.tmp-<name>`` next to ``folder``; the main process
    adds ``trainer_state.json`` and then ``complete.json`` (file sizes) and renames the folder into place, so
    ``folder`` either does not exist or is complete. ``model`` is the unwrapped model (trainable weights are
    saved from it outside DeepSpeed / FSDP).
    """
    folder = Path(folder)
    tmp = folder.with_name(f".tmp-{folder.name}")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()

    def only_trainable(models, weights, output_dir):
        # Accelerate would save the full state dict (a frozen 7B LM every few hundred steps); keep what trains.
        for i in range(len(weights)):
            weights[i] = trainable_state_dict(model)

    handle = None if _sharded(accelerator) else accelerator.register_save_state_pre_hook(only_trainable)
    try:
        accelerator.save_state(str(tmp), safe_serialization=True)
    finally:
        if handle is not None:
            handle.remove()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json_atomic(tmp / STATE_FILE, dict(trainer_state))
        files = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
        write_json_atomic(tmp / COMPLETE_FILE, {"files": files, "num_processes": accelerator.num_processes})
        if folder.exists():  # the same step saved again (a resumed run that stops where it started)
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    accelerator.wait_for_everyone()
    return folder


def read_trainer_state(folder: str | Path) -> dict:
    """The verified ``trainer_state.json`` of a complete checkpoint."""
    folder = Path(folder)
    verify_checkpoint(folder)
    return read_json(folder / STATE_FILE)


def load_training_state(accelerator, folder: str | Path, model: torch.nn.Module) -> dict:
    """Restore what :func:`save_training_state` wrote (model, optimizer, RNG of every process); returns the
    trainer state. The folder is verified first (:func:`verify_checkpoint`), so a truncated file is named."""
    folder = Path(folder)
    info = verify_checkpoint(folder)
    state = read_json(folder / STATE_FILE)
    saved_procs = info.get("num_processes", 1)
    if saved_procs != accelerator.num_processes:
        raise CheckpointError(f"{folder}: written by {saved_procs} process(es), resumed with {accelerator.num_processes}; "
                              "the data order and RNG streams would differ (resume with the same process count)")
    rng_file = folder / f"random_states_{accelerator.process_index}.pkl"
    if not rng_file.is_file():
        raise CheckpointError(f"{rng_file}: missing (each process restores its own random state)")

    def load_ours(models, input_dir):
        # the model file holds trainable weights only: load it ourselves (named errors), not strictly by Accelerate
        models.clear()
        load_model_weights(model, folder / MODEL_FILE)

    handle = None if _sharded(accelerator) else accelerator.register_load_state_pre_hook(load_ours)
    try:
        accelerator.load_state(str(folder))
    except CheckpointError:
        raise
    except Exception as err:  # torch.load / pickle errors of Accelerate's files
        raise CheckpointError(f"{folder}: cannot restore Accelerate's state ({type(err).__name__}: {err})") from err
    finally:
        if handle is not None:
            handle.remove()
    return state


def save_final_weights(folder: str | Path, model: torch.nn.Module, config: Mapping, everything: bool = False,
                       state_dict: Mapping[str, torch.Tensor] | None = None) -> Path:
    """``folder/model.safetensors`` (trainable + buffers, or every tensor) and ``folder/config.json``, atomically:
    written into ``.tmp-<name>`` and renamed.

    ``state_dict``: the full state dict gathered by ``accelerator.get_state_dict`` when the model is sharded
    (FSDP / DeepSpeed ZeRO-3); it is filtered to the same names as ``model``'s trainable weights.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    tmp = folder.with_name(f".tmp-{folder.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if state_dict is None:
        save_model_weights(model, tmp / MODEL_FILE, trainable_only=not everything)
    else:
        keep = set(trainable_state_dict(model, everything=everything))
        tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items() if everything or k in keep}
        save_file(tensors, str(tmp / MODEL_FILE), metadata={"format": "pt"})
    write_json_atomic(tmp / "config.json", dict(config))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def load_final_weights(folder: str | Path, model: torch.nn.Module) -> dict:
    """Load ``folder/model.safetensors`` into ``model``; returns ``folder/config.json``."""
    folder = Path(folder)
    config = read_json(folder / "config.json")
    load_model_weights(model, folder / MODEL_FILE)
    return config
