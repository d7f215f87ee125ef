"""The papers' vision encoders at full scale, behind the same (m, C, *spatial) -> (m, N, E) interface.

Nothing here downloads anything unless you pass a Hub id; tests build each encoder from a small random config.

- ``m3d_clip_vit``: M3D-CLIP's image encoder (μ² uses it) — MONAI's 3-D ``ViT`` with a perceptron patch
  embedding, 1 channel, 32x256x256 volumes, 4x16x16 patches (8x16x16 = 2048 tokens), width 768, 12 layers,
  12 heads, MLP 3072, a class token. Weights: a safetensors file of the CLIP model (keys prefixed
  ``vision_encoder.``) or of the encoder alone.
- ``rad_dino``: RAD-DINO (M4CXR's encoder), a DINOv2 ViT-B/14 in 🤗 Transformers (``Dinov2Model``); 518x518
  RGB -> 37x37 = 1369 patch tokens of width 768 (the class token is dropped).
- ``radfm_vit3d``: a 3-D ViT at RadFM's sizes (3 channels, 512x512 in-plane, 32x32x4 patches, width 768,
  12 layers, 8 heads, MLP 2048) with the linear patch embedding of the vit-pytorch family. Built from
  :class:`rrg_lite.encoders.vit.ViT`; weights load from a safetensors file in this module's key layout
  (converting RadFM's own checkpoint needs a key map that this project does not ship).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from rrg_lite.encoders.vit import ViT

M3D_CLIP = dict(img_size=(32, 256, 256), patch_size=(4, 16, 16), hidden_size=768, mlp_dim=3072, num_layers=12, num_heads=12)
RADFM = dict(img_size=(4, 512, 512), patch_size=(4, 32, 32), in_channels=3, embed_dim=768, depth=12, heads=8, mlp_ratio=2048 / 768)


def _read_safetensors(path: str | Path, prefix: str = "") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no safetensors weights at {path} (pickled .bin checkpoints are not loaded: convert them)")
    state = load_file(str(path))
    if prefix and any(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def _load_checked(module: nn.Module, state: dict[str, torch.Tensor], source, ignore_missing: Sequence[str] = ()):
    own = module.state_dict()
    unexpected = [k for k in state if k not in own]
    missing = [k for k in own if k not in state and not any(k.startswith(i) for i in ignore_missing)]
    if unexpected or missing:
        raise ValueError(f"{source}: weights do not fit the encoder (missing {missing[:3]}, unexpected {unexpected[:3]})")
    module.load_state_dict(state, strict=False)


class MonaiViTEncoder(nn.Module):
    """MONAI ``ViT`` -> patch tokens (m, N, E) (the class token, if any, dropped)."""

    def __init__(self, vit: nn.Module, img_size, patch_size, in_channels: int, hidden_size: int, has_cls: bool):
        super().__init__()
        self.vit, self.has_cls = vit, has_cls
        self.spatial_dims, self.in_channels, self.embed_dim = 3, in_channels, hidden_size
        self.img_size = tuple(img_size)
        self.grid = tuple(s // p for s, p in zip(img_size, patch_size))   # patch grid, like ViT.grid
        self.num_patches = math.prod(self.grid)

    def forward(self, x):
        if tuple(x.shape[1:]) != (self.in_channels, *self.img_size):
            raise ValueError(f"M3D-CLIP ViT expects (m, {self.in_channels}, *{self.img_size}), got {tuple(x.shape)}")
        # MONAI's forward ends in the classification head; run its parts to keep the token sequence.
        v = self.vit
        tokens = v.patch_embedding(x)  # (m, N, E), patch + position embedding
        if self.has_cls:
            tokens = torch.cat([v.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        for block in v.blocks:
            tokens = block(tokens)
        tokens = v.norm(tokens)
        return tokens[:, 1:] if self.has_cls else tokens


def m3d_clip_vit(weights: str | Path | None = None, img_size=M3D_CLIP["img_size"], patch_size=M3D_CLIP["patch_size"],
                 hidden_size: int = M3D_CLIP["hidden_size"], mlp_dim: int = M3D_CLIP["mlp_dim"],
                 num_layers: int = M3D_CLIP["num_layers"], num_heads: int = M3D_CLIP["num_heads"],
                 in_channels: int = 1) -> MonaiViTEncoder:
    """M3D-CLIP's 3-D ViT (MONAI). ``weights``: a safetensors file/folder (``vision_encoder.`` prefix stripped)."""
    from monai.networks.nets import ViT as MonaiViT

    vit = MonaiViT(in_channels=in_channels, img_size=img_size, patch_size=patch_size, hidden_size=hidden_size,
                   mlp_dim=mlp_dim, num_layers=num_layers, num_heads=num_heads, proj_type="perceptron",
                   classification=True, spatial_dims=3)
    enc = MonaiViTEncoder(vit, img_size, patch_size, in_channels, hidden_size, has_cls=True)
    if weights is not None:
        state = _read_safetensors(weights, prefix="vision_encoder.")
        _load_checked(enc.vit, state, weights, ignore_missing=("classification_head",))
    return enc


