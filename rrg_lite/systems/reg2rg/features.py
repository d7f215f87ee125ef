"""Reg2RG §III-B–C: local feature decoupling (LFD) and the global view — the visual tokens of one study.

For a volume V (C, D, H, W) and its region masks M_1 … M_R (each (D, H, W), bool)::

    L^t_j = f_A(f_V(Crop(M_j ⊙ V)))        (3)   texture: masked, cropped to the mask's box, resized -> (K, D)
    L^g_j = f_P(f_M(M_j))                  (4)   geometry: the *uncropped* mask -> light 3-D ViT -> mean -> FC -> (1, D)
    L_j   = Concat(L^t_j, L^g_j)           (5)   -> (K + 1, D) = (33, D) with the paper's K = 32
    G     = f_A(f_V(V))                    (7)   global: the whole volume resized, same f_V and f_A -> (K, D)

f_V is a *frozen* 3-D encoder (any module (m, C, d, h, w) -> (m, N, E); RadFM's ViT3D in the paper, the package's
world-trained CT ViT at CPU scale); f_A is the package's :class:`rrg_lite.tokenizers.perceiver.PerceiverResampler`
(K latents, shared by the texture and the global branch as Eq. 7 says); f_M is a 3-layer ViT built with
:func:`rrg_lite.encoders.vit.vit3d`, f_P one ``nn.Linear``. The crop and resize are
:func:`rrg_lite.data.regions.crop_regions`; both the crops and the whole volume are resized to one encoder input
shape (the paper: 256×256×64 for both), so a region crop shows its organ at a higher resolution than the global
view does — the point of LFD — while crop-and-resize erases the organ's size and place, which the geometry token
puts back.

:class:`LocalFeatureDecoupling` builds all of it; :class:`LFDConfig` holds the knobs, including the paper's
ablations as flags (:func:`ablation_config` names them):

- ``lfd=False`` — Table V's "without LFD": "the model uses masked volumes without cropping as local features,
  combining texture and geometry information without separation": each region is ``Resize(M_j ⊙ V)`` at the
  whole volume's field of view, through f_V and f_A, and there is no separate geometry token (K tokens per region).
- ``use_texture`` / ``use_geometry`` / ``use_global`` — Table VI's TXT / GEO / GLB columns (its baseline is GLB
  only, i.e. RadFM; (a) TXT; (b) TXT+GEO; (c) TXT+GEO+GLB, all without RRA).

What the paper leaves open and what we chose: the mask reaches f_M resized (trilinear occupancy in [0, 1], see
:func:`rrg_lite.data.regions.resize_mask`) to ``mask_shape`` (default: the encoder input shape, as the code feeds
256×256×64 masks); f_M's width and heads are ours (the code: width 255, patch 32×32×16 of 256×256×64, i.e. a
4×8×8 grid — our default patch keeps a 4×8×8 grid at 32×64×64); outside-mask voxels get ``fill`` (0 = M ⊙ V as
Eq. 3; the code's −1024 HU is air, pass air's value in your units, per channel for multi-window inputs); f_V runs
in eval mode without gradients (frozen in the paper and the code), so its outputs can be cached: pass
``texture_features`` / ``global_features`` to :meth:`LocalFeatureDecoupling.forward`.

Shapes per study: ``RegionTokens.regions`` (R, K_r, D) with K_r = K·use_texture + use_geometry, and
``RegionTokens.image`` (K_g, D) with K_g = K; either is ``None`` when its branch is off.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Sequence

import numpy as np
import torch
from torch import nn

from rrg_lite.data.regions import crop_regions, mask_volume, resize_mask
from rrg_lite.data.transforms import resize
from rrg_lite.encoders.vit import vit3d
from rrg_lite.mllm.text import IMAGE_TOKEN, REGION_TOKEN
from rrg_lite.tokenizers.perceiver import PerceiverResampler

__all__ = ["LFDConfig", "LocalFeatureDecoupling", "RegionTokens", "ablation_config", "ABLATIONS"]

#: The paper's visual-feature settings by name: Table V (``"no_lfd"``) and Table VI (the rest); ``"full"`` = Reg2RG.
ABLATIONS: dict[str, dict] = {
    "full": dict(lfd=True, use_texture=True, use_geometry=True, use_global=True),
    "no_lfd": dict(lfd=False, use_texture=True, use_geometry=False, use_global=True),     # Table V, row 1
    "glb": dict(lfd=True, use_texture=False, use_geometry=False, use_global=True),        # Table VI baseline (RadFM)
    "txt": dict(lfd=True, use_texture=True, use_geometry=False, use_global=False),        # Table VI (a)
    "txt+geo": dict(lfd=True, use_texture=True, use_geometry=True, use_global=False),     # Table VI (b)
    "txt+geo+glb": dict(lfd=True, use_texture=True, use_geometry=True, use_global=True),  # Table VI (c)
}


def _triple(value, what: str) -> tuple[int, int, int]:
    out = (value,) * 3 if isinstance(value, int) else tuple(int(v) for v in value)
    if len(out) != 3 or min(out) < 1:
        raise ValueError(f"LFDConfig.{what} must be an int or three positive ints (D, H, W), got {value}")
    return out


@dataclass(frozen=True)
class LFDConfig:
    """How :class:`LocalFeatureDecoupling` is built. Defaults: the paper's structure at CPU size.

    input_shape: (D, H, W) every crop and the whole volume are resized to — f_V's input (paper 64×256×256).
    llm_dim: D, the LLM width every token is projected to.
    num_texture_tokens: K, f_A's latents (paper 32). perceiver_depth / perceiver_heads: f_A's size (code 6 / 8).
    mask_shape: (D, H, W) of f_M's input (``None`` = ``input_shape``). mask_patch: f_M's patch size.
    mask_dim / mask_depth / mask_heads: f_M's width, layers (paper: 3) and heads.
    lfd: decouple (crop + geometry token); ``False`` = Table V's baseline (masked, uncropped, no geometry token).
    use_texture / use_geometry / use_global: Table VI's TXT / GEO / GLB.
    margin: voxels added around each mask's box before the crop (0 = the tight box, as Eq. 3).
    fill: value outside the mask (one, or one per channel) — see the module docstring.
    """

    input_shape: tuple[int, int, int] = (32, 64, 64)
    llm_dim: int = 128
    num_texture_tokens: int = 32
    perceiver_depth: int = 2
    perceiver_heads: int = 4
    mask_shape: tuple[int, int, int] | None = None
    mask_patch: tuple[int, int, int] = (8, 8, 8)
    mask_dim: int = 64
    mask_depth: int = 3
    mask_heads: int = 4
    lfd: bool = True
    use_texture: bool = True
    use_geometry: bool = True
    use_global: bool = True
    margin: int | tuple[int, int, int] = 0
    fill: float | tuple[float, ...] = 0.0

    def __post_init__(self):
        object.__setattr__(self, "input_shape", _triple(self.input_shape, "input_shape"))
        object.__setattr__(self, "mask_shape", _triple(self.mask_shape or self.input_shape, "mask_shape"))
        object.__setattr__(self, "mask_patch", _triple(self.mask_patch, "mask_patch"))
        if not (self.use_texture or self.use_geometry or self.use_global):
            raise ValueError("LFDConfig: use_texture, use_geometry and use_global are all off — no visual tokens left")
        if not self.lfd and self.use_geometry:
            raise ValueError("LFDConfig: lfd=False is Table V's baseline (masked uncropped volumes, texture and "
                             "geometry not separated), which has no geometry token; set use_geometry=False")
        if not self.lfd and not self.use_texture:
            raise ValueError("LFDConfig: lfd=False only changes the texture branch; it needs use_texture=True")
        for s, p in zip(self.mask_shape, self.mask_patch):
            if s % p:
                raise ValueError(f"LFDConfig: mask_patch {self.mask_patch} must divide mask_shape {self.mask_shape}")
        if self.mask_dim % self.mask_heads:
            raise ValueError(f"LFDConfig: mask_dim {self.mask_dim} must be divisible by mask_heads {self.mask_heads}")
        for name in ("llm_dim", "num_texture_tokens", "perceiver_depth", "mask_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"LFDConfig.{name} must be >= 1, got {getattr(self, name)}")

    @property
    def tokens_per_region(self) -> int:
        """K_r: K texture tokens (if on) + 1 geometry token (if on); 0 when neither local branch is on."""
        return self.num_texture_tokens * self.use_texture + int(self.use_geometry)

    @property
    def uses_regions(self) -> bool:
        return self.use_texture or self.use_geometry

    def as_dict(self) -> dict:
        return asdict(self)


def ablation_config(name: str, base: LFDConfig | None = None, **overrides) -> LFDConfig:
    """The :class:`LFDConfig` of a named paper setting (:data:`ABLATIONS`), on top of ``base`` (+ overrides)."""
    if name not in ABLATIONS:
        raise ValueError(f"ablation_config: unknown setting {name!r}; known: {list(ABLATIONS)}")
    return replace(base or LFDConfig(), **ABLATIONS[name], **overrides)


@dataclass
class RegionTokens:
    """One study's visual tokens: ``regions`` (R, K_r, D) in the row order of the masks, ``image`` (K_g, D)."""

    regions: torch.Tensor | None
    image: torch.Tensor | None

    def visual_embeds(self, order: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
        """Slot -> (n, K, D) for :class:`rrg_lite.mllm.model.MultimodalLM` (``visual_embeds=``): ``"image"``
        (1, K_g, D) and ``"region"`` (R, K_r, D), the regions re-ordered by ``order`` (the prompt's slot order,
        e.g. from :func:`rrg_lite.systems.reg2rg.alignment.shuffle_regions`)."""
        out = {}
        if self.image is not None:
            out["image"] = self.image[None]
        if self.regions is not None:
            rows = self.regions
            if order is not None:
                idx = list(order)
                if sorted(idx) != list(range(len(rows))):
                    raise ValueError(f"RegionTokens.visual_embeds: order {idx} is not a permutation of "
                                     f"the {len(rows)} regions")
                rows = rows[torch.as_tensor(idx, dtype=torch.long, device=rows.device)]
            out["region"] = rows
        return out

    def num_visual_tokens(self) -> dict[str, int]:
        """Placeholder -> tokens per placeholder, for :func:`rrg_lite.mllm.prompt.encode_example`."""
        out = {}
        if self.image is not None:
            out[IMAGE_TOKEN] = int(self.image.shape[0])
        if self.regions is not None:
            out[REGION_TOKEN] = int(self.regions.shape[1])
        return out


class LocalFeatureDecoupling(nn.Module):
    """Eq. 3–7 for one study (see the module docstring and :class:`LFDConfig`).

    Args:
        encoder: the frozen f_V, any module (m, C, *input_shape) -> (m, N, E); it is set to eval mode and
            ``requires_grad_(False)`` and stays in eval mode under ``.train()``.
        config: an :class:`LFDConfig` (or its fields as keywords).
        encoder_dim: E (default: ``encoder.embed_dim``).

    forward(volume (C, D, H, W), masks (R, D, H, W) bool, texture_features=None (R, N, E),
            global_features=None (1, N, E)) -> :class:`RegionTokens`
    """

    def __init__(self, encoder: nn.Module, config: LFDConfig | None = None, encoder_dim: int | None = None,
                 **overrides):
        super().__init__()
        if config is None:
            config = LFDConfig(**overrides)
        elif overrides:
            raise ValueError("LocalFeatureDecoupling: pass either an LFDConfig or keyword fields, not both")
        self.config = cfg = config
        E = encoder_dim if encoder_dim is not None else getattr(encoder, "embed_dim", None)
        if E is None:
            raise ValueError("LocalFeatureDecoupling: the encoder has no embed_dim attribute; pass encoder_dim=E")
        self.encoder_dim = int(E)
        self.encoder = encoder.eval().requires_grad_(False)                                   # f_V, frozen
        self.adapter = None
        if cfg.use_texture or cfg.use_global:                                                 # f_A (Eq. 3 and 7)
            self.adapter = PerceiverResampler(self.encoder_dim, cfg.llm_dim, cfg.num_texture_tokens,
                                              depth=cfg.perceiver_depth, heads=cfg.perceiver_heads, max_frames=1)
        self.mask_encoder = self.geometry_proj = None
        if cfg.use_geometry:
            self.mask_encoder = vit3d(img_size=cfg.mask_shape, patch_size=cfg.mask_patch, in_channels=1,  # f_M
                                      embed_dim=cfg.mask_dim, depth=cfg.mask_depth, heads=cfg.mask_heads)
            self.geometry_proj = nn.Linear(cfg.mask_dim, cfg.llm_dim)                                     # f_P

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.eval()        # frozen: no dropout, fixed norm statistics, whatever the caller does
        return self

    @property
    def _device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    # ---- inputs ------------------------------------------------------------------------------------------------
    def _check(self, volume, masks) -> tuple[torch.Tensor, torch.Tensor]:
        v = torch.as_tensor(volume)
        m = torch.as_tensor(masks)
        if v.ndim != 4 or not v.is_floating_point():
            raise ValueError(f"LocalFeatureDecoupling: volume must be float (C, D, H, W), "
                             f"got {v.dtype} {tuple(v.shape)}")
        if m.ndim != 4 or tuple(m.shape[1:]) != tuple(v.shape[1:]):
            raise ValueError(f"LocalFeatureDecoupling: masks must be (R, D, H, W) on the volume's grid "
                             f"{tuple(v.shape[1:])}, got {tuple(m.shape)}")
        if m.dtype != torch.bool:
            raise ValueError(f"LocalFeatureDecoupling: masks must be bool, got {m.dtype}")
        if self.config.uses_regions:
            if m.shape[0] == 0:
                raise ValueError("LocalFeatureDecoupling: no region masks (R = 0) but a local branch is on")
            empty = [i for i in range(m.shape[0]) if not bool(m[i].any())]
            if empty:
                raise ValueError(f"LocalFeatureDecoupling: region mask(s) {empty} are empty; drop them (RadGenome "
                                 "drops regions without a mask) before building the tokens")
        return v.detach().cpu().float(), m.detach().cpu()

    def texture_inputs(self, volume, masks) -> torch.Tensor:
        """f_V's input per region: (C, D, H, W), (R, D, H, W) -> (R, C, *input_shape).

        ``lfd=True``: ``Resize(Crop(M_j ⊙ V))`` (Eq. 3); ``lfd=False``: ``Resize(M_j ⊙ V)``, uncropped (Table V)."""
        v, m = self._check(volume, masks)
        cfg = self.config
        if cfg.lfd:
            return crop_regions(v, m, cfg.input_shape, margin=cfg.margin, fill=cfg.fill)
        return torch.stack([self._resize(mask_volume(v, mj, cfg.fill)) for mj in m])

    def global_input(self, volume) -> torch.Tensor:
        """f_V's input for G (Eq. 7): the whole volume resized, (C, D, H, W) -> (1, C, *input_shape)."""
        v = torch.as_tensor(volume)
        if v.ndim != 4 or not v.is_floating_point():
            raise ValueError(f"LocalFeatureDecoupling: volume must be float (C, D, H, W), "
                             f"got {v.dtype} {tuple(v.shape)}")
        return self._resize(v.detach().cpu().float())[None]

    def geometry_inputs(self, masks) -> torch.Tensor:
        """f_M's input: each uncropped mask as occupancy at ``mask_shape``, (R, D, H, W) -> (R, 1, *mask_shape)."""
        m = torch.as_tensor(masks)
        if m.ndim != 4:
            raise ValueError(f"LocalFeatureDecoupling: masks must be (R, D, H, W), got {tuple(m.shape)}")
        return torch.stack([resize_mask(mj.cpu(), self.config.mask_shape) for mj in m])[:, None]

    def _resize(self, v: torch.Tensor) -> torch.Tensor:
        """(C, D, H, W) -> (C, *input_shape), trilinear per channel (the resize of rrg_lite.data.regions)."""
        return torch.from_numpy(np.stack([resize(c, self.config.input_shape, order=1) for c in v.numpy()]))

    # ---- the branches ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen f_V: (m, C, *input_shape) -> (m, N, E), without gradients (cache these for training)."""
        feats = self.encoder(x.to(self._device))
        if feats.ndim != 3 or feats.shape[0] != x.shape[0] or feats.shape[-1] != self.encoder_dim:
            raise ValueError(f"LocalFeatureDecoupling: the encoder must map (m, C, d, h, w) to (m, N, "
                             f"{self.encoder_dim}), got {tuple(feats.shape)} from input {tuple(x.shape)}")
        return feats

    def adapt(self, features: torch.Tensor) -> torch.Tensor:
        """f_A: (m, N, E) -> (m, K, D) (the perceiver sees each input as one frame)."""
        if features.ndim != 3 or features.shape[-1] != self.encoder_dim:
            raise ValueError(f"LocalFeatureDecoupling: features must be (m, N, {self.encoder_dim}), "
                             f"got {tuple(features.shape)}")
        return self.adapter(features[:, None].to(self._device))

    def geometry_tokens(self, masks) -> torch.Tensor:
        """Eq. 4: f_P(mean over tokens of f_M(M_j)) for every region, (R, D, H, W) -> (R, 1, D)."""
        x = self.geometry_inputs(masks).to(self._device)
        return self.geometry_proj(self.mask_encoder(x).mean(dim=1))[:, None]

    def geometry_from_inputs(self, geometry_inputs: torch.Tensor) -> torch.Tensor:
        """Eq. 4 on masks already resized by :meth:`geometry_inputs`: (R, 1, *mask_shape) -> (R, 1, D).

        Training caches the resized masks once per study, as it caches f_V's features."""
        if self.mask_encoder is None:
            raise ValueError("LocalFeatureDecoupling: use_geometry is off, there is no mask encoder f_M")
        x = torch.as_tensor(geometry_inputs)
        if x.ndim != 5 or tuple(x.shape[1:]) != (1, *self.config.mask_shape):
            raise ValueError(f"LocalFeatureDecoupling: geometry inputs must be (R, 1, {self.config.mask_shape}), "
                             f"got {tuple(x.shape)}")
        x = x.to(device=self._device, dtype=self.geometry_proj.weight.dtype)
        return self.geometry_proj(self.mask_encoder(x).mean(dim=1))[:, None]

    def from_cache(self, texture_features: torch.Tensor | None = None, global_features: torch.Tensor | None = None,
                   geometry_inputs: torch.Tensor | None = None) -> RegionTokens:
        """The trainable part of Eq. 3–7 on cached inputs, for any number of regions at once.

        texture_features (R, N, E) = f_V(crops) (or f_V of the masked uncropped volumes when ``lfd=False``);
        global_features (G, N, E) = f_V(whole volumes); geometry_inputs (R, 1, *mask_shape). Rows may come from
        several studies (a batch): the caller splits ``regions`` (R, K_r, D) and ``image`` (G, K, D) back."""
        cfg = self.config
        regions = image = None
        if cfg.uses_regions:
            parts = []
            if cfg.use_texture:
                if texture_features is None:
                    raise ValueError("LocalFeatureDecoupling.from_cache: use_texture is on but no texture_features")
                parts.append(self.adapt(texture_features))
            if cfg.use_geometry:
                if geometry_inputs is None:
                    raise ValueError("LocalFeatureDecoupling.from_cache: use_geometry is on but no geometry_inputs")
                parts.append(self.geometry_from_inputs(geometry_inputs))
            regions = torch.cat(parts, dim=1)
        if cfg.use_global:
            if global_features is None:
                raise ValueError("LocalFeatureDecoupling.from_cache: use_global is on but no global_features")
            image = self.adapt(global_features)
        return RegionTokens(regions=regions, image=image)

    def forward(self, volume, masks, texture_features: torch.Tensor | None = None,
                global_features: torch.Tensor | None = None) -> RegionTokens:
        cfg = self.config
        v, m = self._check(volume, masks)
        R = m.shape[0]
        regions = image = None
        if cfg.uses_regions:
            parts = []
            if cfg.use_texture:
                if texture_features is None:
                    texture_features = self.encode(self.texture_inputs(v, m))
                if texture_features.shape[0] != R:
                    raise ValueError(f"LocalFeatureDecoupling: texture_features has {texture_features.shape[0]} "
                                     f"rows for {R} region masks")
                parts.append(self.adapt(texture_features))                                    # (R, K, D)   Eq. 3
            if cfg.use_geometry:
                parts.append(self.geometry_tokens(m))                                         # (R, 1, D)   Eq. 4
            regions = torch.cat(parts, dim=1)                                                 # (R, K_r, D) Eq. 5
        if cfg.use_global:
            if global_features is None:
                global_features = self.encode(self.global_input(v))
            if global_features.shape[0] != 1:
                raise ValueError(f"LocalFeatureDecoupling: global_features must be (1, N, E) for one study, "
                                 f"got {tuple(global_features.shape)}")
            image = self.adapt(global_features)[0]                                            # (K, D)      Eq. 7
        return RegionTokens(regions=regions, image=image)
