"""The μ² ablation (the paper's Table 2) rebuilt: question-conditioned report generation on CT.

Task (AMOS-MM style): given a CT and a question about one body part ("What are the findings in the abdomen?"),
write that body part's findings. Pipeline, shared by every variant so that only the tokenizer changes:

1. **Frames** — :func:`ct_to_frames`: HU → [0, 1] (a fixed HU range, or min-max as in the paper), cut into
   frames of K slices (:func:`rrg_lite.systems.mu2.tokenizer.volume_to_frames`), padded with air frames to a fixed T
   so that a batch stacks (the paper resizes to 8 frames; the tokenizer itself accepts any T).
2. **Frozen features** — :func:`encode_frames` runs a frozen 3-D ViT once per volume: (T, N, E).
3. **Model** — :func:`build_mllm`: a :class:`~rrg_lite.mllm.model.MultimodalLM` with a tiny Llama (or any causal
   LM) and a :class:`~rrg_lite.systems.mu2.tokenizer.Mu2Tokenizer` with one variant's flags; the MLLM hands the
   question's embeddings to the tokenizer.
4. **Training** — :func:`warm_up_lm` (text-only, once per seed: a stand-in for a pre-trained LLM), then
   :func:`train_variant`: :func:`rrg_lite.train.loop.train` (one SFT run per variant and seed, tokenizer + LM).
5. **Scoring** — :func:`generate_answers` (greedy) and :func:`score_answers` (BLEU-4, ROUGE-1, METEOR from
   :mod:`rrg_lite.metrics`, plus the teacher-forced test loss from :func:`test_loss`).
6. **Summary** — :func:`summarize` (mean over seeds with a 95 % t-interval) and :func:`paper_table`.

Controls. :func:`wrong_image` scores a trained model with another study's features: the difference in test NLL
("image gain") is what *this* image is worth to the model. :func:`oracle_frame_features` replaces the encoder by
the world's per-frame finding labels, so that the tokenizers can be compared on features that hold the answer
(:func:`prepare_world` returns both feature sets). A "no image" variant (:data:`NO_IMAGE`) trains the full μ²
model on all-zero features: what the question alone buys.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .tokenizer import ABLATION_VARIANTS, PAPER_TABLE2, PAPER_TABLE2_SOURCE, Mu2Config, Mu2Tokenizer, volume_to_frames

__all__ = [
    "NO_IMAGE",
    "QASample",
    "QUESTION_TEMPLATES",
    "ct_to_frames",
    "frame_finding_labels",
    "oracle_frame_features",
    "wrong_image",
    "body_part_samples",
    "positive_findings",
    "NORMAL_ANSWER",
    "encode_frames",
    "tokens_per_frame",
    "tokenizer_config",
    "build_mllm",
    "make_examples",
    "text_tokenizer_for",
    "new_lm",
    "warm_up_lm",
    "train_variant",
    "test_loss",
    "image_gain",
    "image_gain_interval",
    "generate_answers",
    "score_answers",
    "question_token_weights",
    "summarize",
    "paper_table",
    "variant_flags",
    "run_ablation",
    "build_frame_encoder",
    "WorldData",
    "prepare_world",
    "prepare_manifest",
]

NO_IMAGE = "no image (μ²)"


@dataclass
class QASample:
    """One question about one body part of one CT, with its answer and the CT's frozen features."""

    study_id: str
    question: str
    answer: str
    part: str
    features: torch.Tensor  # (T, N, E)
    depth: int  # real slices (the rest of the last frames is padding)


