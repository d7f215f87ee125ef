"""Configuration files shipped with the package.

``accelerate/`` holds the `accelerate launch --config_file` files for the full-scale runs (see book/running.md):

| name | what |
|---|---|
| ``single_gpu`` | one GPU, bf16 |
| ``ddp`` | data parallel on N GPUs of one machine (``--num_processes N``) |
| ``deepspeed_zero2`` | DeepSpeed ZeRO-2: sharded optimizer state and gradients (Reg2RG's setting) |
| ``fsdp`` | FSDP2: sharded parameters, gradients and optimizer state, wrapped per decoder layer |

From an installed package, ``python -m rrg_lite.configs ddp`` prints the file's path.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["ACCELERATE_CONFIGS", "accelerate_config"]

_DIR = Path(__file__).resolve().parent / "accelerate"
ACCELERATE_CONFIGS = ("single_gpu", "ddp", "deepspeed_zero2", "fsdp")


def accelerate_config(name: str) -> Path:
    """Path of a shipped Accelerate config, e.g. ``accelerate_config("ddp")``."""
    if name not in ACCELERATE_CONFIGS:
        raise ValueError(f"unknown Accelerate config {name!r}; shipped: {', '.join(ACCELERATE_CONFIGS)}")
    return _DIR / f"{name}.yaml"
