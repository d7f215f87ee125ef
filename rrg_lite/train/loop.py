"""One training loop for every chapter, built on 🤗 Accelerate.

The same code runs on a CPU, one GPU, several GPUs or DeepSpeed: start it with ``python`` or with
``accelerate launch --config_file <yaml> script.py``; Accelerate decides devices, mixed precision and
gradient synchronisation. What this loop adds: a deterministic data order per epoch (so a resumed run sees
the same batches), gradient accumulation, warmup + cosine/linear/constant schedules, gradient clipping,
a progress bar, loss logging, safetensors checkpoints and exact resume.

    cfg = TrainConfig(lr=3e-4, max_steps=200, batch_size=8, output_dir="runs/stage1")
    result = train(model, dataset, cfg, collate_fn=collator)   # model(**batch).loss is minimised
    result.history[-1]    # {"step": 200, "epoch": ..., "loss": ..., "lr": ...}

``loss_fn(model, batch) -> loss`` replaces ``model(**batch).loss`` for other objectives (DPO, contrastive).
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from rrg_lite.train import checkpoint as ckpt
from rrg_lite.train.schedules import SCHEDULES, make_scheduler


@dataclass
class TrainConfig:
    """Everything the loop needs. Steps count optimizer updates (one update = ``grad_accum`` batches)."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    batch_size: int = 8                 # per device
    grad_accum: int = 1
    epochs: int = 1                     # used when max_steps is None
    max_steps: int | None = None        # total optimizer steps (sets the schedule's length)
    schedule: str = "cosine"            # constant | linear | cosine
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    max_grad_norm: float | None = 1.0
    mixed_precision: str = "auto"       # auto (bf16 on a GPU that has it, else no) | no | bf16 | fp16
    seed: int = 0
    log_every: int = 10
    output_dir: str | None = None       # run folder: checkpoints/step_<n>, final/ (see rrg_lite.train.checkpoint)
    save_every: int | None = None       # steps between checkpoints (None: only at the end if output_dir)
    keep_last: int | None = 2           # complete checkpoints kept (older ones are deleted); None = all
    resume_from: str | None = None      # a checkpoint folder, or "latest" (in output_dir; fresh start if none yet)
    overwrite_output_dir: bool = False  # replace a previous run's files in output_dir (else reusing it is an error)
    final_weights: str = "trainable"    # final/model.safetensors holds: trainable (+ buffers) | all | none
    stop_after_steps: int | None = None  # interrupt the run early (the schedule still assumes max_steps)
    master_weights: str = "fp32"        # fp32: trainable bf16/fp16 parameters are upcast (mixed precision keeps
                                        # an fp32 master copy and fp32 AdamW state) | as_is: train them as they are
    gradient_checkpointing: bool = False  # recompute activations in backward (🤗 models' gradient_checkpointing_enable)
    find_unused_parameters: bool | None = None  # DDP only; None = detect with one trial backward before training
    num_workers: int = 0
    progress: bool = True
    desc: str = "train"

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {SCHEDULES}")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("batch_size and grad_accum must be >= 1")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be auto/no/bf16/fp16, got {self.mixed_precision!r}")
        if self.master_weights not in ("fp32", "as_is"):
            raise ValueError(f"master_weights must be 'fp32' or 'as_is', got {self.master_weights!r}")
        if self.final_weights not in ("trainable", "all", "none"):
            raise ValueError(f"final_weights must be 'trainable', 'all' or 'none', got {self.final_weights!r}")
        if self.keep_last is not None and self.keep_last < 1:
            raise ValueError(f"keep_last must be >= 1 (the newest checkpoint is what a resume needs), got {self.keep_last}")
        if self.resume_from is not None and self.overwrite_output_dir:
            raise ValueError("resume_from and overwrite_output_dir=True contradict each other")


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)   # one entry per logged step
    global_step: int = 0
    samples_seen: int = 0
    seconds: float = 0.0
    samples_per_second: float = 0.0
    last_checkpoint: str | None = None
    final_dir: str | None = None        # output_dir/final once the run has reached its last step
    resumed_from: str | None = None
    stopped_early: bool = False