def ct_to_frames(ct_hu: np.ndarray, slices_per_frame: int, num_frames: int | None = None,
                 hu_range=None) -> np.ndarray:
    """(D, H, W) HU → (T, K, H, W) float32 in [0, 1].

    ``hu_range`` (lo, hi) clips and scales a fixed window; ``None`` is the paper's per-volume min-max.
    ``num_frames`` pads with air (0) frames up to T; a volume needing more frames is an error (no silent crop).
    """
    ct = np.asarray(ct_hu, dtype=np.float32)
    if ct.ndim != 3:
        raise ValueError(f"ct_to_frames expects a (D, H, W) volume, got shape {ct.shape}")
    if hu_range is None:
        lo, hi = float(ct.min()), float(ct.max())
    else:
        lo, hi = map(float, hu_range)
    x = np.clip((ct - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    frames = volume_to_frames(x, slices_per_frame)
    if num_frames is not None:
        if frames.shape[0] > num_frames:
            raise ValueError(
                f"a volume of {ct.shape[0]} slices needs {frames.shape[0]} frames of {slices_per_frame}, more than "
                f"num_frames={num_frames}"
            )
        pad = np.zeros((num_frames - frames.shape[0], *frames.shape[1:]), dtype=np.float32)
        frames = np.concatenate([frames, pad], axis=0)
    return frames.astype(np.float32)


@torch.no_grad()
def encode_frames(encoder: torch.nn.Module, frames: list[np.ndarray], batch_size: int = 32) -> list[torch.Tensor]:
    """Frozen features for each volume's frames: a list of (T, K, H, W) → a list of (T, N, E).

    The encoder maps (m, 1, K, H, W) → (m, N, E); all frames of all volumes are batched together.
    """
    from rrg_lite.mllm.inference import batched_inference, model_dtype

    flat = torch.cat([torch.as_tensor(f)[:, None] for f in frames])  # (ΣT, 1, K, H, W)
    feats = torch.stack(batched_inference(encoder, flat, lambda enc, x: enc(x).float(), batch_size=batch_size,
                                          collate=torch.stack, dtype=model_dtype(encoder)))  # (ΣT, N, E), CPU
    sizes = [f.shape[0] for f in frames]
    return [f.contiguous() for f in torch.split(feats, sizes)]


#: AMOS-MM-style questions about one body part (one is drawn per study and part, seeded).
QUESTION_TEMPLATES = (
    "What are the findings in the {part}?",
    "Describe the {part} in this CT scan.",
    "Please report the findings of the {part}.",
    "Are there any abnormalities in the {part}?",
)


def frame_finding_labels(lesion_map: np.ndarray, findings, kinds, slices_per_frame: int,
                         num_frames: int) -> np.ndarray:
    """(T, L) 0/1: which finding kinds are drawn inside each frame's slices (from the world's lesion map).

    A cheap supervision signal for pre-training the frame encoder (a stand-in for M3D-CLIP's pre-training).
    """
    index = {k: i for i, k in enumerate(kinds)}
    out = np.zeros((num_frames, len(kinds)), dtype=np.float32)
    for f in findings:
        if f.kind not in index:
            continue
        zs = np.nonzero((lesion_map == f.id + 1).any(axis=(1, 2)))[0]
        for t in np.unique(zs // slices_per_frame):
            if t < num_frames:
                out[t, index[f.kind]] = 1.0
    return out


def oracle_frame_features(frame_labels: np.ndarray, tokens_per_frame: int, width: int) -> torch.Tensor:
    """A perfect frame encoder: (T, L) finding-kind labels → (T, N, E) features.

    Every token of frame t carries the frame's label vector in its first L channels (the rest are zero). The
    chapter trains the same tokenizers on these to ask whether they can pass image information to the LLM when
    the encoder is known to see everything — separating an encoder failure from a tokenizer failure.
    """
    labels = torch.as_tensor(np.asarray(frame_labels, dtype=np.float32))
    if labels.ndim != 2:
        raise ValueError(f"frame labels must be (T, L), got shape {tuple(labels.shape)}")
    T, L = labels.shape
    if L > width:
        raise ValueError(f"{L} finding kinds do not fit in features of width {width}")
    out = torch.zeros(T, tokens_per_frame, width)
    out[..., :L] = labels[:, None, :]
    return out


def wrong_image(samples: list[QASample]) -> list[QASample]:
    """The same questions with another study's features (study i gets study i+1's, in order of appearance).

    The control for "does the answer use *this* image?": a model that ignores the image scores the same.
    """
    studies = list(dict.fromkeys(s.study_id for s in samples))
    if len(studies) < 2:
        raise ValueError("wrong_image needs samples from at least two studies")
    feats = {}
    for s in samples:
        feats.setdefault(s.study_id, s.features)
    donor = {sid: studies[(i + 1) % len(studies)] for i, sid in enumerate(studies)}
    return [replace(s, features=feats[donor[s.study_id]]) for s in samples]


NORMAL_ANSWER = "No abnormality is seen in the {part}."


def positive_findings(report, part: str) -> str:
    """The findings-section sentences of ``part`` that report a present finding (normal/negative ones dropped)."""
    return " ".join(
        s.text for s in report.sentences
        if s.section == "findings" and s.body_part == part and s.tag == "finding" and s.part != "pet"
    )


def body_part_samples(studies, features, seed: int = 0, parts=("chest", "abdomen", "pelvis"),
                      answers: str = "all", on_missing: str = "skip"):
    """One question per study and body part; the answer is the report's findings for that part.

    ``studies`` are world CT studies (``.report``, ``.study_id``, ``.ct``), ``features`` their frozen features
    (T, N, E). ``answers="all"`` is AMOS-MM's per-part findings text (normal statements included);
    ``"positive"`` keeps only the sentences about present findings, and :data:`NORMAL_ANSWER` when there are
    none — shorter answers that depend on the image rather than on the grammar (the CPU profile's choice).
    Returns ``(samples, skipped)``: with ``"all"``, a part whose report says nothing is skipped and listed as
    ``"study_id/part"`` (or is an error with ``on_missing="error"``).
    """
    if answers not in ("all", "positive"):
        raise ValueError(f"answers must be 'all' or 'positive', got {answers!r}")
    rng = np.random.default_rng(seed)
    out, skipped = [], []
    for study, feats in zip(studies, features):
        texts = study.report.body_parts
        for part in parts:
            if answers == "positive":
                answer = positive_findings(study.report, part) or NORMAL_ANSWER.format(part=part)
            else:
                answer = texts.get(part, "").strip()
            question = QUESTION_TEMPLATES[rng.integers(len(QUESTION_TEMPLATES))].format(part=part)
            if not answer:
                if on_missing == "error":
                    raise ValueError(f"study {study.study_id} has no findings text for the {part}")
                skipped.append(f"{study.study_id}/{part}")
                continue
            out.append(QASample(study.study_id, question, answer, part, feats, int(study.ct.shape[0])))
    return out, skipped


def tokens_per_frame(cfg) -> int:
    """N = patches per frame of K × H × W with the profile's patch size."""
    pd, ph, pw = cfg.patch_size
    return (cfg.slices_per_frame // pd) * (cfg.ct_size // ph) * (cfg.ct_size // pw)


def tokenizer_config(cfg, variant: str) -> Mu2Config:
    """The tokenizer of a profile (``rrg_lite.profiles.mu2``) with one variant's flags.

    Absolute tables hold twice the profile's frames (deeper volumes still fit); relative distances clip there.
    """
    n = tokens_per_frame(cfg)
    base = Mu2Config(
        in_dim=cfg.encoder_width, dim=cfg.llm_hidden, num_heads=cfg.num_heads, refiner_layers=cfg.refiner_layers,
        aggregation_layers=cfg.aggregation_layers, k=cfg.k, num_queries=cfg.num_queries, dmtp_gate=cfg.dmtp_gate,
        mlp_ratio=cfg.mlp_ratio, max_frames=2 * cfg.num_frames, max_tokens=n,
        max_frame_distance=2 * cfg.num_frames, max_token_distance=n,
    )
    return base.variant("μ² (SFT)" if variant == NO_IMAGE else variant)


def build_mllm(cfg, variant: str, text_tokenizer, seed: int, lm=None):
    """A :class:`MultimodalLM` = (tiny Llama or ``lm``) + a Mu2Tokenizer of ``variant``; seeded."""
    from rrg_lite.mllm.lm import tiny_llama
    from rrg_lite.mllm.model import MultimodalLM

    if lm is None:
        lm = tiny_llama(text_tokenizer, hidden_size=cfg.llm_hidden, num_layers=cfg.llm_layers, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tokenizer = Mu2Tokenizer(tokenizer_config(cfg, variant))
    return MultimodalLM(lm, text_tokenizer, {"image": tokenizer})


def _prompt(question: str) -> str:
    return f"<image> {question}"


def make_examples(mllm, samples: list[QASample], with_target: bool = True, blank_image: bool = False) -> list[dict]:
    """Token ids (+ labels) and features per sample; ``blank_image`` replaces features by zeros (no-image control)."""
    out = []
    for s in samples:
        ex = mllm.encode_example(_prompt(s.question), s.answer if with_target else None)
        ex["features"] = (torch.zeros_like(s.features) if blank_image else s.features)[None]  # (1, T, N, E)
        out.append(ex)
    return out


def text_tokenizer_for(cfg, train_samples: list[QASample]):
    """The LM's text tokenizer: a word-level one learned from the training text (``llm == "tiny"``), or the
    pre-trained LLM's own with the placeholder tokens added (:func:`rrg_lite.mllm.lm.text_tokenizer_for`)."""
    from rrg_lite.mllm.lm import text_tokenizer_for as shared_tokenizer

    return shared_tokenizer(cfg.llm, [s.question + " " + s.answer for s in train_samples])


def new_lm(cfg, text_tokenizer, seed: int):
    """A fresh LM: a seeded tiny Llama, or the pre-trained ``cfg.llm`` (Hub id or local path; the user's choice)."""
    from rrg_lite.mllm.lm import new_language_model

    return new_language_model(cfg.llm, text_tokenizer, cfg.llm_hidden, cfg.llm_layers, seed=seed)


def warm_up_lm(cfg, text_tokenizer, train_samples: list[QASample], seed: int):
    """Text-only warm-up of the tiny LM on (question → answer) for ``cfg.lm_warmup_steps``: a stand-in for a
    pre-trained LLM (the paper starts from Llama-3.2-1B-Instruct). Returns the LM's state dict.

    Every variant of one seed starts from the same warm LM, so the tokenizer is what differs.
    """
    from rrg_lite.mllm.prompt import MLLMCollator, encode_example
    from rrg_lite.train.loop import TrainConfig, train

    if cfg.llm != "tiny" or not cfg.lm_warmup_steps:
        return None  # a pre-trained LLM needs no warm-up
    lm = new_lm(cfg, text_tokenizer, seed)
    if cfg.lm_warmup_steps:
        examples = [encode_example(text_tokenizer, s.question, s.answer, num_visual_tokens={}) for s in train_samples]
        tc = TrainConfig(lr=cfg.lr, batch_size=cfg.batch_size, max_steps=cfg.lm_warmup_steps, warmup_steps=10,
                         schedule="cosine", seed=seed, progress=False, desc=f"LM warm-up s{seed}")
        train(lm, examples, tc, collate_fn=MLLMCollator(text_tokenizer.pad_token_id))
    return {k: v.detach().clone() for k, v in lm.state_dict().items()}


def train_variant(cfg, variant: str, seed: int, text_tokenizer, train_samples: list[QASample], progress=False,
                  lm_state: dict | None = None, output_dir: str | None = None):
    """One SFT run of one variant (from the warm LM ``lm_state`` if given): returns (mllm, TrainResult).

    ``cfg.precision`` (default ``"auto"``) is the run's mixed precision; ``output_dir``: checkpoints go there
    (``cfg.resume``: continue from the latest one there).
    """
    from rrg_lite.mllm.prompt import MLLMCollator
    from rrg_lite.train.loop import TrainConfig, train

    lm = new_lm(cfg, text_tokenizer, seed)
    if lm_state is not None:
        lm.load_state_dict(lm_state)
    mllm = build_mllm(cfg, variant, text_tokenizer, seed, lm=lm)
    examples = make_examples(mllm, train_samples, blank_image=(variant == NO_IMAGE))
    resume = "latest" if output_dir is not None and getattr(cfg, "resume", False) else None
    tc = TrainConfig(lr=cfg.lr, batch_size=cfg.batch_size, max_steps=cfg.steps, warmup_steps=cfg.warmup_steps,
                     schedule="cosine", seed=seed, progress=progress, desc=f"{variant} s{seed}", log_every=10,
                     mixed_precision=getattr(cfg, "precision", "auto"), output_dir=output_dir, resume_from=resume)
    result = train(mllm, examples, tc, collate_fn=MLLMCollator(text_tokenizer.pad_token_id))
    return mllm, result


@torch.no_grad()
def test_loss(mllm, samples: list[QASample], batch_size: int = 64, blank_image: bool = False) -> np.ndarray:
    """Teacher-forced mean cross-entropy of each sample's answer (nats per token): (n,)."""
    from rrg_lite.mllm.prompt import MLLMCollator

    from rrg_lite.mllm.inference import batched_inference

    examples = make_examples(mllm, samples, blank_image=blank_image)
    nll = batched_inference(mllm, examples, lambda m, b: -m.sequence_logprobs(
        b["input_ids"], b["attention_mask"], b["labels"], features=b["features"], average=True),
        batch_size=batch_size, collate=MLLMCollator(mllm.tokenizer.pad_token_id))  # on the model's device
    return torch.stack(nll).numpy() if nll else np.zeros(0)


def image_gain(mllm, samples: list[QASample], batch_size: int = 64) -> np.ndarray:
    """Per question: test NLL with another study's image (:func:`wrong_image`) minus with its own, (n,).

    Positive = the model's answer is likelier with *this* image; a model that ignores the image gets zeros.
    """
    return test_loss(mllm, wrong_image(samples), batch_size) - test_loss(mllm, samples, batch_size)


def image_gain_interval(models, samples: list[QASample], confidence: float = 0.95) -> dict:
    """Image gain of several trained models (e.g. one per seed) with a t-interval over the *questions*.

    Each question's gain is averaged over the models, so the n questions are the independent units.
    Returns ``{"gain", "lo", "hi", "n"}`` in nats per answer token.
    """
    from rrg_lite.metrics.significance import t_interval

    g = np.mean([image_gain(m, samples) for m in models], axis=0)
    gain, lo, hi = t_interval(g, confidence)
    return {"gain": gain, "lo": lo, "hi": hi, "n": len(g)}


@torch.no_grad()
def generate_answers(mllm, samples: list[QASample], batch_size: int = 48, max_new_tokens: int = 48,
                     blank_image: bool = False) -> list[str]:
    """Greedy answers, in the order of ``samples``."""
    from rrg_lite.train.evaluate import generate_reports

    examples = make_examples(mllm, samples, with_target=False, blank_image=blank_image)
    return generate_reports(mllm, examples, batch_size=batch_size, max_new_tokens=max_new_tokens, progress=False)


def score_answers(preds: list[str], refs: list[str], use_meteor: bool = False) -> dict[str, float]:
    """BLEU-4 (corpus, pycocoevalcap), ROUGE-1 (rouge-score F, mean), the offline GREEN approximation of
    :mod:`rrg_lite.metrics.green` (rule-based CT findings labeler; *not* the GREEN LLM judge) and optionally
    METEOR 1.5 (one JVM)."""
    from rrg_lite.metrics.green import green_offline
    from rrg_lite.metrics.nlg import bleu, meteor, rouge_score_f

    preds = [p if p.strip() else "." for p in preds]  # an empty answer scores zero, not an error
    scores = {"BLEU-4": bleu(preds, refs)["BLEU-4"].value,
              "ROUGE-1": rouge_score_f(preds, refs, types=("rouge1",))["ROUGE-1"].value,
              "GREEN (offline)": green_offline(preds, refs, labeler="ct").value}
    if use_meteor:
        scores["METEOR"] = meteor(preds, refs).value
    return scores


@torch.no_grad()
def question_token_weights(mllm, features: torch.Tensor, question: str):
    """What the tokenizer reads for ``question``: its details dict (``token_weights`` (1, Q, T·N), ...).

    Rebuilds the question embeddings exactly as :class:`MultimodalLM` does (the prompt's embeddings, placeholders
    removed) and calls the tokenizer with ``return_details=True``.
    """
    from rrg_lite.mllm.model import compact_rows

    mllm.eval()
    ex = mllm.encode_example(_prompt(question), None)
    ids = ex["input_ids"][None]
    placeholder = torch.isin(ids, torch.tensor(list(mllm.slot_token_ids.values())))
    q, qmask = compact_rows(mllm.lm.get_input_embeddings()(ids), ~placeholder)
    _, details = mllm.projectors["image"](features[None], q, qmask, return_details=True)
    return details


def summarize(rows, metrics=None, confidence: float = 0.95):
    """Mean over seeds and a t-interval, per variant and metric: ``rows`` = [{variant, seed, metric: value}].

    Returns a DataFrame indexed by variant with columns ``<metric>``, ``<metric> lo``, ``<metric> hi``
    and ``n seeds`` (:func:`rrg_lite.metrics.significance.summarize_seeds`). With a single seed the interval is NaN.
    """
    from rrg_lite.metrics.significance import summarize_seeds

    return summarize_seeds(rows, metrics, by="variant", confidence=confidence)


def paper_table():
    """The paper's Table 2 as a DataFrame (their numbers, on AMOS-MM; see :data:`PAPER_TABLE2_SOURCE`)."""
    import pandas as pd

    df = pd.DataFrame.from_dict(PAPER_TABLE2, orient="index")
    df.attrs["source"] = PAPER_TABLE2_SOURCE
    return df


def variant_flags(variant: str) -> dict:
    """The (rpe, dts, dmtp) flags of a variant name (the no-image control uses μ²'s)."""
    return dict(ABLATION_VARIANTS["μ² (SFT)" if variant == NO_IMAGE else variant])



def run_ablation(cfg, text_tokenizer, train_samples: list[QASample], test_samples: list[QASample],
                 variants=None, seeds=None, keep_models: bool = True, output_dir: str | None = None,
                 warm: dict | None = None):
    """Train and score every (variant, seed): the chapter's Table 2.

    Returns ``(rows, predictions, models)``:

    - ``rows``: one dict per run — variant, seed, test NLL, the test NLL with another study's image
      (:func:`wrong_image`) and their difference ``image gain`` (nats per token that *this* image is worth),
      BLEU-4, ROUGE-1, METEOR if ``cfg.use_meteor`` and Java is there, train seconds;
    - ``predictions[(variant, seed)]``: the generated answers;
    - ``models[(variant, seed)]``: the trained MLLMs (if ``keep_models``).
    With ``output_dir``, each run's checkpoints go to ``output_dir/<variant>_s<seed>`` (resumable).
    ``warm``: seed -> warm LM state (:func:`warm_up_lm`) to start from; seeds it lacks are warmed up and added to it,
    so a second call on the same questions and tokenizer (e.g. other features) reuses the first call's warm-ups.
    METEOR is computed in one Java call for all runs (per-report scores averaged per run).
    """
    from tqdm.auto import tqdm

    from rrg_lite.metrics.nlg import JavaNotFoundError, meteor

    variants = list(variants or cfg.variants)
    seeds = list(seeds if seeds is not None else cfg.seeds)
    refs = [s.answer for s in test_samples]
    wrong_test = wrong_image(test_samples)
    rows, predictions, models = [], {}, {}
    warm = {} if warm is None else warm
    for seed in seeds:
        if seed not in warm:
            warm[seed] = warm_up_lm(cfg, text_tokenizer, train_samples, seed)
    for variant, seed in tqdm([(v, s) for v in variants for s in seeds], desc="ablation"):
        blank = variant == NO_IMAGE
        run_dir = None if output_dir is None else f"{output_dir}/{_slug(variant)}_s{seed}"
        mllm, result = train_variant(cfg, variant, seed, text_tokenizer, train_samples, lm_state=warm[seed],
                                     output_dir=run_dir)
        preds = generate_answers(mllm, test_samples, cfg.eval_batch_size, cfg.max_new_tokens, blank_image=blank)
        nll = float(test_loss(mllm, test_samples, cfg.eval_batch_size, blank_image=blank).mean())
        nll_wrong = float(test_loss(mllm, wrong_test, cfg.eval_batch_size, blank_image=blank).mean())
        row = {"variant": variant, "seed": seed, "test NLL": nll, "test NLL (wrong image)": nll_wrong,
               "image gain": nll_wrong - nll, **score_answers(preds, refs), "train s": result.seconds}
        rows.append(row)
        predictions[(variant, seed)] = preds
        if keep_models:
            models[(variant, seed)] = mllm
    if cfg.use_meteor and rows:
        keys = list(predictions)
        flat_p = [p if p.strip() else "." for k in keys for p in predictions[k]]
        try:
            per = meteor(flat_p, refs * len(keys)).per_example
            for i, row in enumerate(rows):
                row["METEOR"] = float(np.mean(per[i * len(refs):(i + 1) * len(refs)]))
        except JavaNotFoundError:
            pass  # METEOR needs Java; the table then has no METEOR column
    return rows, predictions, models


def _slug(name: str) -> str:
    """A variant's name as a folder name: "μ² (SFT)" -> "mu2_sft", "+RPE" -> "rpe"."""
    text = name.replace("μ²", "mu2").lower()
    return "_".join("".join(c if c.isalnum() else " " for c in text).split())


def build_frame_encoder(cfg, train_frames=None, train_labels=None, seed: int = 0):
    """The frozen frame encoder: (m, 1, K, H, W) → (m, N, E).

    ``cfg.encoder == "vit3d"``: a small 3-D ViT, pre-trained for ``cfg.encoder_pretrain_steps`` steps to
    tell which finding kinds each frame contains (``train_frames`` (n, T, K, H, W), ``train_labels`` (n, T, L);
    a stand-in for M3D-CLIP's pre-training). ``"m3d-clip"``: M3D-CLIP's 3-D ViT, weights from
    ``cfg.encoder_weights`` (a local file or folder; nothing is downloaded). The encoder is returned frozen, in eval mode.
    """
    if cfg.encoder == "vit3d":
        from rrg_lite.encoders.pretrain import pretrain_on_labels
        from rrg_lite.encoders.vit import vit3d
        from rrg_lite.train.loop import TrainConfig

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            encoder = vit3d(img_size=(cfg.slices_per_frame, cfg.ct_size, cfg.ct_size),
                            patch_size=tuple(cfg.patch_size), embed_dim=cfg.encoder_width,
                            depth=getattr(cfg, "encoder_depth", 2), heads=getattr(cfg, "encoder_heads", 4),
                            patch_embed=cfg.patch_embed, stem_cell=tuple(cfg.stem_cell), stem_width=cfg.stem_width)
        if cfg.encoder_pretrain_steps and train_frames is not None:
            x = torch.as_tensor(np.concatenate(list(train_frames)))[:, None]
            y = torch.as_tensor(np.concatenate(list(train_labels)))
            pretrain_on_labels(encoder, x, y, TrainConfig(
                lr=cfg.encoder_pretrain_lr, batch_size=32, max_steps=cfg.encoder_pretrain_steps, warmup_steps=10,
                seed=seed, progress=False, desc="encoder"), pool=cfg.probe_pool)
    elif cfg.encoder == "m3d-clip":
        from rrg_lite.encoders.pretrained import m3d_clip_vit

        if cfg.encoder_weights is None:
            raise ValueError("encoder 'm3d-clip' needs encoder_weights (a safetensors file or folder)")
        width = getattr(cfg, "encoder_width", 768)
        encoder = m3d_clip_vit(weights=cfg.encoder_weights, img_size=(cfg.slices_per_frame, cfg.ct_size, cfg.ct_size),
                               patch_size=tuple(cfg.patch_size), hidden_size=width, mlp_dim=4 * width,
                               num_layers=getattr(cfg, "encoder_depth", 12), num_heads=getattr(cfg, "encoder_heads", 12))
    else:
        raise ValueError(f"unknown encoder {cfg.encoder!r}; use 'vit3d' or 'm3d-clip'")
    for p in encoder.parameters():
        p.requires_grad_(False)
    from rrg_lite.profiles import resolve_device

    # features are computed where the profile runs (encode_frames follows the encoder's device)
    return encoder.to(resolve_device(getattr(cfg, "device", "auto"))).eval()


@dataclass
class WorldData:
    """What the chapter needs from the synthetic world: question samples, the test studies, the encoder."""

    train: list[QASample]
    test: list[QASample]
    test_studies: list  # full CTStudy objects (for pictures and heat maps)
    test_features: list[torch.Tensor]
    encoder: torch.nn.Module
    skipped: list[str]
    oracle_train: list[QASample] = field(default_factory=list)  # the same questions, oracle features
    oracle_test: list[QASample] = field(default_factory=list)


def prepare_world(cfg, seed: int = 0) -> WorldData:
    """Generate the cohort, pre-train and freeze the frame encoder, and turn every CT into features + questions.

    Studies are streamed (:func:`rrg_lite.world.ct.iter_ct_cohort`): only the first ``cfg.encoder_pretrain_studies``
    keep their frames (to pre-train the encoder) and only the test studies are kept whole, so memory stays small
    however many training studies there are. Train = the first ``cfg.n_train`` studies, test = the next
    ``cfg.n_test``. The world's difficulty comes from ``cfg.lesion_contrast`` and ``cfg.lesion_size_scale``.
    """
    from tqdm.auto import tqdm

    from rrg_lite.world.config import WorldConfig
    from rrg_lite.world.ct import iter_ct_cohort
    from rrg_lite.world.findings import CT_KINDS

    world_cfg = WorldConfig(ct_size=cfg.ct_size, lesion_contrast=cfg.lesion_contrast,
                            lesion_size_scale=cfg.lesion_size_scale)
    K, T, kinds = cfg.slices_per_frame, cfg.num_frames, list(CT_KINDS)
    n_total, n_pre = cfg.n_train + cfg.n_test, min(cfg.encoder_pretrain_studies, cfg.n_train)

    def frames_of(study):
        return ct_to_frames(study.ct, K, T, cfg.hu_range)

    stream = iter_ct_cohort(n_total, seed=cfg.world_seed, cfg=world_cfg)
    first = [next(stream) for _ in range(n_pre)]
    encoder = build_frame_encoder(
        cfg, [frames_of(s) for s in first],
        [frame_finding_labels(s.lesion_map, s.findings, kinds, K, T) for s in first], seed=seed)
    train, test, test_studies, test_features, skipped = [], [], [], [], []
    oracle_train, oracle_test, batch = [], [], []

    def flush():
        feats = encode_frames(encoder, [frames_of(s) for s in batch])
        oracle = {s.study_id: oracle_frame_features(frame_finding_labels(s.lesion_map, s.findings, kinds, K, T),
                                                    f.shape[1], f.shape[2]) for s, f in zip(batch, feats)}
        samples, skip = body_part_samples(batch, feats, seed=seed + len(train) + len(test), answers=cfg.answers)
        skipped.extend(skip)
        for s, f in zip(batch, feats):
            if int(s.study_id.split("_")[-1]) >= cfg.n_train:
                test_studies.append(s)
                test_features.append(f)
        for q in samples:
            is_test = int(q.study_id.split("_")[-1]) >= cfg.n_train
            (test if is_test else train).append(q)
            (oracle_test if is_test else oracle_train).append(replace(q, features=oracle[q.study_id]))
        batch.clear()

    for study in tqdm(_chain(first, stream), total=n_total, desc="world → features"):
        batch.append(study)
        if len(batch) == 32:
            flush()
    if batch:
        flush()
    return WorldData(train, test, test_studies, test_features, encoder, skipped, oracle_train, oracle_test)


def _chain(first, rest):
    yield from first
    yield from rest


class _AmosFrames(torch.utils.data.Dataset):
    """AMOS-MM volumes as the encoder's input, read one at a time: item i = (T, 1, K, H, W) float32 frames."""

    def __init__(self, records, cfg):
        self.records, self.cfg = list(records), cfg

    def __len__(self):
        return len(self.records)

    def volume(self, i: int) -> np.ndarray:
        """Case i as the tokenizer sees it: (z, y, x), min-max normalised (the paper), resized if configured."""
        from rrg_lite.data.io import load_nifti
        from rrg_lite.data.transforms import resize

        ct = load_nifti(self.records[i].images_of("CT")[0].path).array.transpose(2, 1, 0)  # (x, y, z) → (z, y, x)
        ct = (ct - ct.min()) / max(float(ct.max() - ct.min()), 1e-6)
        if self.cfg.volume_shape is not None:
            ct = resize(ct, tuple(self.cfg.volume_shape))
        return ct

    def __getitem__(self, i):
        frames = ct_to_frames(self.volume(i), self.cfg.slices_per_frame, self.cfg.num_frames, hu_range=(0.0, 1.0))
        return torch.from_numpy(frames)[:, None]


def _encode_volumes(encoder, batch):
    """(B, T, 1, K, H, W) → B tensors (T, N, E): every frame of every volume through the frozen encoder."""
    b, t = batch.shape[:2]
    return list(encoder(batch.flatten(0, 1)).float().unflatten(0, (b, t)).unbind(0))


def prepare_manifest(cfg, seed: int = 0, splits=("train", "validation")) -> WorldData:
    """The full-scale counterpart of :func:`prepare_world`: an AMOS-MM folder (``cfg.data_root``) → samples.

    Each case's NIfTI is read with :func:`rrg_lite.data.io.load_nifti` (file order (x, y, z) → (z, y, x)),
    min-max normalised and resized to ``cfg.volume_shape`` when given (the paper: 256 × 256 × 256 → 8 frames of
    32 slices), cut into frames and encoded by the frozen encoder; the questions come from the per-body-part
    findings (``cfg.answers``: "all" is the dataset's text). Train = ``splits[0]``, test = ``splits[1]``;
    ``cfg.n_train`` / ``cfg.n_test`` > 0 keep only the first cases. With ``cfg.feature_cache`` (a folder) the
    features are computed once into the on-disk cache (:mod:`rrg_lite.encoders.features`, keyed by encoder
    weights, cases and preprocessing) and read from it by later runs — chapter 7 reads chapter 6's. Only the test
    split's volumes are kept (for the attention maps); a training case keeps its depth.
    """
    from types import SimpleNamespace

    from tqdm.auto import tqdm

    from rrg_lite.data.formats.amosmm import read_amosmm

    if cfg.dataset != "amos-mm":
        raise ValueError(f"prepare_manifest reads AMOS-MM folders; dataset {cfg.dataset!r} is not wired here")
    if cfg.data_root is None:
        raise ValueError("the full profile needs data_root (an AMOS-MM folder converted by data_scripts/)")
    if cfg.answers != "all":
        raise ValueError("real reports have no sentence tags: use answers='all' with AMOS-MM")
    encoder = build_frame_encoder(cfg, seed=seed)
    cache_root = getattr(cfg, "feature_cache", None)
    out = {}
    for split, limit in zip(splits, (cfg.n_train, cfg.n_test)):
        records = read_amosmm(cfg.data_root, split)[: limit or None]
        frames = _AmosFrames(records, cfg)
        if cache_root:
            from rrg_lite.encoders.features import build_feature_cache

            preprocessing = {"data_root": str(cfg.data_root), "split": split, "volume_shape": cfg.volume_shape,
                             "slices_per_frame": cfg.slices_per_frame, "num_frames": cfg.num_frames,
                             "normalise": "min-max"}
            cache = build_feature_cache(encoder, frames, cache_root, ids=[r.study_id for r in records],
                                        preprocessing=preprocessing, encoder_name=cfg.encoder, batch_size=1,
                                        encode=_encode_volumes)
            feats = [cache[i] for i in range(len(cache))]
        else:
            feats = [encode_frames(encoder, [frames[i][:, 0].numpy()])[0]  # device-aware, one volume at a time
                     for i in tqdm(range(len(frames)), desc=f"{split}: volumes → features")]
        studies = []
        for i, rec in enumerate(records):
            if split == splits[1]:  # the test volumes are shown (attention maps); a training case needs its depth
                ct = frames.volume(i)
            else:  # resized: the configured depth; else the framed depth (an upper bound: the last frame is padded)
                depth = cfg.volume_shape[0] if cfg.volume_shape is not None else feats[i].shape[0] * cfg.slices_per_frame
                ct = np.empty((depth, 0, 0), np.float32)
            report = SimpleNamespace(body_parts=rec.body_part_reports, sentences=[])
            studies.append(SimpleNamespace(study_id=rec.study_id, report=report, ct=ct))
        samples, skipped = body_part_samples(studies, feats, seed=seed, answers="all")
        out[split] = (samples, skipped, studies, feats)
    (train, skip_tr, _, _), (test, skip_te, test_studies, test_feats) = out[splits[0]], out[splits[1]]
    return WorldData(train, test, test_studies, test_feats, encoder, skip_tr + skip_te)
