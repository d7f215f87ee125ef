"""Wrappers for the neural labelers the papers use at full scale. Nothing is downloaded by default.

* **CheXbert** (Smit et al. 2020) through the ``f1chexbert`` package (what RadEval and most chest X-ray RRG
  code calls). Its ``get_label(report, mode="rrg")`` already binarises with *uncertain as positive*; this wrapper
  asks for the four-class output instead (``mode="classification"``: 1 positive, 0 negative, -1 uncertain,
  blank) so that :func:`rrg_lite.metrics.clinical.clinical_efficacy` applies the named uncertain convention.
  f1chexbert fetches its checkpoint from the Hugging Face hub (``StanfordAIMI/RRG_scorers``) the first time;
  we refuse unless the checkpoint is already cached or ``allow_download=True``.
* **CT-CLIP's RadBERT classifier** (Hamamci et al. 2024), which produced CT-RATE's 18 labels and which Reg2RG
  uses for CE metrics: a BERT-style encoder with an 18-way sigmoid head, loaded from a *local* directory in
  Hugging Face format (``AutoModelForSequenceClassification``, safetensors). Convert the released checkpoint once
  (see :func:`ctclip_radbert_label`'s docstring); a threshold of 0.5 gives the binary labels.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from .chexpert_labeler import CHEXPERT_LABELS
from .ctrate_labeler import CTRATE_LABELS

__all__ = ["chexbert_label", "ctclip_radbert_label"]


def chexbert_label(texts: Sequence[str], device: str | None = None, allow_download: bool = False) -> np.ndarray:
    """(N, 14) CheXbert codes (1 / 0 / -1 / NaN) via ``f1chexbert``; columns :data:`CHEXPERT_LABELS`."""
    try:
        from f1chexbert import F1CheXbert
    except ImportError as err:
        raise ImportError("chexbert_label needs the 'f1chexbert' package (pip install f1chexbert); the offline "
                          "rule-based labeler is rrg_lite.metrics.chexpert_labeler.label_reports_chexpert") from err
    if not allow_download:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a missing cached checkpoint then fails instead of downloading
    try:
        model = F1CheXbert(device=device) if device else F1CheXbert()
    except Exception as err:  # noqa: BLE001 — the package raises hub/OS errors of several types
        raise RuntimeError(f"could not load CheXbert through f1chexbert ({err}); without allow_download=True the "
                           f"checkpoint must already be in the Hugging Face cache") from err
    names = list(getattr(model, "target_names", CHEXPERT_LABELS))
    if names != list(CHEXPERT_LABELS):
        raise RuntimeError(f"f1chexbert's label order {names} differs from CheXpert's {list(CHEXPERT_LABELS)}")
    rows = []
    for t in texts:
        out = model.get_label(t, mode="classification")
        rows.append([np.nan if v == "" else float(v) for v in out])
    return np.array(rows, dtype=float).reshape(len(rows), 14)


def ctclip_radbert_label(texts: Sequence[str], model_dir: str, threshold: float = 0.5, batch_size: int = 16,
                         device: str = "cpu", max_length: int = 512) -> np.ndarray:
    """(N, 18) binary CT-RATE labels from a local RadBERT classifier directory.

    ``model_dir`` holds ``config.json`` (``num_labels=18``, ``problem_type="multi_label_classification"``),
    tokenizer files and ``model.safetensors``. CT-CLIP releases the classifier as a PyTorch state dict on top of
    ``zzxslp/RadBERT-RoBERTa-4m``; load it once with ``torch.load(..., weights_only=True)`` into
    ``AutoModelForSequenceClassification`` and ``save_pretrained(model_dir)``. Column order :data:`CTRATE_LABELS`
    (checked against ``config.id2label`` when it names the labels).
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"RadBERT classifier: {model_dir!r} is not a local directory")
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True,
                                                               use_safetensors=True).to(device).eval()
    if model.config.num_labels != len(CTRATE_LABELS):
        raise ValueError(f"{model_dir}: classifier has {model.config.num_labels} outputs, CT-RATE has 18 labels")
    id2label = [model.config.id2label.get(i, "") for i in range(18)]
    if all(not name.startswith("LABEL_") for name in id2label) and id2label != list(CTRATE_LABELS):
        raise ValueError(f"{model_dir}: label order {id2label} differs from CT-RATE's {list(CTRATE_LABELS)}")
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            batch = tok(list(texts[i:i + batch_size]), padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt").to(device)
            out.append(torch.sigmoid(model(**batch).logits).cpu().numpy())
    probs = np.concatenate(out) if out else np.zeros((0, 18))
    return (probs >= threshold).astype(np.int64)
