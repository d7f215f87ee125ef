"""A frozen encoder's features on disk: computed once on the encoder's device, read lazily by index.

CT-RATE's training split as frozen ViT features is about 300 GB: it does not sit in RAM, and it should not be
recomputed by every run. This module writes them once, as sharded safetensors, and reads them back one item at a
time through memory maps::

    from rrg_lite.encoders.features import build_feature_cache

    cache = build_feature_cache(encoder, volumes, "cache/features", ids=study_ids,
                                preprocessing={"shape": [32, 256, 256], "windows": [[0, 2000]]},
                                encoder_name="m3d-clip", batch_size=8, num_workers=4)
    cache[i]          # (N, E) tensor of item i — only its bytes are read
    len(cache), cache.ids, cache.key

Layout: ``<root>/<key>/`` holds ``index.json`` and ``shard_00000.safetensors``, ``shard_00001...``; every shard
has ``features`` (the items' rows concatenated along dim 0, so items may differ in their first dimension, e.g.
T frames) and ``offsets`` (m + 1,) int64.

The key is a SHA-256 of what decides the features: the encoder's identity (name, class, and a hash of every
weight — or a caller-given ``weights_id``), the data (the ordered item ids) and the preprocessing (any JSON-able
dict), plus the storage dtype. Change any of them and the key changes, so the features are computed again into
another folder (an old cache is never read for new settings).

Writes are atomic: shards and ``index.json`` (written last) go into ``<root>/.tmp-<key>-<pid>/``, which is
renamed to ``<root>/<key>`` when complete. A crashed write leaves only a ``.tmp-`` folder, never a folder that
looks valid; two processes building the same key both finish and the first rename wins. Readers only read
(memory maps of immutable files), so any number may share a cache; :class:`FeatureCache` re-opens its files
after being pickled into DataLoader workers.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

__all__ = ["encoder_identity", "cache_key", "FeatureCache", "FeatureCacheError", "build_feature_cache",
           "open_feature_cache"]

FORMAT = 1
INDEX = "index.json"


class FeatureCacheError(ValueError):
    """A cache folder that is incomplete, damaged or for other settings (the message names the file)."""


def _tensor_digest(h, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    if t.numel():
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def encoder_identity(encoder: nn.Module, name: str | None = None, weights_id: str | None = None) -> dict:
    """What identifies a frozen encoder: ``{"name", "class", "weights"}``.

    ``weights`` is a SHA-256 over every parameter and buffer (name, dtype, shape, bytes) unless the caller gives
    ``weights_id`` (e.g. the checkpoint file's own hash, cheaper for a 300 M-parameter ViT).
    """
    if weights_id is None:
        h = hashlib.sha256()
        for key, t in sorted(encoder.state_dict().items()):
            h.update(key.encode())
            _tensor_digest(h, t)
        weights_id = h.hexdigest()
    return {"name": name or type(encoder).__name__, "class": f"{type(encoder).__module__}.{type(encoder).__qualname__}",
            "weights": weights_id}


def cache_key(encoder: Mapping[str, Any], ids: Sequence[str], preprocessing: Mapping[str, Any] | None = None,
              dtype: str = "float32") -> str:
    """SHA-256 (hex, 64 chars) of encoder identity + ordered item ids + preprocessing + storage dtype."""
    ids_hash = hashlib.sha256("\n".join(map(str, ids)).encode()).hexdigest()
    blob = json.dumps({"format": FORMAT, "encoder": dict(encoder), "ids": ids_hash, "n": len(ids),
                       "preprocessing": dict(preprocessing or {}), "dtype": dtype}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class FeatureCache(Dataset):
    """Lazy reader of one cache folder: ``cache[i]`` reads item i's rows only (memory-mapped safetensors)."""

    def __init__(self, folder: str | Path, expect_key: str | None = None):
        self.folder = Path(folder)
        index_file = self.folder / INDEX
        if not index_file.is_file():
            raise FeatureCacheError(f"{self.folder}: not a complete feature cache (no {INDEX})")
        try:
            index = json.loads(index_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise FeatureCacheError(f"{index_file}: not valid JSON ({err})") from None
        if index.get("format") != FORMAT:
            raise FeatureCacheError(f"{index_file}: format {index.get('format')!r}, this version reads {FORMAT}")
        if expect_key is not None and index.get("key") != expect_key:
            raise FeatureCacheError(f"{index_file}: key {index.get('key')!r} is not the expected {expect_key!r}")
        for shard in index["shards"]:
            f = self.folder / shard["file"]
            if not f.is_file() or f.stat().st_size != shard["bytes"]:
                raise FeatureCacheError(f"{f}: missing or not {shard['bytes']} bytes (truncated?)")
        self.index = index
        self.key: str = index["key"]
        self.ids: list[str] = index["ids"]
        self._starts = [s["start"] for s in index["shards"]]
        self._handles: dict[int, Any] = {}
        self._offsets: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __getstate__(self):  # file handles do not cross process boundaries: reopen in the worker
        state = dict(self.__dict__)
        state["_handles"], state["_offsets"] = {}, {}
        return state

    def _shard(self, s: int):
        if s not in self._handles:
            from safetensors import safe_open

            f = self.folder / self.index["shards"][s]["file"]
            try:
                handle = safe_open(str(f), framework="pt")
                self._offsets[s] = handle.get_tensor("offsets")
            except Exception as err:  # SafetensorError and friends
                raise FeatureCacheError(f"{f}: cannot read the shard ({err})") from None
            self._handles[s] = handle
        return self._handles[s], self._offsets[s]

    @property
    def open_shards(self) -> int:
        """How many shard files this reader has opened (lazy reading: only those of items read)."""
        return len(self._handles)

    def __getitem__(self, i: int) -> torch.Tensor:
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} of a cache with {len(self)} items")
        i = i % len(self)
        import bisect

        s = bisect.bisect_right(self._starts, i) - 1
        handle, offsets = self._shard(s)
        j = i - self._starts[s]
        lo, hi = int(offsets[j]), int(offsets[j + 1])
        return handle.get_slice("features")[lo:hi]

    def stack(self, indices: Sequence[int] | None = None) -> torch.Tensor:
        """Items stacked into one tensor (n, ...) — only for items of equal shape; reads what it returns."""
        idx = range(len(self)) if indices is None else indices
        return torch.stack([self[i] for i in idx])


def open_feature_cache(root: str | Path, key: str) -> FeatureCache | None:
    """The complete cache for ``key`` under ``root``, or None."""
    folder = Path(root) / key
    if not (folder / INDEX).is_file():
        return None
    return FeatureCache(folder, expect_key=key)


def _to_device(obj, device, dtype):
    """Tensors inside ``obj`` (nested dicts / lists / tuples) on ``device``, floats in ``dtype``. The same rule as
    :func:`rrg_lite.mllm.inference.move_to_device`, restated here because ``encoders`` must not import ``mllm``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device=device, dtype=dtype) if dtype is not None and obj.is_floating_point() else obj.to(device)
    if isinstance(obj, Mapping):
        return {k: _to_device(v, device, dtype) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, device, dtype) for v in obj)
    return obj


def _default_encode(encoder: nn.Module, batch) -> list[torch.Tensor]:
    return list(encoder(batch).unbind(0))


def build_feature_cache(encoder: nn.Module, dataset: Sequence | Dataset, root: str | Path, *, ids: Sequence[str],
                        preprocessing: Mapping[str, Any] | None = None, encoder_name: str | None = None,
                        weights_id: str | None = None, batch_size: int = 8, num_workers: int = 0,
                        collate: Callable | None = None,
                        encode: Callable[[nn.Module, Any], Sequence[torch.Tensor]] = _default_encode,
                        shard_size: int = 256, dtype: torch.dtype | None = None, device=None,
                        progress: bool = False, overwrite: bool = False) -> FeatureCache:
    """Features of ``encoder`` for every item of ``dataset``, from the cache under ``root`` or computed into it.

    ``dataset[i]`` is item i's encoder input (e.g. a (C, D, H, W) volume, or lazily read files); ``ids[i]`` its id.
    Batches come from a ``DataLoader`` (``num_workers`` processes, ``collate``; default stacking) and are moved to
    the encoder's device (``device`` overrides). ``encode(encoder, batch)`` returns one tensor per item (default:
    ``encoder(batch)`` split along dim 0); items may differ in their first dimension. ``dtype`` stores the
    features in another dtype (e.g. ``torch.float16``: half the disk). ``overwrite`` recomputes even on a hit.
    """
    from tqdm.auto import tqdm

    if len(ids) != len(dataset):
        raise ValueError(f"{len(ids)} ids for {len(dataset)} items")
    if len(set(map(str, ids))) != len(ids):
        raise ValueError("ids must be unique (they key the cache and name the items)")
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    store = str(dtype).removeprefix("torch.") if dtype is not None else "as_computed"
    identity = encoder_identity(encoder, encoder_name, weights_id)
    key = cache_key(identity, ids, preprocessing, store)
    root = Path(root)
    final = root / key
    if not overwrite:
        hit = open_feature_cache(root, key)
        if hit is not None:
            return hit
    first = next(encoder.parameters(), None)
    target = torch.device(device) if device is not None else (first.device if first is not None else torch.device("cpu"))
    in_dtype = first.dtype if first is not None and first.is_floating_point() else None
    tmp = root / f".tmp-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=collate, pin_memory=target.type == "cuda")
    shards, pending, rows_dtype = [], [], None
    done = 0

    def flush():
        nonlocal pending
        if not pending:
            return
        from safetensors.torch import save_file

        name = f"shard_{len(shards):05d}.safetensors"
        lengths = torch.tensor([0] + [p.shape[0] for p in pending], dtype=torch.int64)
        save_file({"features": torch.cat(pending).contiguous(), "offsets": lengths.cumsum(0)}, str(tmp / name))
        start = shards[-1]["stop"] if shards else 0
        shards.append({"file": name, "start": start, "stop": start + len(pending), "bytes": (tmp / name).stat().st_size})
        pending = []

    was_training = encoder.training
    try:
        encoder.eval()
        with torch.no_grad():
            for batch in tqdm(loader, desc="features", disable=not progress):
                feats = encode(encoder, _to_device(batch, target, in_dtype))
                for f in feats:
                    f = f.detach().to("cpu", dtype=dtype or f.dtype)
                    if f.ndim == 0:
                        raise ValueError("encode() must return one tensor with at least one dimension per item")
                    if rows_dtype is None:
                        rows_dtype = (f.dtype, tuple(f.shape[1:]))
                    elif (f.dtype, tuple(f.shape[1:])) != rows_dtype:
                        raise ValueError(f"item {done}: features {f.dtype} {tuple(f.shape)} differ from the first "
                                         f"item's {rows_dtype} beyond dim 0")
                    pending.append(f)
                    done += 1
                    if len(pending) == shard_size:
                        flush()
            flush()
        if done != len(ids):
            raise ValueError(f"encode() returned {done} feature tensors for {len(ids)} items")
        index = {"format": FORMAT, "key": key, "encoder": identity, "preprocessing": dict(preprocessing or {}),
                 "dtype": store, "ids": [str(i) for i in ids], "shards": shards}
        with open(tmp / INDEX, "w") as fh:
            json.dump(index, fh, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite and final.exists():
            shutil.rmtree(final)
        try:
            os.replace(tmp, final)
        except OSError:
            # another process finished the same key first: its cache is the same features
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        encoder.train(was_training)
    return FeatureCache(final, expect_key=key)