class HFDinoEncoder(nn.Module):
    """A 🤗 ``Dinov2Model`` -> patch tokens (m, N, E) from the last layer (class and register tokens dropped)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        cfg = model.config
        self.model = model
        self.spatial_dims, self.in_channels, self.embed_dim = 2, cfg.num_channels, cfg.hidden_size
        self.img_size = (cfg.image_size, cfg.image_size)
        self.num_patches = (cfg.image_size // cfg.patch_size) ** 2
        self.skip = 1 + getattr(cfg, "num_register_tokens", 0)

    def forward(self, x):
        if tuple(x.shape[1:]) != (self.in_channels, *self.img_size):
            raise ValueError(f"RAD-DINO expects (m, {self.in_channels}, *{self.img_size}), got {tuple(x.shape)}")
        return self.model(pixel_values=x).last_hidden_state[:, self.skip:]


def rad_dino(name_or_path: str | None = None, config=None, **kwargs) -> HFDinoEncoder:
    """RAD-DINO from a Hub id / local folder (e.g. ``microsoft/rad-dino``), or a random model from a ``Dinov2Config``."""
    from transformers import Dinov2Model

    if (name_or_path is None) == (config is None):
        raise ValueError("pass exactly one of name_or_path (pre-trained) or config (random init)")
    model = Dinov2Model.from_pretrained(name_or_path, **kwargs) if name_or_path else Dinov2Model(config)
    return HFDinoEncoder(model)


def radfm_vit3d(weights: str | Path | None = None, **overrides) -> ViT:
    """A 3-D ViT at RadFM's sizes (override any of :data:`RADFM`, e.g. smaller sizes for tests)."""
    cfg = {**RADFM, **overrides}
    enc = ViT(3, cfg["img_size"], cfg["patch_size"], cfg["in_channels"], cfg["embed_dim"], cfg["depth"], cfg["heads"],
              mlp_ratio=cfg["mlp_ratio"], patch_embed="linear")
    if weights is not None:
        _load_checked(enc, _read_safetensors(weights), weights)
    return enc


def resolve_weights(name_or_path: str | None) -> str | None:
    """A local path as it is; otherwise a Hub id, whose safetensors files are downloaded (user's explicit choice)."""
    if name_or_path is None or Path(name_or_path).exists():
        return name_or_path
    if str(name_or_path).count("/") != 1:
        raise FileNotFoundError(f"encoder weights {name_or_path!r}: no such file or folder, and not a Hub id (owner/name)")
    from huggingface_hub import snapshot_download

    return snapshot_download(repo_id=str(name_or_path), allow_patterns=["*.safetensors", "*.json"])
