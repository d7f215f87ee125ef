"""One batched-inference loop for every generate / score / log-prob / feature-extraction path.

Every evaluation in the book is the same loop: cut the items into batches, collate, move the batch to where the
model lives, run the model without gradients and in eval mode, keep the outputs in order. Written once here, so
that a model moved to the GPU by :func:`rrg_lite.train.loop.train` (or by ``accelerate launch``) is always fed on
its own device, and so that evaluation can be split over processes::

    from rrg_lite.mllm.inference import batched_inference

    nll = batched_inference(mllm, examples, lambda m, b: -m.sequence_logprobs(**b, average=True),
                            batch_size=64, collate=MLLMCollator(pad_id))            # list of n scalars
    texts = batched_inference(mllm, prompts, lambda m, b: m.generate_text(**b, max_new_tokens=64),
                              batch_size=32, collate=MLLMCollator(pad_id, padding_side="left"))

What it guarantees:

- every tensor in the collated batch — nested in dicts, lists and tuples — is moved to the model's device
  (:func:`model_device`: the device of its first parameter or buffer; ``device=`` overrides), floating tensors
  optionally cast to ``dtype``;
- ``torch.no_grad()`` and ``model.eval()`` during the loop; the model's training flag is restored afterwards,
  also when ``fn`` raises;
- outputs come back in the order of ``items``, one entry per item (``fn`` may return ``r`` rows per item, e.g.
  ``num_return_sequences=r``: each item's entry is then a list of its ``r`` rows); tensors are moved to the CPU;
- with several processes (``torch.distributed`` initialised, e.g. under ``accelerate launch``) and
  ``shard="auto"`` (the default), process ``rank`` runs items ``rank, rank + W, rank + 2W, ...`` and the results
  are gathered back into the original order on every process — each item is computed exactly once. Every process
  must then make the call (as every process of a launched script does).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

__all__ = ["unwrap_model", "model_device", "model_dtype", "move_to_device", "evaluating", "shard_indices", "distributed_world",
           "gather_in_order", "batched_inference"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / DeepSpeed / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def model_device(model: nn.Module) -> torch.device:
    """Where ``model`` computes: its first parameter's device (or first buffer's; CPU for a stateless module).

    For a model split over devices (``device_map="auto"``) this is the device of its first layer — the input's.
    """
    model = unwrap_model(model)
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of ``model``'s first floating-point parameter (float32 when it has none)."""
    for p in unwrap_model(model).parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def move_to_device(obj: Any, device: torch.device | str, dtype: torch.dtype | None = None,
                   non_blocking: bool = False) -> Any:
    """``obj`` with every tensor inside it (nested dicts, lists, tuples) on ``device``.

    ``dtype`` (optional) casts floating-point tensors only: token ids and masks keep their integer types.
    Anything that is not a tensor or a container (strings, numbers, None) is returned as it is.
    """
    if isinstance(obj, torch.Tensor):
        if dtype is not None and obj.is_floating_point():
            return obj.to(device=device, dtype=dtype, non_blocking=non_blocking)
        return obj.to(device=device, non_blocking=non_blocking)
    if isinstance(obj, Mapping):
        moved = {k: move_to_device(v, device, dtype, non_blocking) for k, v in obj.items()}
        return moved if type(obj) is dict else type(obj)(moved)  # OrderedDict, BatchEncoding, ...
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return type(obj)(*(move_to_device(v, device, dtype, non_blocking) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(move_to_device(v, device, dtype, non_blocking) for v in obj)
    return obj


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` and ``torch.no_grad()`` inside the block; the training flag is restored on exit."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def distributed_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group, ``(0, 1)`` without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def shard_indices(n: int, rank: int, world_size: int) -> list[int]:
    """The items process ``rank`` of ``world_size`` computes: ``rank, rank + W, ...`` (strided, so that
    shards differ in size by at most one and long and short items spread over the ranks)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of {world_size} processes")
    return list(range(rank, n, world_size))


def gather_in_order(n: int, indices: Sequence[int], results: Sequence[Any]) -> list[Any]:
    """Collect ``(index, result)`` pairs from every process into one list of ``n`` results in index order.

    Raises if an index is missing or appears twice (the exactly-once guarantee, checked rather than assumed).
    """
    rank, world = distributed_world()
    pairs = list(zip(indices, results))
    if world > 1:
        everyone: list = [None] * world
        torch.distributed.all_gather_object(everyone, pairs)
        pairs = [p for part in everyone for p in part]
    out: list[Any] = [None] * n
    seen = [False] * n
    for i, r in pairs:
        if seen[i]:
            raise RuntimeError(f"item {i} was computed twice while gathering {n} results over {world} processes")
        seen[i] = True
        out[i] = r
    missing = [i for i, s in enumerate(seen) if not s]
    if missing:
        raise RuntimeError(f"{len(missing)} of {n} items were never computed (e.g. {missing[:5]})")
    return out


def _rows(output: Any) -> list:
    """A batch output as a list of rows: tensor -> its first-dimension slices (on the CPU), sequence -> list."""
    if isinstance(output, torch.Tensor):
        if output.ndim == 0:
            raise ValueError("fn returned a 0-d tensor; return one value per item (shape (B, ...))")
        return list(output.detach().cpu().unbind(0))
    if isinstance(output, (list, tuple)):
        return [o.detach().cpu() if isinstance(o, torch.Tensor) else o for o in output]
    raise TypeError(f"fn must return a tensor (B, ...) or a list of B results, got {type(output).__name__}")


def batched_inference(model: nn.Module, items: Sequence[Any], fn: Callable[[nn.Module, Any], Any], *,
                      batch_size: int = 32, collate: Callable[[list], Any] | None = None,
                      device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                      progress: bool = False, desc: str = "inference", shard: bool | str = "auto",
                      per_item: int | None = None) -> list[Any]:
    """Run ``fn(model, batch)`` over ``items`` in batches; returns one result per item, in order.

    ``collate(list of items) -> batch`` (default: the list itself); the batch is moved to the model's device
    (:func:`move_to_device`, floats cast to ``dtype`` if given) before ``fn`` sees it. ``fn`` returns a tensor
    whose first dimension, or a list whose length, is ``r * len(chunk)`` with the same ``r`` for every batch
    (``r = 1``: one row per item, returned as that row; ``r > 1``: each item gets the list of its ``r`` rows,
    consecutive in the output as 🤗 ``generate(num_return_sequences=r)`` orders them). ``per_item`` fixes ``r``.
    ``shard``: ``"auto"`` splits the items over processes when a process group is initialised, ``False`` never
    (each process computes everything), ``True`` requires a process group of any size.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if shard not in ("auto", True, False):
        raise ValueError(f"shard must be 'auto', True or False, got {shard!r}")
    rank, world = distributed_world()
    if shard is True and not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        raise RuntimeError("shard=True needs an initialised torch.distributed process group (accelerate launch)")
    sharded = shard is True or (shard == "auto" and world > 1)
    n = len(items)
    mine = shard_indices(n, rank, world) if sharded else list(range(n))
    target = torch.device(device) if device is not None else model_device(model)
    results: list[Any] = []
    with evaluating(model):
        for start in tqdm(range(0, len(mine), batch_size), desc=desc, disable=not (progress and rank == 0)):
            idx = mine[start: start + batch_size]
            chunk = [items[i] for i in idx]
            batch = collate(chunk) if collate is not None else chunk
            rows = _rows(fn(model, move_to_device(batch, target, dtype)))
            r = per_item or (len(rows) // len(chunk) if len(rows) % len(chunk) == 0 else None)
            if not r or len(rows) != r * len(chunk):
                raise ValueError(f"fn returned {len(rows)} rows for a batch of {len(chunk)} items; expected a "
                                 f"multiple of {len(chunk)}" + (f" ({per_item} per item)" if per_item else ""))
            results.extend(rows if r == 1 else [rows[j * r:(j + 1) * r] for j in range(len(chunk))])
    if sharded:
        return gather_in_order(n, mine, results)
    return results
