"""Learning-rate schedules as multipliers of the base rate, one value per optimizer step.

With ``s`` optimizer steps already taken, ``W`` warmup steps and ``S`` total steps (the convention of
🤗 Transformers' ``get_*_schedule_with_warmup``)::

    warmup (s < W):   s / W
    constant:         1
    linear:           max(0, (S - s) / (S - W))
    cosine:           m + (1 - m) * 0.5 * (1 + cos(pi * (s - W) / (S - W)))      m = min_lr_ratio
"""
from __future__ import annotations

import math

import torch

SCHEDULES = ("constant", "linear", "cosine")


def lr_multiplier(step: int, schedule: str, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0) -> float:
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {SCHEDULES}")
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(optimizer, schedule: str, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0):
    """A ``LambdaLR`` following :func:`lr_multiplier`; call ``.step()`` once per optimizer step."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {SCHEDULES}")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_multiplier(s, schedule, warmup_steps, total_steps, min_lr_ratio)
    )