def default_loss(model, batch) -> torch.Tensor:
    """``model(**batch)``'s loss, whether it returns a ModelOutput, a dict or a tensor."""
    out = model(**batch)
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict) or hasattr(out, "loss"):
        loss = out["loss"] if isinstance(out, dict) else out.loss
        if loss is None:
            raise ValueError("the model returned no loss: does the batch contain labels?")
        return loss
    raise TypeError(f"cannot find a loss in the model output of type {type(out).__name__}; pass loss_fn=")


def _mixed_precision(setting: str) -> str:
    if setting != "auto":
        return setting
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def make_accelerator(cfg: TrainConfig, find_unused_parameters: bool = False):
    """An ``Accelerator`` for ``cfg`` (the launch config, if any, decides devices and DeepSpeed).

    ``find_unused_parameters`` goes to DistributedDataParallel (needed when some trainable parameter gets no
    gradient, e.g. the score head of hard top-k); it is ignored outside DDP.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, GradientAccumulationPlugin

    # Pass the plugin explicitly: Accelerate keeps gradient-accumulation settings in a process-wide state,
    # and a later run with grad_accum=1 would otherwise inherit an earlier run's value.
    from accelerate.state import AcceleratorState

    plugin = GradientAccumulationPlugin(num_steps=cfg.grad_accum, sync_with_dataloader=True)
    precision = _mixed_precision(cfg.mixed_precision)
    # The precision is process-wide state too, and Accelerate refuses to change it. Two runs in one process
    # (a notebook that trains in bf16 and then in fp32, a test suite) are legitimate: start the second from a
    # clean precision state. The distributed state (PartialState) is kept, so `accelerate launch` is unaffected.
    state = AcceleratorState._shared_state
    if state.get("_mixed_precision") not in (None, precision):
        AcceleratorState._reset_state(reset_partial_state=False)
    ddp = DistributedDataParallelKwargs(find_unused_parameters=bool(find_unused_parameters))
    return Accelerator(mixed_precision=precision, gradient_accumulation_plugin=plugin, kwargs_handlers=[ddp])


def set_find_unused_parameters(accelerator, value: bool) -> None:
    """DDP's ``find_unused_parameters`` for models prepared from now on (Accelerate reads its DDP kwargs handler
    when it wraps the model in ``prepare``)."""
    from accelerate.utils import DistributedDataParallelKwargs

    handler = getattr(accelerator, "ddp_handler", None) or DistributedDataParallelKwargs()
    handler.find_unused_parameters = value
    accelerator.ddp_handler = handler


def upcast_trainable_parameters(model: torch.nn.Module, precision: str) -> int:
    """fp32 master weights: trainable bf16/fp16 parameters become fp32 (in place, same Parameter objects).

    With mixed precision the forward still computes in bf16/fp16 (autocast), but the optimizer updates, and AdamW's
    moments, are fp32 — tiny updates to a bf16 weight round to nothing. Frozen weights keep their dtype (a frozen
    bf16 LM under LoRA costs half the memory). Without mixed precision (``"no"``) nothing would bridge the two
    dtypes, so the whole model is cast to fp32. Returns the number of parameters upcast.
    """
    half = [p for p in model.parameters() if p.requires_grad and p.dtype in (torch.bfloat16, torch.float16)]
    if not half:
        return 0
    if precision == "no":
        model.float()
    else:
        for p in half:
            p.data = p.data.float()
    return len(half)


def enable_gradient_checkpointing(model: torch.nn.Module) -> list[str]:
    """Turn on activation checkpointing in every 🤗 model inside ``model`` (non-reentrant); returns their names."""
    done: list[str] = []
    for name, module in model.named_modules():
        if any(d == "" or name == d or name.startswith(d + ".") for d in done):
            continue  # inside a model already enabled
        if not getattr(module, "supports_gradient_checkpointing", True):
            continue
        # transformers >= 5 names it activation_checkpointing_enable (the old name is deprecated)
        if callable(getattr(module, "activation_checkpointing_enable", None)):
            module.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            done.append(name)
        elif callable(getattr(module, "gradient_checkpointing_enable", None)):
            module.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            done.append(name)
    if not done:
        raise ValueError("gradient_checkpointing=True, but no part of the model supports it (no 🤗 model with "
                         "gradient_checkpointing_enable inside)")
    return done


def unused_trainable_parameters(model: torch.nn.Module, batch, loss_fn, device, precision: str = "no") -> list[str]:
    """Names of trainable parameters that get no gradient from one (eval-mode, RNG-neutral) backward on ``batch``.

    DistributedDataParallel waits for a gradient from every trainable parameter; one that never gets any (hard
    top-k's score head) stalls it unless ``find_unused_parameters=True``.
    """
    from rrg_lite.mllm.inference import move_to_device

    was_training = model.training
    model.to(device).eval()
    devices = [device] if torch.device(device).type == "cuda" else []
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    try:
        with torch.random.fork_rng(devices=devices), \
                torch.autocast(torch.device(device).type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss_fn(model, move_to_device(batch, device)).backward()
        return [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters; no weight decay on biases and norms (1-D tensors)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters (check the freezing policy)")
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _epoch_loader(dataset: Dataset, cfg: TrainConfig, epoch: int, skip_samples: int, collate_fn) -> DataLoader:
    """The epoch's batches in a seeded order that depends only on (seed, epoch); ``skip_samples`` resumes mid-epoch."""
    g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    order = torch.randperm(len(dataset), generator=g)[skip_samples:].tolist()
    # Its own generator: otherwise each new iterator draws a worker seed from the global RNG, and a resumed
    # run (which builds its loader mid-epoch) would shift the dropout masks of an uninterrupted one.
    return DataLoader(Subset(dataset, order), batch_size=cfg.batch_size, shuffle=False, collate_fn=collate_fn,
                      num_workers=cfg.num_workers, generator=torch.Generator().manual_seed(cfg.seed + epoch))


def _resolve_resume(cfg: TrainConfig, config_now: dict, accelerator) -> Path | None:
    """Which checkpoint to resume from (None = a fresh start), after the output_dir ownership checks."""
    out = Path(cfg.output_dir) if cfg.output_dir is not None else None
    resume = cfg.resume_from
    if resume == "latest":
        if out is None:
            raise ValueError("resume_from='latest' needs output_dir")
        resume = ckpt.latest_checkpoint(out)
        damaged = {p: why for p, why in ckpt.damaged_checkpoints(out).items()
                   if resume is None or ckpt._step_of(p) > ckpt._step_of(resume)}
        if damaged and resume is None:
            raise ckpt.CheckpointError(f"{out}: no intact checkpoint to resume; damaged: " + "; ".join(damaged.values()))
        for why in damaged.values():
            warnings.warn(f"skipping a damaged checkpoint ({why}); resuming from {resume}", stacklevel=3)
        if resume is None:
            owner = ckpt.run_owner(out)
            if owner is not None:  # started before but never checkpointed: still, it must be the same run
                ckpt.check_same_config(owner, config_now, out / ckpt.RUN_FILE)
            accelerator.print(f"no complete checkpoint in {out}: starting from step 0")
    elif resume is not None:
        resume = Path(resume)
    if out is not None and resume is None and cfg.resume_from != "latest" and ckpt.holds_a_run(out):
        if not cfg.overwrite_output_dir:
            latest = ckpt.latest_checkpoint(out)
            raise ckpt.CheckpointError(
                f"{out} already holds a training run" + (f" (latest checkpoint {latest.name})" if latest else "")
                + ": pass resume_from='latest' to continue it (with the same config), overwrite_output_dir=True "
                "to replace it, or choose another output_dir")
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            ckpt.clear_run(out)
        accelerator.wait_for_everyone()
    if out is not None and resume is not None and Path(resume).parent != out / ckpt.CHECKPOINTS:
        owner = ckpt.run_owner(out)  # resuming someone else's checkpoint into this folder: it must be ours too
        if owner is not None:
            ckpt.check_same_config(owner, config_now, out / ckpt.RUN_FILE)
    return resume


def train(model: torch.nn.Module, dataset: Dataset, cfg: TrainConfig, collate_fn: Callable | None = None,
          loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None,
          eval_fn: Callable[[torch.nn.Module, int], dict] | None = None, eval_every: int | None = None,
          accelerator=None, run_config: dict | None = None) -> TrainResult:
    """Minimise ``loss_fn(model, batch)`` over ``dataset``. Trains in place; returns the log and timings.

    Only parameters with ``requires_grad`` are optimised (set the freezing policy before calling).
    ``eval_fn(model, step) -> dict`` runs every ``eval_every`` steps and at the end; its numbers join the history.
    ``run_config`` (JSON-able: the model's and data's settings) is stored with the checkpoints next to ``cfg``;
    a resume refuses a checkpoint whose stored ``cfg`` or ``run_config`` differs (keys that only change logging,
    paths or the save cadence excepted: :data:`rrg_lite.train.checkpoint.NON_TRAJECTORY_KEYS`).
    With ``output_dir``, checkpoints go to ``output_dir/checkpoints/step_<n>`` and the final weights with their
    config to ``output_dir/final`` (layout: :mod:`rrg_lite.train.checkpoint`).
    """
    from accelerate.utils import DistributedType

    loss_fn = loss_fn or default_loss
    if len(dataset) == 0:
        raise ValueError("the training dataset is empty")
    config_now = {"train": ckpt.jsonable(asdict(cfg)), "run": ckpt.jsonable(run_config or {})}
    accelerator = accelerator or make_accelerator(cfg)
    precision = accelerator.mixed_precision
    nproc = accelerator.num_processes

    # the folder and config checks come first: a refused resume leaves the model untouched
    resume = _resolve_resume(cfg, config_now, accelerator)
    if resume is not None:
        stored = ckpt.read_trainer_state(resume)
        ckpt.check_same_config(stored.get("config", {}), config_now, Path(resume) / ckpt.STATE_FILE)
    if cfg.output_dir is not None:
        accelerator.wait_for_everyone()  # every process has checked the folder before run.json appears
        if accelerator.is_main_process and ckpt.run_owner(cfg.output_dir) is None:
            ckpt.write_json_atomic(Path(cfg.output_dir) / ckpt.RUN_FILE, config_now)

    if cfg.master_weights == "fp32":
        upcast_trainable_parameters(model, precision)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    ddp = accelerator.distributed_type in (DistributedType.MULTI_GPU, DistributedType.MULTI_CPU,
                                           DistributedType.MULTI_XPU, DistributedType.MULTI_NPU)
    if ddp and nproc > 1 and cfg.find_unused_parameters is not False:
        find_unused = cfg.find_unused_parameters
        if find_unused is None:  # one trial backward finds parameters that never get a gradient
            first = [dataset[i] for i in range(min(cfg.batch_size, len(dataset)))]
            batch = collate_fn(first) if collate_fn is not None else torch.utils.data.default_collate(first)
            unused = unused_trainable_parameters(model, batch, loss_fn, accelerator.device, precision)
            find_unused = bool(accelerator.gather(torch.tensor([len(unused)], device=accelerator.device)).sum())
            if unused:
                accelerator.print(f"{len(unused)} trainable parameters get no gradient (e.g. {unused[0]}): "
                                  "DDP runs with find_unused_parameters=True")
        set_find_unused_parameters(accelerator, bool(find_unused))
    batches_per_epoch = math.ceil(len(dataset) / (cfg.batch_size * nproc))
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.grad_accum)
    total_steps = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * steps_per_epoch

    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        # DeepSpeed wants its micro-batch size before prepare(); the loop builds its loaders per epoch later
        ds = accelerator.state.deepspeed_plugin.deepspeed_config
        if ds.get("train_micro_batch_size_per_gpu", "auto") == "auto":
            ds["train_micro_batch_size_per_gpu"] = cfg.batch_size
    torch.manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    scheduler = make_scheduler(optimizer, cfg.schedule, cfg.warmup_steps, total_steps, cfg.min_lr_ratio)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw_model = accelerator.unwrap_model(model)

    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "samples_seen": 0}
    result = TrainResult()
    if resume is not None:
        loaded = ckpt.load_training_state(accelerator, resume, raw_model)
        state.update({k: loaded[k] for k in state})
        scheduler.load_state_dict(loaded["scheduler"])
        result.history = loaded.get("history", [])
        result.resumed_from = str(resume)
        accelerator.print(f"resumed from {resume} at step {state['step']}")

    def checkpoint():
        if cfg.output_dir is None:
            return
        folder = Path(cfg.output_dir) / ckpt.CHECKPOINTS / f"step_{state['step']}"
        trainer_state = {**state, "history": result.history, "scheduler": scheduler.state_dict(),
                         "config": config_now, "num_processes": nproc, "mixed_precision": precision}
        ckpt.save_training_state(accelerator, folder, raw_model, trainer_state)
        if accelerator.is_main_process:
            ckpt.prune_checkpoints(cfg.output_dir, cfg.keep_last)
        accelerator.wait_for_everyone()
        result.last_checkpoint = str(folder)

    bar = tqdm(total=total_steps, initial=state["step"], desc=cfg.desc, disable=not (cfg.progress and accelerator.is_main_process))
    model.train()
    t0, samples_this_run, window = time.perf_counter(), 0, []
    stop_at = min(total_steps, cfg.stop_after_steps) if cfg.stop_after_steps is not None else total_steps
    while state["step"] < stop_at:
        loader = accelerator.prepare_data_loader(
            _epoch_loader(dataset, cfg, state["epoch"], state["batch_in_epoch"] * cfg.batch_size * nproc, collate_fn)
        )
        for batch in loader:
            with accelerator.accumulate(model):
                loss = loss_fn(model, batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm is not None:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            n = len(batch["input_ids"]) if isinstance(batch, dict) and "input_ids" in batch else cfg.batch_size
            state["batch_in_epoch"] += 1
            state["samples_seen"] += n * nproc
            samples_this_run += n * nproc
            window.append(loss.detach().float())
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            state["step"] += 1
            bar.update(1)
            step = state["step"]
            if step % cfg.log_every == 0 or step == stop_at:
                mean_loss = accelerator.gather(torch.stack(window).mean()[None]).mean().item()
                entry = {"step": step, "epoch": state["epoch"], "loss": mean_loss, "lr": scheduler.get_last_lr()[0]}
                result.history.append(entry)
                bar.set_postfix(loss=f"{mean_loss:.3f}")
            window = []
            if eval_fn is not None and eval_every and step % eval_every == 0:
                model.eval()
                result.history.append({"step": step, **eval_fn(raw_model, step)})
                model.train()
            if cfg.save_every and step % cfg.save_every == 0:
                checkpoint()
            if step >= stop_at:
                break
        else:  # the epoch ended
            state["epoch"] += 1
            state["batch_in_epoch"] = 0
            continue
        if state["batch_in_epoch"] >= batches_per_epoch:
            state["epoch"] += 1
            state["batch_in_epoch"] = 0
    bar.close()
    result.seconds = time.perf_counter() - t0
    result.global_step = state["step"]
    result.samples_seen = state["samples_seen"]
    result.samples_per_second = samples_this_run / max(result.seconds, 1e-9)
    result.stopped_early = state["step"] < total_steps
    if eval_fn is not None and not result.stopped_early:
        model.eval()
        result.history.append({"step": state["step"], **eval_fn(raw_model, state["step"])})
    if cfg.output_dir is not None:
        if result.last_checkpoint != str(Path(cfg.output_dir) / ckpt.CHECKPOINTS / f"step_{state['step']}"):
            checkpoint()
        if not result.stopped_early and cfg.final_weights != "none":
            final = Path(cfg.output_dir) / ckpt.FINAL
            # sharded models (FSDP, ZeRO-3) are gathered first: a collective, so every process takes part
            full = accelerator.get_state_dict(model) if ckpt._sharded(accelerator) else None
            if accelerator.is_main_process:
                ckpt.save_final_weights(final, raw_model, {**config_now, "step": state["step"]},
                                        everything=cfg.final_weights == "all", state_dict=full)
            accelerator.wait_for_everyone()
            result.final_dir = str(final)
    model.eval()
    return result
