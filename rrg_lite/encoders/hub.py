"""One function hands every chapter its encoder: pre-trained once per configuration, cached on disk.

    from rrg_lite.encoders.hub import get_encoder
    bundle = get_encoder("ct")                    # CPU profile: pre-trains on the world the first time, then loads
    bundle.encoder                                # SeeingEncoder: (m, C, *spatial) -> (m, N, E), frozen (eval)
    bundle.mllm_encoder                           # the same, tokens z-scored with its training studies' statistics
    bundle.preprocess                             # how to make its input (shape, windows / image size)
    feats = bundle.features(images)               # (n, 1, N, E) from mllm_encoder, for rrg_lite.mllm (T = 1)
    get_encoder("xray_frontal"); get_encoder("xray_lateral")
    get_encoder("ct", profile="full", weights="GoodBaiBai88/M3D-CLIP")   # a real encoder, only because you named it

Modalities: ``ct`` (3-D chest CT), ``xray_frontal``, ``xray_lateral`` (2-D). (PET is not built yet.)

Cache: ``$RRG_CACHE/encoders`` (default ``~/.cache/rrg_lite/encoders``), one folder per configuration named
``<modality>-<key>``, where the key hashes the modality, the encoder spec, the *full* world configuration and
:data:`CACHE_VERSION`. Each folder holds ``model.safetensors`` (encoder + pre-training heads) and ``config.json``
(spec, world, training log). A writer trains under an exclusive file lock and publishes the folder with one
``os.replace`` of a temporary folder, so concurrent readers see either nothing or a complete folder, and two
notebooks asking at once train it once. Nothing is downloaded unless ``weights`` names a Hub id.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rrg_lite.encoders.teach import (PretrainHeads, SeeingEncoder, StandardizedTokens, build_vit, parse_objective,
                                     pretrain_encoder, token_stats)

#: Bump when pre-training code changes what a spec produces (old cache folders are then ignored).
CACHE_VERSION = 3
MODALITIES = ("ct", "xray_frontal", "xray_lateral")
#: Spec keys that do not change the trained weights (world generation gives the same studies for any worker count).
_NOT_IN_KEY = ("workers",)


def cache_root(cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    base = os.environ.get("RRG_CACHE")
    return Path(base) / "encoders" if base else Path.home() / ".cache" / "rrg_lite" / "encoders"


def _world_dict(spec: dict) -> dict:
    from rrg_lite.world.config import WorldConfig

    world = dict(spec.get("world") or {})
    if spec["modality"] == "ct":
        world = {"scan_range": "chest", **world}
    d = WorldConfig(**world).as_dict()
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def cache_key(spec: dict) -> str:
    """16 hex digits of sha256 over (version, spec, full world config): equal keys <=> the same encoder."""
    same = {k: v for k, v in spec.items() if k not in _NOT_IN_KEY}
    blob = json.dumps({"version": CACHE_VERSION, "spec": same, "world": _world_dict(spec)}, sort_keys=True,
                      default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class EncoderBundle:
    """A frozen encoder with what produced it. ``heads`` holds the label/patch heads and, for CLIP, the towers."""

    encoder: torch.nn.Module
    spec: dict
    heads: PretrainHeads | None = None
    path: Path | None = None
    log: dict = field(default_factory=dict)
    token_mean: torch.Tensor | None = None     # (N, E) over the training studies (world-trained encoders)
    token_std: torch.Tensor | None = None

    @property
    def mllm_encoder(self) -> torch.nn.Module:
        """What an MLLM should read: tokens standardised per (token, channel) (see ``StandardizedTokens``); a real
        encoder (no statistics) is returned as it is. The probes and CLIP heads read ``encoder``'s raw tokens."""
        if self.token_mean is None:
            return self.encoder
        return StandardizedTokens(self.encoder, self.token_mean, self.token_std).eval()

    @property
    def preprocess(self) -> dict:
        """How to build the encoder's input from a study (see :mod:`rrg_lite.encoders.data`)."""
        keys = ("modality", "shape", "windows", "size", "world")
        return {k: self.spec[k] for k in keys if k in self.spec}

    @torch.no_grad()
    def features(self, images, batch_size: int = 64) -> torch.Tensor:
        """(n, C, *spatial) -> (n, 1, N, E) frozen, standardised patch tokens (``mllm_encoder``), the MLLM's
        ``features`` layout (T = 1)."""
        enc = self.mllm_encoder.eval()
        return torch.cat([enc(images[i: i + batch_size]).float() for i in range(0, len(images), batch_size)])[:, None]


def training_data(spec: dict, n: int | None = None, seed: int | None = None, progress: bool = False):
    """The world studies an encoder spec pre-trains on (or, with another ``seed``, held-out ones)."""
    from rrg_lite.encoders.data import ct_encoder_data, xray_encoder_data

    n = spec["n_train"] if n is None else n
    seed = spec["data_seed"] if seed is None else seed
    if spec["modality"] == "ct":
        return ct_encoder_data(n, seed, world=spec.get("world"), shape=spec["shape"], windows=spec["windows"],
                               patch_size=spec["patch_size"], workers=spec.get("workers", 1), progress=progress)
    view = spec["modality"].split("_", 1)[1]
    return xray_encoder_data(n, seed, view=view, world=spec.get("world"), size=spec["size"],
                             patch_size=spec["patch_size"][0], workers=spec.get("workers", 1), progress=progress)


