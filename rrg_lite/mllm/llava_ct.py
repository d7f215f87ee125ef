"""The chapter-4 experiment in functions: the LLaVA recipe on synthetic chest CT.

    data = make_ct_report_data(n_train, n_test, seed, shape)       # volumes (n, 2, D, H, W), reports, labels
    encoder = vit3d(...); pretrain_on_labels(encoder, ...)          # stand-in for a pre-trained encoder
    feats = extract_features(encoder, volumes)                      # (n, 1, N, E), computed once (frozen)
    tok = build_word_tokenizer(train reports + prompts); lm = tiny_llama(tok, ...)
    examples = report_examples(mllm, feats, reports, with_image=True)

Volumes get two channels, a lung window and a mediastinal window (as a radiologist reads chest CT), and are
resized to one shape so one small 3-D ViT reads every study.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from rrg_lite.data.transforms import resize, window

IMAGE_PROMPT = "<image> Write the radiology report for this chest CT."
TEXT_PROMPT = "Write the radiology report for this chest CT."


def preprocess_ct(hu: np.ndarray, shape=(32, 64, 64)) -> np.ndarray:
    """HU (D, H, W) -> float32 (2, *shape): lung window and mediastinal window, each in [0, 1]."""
    if hu.ndim != 3:
        raise ValueError(f"a CT volume must be (D, H, W), got shape {hu.shape}")
    return np.stack([resize(window(hu, name), shape) for name in ("lung", "mediastinum")]).astype(np.float32)


@dataclass
class CTReportData:
    volumes: torch.Tensor        # (n, 2, D, H, W) float32
    reports: list[str]
    labels: torch.Tensor         # (n, 18) int64 CT-RATE vector of the world's ground truth
    study_ids: list[str]
    n_train: int

    def standardize(self) -> "CTReportData":
        """Subtract the training studies' mean volume and divide by their per-voxel std (fit on train only).

        Every phantom shares one anatomy, so raw intensities are dominated by it; what differs between
        studies (a lesion, an effusion, a big heart) is a small change. Per-voxel standardisation (the 3-D
        analogue of subtracting ImageNet's mean image) makes those changes what the encoder sees first.
        """
        train = self.volumes[self.split("train")]
        mean, std = train.mean(0), train.std(0) + 0.05
        return CTReportData((self.volumes - mean) / std, self.reports, self.labels, self.study_ids, self.n_train)

    def split(self, part: str) -> slice:
        return slice(0, self.n_train) if part == "train" else slice(self.n_train, len(self.reports))


def make_ct_report_data(n_train: int, n_test: int, seed: int = 0, shape=(32, 64, 64), scan_range: str = "chest",
                        progress: bool = True) -> CTReportData:
    """Generate ``n_train + n_test`` seeded chest CT studies from :mod:`rrg_lite.world` and preprocess them."""
    from rrg_lite.world.config import WorldConfig
    from rrg_lite.world.ct import iter_ct_cohort

    vols, reports, labels, ids = [], [], [], []
    for study in tqdm(iter_ct_cohort(n_train + n_test, seed=seed, cfg=WorldConfig(scan_range=scan_range)),
                      total=n_train + n_test, desc="CT studies", disable=not progress):
        vols.append(preprocess_ct(study.ct, shape))
        reports.append(study.report.text())
        labels.append(np.asarray(study.labels))
        ids.append(study.study_id)
    return CTReportData(torch.from_numpy(np.stack(vols)), reports, torch.from_numpy(np.stack(labels)), ids, n_train)


def report_examples(mllm, features: torch.Tensor | None, reports: list[str] | None, with_image: bool = True,
                    max_length: int | None = None, n: int | None = None) -> list[dict]:
    """One training (``reports`` given) or generation (``reports=None``) example per study.

    ``with_image=False`` builds the text-only baseline's examples: the same instruction, no ``<image>``.
    """
    if n is None:
        n = len(features) if features is not None else len(reports)
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
    """The chapter's data for a profile: the synthetic world (``data_root=None``) or a converted dataset.

    Real CT-RATE goes through the dataset readers of :mod:`rrg_lite.data` (converted with ``data_scripts/``).
    """
    if cfg.data_root is None:
        return make_ct_report_data(cfg.n_train, cfg.n_test, seed=seed, shape=tuple(cfg.volume_shape), progress=progress)
    raise NotImplementedError(
        f"data_root={cfg.data_root!r}: reading a converted CT-RATE folder for chapter 4 is not wired up yet; "
        "use the rrg_lite.data readers to build volumes (n, 2, D, H, W) with preprocess_ct and a CTReportData"
    )


def build_language_model(cfg, train_reports: list[str], extra_texts=(), seed: int = 0):
    """``(lm, tokenizer)``: a tiny Llama + word-level tokenizer (``cfg.llm is None``) or a pre-trained causal LM."""
    from rrg_lite.mllm.lm import load_causal_lm, tiny_llama
    from rrg_lite.mllm.text import build_word_tokenizer

    if cfg.llm is None:
        tok = build_word_tokenizer(train_reports, extra_texts=extra_texts)
        lm = tiny_llama(tok, hidden_size=cfg.llm_hidden, num_layers=cfg.llm_layers, num_heads=4, num_kv_heads=2, seed=seed)
        return lm, tok
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    lm, tok = load_causal_lm(cfg.llm, dtype=dtype)
    return lm, tok
