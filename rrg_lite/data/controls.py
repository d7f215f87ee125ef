"""Inputs for the controls every chapter runs: another patient's image, report or region tokens.

A model "reads its image" only if it does worse when each study is given *another* study's input. The one
permutation every system uses for that is :func:`derangement`: a seeded random permutation with no fixed point, so
no study keeps its own input and every input is used exactly once (the control changes which image goes with which
report, never the set of images).
"""
from __future__ import annotations

import torch

__all__ = ["derangement"]


def derangement(n: int, seed: int = 0) -> torch.Tensor:
    """A random permutation with no fixed point (n >= 2): study i gets the input of study ``perm[i] != i``.

    Built as a random cycle: shuffle, then send each study to the next one in the shuffled order. (B,) long.
    """
    if n < 2:
        raise ValueError(f"a derangement needs n >= 2, got {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    perm = torch.empty(n, dtype=torch.long)
    perm[order] = order.roll(-1)
    return perm
