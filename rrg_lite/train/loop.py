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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from rrg_lite.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
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
    output_dir: str | None = None       # checkpoints go to <output_dir>/step_<n>
    save_every: int | None = None       # steps between checkpoints (None: only at the end if output_dir)
    resume_from: str | None = None      # a checkpoint folder, or "latest" (in output_dir)
    stop_after_steps: int | None = None  # interrupt the run early (the schedule still assumes max_steps)
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


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)   # one entry per logged step
    global_step: int = 0
    samples_seen: int = 0
    seconds: float = 0.0
    samples_per_second: float = 0.0
    last_checkpoint: str | None = None
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


def make_accelerator(cfg: TrainConfig):
    """An ``Accelerator`` for ``cfg`` (the launch config, if any, decides devices and DeepSpeed)."""
    from accelerate import Accelerator
    from accelerate.utils import GradientAccumulationPlugin

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
    return Accelerator(mixed_precision=precision, gradient_accumulation_plugin=plugin)


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


def train(model: torch.nn.Module, dataset: Dataset, cfg: TrainConfig, collate_fn: Callable | None = None,
          loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None,
          eval_fn: Callable[[torch.nn.Module, int], dict] | None = None, eval_every: int | None = None,
          accelerator=None) -> TrainResult:
    """Minimise ``loss_fn(model, batch)`` over ``dataset``. Trains in place; returns the log and timings.

    Only parameters with ``requires_grad`` are optimised (set the freezing policy before calling).
    ``eval_fn(model, step) -> dict`` runs every ``eval_every`` steps and at the end; its numbers join the history.
    """
    loss_fn = loss_fn or default_loss
    if len(dataset) == 0:
        raise ValueError("the training dataset is empty")
    accelerator = accelerator or make_accelerator(cfg)
    nproc = accelerator.num_processes
    batches_per_epoch = math.ceil(len(dataset) / (cfg.batch_size * nproc))
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.grad_accum)
    total_steps = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * steps_per_epoch

    torch.manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    scheduler = make_scheduler(optimizer, cfg.schedule, cfg.warmup_steps, total_steps, cfg.min_lr_ratio)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw_model = accelerator.unwrap_model(model)

    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "samples_seen": 0}
    result = TrainResult()
    resume = cfg.resume_from
    if resume == "latest":
        if cfg.output_dir is None:
            raise ValueError("resume_from='latest' needs output_dir")
        resume = latest_checkpoint(cfg.output_dir)
    if resume is not None:
        loaded = load_checkpoint(resume, raw_model, optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer, scheduler)
        state.update({k: loaded[k] for k in state})
        result.history = loaded.get("history", [])
        accelerator.print(f"resumed from {resume} at step {state['step']}")

    def checkpoint():
        if cfg.output_dir is None:
            return
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            folder = Path(cfg.output_dir) / f"step_{state['step']}"
            opt = optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer
            save_checkpoint(folder, raw_model, opt, scheduler, {**state, "history": result.history, "config": asdict(cfg)})
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
    if cfg.output_dir is not None and result.last_checkpoint != str(Path(cfg.output_dir) / f"step_{state['step']}"):
        checkpoint()
    model.eval()
    return result