def _save(folder: Path, enc: SeeingEncoder, heads: PretrainHeads, spec: dict, log: dict, stats) -> None:
    from safetensors.torch import save_file

    state = {f"encoder.{k}": v.contiguous() for k, v in enc.state_dict().items()}
    state.update({f"heads.{k}": v.contiguous() for k, v in heads.state_dict().items()})
    state.update({"tokens.mean": stats[0].contiguous(), "tokens.std": stats[1].contiguous()})
    save_file(state, str(folder / "model.safetensors"))
    slim = {k: v for k, v in log.items() if k != "losses"}
    slim["final_losses"] = log["losses"][-1] if log.get("losses") else None
    (folder / "config.json").write_text(json.dumps({"version": CACHE_VERSION, "spec": spec,
                                                    "world": _world_dict(spec), "log": slim}, indent=1))


def _load(folder: Path) -> EncoderBundle:
    from safetensors.torch import load_file

    meta = json.loads((folder / "config.json").read_text())
    spec = meta["spec"]
    state = load_file(str(folder / "model.safetensors"))
    enc_state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    head_state = {k[len("heads."):]: v for k, v in state.items() if k.startswith("heads.")}
    mean = enc_state["mean"]
    enc = SeeingEncoder(build_vit(spec, mean.shape[0], mean.shape[1:]))
    enc.load_state_dict(enc_state)
    num_labels = head_state["label_head.1.bias"].shape[0]
    heads = PretrainHeads(enc.embed_dim, num_labels, parse_objective(spec["objective"]), spec["clip_dim"],
                          spec["temperature"])
    heads.load_state_dict(head_state)
    return EncoderBundle(enc.eval(), spec, heads.eval(), folder, meta.get("log", {}), state["tokens.mean"],
                         state["tokens.std"])


def encoder_spec(modality: str, profile: str = "cpu", **overrides) -> dict:
    """The profile's spec for ``modality`` with ``overrides`` (e.g. ``epochs=2``, ``objective="clip"``)."""
    from rrg_lite.profiles.encoders import SPECS

    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; choose one of {MODALITIES} (PET is not built yet)")
    if profile not in SPECS:
        raise ValueError(f"unknown encoder profile {profile!r}; choose one of {sorted(SPECS)}")
    spec = {**SPECS[profile][modality], "modality": modality}
    unknown = set(overrides) - set(spec)
    if unknown:
        raise ValueError(f"unknown encoder spec keys {sorted(unknown)}; known: {sorted(spec)}")
    spec.update(overrides)
    return json.loads(json.dumps(spec))       # tuples -> lists: the spec is what config.json stores


def get_encoder(modality: str, profile: str = "cpu", cache_dir: str | Path | None = None,
                weights: str | Path | None = None, retrain: bool = False, progress: bool = False,
                **overrides) -> EncoderBundle:
    """The frozen encoder for ``modality``: from the cache, or pre-trained on the world now and cached.

    ``weights``: a real pre-trained encoder instead (a local safetensors path or a Hub id: M3D-CLIP's ViT for
    ``ct``, RAD-DINO for the X-ray views) — loaded by :mod:`rrg_lite.encoders.pretrained`, never by default.
    ``overrides``: spec keys (see :mod:`rrg_lite.profiles.encoders`); a changed key is another cache entry.
    """
    if weights is not None:
        return _real_encoder(modality, weights)
    spec = encoder_spec(modality, profile, **overrides)
    root = cache_root(cache_dir)
    folder = root / f"{modality}-{cache_key(spec)}"
    if folder.is_dir() and not retrain:
        return _load(folder)
    root.mkdir(parents=True, exist_ok=True)
    import fcntl

    with open(root / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)          # a second writer waits here, then finds the folder
        if folder.is_dir() and not retrain:
            return _load(folder)
        data = training_data(spec, progress=progress)
        enc, heads, log = pretrain_encoder(data, spec, progress=progress)
        stats = token_stats(enc, data.images)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{folder.name}."))
        try:
            _save(tmp, enc, heads, spec, log, stats)
            os.chmod(tmp, 0o755)                   # mkdtemp makes it private; the cache is for every reader
            if folder.is_dir():                    # retrain: replace the old entry
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    # read back what was published: a fresh bundle is then the same frozen, eval-mode object every later reader
    # gets (no gradient buffers or train-mode layers left over from pre-training)
    return _load(folder)


def _real_encoder(modality: str, weights) -> EncoderBundle:
    """A paper's encoder from a path / Hub id (full scale). Its own normalisation; no pre-training heads."""
    from rrg_lite.encoders import pretrained

    if modality == "ct":
        enc = pretrained.m3d_clip_vit(pretrained.resolve_weights(str(weights)))
    elif modality in ("xray_frontal", "xray_lateral"):
        enc = pretrained.rad_dino(str(weights))
    else:
        raise ValueError(f"unknown modality {modality!r}")
    return EncoderBundle(enc.eval(), {"modality": modality, "weights": str(weights)})
