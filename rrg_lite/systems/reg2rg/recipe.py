"""Reg2RG's recipe in functions: data → frozen features → model → region–report alignment training → reports.

    studies = load_region_studies(cfg)                    # world CT studies, or a CT-RATE + RadGenome folder
    bundle = ct_encoder(cfg)                              # the book's frozen CT encoder (f_V)
    feats = extract_region_features(cfg, bundle, studies) # once: f_V(whole), f_V(Crop(M ⊙ V)), f_V(M ⊙ V), masks
    tok = build_text_tokenizer(cfg, feats[:n_train])
    lm_state = warm_up_lm(cfg, tok, feats[:n_train], seed)         # a stand-in for a pre-trained LLM (tiny LM)
    model = build_model(cfg, bundle, tok, variant, seed, lm_state) # LFD → RegionTokens → MultimodalLM (+ LoRA)
    train_model(cfg, model, feats[:n_train], variant, seed)       # shuffled regions at every step (Eq. 8–9)
    texts = generate(cfg, model, test_examples)                    # then read back with alignment.parse_*

=====================================================  ============================================================
paper (§III, §IV-A)                                     here
=====================================================  ============================================================
RadGenome pairs: a region has a mask and a report       :func:`select_regions` (profile's ``regions``, in that order)
HU clamp, outside-mask voxels −1024 HU before the crop  :func:`window_volume` (the CT encoder's windows at native
                                                        resolution) and :func:`air_fill` (−1024 HU per window)
f_V frozen → features cached per study and region       :func:`extract_region_features` → :class:`RegionFeatures`
f_A, f_M, f_P trained; LLM with LoRA (r 8, α 32, 0.1)   :class:`Reg2RGModel` (``from_cache`` of
                                                        :class:`.features.LocalFeatureDecoupling`), :func:`build_model`
regions shuffled every step, "The region i is {area}:"  :class:`RRADataset` (a fresh order per ``__getitem__``)
plain LM cross-entropy (Eq. 9)                          :func:`train_model` (:func:`rrg_lite.train.loop.train`)
prefixes removed before evaluation                      :func:`score_reports` (:func:`.alignment.strip_prefixes`)
=====================================================  ============================================================

Visual inputs per study (shapes; R = the study's regions, N × E = the encoder's tokens, 64 × 64 at CPU size):
``global_features`` (1, N, E), ``texture_features`` (R, N, E) from the masked crops, ``masked_features``
(R, N, E) from the masked *uncropped* volumes (Table V's "without LFD"), ``geometry`` (R, 1, *mask_shape) the
uncropped masks as occupancy (f_M's input). Every variant and seed reads the same cached features.

Variants (:data:`VARIANTS`) pair an :func:`.features.ablation_config` setting with the alignment flags: ``rra``
(prefixed targets) and ``shuffle`` (a fresh region order every step). Test examples use one fixed order per study
(``cfg.test_order_seed``), the same for every model, so that models are compared on the same inputs.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from rrg_lite.mllm.text import IMAGE_TOKEN, REGION_TOKEN

from .alignment import DEFAULT_INSTRUCTION, region_prompt, rra_example, strip_prefixes
from .features import LFDConfig, LocalFeatureDecoupling, ablation_config

__all__ = [
    "Variant", "VARIANTS", "RegionStudy", "RegionFeatures", "select_regions", "window_volume", "air_fill",
    "load_region_studies", "world_region_studies", "radgenome_region_studies", "ct_encoder", "lfd_config",
    "extract_region_features", "standardize_regions", "build_text_tokenizer", "Reg2RGModel", "build_model",
    "RRADataset", "collate",
    "warm_up_lm", "train_model", "test_examples", "teacher_forced_nll", "generate", "score_reports",
]


@dataclass(frozen=True)
class Variant:
    """One trained model of the experiment: an LFD setting (:data:`.features.ABLATIONS`) and the RRA flags."""

    features: str = "full"
    rra: bool = True          # prefixed targets "The region i is {area}: …" (Table VII)
    shuffle: bool = True      # a fresh region order at every step (Eq. 8); False = the train-unshuffled control


#: The experiment's trained models, by the name its tables use (Tables V, VI, VII + the train-unshuffled control).
VARIANTS: dict[str, Variant] = {
    "Reg2RG": Variant("full", rra=True, shuffle=True),
    "without LFD": Variant("no_lfd", rra=True, shuffle=True),                  # Table V, row 1
    "GLB (RadFM)": Variant("glb", rra=False, shuffle=False),                   # Table VI baseline
    "TXT": Variant("txt", rra=False, shuffle=False),                           # Table VI (a)
    "TXT+GEO": Variant("txt+geo", rra=False, shuffle=False),                   # Table VI (b)
    "TXT+GEO+GLB (without RRA)": Variant("txt+geo+glb", rra=False, shuffle=False),  # Table VI (c) = Table VII row 1
    "RRA, trained unshuffled": Variant("full", rra=True, shuffle=False),       # control: tested on shuffled orders
}


# ---- data ---------------------------------------------------------------------------------------------------------
@dataclass
class RegionStudy:
    """One study as Reg2RG reads it: HU volume (D, H, W), the selected regions' bool masks (R, D, H, W),
    their reports, and the CT-RATE label vector (18,) (world ground truth or the release's labels)."""

    study_id: str
    ct: np.ndarray
    masks: np.ndarray
    regions: list[str]
    reports: dict[str, str]
    labels: np.ndarray


def select_regions(masks: dict[str, np.ndarray] | tuple[Sequence[str], np.ndarray], reports: dict[str, str],
                   regions: Sequence[str], study_id: str = "?") -> tuple[list[str], np.ndarray]:
    """The regions of ``regions`` (in that order) that have a non-empty mask and a non-empty report, as RadGenome
    pairs them, and their stacked masks (R, D, H, W). A study with none is an error naming it."""
    if isinstance(masks, tuple):
        names, stack = masks
        masks = {n: stack[i] for i, n in enumerate(names)}
    keep = [r for r in regions if r in masks and np.asarray(masks[r]).any() and str(reports.get(r) or "").strip()]
    if not keep:
        raise ValueError(f"study {study_id}: none of the regions {list(regions)} has both a mask and a report")
    return keep, np.stack([np.asarray(masks[r], bool) for r in keep])


def world_region_studies(n: int, seed: int = 0, regions: Sequence[str] = (), world: dict | None = None,
                         progress: bool = False) -> list[RegionStudy]:
    """``n`` seeded chest CT studies of :mod:`rrg_lite.world` (``world``: WorldConfig overrides)."""
    from tqdm.auto import tqdm

    from rrg_lite.world.config import WorldConfig
    from rrg_lite.world.ct import iter_ct_cohort

    cfg = WorldConfig(**{"scan_range": "chest", **(world or {})})
    out = []
    for st in tqdm(iter_ct_cohort(n, seed=seed, cfg=cfg), total=n, desc="CT studies", disable=not progress):
        reports = st.report.region_reports
        keep, masks = select_regions(st.region_masks, reports, regions, st.study_id)
        out.append(RegionStudy(st.study_id, st.ct, masks, keep, {r: reports[r] for r in keep},
                               np.asarray(st.labels, np.int64)))
    return out


def radgenome_region_studies(root: str | Path, split: str, n: int = 0, regions: Sequence[str] = (),
                             progress: bool = False) -> list[RegionStudy]:
    """A CT-RATE + RadGenome-ChestCT folder (:func:`rrg_lite.data.formats.ctrate.read_ctrate` +
    ``read_radgenome``; volumes and masks through :class:`rrg_lite.data.datasets.CTReportDataset`).
    ``n`` = 0 reads the whole split."""
    from tqdm.auto import tqdm

    from rrg_lite.data.datasets import CTReportDataset
    from rrg_lite.data.formats.ctrate import read_ctrate, read_radgenome

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data_root {root}: not a folder (expected CT-RATE's layout with radgenome/)")
    records = read_radgenome(root, split, records=read_ctrate(root, split))
    records = [r for r in records if r.region_reports][: n or None]
    if not records:
        raise ValueError(f"{root}: no {split} study has RadGenome region reports (radgenome/*_region_report.csv)")
    ds = CTReportDataset(records, with_masks=True, regions=tuple(regions))
    out = []
    for i in tqdm(range(len(ds)), desc=f"{split} studies", disable=not progress):
        s = ds[i]
        keep, masks = select_regions((s["mask_names"], s["masks"]), s["region_reports"], regions, s["study_id"])
        out.append(RegionStudy(s["study_id"], s["ct"], masks, keep, {r: s["region_reports"][r] for r in keep},
                               np.nan_to_num(s["labels"]).astype(np.int64)))
    return out


def load_region_studies(cfg, progress: bool = False) -> tuple[list[RegionStudy], int]:
    """The profile's studies and how many of the first ones train: the world (``data_root=None``: studies
    0 … n_train-1 train, the next n_test are held out) or a RadGenome folder (its train and valid splits)."""
    if cfg.data_root is None:
        studies = world_region_studies(cfg.n_train + cfg.n_test, cfg.world_seed, cfg.regions, cfg.world, progress)
        return studies, cfg.n_train
    train = radgenome_region_studies(cfg.data_root, "train", cfg.n_train, cfg.regions, progress)
    test = radgenome_region_studies(cfg.data_root, "valid", cfg.n_test, cfg.regions, progress)
    return train + test, len(train)


def window_volume(ct_hu: np.ndarray, windows: Sequence) -> np.ndarray:
    """HU (D, H, W) -> float32 (C, D, H, W), one [0, 1] channel per CT window, at native resolution (the crop
    comes before the resize in Eq. 3, so the resize is LFD's, not the preprocessing's)."""
    from rrg_lite.data.transforms import window

    ct = np.asarray(ct_hu, np.float32)
    if ct.ndim != 3:
        raise ValueError(f"a CT volume must be (D, H, W), got shape {ct.shape}")
    return np.stack([window(ct, w) if isinstance(w, str) else window(ct, *w) for w in windows]).astype(np.float32)


def air_fill(windows: Sequence, hu: float = -1024.0) -> tuple[float, ...]:
    """The value −1024 HU (the code's outside-mask value) takes in each window: LFD's ``fill``."""
    return tuple(float(v) for v in window_volume(np.full((1, 1, 1), hu, np.float32), windows)[:, 0, 0, 0])


# ---- frozen features ----------------------------------------------------------------------------------------------
def ct_encoder(cfg):
    """The frozen f_V: the book's world-trained CT encoder (``encoder="shared"``; cached by
    :func:`rrg_lite.encoders.hub.get_encoder`) or a real one from ``encoder_weights`` (M3D-CLIP's ViT)."""
    from rrg_lite.encoders.hub import get_encoder

    if cfg.encoder == "shared":
        return get_encoder("ct", **dict(cfg.encoder_overrides or {}))
    if cfg.encoder == "m3d-clip":
        if cfg.encoder_weights is None:
            raise ValueError("encoder 'm3d-clip' needs encoder_weights (a local safetensors file/folder or Hub id)")
        return get_encoder("ct", profile="full", weights=cfg.encoder_weights)
    raise ValueError(f"reg2rg: encoder must be 'shared' or 'm3d-clip', got {cfg.encoder!r}")


def lfd_config(cfg, features: str = "full", input_shape=None, windows=None) -> LFDConfig:
    """The profile's :class:`LFDConfig` for one :data:`.features.ABLATIONS` setting."""
    windows = windows or cfg.windows
    base = LFDConfig(input_shape=tuple(input_shape or cfg.volume_shape), llm_dim=cfg.llm_hidden,
                     num_texture_tokens=cfg.num_texture_tokens, perceiver_depth=cfg.perceiver_depth,
                     perceiver_heads=cfg.perceiver_heads, mask_shape=tuple(cfg.mask_shape),
                     mask_patch=tuple(cfg.mask_patch), mask_dim=cfg.mask_dim, mask_depth=cfg.mask_depth,
                     mask_heads=cfg.mask_heads, margin=cfg.margin, fill=air_fill(windows))
    return ablation_config(features, base)


@dataclass
class RegionFeatures:
    """One study's cached frozen features (see the module docstring for shapes) and its texts."""

    study_id: str
    regions: list[str]
    reports: dict[str, str]
    labels: np.ndarray
    global_features: torch.Tensor      # (1, N, E)
    texture_features: torch.Tensor     # (R, N, E)  f_V(Resize(Crop(M ⊙ V)))
    masked_features: torch.Tensor | None  # (R, N, E)  f_V(Resize(M ⊙ V))  (Table V's "without LFD"; None if skipped)
    geometry: torch.Tensor             # (R, 1, *mask_shape) float16 occupancy of the uncropped masks

    def __post_init__(self):
        R = len(self.regions)
        for name in ("texture_features", "masked_features", "geometry"):
            if getattr(self, name) is not None and getattr(self, name).shape[0] != R:
                raise ValueError(f"study {self.study_id}: {name} has {getattr(self, name).shape[0]} rows "
                                 f"for {R} regions")


def _encoder_input(bundle, cfg):
    pre = bundle.preprocess
    shape = tuple(pre.get("shape") or cfg.volume_shape)
    windows = tuple(tuple(w) if isinstance(w, list) else w for w in (pre.get("windows") or cfg.windows))
    return shape, windows


@torch.no_grad()
def extract_region_features(cfg, bundle, studies: Sequence[RegionStudy], batch_size: int = 64,
                            progress: bool = False, masked: bool = True) -> list[RegionFeatures]:
    """f_V once per study (whole volume) and region (masked crop; masked uncropped volume), and f_M's input.

    The crops and the whole volume are resized to the encoder's input (``bundle.preprocess``: shape, windows);
    the encoder is ``bundle.mllm_encoder`` (tokens standardised as every chapter's MLLM reads them).
    ``masked=False`` skips the uncropped masked volumes (only Table V's "without LFD" reads them; they cost as
    much as the crops)."""
    from tqdm.auto import tqdm

    shape, windows = _encoder_input(bundle, cfg)
    enc = bundle.mllm_encoder.eval()
    E = int(bundle.encoder.embed_dim)
    crop = LocalFeatureDecoupling(enc, lfd_config(cfg, "full", shape, windows), encoder_dim=E)
    plain = LocalFeatureDecoupling(enc, lfd_config(cfg, "no_lfd", shape, windows), encoder_dim=E)
    out, pending = [], []

    def flush():
        x = torch.cat([torch.cat([g, t] + ([m] if masked else [])) for _, g, t, m, _ in pending])  # (Σ, C, *shape)
        feats = torch.cat([enc(x[i: i + batch_size]).float() for i in range(0, len(x), batch_size)])
        k = 0
        for st, g, t, m, geo in pending:
            R = len(st.regions)
            n = 1 + (2 if masked else 1) * R
            f = feats[k: k + n]
            k += n
            out.append(RegionFeatures(st.study_id, list(st.regions), dict(st.reports), np.asarray(st.labels),
                                      f[:1].clone(), f[1: 1 + R].clone(), f[1 + R:].clone() if masked else None,
                                      geo.half()))
        pending.clear()

    for st in tqdm(studies, desc="f_V features", disable=not progress):
        v = torch.from_numpy(window_volume(st.ct, windows))
        m = torch.from_numpy(np.asarray(st.masks, bool))
        pending.append((st, crop.global_input(v), crop.texture_inputs(v, m),
                        plain.texture_inputs(v, m) if masked else None, crop.geometry_inputs(m)))
        if sum(1 + 2 * len(p[0].regions) for p in pending) >= 4 * batch_size:
            flush()
    if pending:
        flush()
    return out


def standardize_regions(features: Sequence[RegionFeatures], n_train: int, floor: float = 0.05
                        ) -> list[RegionFeatures]:
    """Region features z-scored per area, token and channel with the first ``n_train`` studies' statistics.

    Why: the hub standardises f_V's tokens against *whole volumes*; a heart crop differs from a lung crop far more
    than one patient's heart crop from another's, so raw crop tokens are almost constant within an area and a
    small perceiver averages the patient away. Centring per area leaves what differs between patients (the
    findings); which area a slot holds is still told by the geometry token and by the prompt's slot number.
    Applied to ``texture_features`` and ``masked_features``; global features are already standardised by the hub.
    """
    stats = {}
    for kind in ("texture_features", "masked_features"):
        for area in {a for f in features[:n_train] for a in f.regions}:
            rows = [getattr(f, kind)[f.regions.index(area)] for f in features[:n_train]
                    if area in f.regions and getattr(f, kind) is not None]
            if len(rows) >= 2:
                x = torch.stack(rows)
                stats[kind, area] = (x.mean(0), x.std(0) + floor)
    out = []
    for f in features:
        new = {}
        for kind in ("texture_features", "masked_features"):
            x = getattr(f, kind)
            if x is None:
                continue
            rows = []
            for r, area in enumerate(f.regions):
                if (kind, area) not in stats:
                    raise ValueError(f"standardize_regions: area {area!r} of study {f.study_id} is in fewer than 2 "
                                     "training studies; no statistics to standardise it with")
                mean, std = stats[kind, area]
                rows.append((x[r] - mean) / std)
            new[kind] = torch.stack(rows)
        out.append(replace(f, **new))
    return out


# ---- text and model -----------------------------------------------------------------------------------------------
def build_text_tokenizer(cfg, train: Sequence[RegionFeatures]):
    """A word-level tokenizer over the training targets (with and without prefixes) and the prompts
    (``llm == "tiny"``), or the pre-trained LLM's own with the placeholders added."""
    from rrg_lite.mllm.lm import text_tokenizer_for

    texts = [rra_example(f.regions, f.reports, rng=0).target for f in train]
    n = max(len(f.regions) for f in train)
    extra = [region_prompt([str(i) for i in range(n)]), DEFAULT_INSTRUCTION,
             " ".join(f"The region {i} is {r}:" for i in range(n) for r in cfg.regions)]
    return text_tokenizer_for(cfg.llm, texts, extra_texts=extra)


class Reg2RGModel(nn.Module):
    """LFD's trainable parts (f_A, f_M, f_P) in front of a :class:`rrg_lite.mllm.model.MultimodalLM`.

    forward(input_ids (B, S), attention_mask, labels, texture [B × (R_b, N, E)], global_ [B × (1, N, E)],
    geometry [B × (R_b, 1, *mask_shape)]) -> the LM's output (``.loss``). The lists hold each example's rows
    in slot order (the dataset re-orders them); missing branches are ``None``.
    """

    def __init__(self, lfd: LocalFeatureDecoupling, mllm):
        super().__init__()
        self.lfd, self.mllm = lfd, mllm

    def visual_embeds(self, texture=None, global_=None, geometry=None) -> dict[str, list[torch.Tensor]]:
        """Slot -> per-example tokens: ``"image"`` B × (1, K, D), ``"region"`` B × (R_b, K_r, D)."""
        cfg = self.lfd.config
        lists = [x for x in (texture, global_, geometry) if x is not None]
        b = len(lists[0])
        counts = [len(x) for x in (geometry if geometry is not None else texture)] if cfg.uses_regions else None
        cat = lambda xs: torch.cat(list(xs)) if xs is not None else None          # noqa: E731
        tokens = self.lfd.from_cache(cat(texture) if cfg.use_texture else None,
                                     cat(global_) if cfg.use_global else None,
                                     cat(geometry) if cfg.use_geometry else None)
        out = {}
        if tokens.image is not None:
            out["image"] = list(tokens.image.split(1))
        if tokens.regions is not None:
            out["region"] = list(tokens.regions.split(counts))
        if any(len(v) != b for v in out.values()):
            raise ValueError(f"Reg2RGModel: {b} examples but visual rows for {[len(v) for v in out.values()]}")
        return out

    def forward(self, input_ids, attention_mask=None, labels=None, texture=None, global_=None, geometry=None, **kw):
        embeds = self.visual_embeds(texture, global_, geometry)
        return self.mllm(input_ids=input_ids, attention_mask=attention_mask, labels=labels, visual_embeds=embeds, **kw)


def _new_lm(cfg, tok, seed: int):
    from rrg_lite.mllm.lm import new_language_model

    return new_language_model(cfg.llm, tok, cfg.llm_hidden, cfg.llm_layers, seed=seed, num_heads=4, num_kv_heads=2)


def build_model(cfg, bundle, tok, variant: Variant, seed: int, lm_state: dict | None = None) -> Reg2RGModel:
    """LFD (one :data:`.features.ABLATIONS` setting) + MultimodalLM (``<image>``, ``<region>`` slots, tokens
    spliced as ``visual_embeds``) + LoRA on ``cfg.lora_targets`` (``lm_tuning="lora"``) or the whole LM
    (``"full"``). Seeded; the frozen f_V is kept only for completeness (training reads cached features)."""
    from rrg_lite.mllm.model import DEFAULT_SLOTS, MultimodalLM
    from rrg_lite.mllm.stages import apply_lora, configure_stage

    lm = _new_lm(cfg, tok, seed)
    if lm_state is not None:
        lm.load_state_dict(lm_state)
    shape, windows = _encoder_input(bundle, cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lfd = LocalFeatureDecoupling(bundle.mllm_encoder, lfd_config(cfg, variant.features, shape, windows),
                                     encoder_dim=int(bundle.encoder.embed_dim))
        mllm = MultimodalLM(lm, tok, projectors={}, slots=DEFAULT_SLOTS)
        if cfg.lm_tuning == "lora":
            apply_lora(mllm, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                       target_modules=tuple(cfg.lora_targets))
            configure_stage(mllm, "lora")
        elif cfg.lm_tuning == "full":
            configure_stage(mllm, "full")
        else:
            raise ValueError(f"lm_tuning must be 'lora' or 'full', got {cfg.lm_tuning!r}")
    for name, p in lfd.named_parameters():
        p.requires_grad_(not name.startswith("encoder."))     # f_V frozen; f_A, f_M, f_P learn
    return Reg2RGModel(lfd, mllm)


# ---- examples -----------------------------------------------------------------------------------------------------
def _prompt_and_target(f: RegionFeatures, variant: Variant, cfg_lfd: LFDConfig, rng, order=None):
    """(prompt, target or None, order) — the global-only model has no ``<region>`` slots."""
    if order is None:
        ex = rra_example(f.regions, f.reports, rng=rng, rra=variant.rra, shuffle=variant.shuffle,
                         with_image=cfg_lfd.use_global)
        prompt, target, order = ex.prompt, ex.target, ex.order
    else:
        from .alignment import region_target

        prompt = region_prompt(f.regions, order, with_image=cfg_lfd.use_global)
        target = region_target(order, f.reports, prefixes=variant.rra)
    if not cfg_lfd.uses_regions:
        prompt = f"Global view: {IMAGE_TOKEN} {DEFAULT_INSTRUCTION}"
    return prompt, target, order


def _visual(f: RegionFeatures, order: Sequence[str], cfg_lfd: LFDConfig) -> dict:
    rows = torch.as_tensor([f.regions.index(a) for a in order], dtype=torch.long)
    tex = f.texture_features if cfg_lfd.lfd else f.masked_features
    if tex is None:
        raise ValueError(f"study {f.study_id}: lfd=False reads the masked uncropped features, which were not "
                         "extracted (extract_region_features(..., masked=True))")
    return {"texture": tex[rows] if cfg_lfd.use_texture else None,
            "global_": f.global_features if cfg_lfd.use_global else None,
            "geometry": f.geometry[rows].float() if cfg_lfd.use_geometry else None}


def _encode(tok, prompt, target, n_regions, cfg_lfd: LFDConfig, max_length=None) -> dict:
    from rrg_lite.mllm.prompt import encode_example

    counts = {IMAGE_TOKEN: cfg_lfd.num_texture_tokens, REGION_TOKEN: cfg_lfd.tokens_per_region}
    num = {IMAGE_TOKEN: int(cfg_lfd.use_global), REGION_TOKEN: n_regions if cfg_lfd.uses_regions else 0}
    return encode_example(tok, prompt, target, num_visual_tokens=counts, num_images=num, max_length=max_length)


class RRADataset(torch.utils.data.Dataset):
    """Training examples of one variant: each ``__getitem__`` draws a fresh region order (``variant.shuffle``),
    so every step sees new shuffles (Eq. 8). The draws come from one seeded generator and the loop's data order
    is seeded, so a run is reproducible."""

    def __init__(self, features: Sequence[RegionFeatures], tok, variant: Variant, cfg_lfd: LFDConfig, seed: int,
                 max_length: int | None = None):
        self.features, self.tok, self.variant, self.cfg_lfd = list(features), tok, variant, cfg_lfd
        self.rng, self.max_length = np.random.default_rng(seed), max_length

    def __len__(self):
        return len(self.features)

    def __getitem__(self, i):
        f = self.features[i]
        prompt, target, order = _prompt_and_target(f, self.variant, self.cfg_lfd, self.rng)
        return {**_encode(self.tok, prompt, target, len(f.regions), self.cfg_lfd, self.max_length),
                **_visual(f, order, self.cfg_lfd)}


_VISUAL = ("texture", "global_", "geometry")


def collate(pad_token_id: int, padding_side: str = "right"):
    """:class:`rrg_lite.mllm.prompt.MLLMCollator` that keeps the per-example visual rows as lists."""
    from rrg_lite.mllm.prompt import MLLMCollator

    base = MLLMCollator(pad_token_id, padding_side=padding_side, keep=_VISUAL)

    def fn(examples):
        batch = base(examples)
        for k in _VISUAL:
            if batch[k][0] is None:
                batch[k] = None
        return batch
    return fn


def warm_up_lm(cfg, tok, train: Sequence[RegionFeatures], seed: int) -> dict | None:
    """Text-only warm-up of the tiny LM on the region reports (instruction → one region's report), once per
    seed: a stand-in for a pre-trained LLM. ``None`` for a pre-trained LLM or ``lm_warmup_steps=0``."""
    from rrg_lite.mllm.prompt import MLLMCollator, encode_example
    from rrg_lite.train.loop import TrainConfig, train as train_loop

    if cfg.llm != "tiny" or not cfg.lm_warmup_steps:
        return None
    lm = _new_lm(cfg, tok, seed)
    examples = [encode_example(tok, DEFAULT_INSTRUCTION, f.reports[r], num_visual_tokens={})
                for f in train for r in f.regions]
    tc = TrainConfig(lr=cfg.warmup_lr, batch_size=cfg.batch_size, max_steps=cfg.lm_warmup_steps, warmup_steps=10,
                     seed=seed, progress=False, desc=f"LM warm-up s{seed}", mixed_precision=cfg.precision)
    train_loop(lm, examples, tc, collate_fn=MLLMCollator(tok.pad_token_id))
    return {k: v.detach().clone() for k, v in lm.state_dict().items()}


def train_model(cfg, model: Reg2RGModel, train: Sequence[RegionFeatures], variant: Variant, seed: int,
                progress: bool = False, output_dir: str | None = None):
    """Region–report alignment training (Eq. 9, plain LM loss), AdamW, warm-up then ``cfg.schedule``."""
    from rrg_lite.train.loop import TrainConfig, train as train_loop

    ds = RRADataset(train, model.mllm.tokenizer, variant, model.lfd.config, seed, cfg.max_length)
    if cfg.align_steps:
        # stage 1 (the LLaVA recipe's alignment, chapter 5): the LM frozen, only f_A / f_M / f_P learn, so the
        # visual tokens become readable before the LM may learn to write without them
        lm_grads = {n: p.requires_grad for n, p in model.mllm.named_parameters()}
        model.mllm.requires_grad_(False)
        train_loop(model, ds, TrainConfig(lr=cfg.align_lr, batch_size=cfg.batch_size, max_steps=cfg.align_steps,
                                          warmup_steps=min(10, cfg.align_steps // 10), seed=seed + 1000,
                                          progress=progress, desc=f"reg2rg align s{seed}",
                                          mixed_precision=cfg.precision),
                   collate_fn=collate(model.mllm.tokenizer.pad_token_id))
        for n, p in model.mllm.named_parameters():
            p.requires_grad_(lm_grads[n])
    tc = TrainConfig(lr=cfg.lr, batch_size=cfg.batch_size, grad_accum=cfg.grad_accum, max_steps=cfg.steps,
                     warmup_steps=cfg.warmup_steps, schedule=cfg.schedule, seed=seed, progress=progress,
                     desc=f"reg2rg s{seed}", log_every=20, mixed_precision=cfg.precision, output_dir=output_dir,
                     resume_from="latest" if output_dir and cfg.resume else None)
    return train_loop(model, ds, tc, collate_fn=collate(model.mllm.tokenizer.pad_token_id))


# ---- evaluation ---------------------------------------------------------------------------------------------------
def test_examples(features: Sequence[RegionFeatures], tok, variant: Variant, cfg_lfd: LFDConfig,
                  order_seed: int = 0, shuffle: bool | None = None, with_target: bool = True) -> list[dict]:
    """One example per test study with a fixed order (a shuffle seeded by ``order_seed`` and the study's index
    when the variant shuffles, or ``shuffle`` says so; else the regions' own order). Each example carries
    ``order`` and ``reference`` (the prefix-free reference) besides its token ids and visual rows."""
    shuffle = variant.shuffle if shuffle is None else shuffle
    out = []
    for i, f in enumerate(features):
        order = list(f.regions)
        if shuffle:
            order = [f.regions[j] for j in np.random.default_rng([order_seed, i]).permutation(len(f.regions))]
        prompt, target, _ = _prompt_and_target(f, variant, cfg_lfd, None, order=order)
        ex = _encode(tok, prompt, target if with_target else None, len(f.regions), cfg_lfd)
        out.append({**ex, **_visual(f, order, cfg_lfd), "order": order, "reference": strip_prefixes(target)})
    return out


@torch.no_grad()
def teacher_forced_nll(model: Reg2RGModel, examples: Sequence[dict], batch_size: int = 32) -> np.ndarray:
    """Mean cross-entropy per target token of each example (nats), (n,)."""
    from rrg_lite.mllm.inference import batched_inference

    def nll(m, b):
        emb = m.visual_embeds(b["texture"], b["global_"], b["geometry"])
        lp = m.mllm.sequence_logprobs(b["input_ids"], b["attention_mask"], b["labels"], visual_embeds=emb,
                                      average=True)
        return -lp.float()

    model.eval()
    out = batched_inference(model, list(examples), nll, batch_size=batch_size,
                            collate=collate(model.mllm.tokenizer.pad_token_id))
    return torch.stack(out).cpu().numpy()


@torch.no_grad()
def generate(cfg, model: Reg2RGModel, examples: Sequence[dict], batch_size: int | None = None) -> list[str]:
    """Reports for target-free examples (greedy unless ``cfg.do_sample``; the code samples with top_k 30)."""
    from rrg_lite.train.evaluate import generate_reports

    from rrg_lite.mllm.inference import batched_inference

    def ready_tokens(m, b):
        # each example with its region tokens spliced in as ready LLM-width rows (the shared generator's input)
        emb = m.visual_embeds(b["texture"], b["global_"], b["geometry"])
        return [{"input_ids": e["input_ids"], "attention_mask": e["attention_mask"],
                 "visual_embeds": {k: v[j] for k, v in emb.items()}} for j, e in enumerate(b["examples"])]

    def collate_keep(chunk):
        return {**collate(model.mllm.tokenizer.pad_token_id)(chunk), "examples": chunk}

    model.eval()
    # every process prepares every item; generate_reports below splits them over processes
    items = batched_inference(model, list(examples), ready_tokens, batch_size=64, collate=collate_keep,
                              shard=False)
    kw = dict(do_sample=True, top_k=cfg.top_k, seed=cfg.seed) if cfg.do_sample else {}
    return generate_reports(model.mllm, items, batch_size=batch_size or cfg.eval_batch_size,
                            max_new_tokens=cfg.max_new_tokens, progress=False, **kw)


def score_reports(preds: Sequence[str], refs: Sequence[str], orders: Sequence[Sequence[str]] | None = None,
                  areas: Sequence[str] | None = None) -> dict:
    """Prefix-stripped NLG (BLEU-1/4, ROUGE-L; R2Gen normalisation), CT-18 CE from the world's labeler
    (:mod:`rrg_lite.metrics.ctrate_labeler`) with both F1 conventions, and — with ``orders`` — region
    recognition (accuracy, per-area F1; Table III). Returns a flat dict plus ``"per_study"``: the CE label codes
    of prediction and reference (``pred_codes``, ``ref_codes``, (n, 18)) and, with ``orders``, each study's share
    of correctly named slots (``slot_correct``, (n,)) — what the paired intervals resample."""
    from rrg_lite.metrics.clinical import clinical_efficacy_weighted
    from rrg_lite.metrics.ctrate_labeler import label_reports_ctrate
    from rrg_lite.metrics.nlg import bleu, rouge_l

    from .alignment import parse_slots, region_recognition

    stripped = [strip_prefixes(p) or "." for p in preds]     # an empty report scores zero, not an error
    refs = [r or "." for r in refs]
    b = bleu(stripped, refs)
    out = {"BLEU-1": b["BLEU-1"].value, "BLEU-4": b["BLEU-4"].value, "ROUGE-L": rouge_l(stripped, refs).value}
    pred_codes, ref_codes = label_reports_ctrate(stripped), label_reports_ctrate(refs)
    ce = clinical_efficacy_weighted(pred_codes, ref_codes)
    out.update({"CE P": ce["weighted-P-18"].value, "CE R": ce["weighted-R-18"].value,
                "CE F1 (paper)": ce["F1-of-weighted-PR-18"].value, "CE F1 (evaluator)": ce["weighted-F1-18"].value})
    per = {"pred_codes": pred_codes, "ref_codes": ref_codes}
    if orders is not None:
        rec = region_recognition(orders, list(preds), **({"areas": areas} if areas else {}))
        out["recognition acc"] = rec.accuracy
        out["recognition macro-F1"] = float(np.mean([rec.f1[a] for a in rec.f1 if rec.support[a] > 0]))
        out.update({f"recognition F1 {a}": rec.f1[a] for a in rec.f1 if rec.support[a] > 0})
        per["slot_correct"] = np.array([np.mean([parse_slots(p).get(i) == a for i, a in enumerate(o)])
                                        for p, o in zip(preds, orders)])
    out["per_study"] = per
    return out
