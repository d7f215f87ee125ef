"""The chapter-5 experiment in functions: the LLaVA recipe on chest CT (synthetic world or a CT-RATE folder).

    data = load_ct_report_data(cfg, seed)                           # volumes (n, C, D, H, W), reports, labels
    encoder = build_encoder(cfg); pretrain_on_labels(encoder, ...)  # stand-in for a pre-trained encoder
    feats = extract_features(encoder, volumes)                      # (n, 1, N, E), computed once (frozen)
    lm, tok = build_language_model(cfg, train reports, prompts)
    examples = report_examples(mllm, feats, reports, with_image=True)

CPU volumes get two channels, a lung window and a mediastinal window (as a radiologist reads chest CT), and are
resized to one shape so one small 3-D ViT reads every study. The same :func:`preprocess_ct` serves the world
(in memory) and CT-RATE (NIfTI files read by :mod:`rrg_lite.data`), so both paths give identical tensors.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from rrg_lite.data.controls import derangement  # noqa: F401  (the wrong-image control; part of this recipe's API)
from rrg_lite.encoders.pretrained import resolve_weights  # noqa: F401  (part of this recipe's API)

# The image comes last, right before the answer: a small LM trained on text attends most to recent positions,
# so visual tokens next to the report are found sooner in training than tokens at the start of the prompt.
IMAGE_PROMPT = "Write the radiology report for this chest CT. <image>"
TEXT_PROMPT = "Write the radiology report for this chest CT."
CT_WINDOWS = ("lung", "mediastinum")


def preprocess_ct(hu: np.ndarray, shape=(32, 64, 64), windows: Sequence = CT_WINDOWS) -> np.ndarray:
    """HU (D, H, W) -> float32 (len(windows), *shape), one [0, 1] channel per window.

    ``windows``: names from :data:`rrg_lite.data.transforms.WINDOWS` or ``(centre, width)`` pairs in HU.
    The default is the lung window and the mediastinal window; M3D-CLIP reads one channel (e.g.
    ``((0, 2000),)``: -1000..1000 HU scaled to [0, 1]).
    """
    from rrg_lite.encoders.data import preprocess_ct as encoder_input   # one implementation: the shared encoder's

    if not len(windows):
        raise ValueError("preprocess_ct needs at least one window")
    return encoder_input(hu, shape, windows)


class VolumeFiles:
    """Volumes read from disk on demand, preprocessed on the fly: a lazy stand-in for an (n, C, D, H, W) tensor.

    Full CT-RATE does not fit in memory; ``extract_features`` only needs slices, which load and preprocess
    their studies when asked. ``files[i]`` is (C, D, H, W), ``files[a:b]`` is (b - a, C, D, H, W).
    """

    def __init__(self, refs: Sequence, shape=(32, 64, 64), windows: Sequence = CT_WINDOWS):
        self.refs, self.shape, self.windows = list(refs), tuple(shape), tuple(windows)

    def __len__(self) -> int:
        return len(self.refs)

    def _load(self, i: int) -> torch.Tensor:
        from rrg_lite.data.images import load_volume

        hu, _ = load_volume(self.refs[i])
        return torch.from_numpy(preprocess_ct(hu, self.shape, self.windows))

    def __getitem__(self, key):
        if isinstance(key, slice):
            return torch.stack([self._load(i) for i in range(*key.indices(len(self)))])
        return self._load(int(key))

    def materialize(self, progress: bool = False) -> torch.Tensor:
        """Load everything: (n, C, D, H, W) float32."""
        return torch.stack([self._load(i) for i in tqdm(range(len(self)), desc="volumes", disable=not progress)])


@dataclass
class CTReportData:
    volumes: torch.Tensor | VolumeFiles   # (n, C, D, H, W) float32, or lazily loaded files
    reports: list[str]
    labels: torch.Tensor         # (n, 18) CT-RATE vector (world: ground truth; CT-RATE: the release's labels)
    study_ids: list[str]
    n_train: int                 # the first n_train studies train, the rest are held out

    def standardize(self, inplace: bool = False, chunk: int = 256) -> "CTReportData":
        """Subtract the training studies' mean volume and divide by their per-voxel std (fit on train only).

        Every phantom shares one anatomy, so raw intensities are dominated by it; what differs between
        studies (a lesion, an effusion, a big heart) is a small change. Per-voxel standardisation (the 3-D
        analogue of subtracting ImageNet's mean image) makes those changes what the encoder sees first.
        Statistics are accumulated ``chunk`` studies at a time (float64) so no copy of the whole set is made;
        ``inplace=True`` overwrites ``self.volumes`` instead of allocating a standardised copy.
        """
        if not isinstance(self.volumes, torch.Tensor):
            raise ValueError("standardize() needs the volumes in memory (call .materialize() on VolumeFiles first); "
                             "a pre-trained encoder uses its own normalisation instead")
        if self.n_train < 2:
            raise ValueError(f"standardize() needs at least 2 training studies, got {self.n_train}")
        total = torch.zeros(self.volumes.shape[1:], dtype=torch.float64)
        squares = torch.zeros_like(total)
        for i in range(0, self.n_train, chunk):
            x = self.volumes[i: min(i + chunk, self.n_train)].double()
            total += x.sum(0)
            squares += (x * x).sum(0)
        n = self.n_train
        mean = total / n
        std = ((squares - n * mean * mean).clamp(min=0) / (n - 1)).sqrt() + 0.05   # +0.05: flat voxels stay finite
        mean, std = mean.to(self.volumes.dtype), std.to(self.volumes.dtype)
        out = self.volumes if inplace else torch.empty_like(self.volumes)
        for i in range(0, len(self.volumes), chunk):
            torch.div(self.volumes[i: i + chunk] - mean, std, out=out[i: i + chunk])
        if inplace:
            return self
        return CTReportData(out, self.reports, self.labels, self.study_ids, self.n_train)

    def split(self, part: str) -> slice:
        if part not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {part!r}")
        return slice(0, self.n_train) if part == "train" else slice(self.n_train, len(self.reports))


def _opt(cfg, key: str, default):
    """``cfg[key]`` if the profile has it, else ``default`` (older profiles lack the optional keys)."""
    return cfg[key] if key in cfg and cfg[key] is not None else default


def _world_study(args):
    """One preprocessed world study (a top-level function so a process pool can run it)."""
    from rrg_lite.world.ct import make_ct_study

    seed, cfg, i, shape, windows = args
    st = make_ct_study(seed, cfg, study_id=f"ct_{i:05d}", patient_id=f"ctp_{i:05d}")
    return preprocess_ct(st.ct, shape, windows), st.report.text(), np.asarray(st.labels), st.study_id


def make_ct_report_data(n_train: int, n_test: int, seed: int = 0, shape=(32, 64, 64), scan_range: str = "chest",
                        progress: bool = True, world: dict | None = None, windows: Sequence = CT_WINDOWS,
                        workers: int = 1) -> CTReportData:
    """Generate ``n_train + n_test`` seeded CT studies from :mod:`rrg_lite.world` and preprocess them.

    ``world``: :class:`rrg_lite.world.config.WorldConfig` overrides (difficulty knobs). Study ``i`` depends only
    on ``(seed, i)``, so ``workers > 1`` (a process pool) gives the same data, faster.
    """
    from rrg_lite.world.config import WorldConfig
    from rrg_lite.world.ct import study_seeds

    cfg = WorldConfig(scan_range=scan_range, **(world or {}))
    n = n_train + n_test
    jobs = [(s, cfg, i, tuple(shape), tuple(windows)) for i, s in enumerate(study_seeds(seed, n))]
    # fill one preallocated array as studies arrive (in order), so memory holds the volumes once
    volumes = torch.empty((n, len(windows), *shape), dtype=torch.float32)
    reports, labels, ids = [], [], []

    def collect(rows):
        for i, (vol, rep, lab, sid) in enumerate(tqdm(rows, total=n, desc="CT studies", disable=not progress)):
            volumes[i] = torch.from_numpy(vol)
            reports.append(rep)
            labels.append(lab)
            ids.append(sid)

    if workers > 1:
        from rrg_lite.runtime import process_pool

        # spawned (never forked) workers, one thread each: a kernel is multi-threaded, and fork copies its locks
        with process_pool(workers) as pool:
            collect(pool.map(_world_study, jobs, chunksize=8))
    else:
        collect(map(_world_study, jobs))
    return CTReportData(volumes, reports, torch.from_numpy(np.stack(labels)), ids, n_train)


def record_report_text(rec) -> str:
    """A CT-RATE record's report in the world's layout: ``FINDINGS: ...`` and ``IMPRESSION: ...`` paragraphs."""
    parts = [f"{name.upper()}: {rec.report[name]}" for name in ("findings", "impression") if rec.report.get(name)]
    return "\n\n".join(parts)


def load_ctrate_report_data(root: str | Path, n_train: int = 0, n_test: int = 0, shape=(32, 64, 64),
                            windows: Sequence = CT_WINDOWS, lazy: bool = False, progress: bool = True) -> CTReportData:
    """A CT-RATE-layout folder -> :class:`CTReportData`: its ``train`` split trains, its ``valid`` split is held out.

    Reads with :func:`rrg_lite.data.formats.ctrate.read_ctrate` (reports, 18 labels, rescale metadata) and
    :func:`rrg_lite.data.images.load_volume` (HU in the world orientation), then :func:`preprocess_ct`.
    ``n_train`` / ``n_test`` = 0 take every study of the split. ``lazy=True`` keeps the volumes on disk
    (:class:`VolumeFiles`) for datasets that do not fit in memory.
    """
    from rrg_lite.data.formats.ctrate import read_ctrate
    from rrg_lite.data.manifest import DataFormatError
    from rrg_lite.world.vocab import CT_RATE_LABELS

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data_root {root}: not a folder (expected a CT-RATE layout: dataset/, "
                                "radiology_text_reports/, multi_abnormality_labels/)")
    train = read_ctrate(root, "train")
    test = read_ctrate(root, "valid")
    train = train[:n_train] if n_train else train
    test = test[:n_test] if n_test else test
    records = train + test
    labels = np.array([r.label_vector(CT_RATE_LABELS) for r in records], dtype=np.float32)
    if np.isnan(labels).any():
        bad = records[int(np.isnan(labels).any(1).argmax())]
        raise DataFormatError(f"{root}: study {bad.study_id} has no value for some of the 18 CT-RATE labels")
    refs = []
    for r in records:
        cts = r.images_of("CT")
        if not cts or not cts[0].path:
            raise DataFormatError(f"{root}: study {r.study_id} has no CT volume file")
        refs.append(cts[0])
    files = VolumeFiles(refs, shape, windows)
    volumes = files if lazy else files.materialize(progress)
    return CTReportData(volumes, [record_report_text(r) for r in records], torch.from_numpy(labels).long(),
                        [r.study_id for r in records], len(train))


class CachedFeatures:
    """A lazy (n, 1, N, E) view of a feature cache (:class:`rrg_lite.encoders.features.FeatureCache`, items (N, E)).

    Indexing with a slice, a list or an index tensor gives another view (nothing is read); ``view[i]`` /
    ``view.read(i)`` reads study i's features, (1, N, E). :func:`report_examples` on a view returns lazy examples,
    so a training set larger than memory is read one batch at a time.
    """

    def __init__(self, cache, indices: Sequence[int] | None = None):
        self.cache = cache
        self.indices = list(range(len(cache))) if indices is None else [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def shape(self) -> tuple[int, ...]:
        first = self.cache[self.indices[0]] if self.indices else self.cache[0]
        return (len(self), 1, *first.shape)

    def read(self, i: int) -> torch.Tensor:
        """Study i's features, (1, N, E)."""
        return self.cache[self.indices[i]][None]

    def __getitem__(self, key):
        if isinstance(key, slice):
            return CachedFeatures(self.cache, self.indices[key])
        if isinstance(key, torch.Tensor):
            key = key.tolist()
        if isinstance(key, (list, tuple)):
            return CachedFeatures(self.cache, [self.indices[i] for i in key])
        return self.read(int(key))


class LazyExamples(torch.utils.data.Dataset):
    """Examples whose token ids are built now and whose features are read from a :class:`CachedFeatures` view
    when an example is taken (``len`` / indexing: usable wherever a list of examples is)."""

    def __init__(self, texts: list[dict], features: CachedFeatures):
        self.texts, self.features = texts, features

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return {**self.texts[i], "features": self.features.read(i)[None]}  # (1 image, T=1, N, E)

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def report_examples(mllm, features: torch.Tensor | CachedFeatures | None, reports: list[str] | None,
                    with_image: bool = True, max_length: int | None = None, n: int | None = None) -> list[dict]:
    """One training (``reports`` given) or generation (``reports=None``) example per study.

    ``with_image=False`` builds the text-only baseline's examples: the same instruction, no ``<image>``.
    ``features`` may be a :class:`CachedFeatures` view: the examples are then lazy (:class:`LazyExamples`).
    """
    if n is None:
        n = len(features) if features is not None else len(reports)
    if with_image and isinstance(features, CachedFeatures):
        _, t, num_patches, _ = features.shape
        texts = [mllm.encode_example(IMAGE_PROMPT, reports[i] if reports is not None else None, num_images=1,
                                     num_frames=t, num_patches=num_patches, max_length=max_length) for i in range(n)]
        return LazyExamples(texts, features)
    out = []
    for i in range(n):
        target = reports[i] if reports is not None else None
        if with_image:
            ex = mllm.encode_example(IMAGE_PROMPT, target, num_images=1, num_frames=features.shape[1],
                                     num_patches=features.shape[2], max_length=max_length)
            ex["features"] = features[i: i + 1]  # (1 image, T, N, E)
        else:
            ex = mllm.encode_example(TEXT_PROMPT, target, num_images=0, max_length=max_length)
        out.append(ex)
    return out


def load_ct_report_data(cfg, seed: int = 0, progress: bool = True) -> CTReportData:
    """The chapter's data for a profile: the synthetic world (``data_root=None``) or a CT-RATE-layout folder.

    Profile keys used: ``data_root``, ``n_train``, ``n_test``, ``volume_shape``, and optionally ``windows``,
    ``world`` (WorldConfig overrides), ``workers`` and ``lazy``.
    """
    windows = tuple(tuple(w) if isinstance(w, (list, tuple)) else w for w in _opt(cfg, "windows", CT_WINDOWS))
    if cfg.data_root is None:
        return make_ct_report_data(cfg.n_train, cfg.n_test, seed=seed, shape=tuple(cfg.volume_shape), progress=progress,
                                   world=_opt(cfg, "world", None), windows=windows, workers=_opt(cfg, "workers", 1))
    return load_ctrate_report_data(cfg.data_root, cfg.n_train, cfg.n_test, shape=tuple(cfg.volume_shape),
                                   windows=windows, lazy=_opt(cfg, "lazy", False), progress=progress)


def shared_encoder(cfg, progress: bool = True):
    """The book's CT encoder (:func:`rrg_lite.encoders.hub.get_encoder`, chapter 4), checked against this profile.

    It was pre-trained once on world studies ``0 .. n_train-1`` of seed 0 (the first training studies here too,
    never the held-out ones) and cached; it standardises its input itself, so the volumes must not be standardised
    again. A profile whose input differs (shape, windows, world knobs) gets a clear error, not silently wrong features.
    """
    from rrg_lite.encoders.hub import get_encoder

    bundle = get_encoder("ct", progress=progress)
    spec = bundle.spec
    norm = lambda ws: [list(w) if isinstance(w, (list, tuple)) else w for w in ws]   # noqa: E731
    if _opt(cfg, "standardize", False):
        raise ValueError("standardize=True with encoder='shared': the shared encoder standardises each voxel itself "
                         "(against its own training studies); set standardize=False")
    want = {"shape": list(cfg.volume_shape), "windows": norm(_opt(cfg, "windows", CT_WINDOWS)),
            "world": dict(_opt(cfg, "world", None) or {})}
    got = {"shape": list(spec["shape"]), "windows": norm(spec["windows"]), "world": dict(spec.get("world") or {})}
    if want != got:
        diff = {k: (want[k], got[k]) for k in want if want[k] != got[k]}
        raise ValueError(f"the shared CT encoder ({bundle.path}) reads other input than this profile: "
                         + "; ".join(f"{k}: profile {a!r}, encoder {b!r}" for k, (a, b) in diff.items())
                         + ". Use encoder='vit3d' to train one for this input here, or change the CT spec in "
                           "rrg_lite/profiles/encoders.py (a new spec is trained once and cached).")
    return bundle


def build_encoder(cfg, in_channels: int | None = None, seed: int = 0):
    """The profile's vision encoder: the shared world-trained one (``encoder="shared"``), a small ViT-3D trained here
    (``"vit3d"``) or M3D-CLIP's ViT (``"m3d-clip"``).

    ``encoder_weights``: a local safetensors file or folder, or a Hub id (its ``*.safetensors`` files are fetched
    only because the caller named it; the CPU profile names none).
    """
    from rrg_lite.encoders.pretrained import m3d_clip_vit
    from rrg_lite.encoders.vit import vit3d

    if cfg.encoder == "shared":
        return shared_encoder(cfg).mllm_encoder           # tokens standardised: what a projector should read
    channels = in_channels or len(_opt(cfg, "windows", CT_WINDOWS))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if cfg.encoder == "vit3d":
            return vit3d(img_size=tuple(cfg.volume_shape), patch_size=tuple(cfg.patch_size), in_channels=channels,
                         embed_dim=cfg.encoder_width, depth=cfg.encoder_depth, heads=_opt(cfg, "encoder_heads", 4),
                         patch_embed=_opt(cfg, "patch_embed", "conv"), stem_cell=tuple(_opt(cfg, "stem_cell", (2, 4, 4))),
                         stem_width=_opt(cfg, "stem_width", 32))
        if cfg.encoder == "m3d-clip":
            width = _opt(cfg, "encoder_width", 768)
            return m3d_clip_vit(resolve_weights(cfg.encoder_weights), img_size=tuple(cfg.volume_shape),
                                patch_size=tuple(cfg.patch_size), in_channels=channels, hidden_size=width,
                                mlp_dim=4 * width, num_layers=_opt(cfg, "encoder_depth", 12),
                                num_heads=_opt(cfg, "encoder_heads", 12))
    raise ValueError(f"unknown encoder {cfg.encoder!r}; choose 'shared', 'vit3d' or 'm3d-clip'")


def build_language_model(cfg, train_reports: list[str], extra_texts=(), seed: int = 0):
    """``(lm, tokenizer)``: a tiny Llama + word-level tokenizer (``cfg.llm == "tiny"``) or a pre-trained causal LM.

    A pre-trained LM is loaded in fp32 even for bf16 runs: Accelerate's bf16 autocast then computes in bf16 while
    the weights the optimizer updates (and its state) stay fp32 — pure-bf16 weights lose small updates.
    """
    from rrg_lite.mllm.lm import load_causal_lm, tiny_llama
    from rrg_lite.mllm.text import build_word_tokenizer

    if cfg.llm == "tiny":
        tok = build_word_tokenizer(train_reports, extra_texts=extra_texts)
        lm = tiny_llama(tok, hidden_size=cfg.llm_hidden, num_layers=cfg.llm_layers, num_heads=4, num_kv_heads=2, seed=seed)
        return lm, tok
    lm, tok = load_causal_lm(cfg.llm, dtype=torch.float32)
    return lm, tok


def train_stage(mllm, examples: list[dict], collate, steps: int, lr: float, batch_size: int = 16, seed: int = 0,
                name: str = "stage", grad_accum: int = 1, mixed_precision: str = "auto", warmup_steps: int | None = None,
                progress: bool = True, log_every: int = 10, output_dir: str | None = None, save_every: int | None = None,
                resume_from: str | None = None):
    """One stage of the recipe with :func:`rrg_lite.train.loop.train` (warmup + cosine); trains what
    :func:`rrg_lite.mllm.stages.configure_stage` left trainable. Returns the ``TrainResult``.

    ``output_dir``: the stage's checkpoints go there (``save_every`` steps and at the end); ``resume_from``: a
    checkpoint folder or ``"latest"`` to continue an interrupted stage.
    """
    from rrg_lite.train.loop import TrainConfig, train

    if steps < 1:
        raise ValueError(f"stage {name!r}: steps must be >= 1, got {steps}")
    warmup = min(20, steps // 10) if warmup_steps is None else warmup_steps
    cfg = TrainConfig(lr=lr, batch_size=batch_size, grad_accum=grad_accum, max_steps=steps, warmup_steps=warmup,
                      seed=seed, log_every=log_every, mixed_precision=mixed_precision, desc=name, progress=progress,
                      output_dir=output_dir, save_every=save_every, resume_from=resume_from)
    return train(mllm, examples, cfg, collate_fn=collate)


def stage_dir(cfg, name: str) -> str | None:
    """``<cfg.output_dir>/<stage name as a folder>`` (e.g. ``runs/mllm_from_parts/2_lora``), or None without one."""
    if getattr(cfg, "output_dir", None) is None:
        return None
    slug = "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")
    return str(Path(cfg.output_dir) / slug)
