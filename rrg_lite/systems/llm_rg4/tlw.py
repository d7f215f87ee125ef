"""LLM-RG4 §"Token-Level Loss Weighting Strategy" (Eq. 9–10, Algorithm 1): heavier loss on key diagnostic sentences.

The loss of target token t_j is weighted, L(t_j) = −c_j log p(t_j) (Eq. 10), c_j = 1 for every token unless the
token is in a sentence that carries a positive or uncertain finding. Algorithm 1 finds those sentences with a
labeler and integrated gradients (IG)::

    1  c_i = −1 for every token i
    2  Y = f_c(T) = [y_1 … y_13]                  labels of the report (CheXbert; "No Finding", the 14th, dropped)
    3  for each label j:
    4    if y_j = −1 (uncertain) or 1 (positive):
    5      c'_i = IG_i(x) for label j             attribution of token i to label j's output
    6      c_i = max(c_i, c'_i)
    7  smooth c over token positions with g_k = exp(−k² / 2σ²) / √(2πσ²)
    8  split c into the report's sentences
    9  a sentence with any c_i > threshold (0.4) gets c = λ (1.75) on *all* its tokens, the others c = 1  (9–13)

So the weight is decided per token (a score above the threshold) and applied per sentence ("the weight of each
token in the whole sentence is increased to λ"). The pieces, top to bottom:

- :class:`TokenLabeler` — a small differentiable stand-in for CheXbert: word embeddings -> 1-D convolution ->
  ReLU -> masked mean (or max) pool over tokens -> 14 logits, one sigmoid head per CheXpert label, each predicting
  "this label is positive or uncertain in the report". :meth:`TokenLabeler.fit` trains it on (report, CheXpert
  codes) pairs. IG needs gradients with respect to the input *embeddings*: :meth:`TokenLabeler.forward_embeddings`.
- :func:`integrated_gradients` — IG (Sundararajan et al. 2017) written out, for any f of an embedding input::

      IG(x) = (x − x₀) ⊙ ∫₀¹ ∇f(x₀ + α(x − x₀)) dα  ≈  (x − x₀) ⊙ Σ_k w_k ∇f(x₀ + α_k(x − x₀))

  with the integral by a Riemann rule over ``steps`` intervals: ``"trapezoid"`` (default; α_k = k/m, k = 0..m,
  w = 1/m, halved at both ends), ``"left"``, ``"right"``, ``"midpoint"``. *Completeness*: Σ IG = f(x) − f(x₀)
  exactly for the integral; the rule's error falls as 1/m² (trapezoid, midpoint) or 1/m (left, right).
- :func:`token_attributions` — per-token scores: IG per label, summed over the embedding axis, normalised, max
  over the positive/uncertain labels (lines 1–6).
- :func:`gaussian_smooth` (line 7), :func:`sentence_weights` (lines 8–13), :func:`token_weights` (all of it) ->
  :class:`TokenWeights`.
- Controls: :func:`random_sentence_weights` (the same number of up-weighted sentences, chosen at random) and
  :func:`oracle_weights` (the world's own key-sentence tags, :func:`world_key_sentences`).
- The two loss forms: :func:`tlw_loss` on per-token losses, :func:`tlw_lm_loss` on an LM's logits.

Alignment with the target tokens. Weights are returned per *word token* of the report text: the words and
punctuation marks of :data:`WORD` (``\\w+|[^\\w\\s]``, in order), which are also the labeler's tokens, so IG's
per-token scores need no mapping. :attr:`TokenWeights.spans` gives each word's character range and weight, ready
for :func:`rrg_lite.mllm.prompt.token_weights_from_spans`, which maps them onto the target tokens of any fast
tokenizer: a token takes the weight of the word it overlaps, 1 if it covers only whitespace. With the book's
word-level tokenizer (:func:`rrg_lite.mllm.text.build_word_tokenizer`) every word is one token and the extra
tokens are lone "▁" spaces before a bracket (a test checks it); with a sub-word tokenizer a word's pieces share
its weight — so the same weights serve the full-scale LLM. Weights belong to the exact text that is the target:
compute them on that text (with or without section headers).

What the paper does not state, and what we chose (SYSTEMS.md §3: "Not stated: σ, IG baseline/steps,
normalisation"):

- *IG baseline*: the zero embedding (Captum's default; it is also :class:`TokenLabeler`'s <pad> row), or
  ``baseline="unk"`` (the learned <unk> embedding at every position: "a report of unknown words");
  *steps*: 50 (Captum's default), trapezoid rule.
- *Normalisation* of each label's map before the max, so that the 0.4 threshold has a scale: ``"max"``
  (default; a / max|a|, each label's strongest token scores 1), ``"l2"`` (a / ‖a‖₂ over the tokens, as Captum's
  BERT tutorials "summarize" attributions), ``"none"`` (raw logit units). Measured on the world (a mean-pool
  labeler fitted on 200 reports, 60 held-out reports, TLW's up-weighted words against the world's key sentences):
  "max" finds them with word-level precision 0.99 / recall 0.96; "l2" recall is 0.01 — dividing by ‖a‖₂ shrinks
  every score of a report with several attributed phrases below 0.4.
- *Pooling* of the labeler: mean (default). With max pooling a label's gradient reaches only its strongest
  mention, so the impression's repetition of a finding gets no attribution (recall 0.60 in the same check).
- *σ* = 1 token; the kernel is cut at ±⌈3σ⌉ and divided by its sum (the printed g_k sums to 0.9973 over the
  integers at σ = 1), and at the ends of the report by the part of it that falls inside, so a constant stays
  constant. At σ = 1 a lone token of score 1 smooths to 0.399 < 0.4: a sentence passes on a *phrase* of attributed
  words ("left pleural effusion"), which is what the paper's "mitigate token anomaly" asks for.
- *Labels* (step 2): given CheXpert codes (CheXbert at full scale, the book's rule-based
  :mod:`rrg_lite.metrics.chexpert_labeler` or the world's labels), or the labeler's own predictions (p > 0.5).
- *Loss normalisation*: the paper's Eq. 10 is per token; ``form="paper"`` averages c_j ℓ_j over the target tokens
  (:func:`rrg_lite.mllm.losses.weighted_lm_loss`, "mean"). The released code (``form="code"``) adds two separately
  normalised terms, Σℓ/N + (λ − 1)·Σ(ℓ·s)/N_key with s the 0/1 key-token mask: a key token then weighs
  1/N + (λ − 1)/N_key, e.g. 4.75× a plain token when key tokens are a fifth of the report (1.75× in the paper's).
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rrg_lite.metrics.chexpert_labeler import CHEXPERT_LABELS
from rrg_lite.metrics.text import split_sentences
from rrg_lite.mllm.losses import per_token_loss, weighted_lm_loss
from rrg_lite.mllm.prompt import IGNORE_INDEX

__all__ = [
    "WORD", "TLWConfig", "TokenLabeler", "positive_or_uncertain", "integrated_gradients", "token_attributions",
    "gaussian_smooth", "sentence_weights", "report_words", "TokenWeights", "token_weights",
    "random_sentence_weights", "oracle_weights", "world_key_sentences", "tlw_loss", "tlw_lm_loss",
    "RULES", "NORMALISATIONS", "LOSS_FORMS",
]

#: A word token: a run of word characters or one punctuation mark (the word-level tokenizer's tokens).
WORD = re.compile(r"\w+|[^\w\s]")
#: Riemann rules of :func:`integrated_gradients`, normalisations of :func:`token_attributions`, loss forms.
RULES = ("trapezoid", "left", "right", "midpoint")
NORMALISATIONS = ("l2", "max", "none")
LOSS_FORMS = ("paper", "code")
#: Algorithm 1 uses the first 13 CheXpert labels: the 14th, "No Finding", is not a diagnosis to emphasise.
TLW_LABELS = CHEXPERT_LABELS[:13]


@dataclass(frozen=True)
class TLWConfig:
    """Algorithm 1's knobs. threshold, lam: the paper's 0.4 and 1.75. sigma: the smoothing σ in tokens.
    steps, rule, baseline: of IG. normalise: of each label's attribution map. See the module docstring."""

    threshold: float = 0.4
    lam: float = 1.75
    sigma: float = 1.0
    steps: int = 50
    rule: str = "trapezoid"
    baseline: str = "zero"
    normalise: str = "max"

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"TLWConfig.rule must be one of {RULES}, got {self.rule!r}")
        if self.normalise not in NORMALISATIONS:
            raise ValueError(f"TLWConfig.normalise must be one of {NORMALISATIONS}, got {self.normalise!r}")
        if self.baseline not in ("zero", "unk"):
            raise ValueError(f"TLWConfig.baseline must be 'zero' or 'unk', got {self.baseline!r}")
        if self.steps < 1:
            raise ValueError(f"TLWConfig.steps must be >= 1, got {self.steps}")
        if self.sigma < 0:
            raise ValueError(f"TLWConfig.sigma must be >= 0 (0 = no smoothing), got {self.sigma}")
        if self.lam < 1:
            raise ValueError(f"TLWConfig.lam must be >= 1 (the paper: λ > 1), got {self.lam}")

    def as_dict(self) -> dict:
        return asdict(self)


# ---- the labeler IG attributes through ---------------------------------------------------------------------------
def positive_or_uncertain(codes) -> np.ndarray:
    """CheXpert codes (n, 14) (1 positive, 0 negative, −1 uncertain, NaN or 2 not mentioned) -> (n, 14) 0/1 float:
    1 where the label is positive or uncertain — the event Algorithm 1 attributes (line 4: y = −1 or 1)."""
    codes = np.asarray(codes, dtype=float)
    if codes.ndim != 2 or codes.shape[1] != len(CHEXPERT_LABELS):
        raise ValueError(f"CheXpert codes must be (n, {len(CHEXPERT_LABELS)}), got {codes.shape}")
    bad = ~np.isnan(codes) & ~np.isin(codes, (1.0, 0.0, -1.0, 2.0))
    if bad.any():
        raise ValueError(f"CheXpert codes must be 1, 0, -1, 2 or NaN; got {sorted(set(codes[bad].tolist()))}")
    return np.isin(codes, (1.0, -1.0)).astype(np.float32)


class TokenLabeler(nn.Module):
    """A CheXbert-sized-down labeler: word ids (B, L) -> 14 logits (B, 14), one sigmoid head per CheXpert label.

    embed (V, E) -> Conv1d(E -> C, kernel k, same padding) -> ReLU -> masked mean (``pool="mean"``) or max over
    tokens (B, C) -> Linear(C -> 14). Head j predicts P(label j is positive or uncertain | report). Mean pooling
    (default) lets every mention of a finding carry attribution; max pooling only the strongest. Words are
    lower-cased :data:`WORD` tokens; ids 0 = <pad>, 1 = <unk>. Build it with :meth:`from_reports`.
    """

    PAD, UNK = 0, 1

    def __init__(self, vocab: Sequence[str], dim: int = 32, channels: int = 64, kernel_size: int = 3,
                 pool: str = "mean"):
        super().__init__()
        if pool not in ("max", "mean"):
            raise ValueError(f"TokenLabeler.pool must be 'max' or 'mean', got {pool!r}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"TokenLabeler.kernel_size must be odd (same padding), got {kernel_size}")
        self.vocab = ["<pad>", "<unk>"] + [w for w in vocab if w not in ("<pad>", "<unk>")]
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.pool = pool
        self.embed = nn.Embedding(len(self.vocab), dim, padding_idx=self.PAD)
        self.conv = nn.Conv1d(dim, channels, kernel_size, padding=kernel_size // 2)
        self.head = nn.Linear(channels, len(CHEXPERT_LABELS))

    @classmethod
    def from_reports(cls, reports: Sequence[str], min_count: int = 1, **kwargs) -> "TokenLabeler":
        """A labeler whose vocabulary is the words seen ≥ ``min_count`` times in ``reports`` (sorted, so seeded)."""
        counts = Counter(w for r in reports for w in WORD.findall(r.lower()))
        return cls(sorted(w for w, c in counts.items() if c >= min_count), **kwargs)

    def encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """texts -> (ids (B, L) long, mask (B, L) bool), right-padded to the longest. An empty text is an error."""
        rows = []
        for i, t in enumerate(texts):
            words = WORD.findall(str(t).lower())
            if not words:
                raise ValueError(f"TokenLabeler: text {i} has no word to label: {t!r}")
            rows.append([self.index.get(w, self.UNK) for w in words])
        L = max(len(r) for r in rows)
        ids = torch.full((len(rows), L), self.PAD, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
        return ids.to(self.embed.weight.device), (ids != self.PAD).to(self.embed.weight.device)

    def forward_embeddings(self, e: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L, E) embeddings, (B, L) bool -> logits (B, 14). The entry point of IG."""
        h = F.relu(self.conv((e * mask[..., None]).transpose(1, 2))).transpose(1, 2)   # (B, L, C); pads read as 0
        if self.pool == "max":
            pooled = h.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)
        else:
            pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        return self.head(pooled)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = ids != self.PAD if mask is None else mask
        return self.forward_embeddings(self.embed(ids), mask)

    @torch.no_grad()
    def predict(self, texts: Sequence[str]) -> torch.Tensor:
        """P(positive or uncertain) per label: (B, 14)."""
        return torch.sigmoid(self(*self.encode(texts)))

    def fit(self, reports: Sequence[str], codes, epochs: int = 30, lr: float = 1e-2, batch_size: int = 32,
            seed: int = 0) -> list[float]:
        """Train on (report, CheXpert codes (n, 14)) pairs with BCE on :func:`positive_or_uncertain` targets.

        Adam, shuffled mini-batches (seeded). Returns the mean loss of each epoch.
        """
        targets = torch.from_numpy(positive_or_uncertain(codes))
        if len(reports) != len(targets):
            raise ValueError(f"TokenLabeler.fit: {len(reports)} reports but {len(targets)} label rows")
        g = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        history = []
        self.train()
        for _ in range(epochs):
            order = torch.randperm(len(reports), generator=g).tolist()
            total = 0.0
            for k in range(0, len(order), batch_size):
                idx = order[k:k + batch_size]
                ids, mask = self.encode([reports[i] for i in idx])
                loss = F.binary_cross_entropy_with_logits(self(ids, mask), targets[idx].to(ids.device))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            history.append(total / len(reports))
        self.eval()
        return history


# ---- integrated gradients ------------------------------------------------------------------------------------
def _rule(steps: int, rule: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(α_k, w_k) of a Riemann rule over ``steps`` equal intervals of [0, 1]."""
    m = steps
    if rule == "trapezoid":
        alphas = torch.arange(m + 1, dtype=torch.float64) / m
        weights = torch.full((m + 1,), 1.0 / m, dtype=torch.float64)
        weights[0] = weights[-1] = 0.5 / m
    elif rule == "left":
        alphas, weights = torch.arange(m, dtype=torch.float64) / m, torch.full((m,), 1.0 / m, dtype=torch.float64)
    elif rule == "right":
        alphas = torch.arange(1, m + 1, dtype=torch.float64) / m
        weights = torch.full((m,), 1.0 / m, dtype=torch.float64)
    elif rule == "midpoint":
        alphas = (torch.arange(m, dtype=torch.float64) + 0.5) / m
        weights = torch.full((m,), 1.0 / m, dtype=torch.float64)
    else:
        raise ValueError(f"integrated_gradients: rule must be one of {RULES}, got {rule!r}")
    return alphas, weights


def integrated_gradients(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                         baseline: torch.Tensor | None = None, steps: int = 50, rule: str = "trapezoid",
                         batch_size: int | None = None) -> torch.Tensor:
    """IG of a scalar function f at ``x`` from ``baseline`` (zeros if None): a tensor shaped like ``x``.

    ``f`` takes a batch of path points (S, *x.shape) and returns (S,) scalars (e.g. one label's logit for S copies
    of a report's embeddings (L, E)). The path points x₀ + α_k(x − x₀) of the rule (see the module docstring) are
    evaluated ``batch_size`` at a time (all at once if None). Summing the result over everything gives
    ≈ f(x) − f(x₀) (completeness).
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"integrated_gradients: x must be a floating-point tensor, got "
                         f"{x.dtype if isinstance(x, torch.Tensor) else type(x).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"integrated_gradients: steps must be a positive int, got {steps!r}")
    x = x.detach()
    x0 = torch.zeros_like(x) if baseline is None else baseline.detach().to(x.dtype)
    if x0.shape != x.shape:
        raise ValueError(f"integrated_gradients: baseline {tuple(x0.shape)} and x {tuple(x.shape)} differ in shape")
    alphas, weights = _rule(steps, rule)
    alphas, weights = alphas.to(x.device, x.dtype), weights.to(x.device, x.dtype)
    delta = x - x0
    grad_sum = torch.zeros_like(x)
    chunk = len(alphas) if batch_size is None else int(batch_size)
    for a in range(0, len(alphas), chunk):
        al = alphas[a:a + chunk].view(-1, *([1] * x.ndim))
        points = (x0 + al * delta).requires_grad_(True)               # (S, *x.shape)
        out = f(points)
        if out.shape != (points.shape[0],):
            raise ValueError(f"integrated_gradients: f must return one scalar per path point "
                             f"({points.shape[0]},), got {tuple(out.shape)}")
        (grads,) = torch.autograd.grad(out.sum(), points)            # path points are independent: sum is safe
        w = weights[a:a + chunk].view(-1, *([1] * x.ndim))
        grad_sum = grad_sum + (w * grads).sum(0)
    return delta * grad_sum


def _normalise(a: torch.Tensor, how: str) -> torch.Tensor:
    if how == "none":
        return a
    scale = a.norm() if how == "l2" else a.abs().max()
    return a / scale if float(scale) > 0 else a


def token_attributions(labeler: TokenLabeler, text: str, labels: Sequence[int] | None = None,
                       config: TLWConfig = TLWConfig()) -> tuple[np.ndarray, list[int]]:
    """Algorithm 1, lines 1–6: per-word scores c (L,) = max over the attributed labels of their normalised IG maps.

    ``labels``: indices (into CheXpert's 14, only the first 13 are used) of the report's positive/uncertain
    labels; ``None`` = the labeler's own predictions (p > 0.5). Per label: IG of its logit with respect to the
    word embeddings (L, E), summed over E, normalised (``config.normalise``). Words with no attributed label keep
    c = −1 (line 1). Returns (c, the label indices used).
    """
    if config.rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {config.rule!r}")
    was_training = labeler.training
    labeler.eval()                                       # IG of a deterministic function
    try:
        ids, mask = labeler.encode([text])
        if labels is None:
            with torch.no_grad():
                probs = torch.sigmoid(labeler(ids, mask))[0]
            labels = [j for j in range(len(TLW_LABELS)) if float(probs[j]) > 0.5]
        labels = [int(j) for j in labels]
        for j in labels:
            if not 0 <= j < len(CHEXPERT_LABELS):
                raise ValueError(f"token_attributions: label index {j} is outside CheXpert's 0..13")
        used = [j for j in labels if j < len(TLW_LABELS)]            # "No Finding" (13) is never attributed
        L = ids.shape[1]
        c = torch.full((L,), -1.0)
        if not used:
            return c.numpy(), used
        with torch.no_grad():
            e = labeler.embed(ids)[0]                                 # (L, E)
        x0 = (torch.zeros_like(e) if config.baseline == "zero"          # "a report of unknown words" otherwise
              else labeler.embed.weight[labeler.UNK].detach().expand_as(e).clone())
        m = mask.expand(config.steps + 1, -1)
        for j in used:
            def f(points, j=j):
                return labeler.forward_embeddings(points, m[:points.shape[0]])[:, j]
            a = integrated_gradients(f, e, x0, steps=config.steps, rule=config.rule).sum(-1)   # (L,)
            c = torch.maximum(c, _normalise(a, config.normalise))
        return c.detach().numpy(), used
    finally:
        labeler.train(was_training)


# ---- smoothing and sentences ---------------------------------------------------------------------------------
def gaussian_smooth(scores, sigma: float = 1.0) -> np.ndarray:
    """Algorithm 1, line 7: scores (L,) convolved with g_k ∝ exp(−k²/2σ²), |k| ≤ ⌈3σ⌉, weights summing to 1.

    At the ends of the sequence the kernel is renormalised over the positions that exist (a constant stays
    constant). σ = 0 returns the scores unchanged.
    """
    s = np.asarray(scores, dtype=float)
    if s.ndim != 1:
        raise ValueError(f"gaussian_smooth: scores must be (L,), got {s.shape}")
    if sigma < 0:
        raise ValueError(f"gaussian_smooth: sigma must be >= 0, got {sigma}")
    if sigma == 0 or len(s) == 0:
        return s.copy()
    r = int(math.ceil(3 * sigma))
    k = np.arange(-r, r + 1)
    g = np.exp(-k ** 2 / (2 * sigma ** 2)) / math.sqrt(2 * math.pi * sigma ** 2)    # the printed g_k (symmetric)
    num = np.convolve(np.pad(s, r), g, mode="valid")                              # Σ_k g_k s_{i+k}, zeros outside
    den = np.convolve(np.pad(np.ones_like(s), r), g, mode="valid")                # Σ_k g_k over positions inside
    return num / den


def sentence_weights(scores, sentence_of_word: Sequence[int], threshold: float = 0.4,
                     lam: float = 1.75) -> tuple[list[float], list[bool]]:
    """Algorithm 1, lines 8–13: every word of a sentence with any score > ``threshold`` gets ``lam``, others 1.

    scores (L,), sentence_of_word (L,) sentence index of each word -> (weights (L,) list, key flag per sentence).
    """
    s = np.asarray(scores, dtype=float)
    sent = np.asarray(sentence_of_word, dtype=int)
    if s.shape != sent.shape or s.ndim != 1:
        raise ValueError(f"sentence_weights: {s.shape[0] if s.ndim else s.shape} scores for "
                         f"{len(sent)} sentence indices")
    n = int(sent.max()) + 1 if len(sent) else 0
    key = [bool((s[sent == i] > threshold).any()) for i in range(n)]
    return [float(lam) if key[i] else 1.0 for i in sent], key


def report_words(text: str) -> tuple[list[str], list[tuple[int, int]], list[int], list[str]]:
    """The word tokens of ``text`` with their character spans and sentence indices, and the sentences.

    -> (words, spans [(start, end)], sentence index per word, sentences). Sentences are
    :func:`rrg_lite.metrics.text.split_sentences`' (split at . ! ? ; and newlines); a sentence without a word
    token is kept but has no words.
    """
    if not isinstance(text, str) or not WORD.search(text):
        raise ValueError(f"report_words: the report has no word token: {text!r}")
    sentences = split_sentences(text)
    bounds, pos = [], 0
    for s in sentences:                                   # split_sentences only drops whitespace: find in order
        start = text.index(s, pos)
        bounds.append((start, start + len(s)))
        pos = start + len(s)
    words, spans, sent_of = [], [], []
    for m in WORD.finditer(text):
        i = next(k for k, (a, b) in enumerate(bounds) if a <= m.start() < b)
        words.append(m.group())
        spans.append((m.start(), m.end()))
        sent_of.append(i)
    return words, spans, sent_of, sentences


@dataclass
class TokenWeights:
    """Algorithm 1's output for one report, per word token (see :func:`report_words`).

    weights: c per word (λ or 1). scores: the smoothed attributions (L,). raw: before smoothing.
    key_sentences: flag per sentence. labels: the CheXpert label indices attributed.
    """

    text: str
    words: list[str]
    word_spans: list[tuple[int, int]]
    sentence_of_word: list[int]
    sentences: list[str]
    weights: list[float]
    key_sentences: list[bool]
    scores: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    raw: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    labels: list[int] = field(default_factory=list)

    @property
    def num_key_sentences(self) -> int:
        return int(sum(self.key_sentences))

    @property
    def spans(self) -> list[tuple[int, int, float]]:
        """(start, end, weight) per word, for :func:`rrg_lite.mllm.prompt.token_weights_from_spans`."""
        return [(a, b, w) for (a, b), w in zip(self.word_spans, self.weights)]


def token_weights(text: str, labeler: TokenLabeler, codes=None, config: TLWConfig = TLWConfig()) -> TokenWeights:
    """Algorithm 1 on one report: -> :class:`TokenWeights` (weights per word token of ``text``).

    ``codes``: the report's CheXpert code vector (14,) (1, 0, −1, NaN; from CheXbert, the rule-based labeler or
    the world), or ``None`` for the labeler's own predictions (p > 0.5).
    """
    words, spans, sent_of, sentences = report_words(text)
    labels = None
    if codes is not None:
        labels = np.flatnonzero(positive_or_uncertain(np.asarray(codes, dtype=float).reshape(1, -1))[0]).tolist()
    raw, used = token_attributions(labeler, text, labels, config)
    if len(raw) != len(words):            # the labeler tokenises with WORD too: a mismatch is a bug, say so
        raise RuntimeError(f"token_weights: labeler gave {len(raw)} tokens for {len(words)} words of {text!r}")
    scores = gaussian_smooth(raw, config.sigma)
    weights, key = sentence_weights(scores, sent_of, config.threshold, config.lam)
    return TokenWeights(text, words, spans, sent_of, sentences, weights, key, scores, raw, used)


# ---- controls ----------------------------------------------------------------------------------------------
def random_sentence_weights(text: str, n_key: int, seed: int, lam: float = 1.75) -> TokenWeights:
    """The control for TLW: ``n_key`` sentences of ``text`` chosen at random (seeded) get λ, the others 1.

    Pass ``n_key = token_weights(...).num_key_sentences`` to match TLW's count report by report. Only sentences
    with words can be chosen; ``n_key`` larger than their number is an error.
    """
    words, spans, sent_of, sentences = report_words(text)
    candidates = sorted(set(sent_of))
    if not 0 <= n_key <= len(candidates):
        raise ValueError(f"random_sentence_weights: n_key {n_key} for a report of {len(candidates)} sentences")
    chosen = set(np.random.default_rng(seed).choice(candidates, size=n_key, replace=False).tolist())
    key = [i in chosen for i in range(len(sentences))]
    weights = [float(lam) if key[i] else 1.0 for i in sent_of]
    return TokenWeights(text, words, spans, sent_of, sentences, weights, key)


def oracle_weights(sentences: Sequence[str], is_key: Sequence[bool], lam: float = 1.75,
                   separator: str = " ") -> TokenWeights:
    """The oracle: the world's own key-sentence tags instead of a labeler + IG.

    ``sentences`` and ``is_key`` (one flag each, e.g. from :func:`world_key_sentences`); the text is
    ``separator.join(sentences)`` — the world's section text — and the weights are per word of that text.
    """
    if len(sentences) != len(is_key):
        raise ValueError(f"oracle_weights: {len(sentences)} sentences but {len(is_key)} key flags")
    text = separator.join(sentences)
    words, spans, _, _ = report_words(text)
    bounds, pos = [], 0
    for s in sentences:
        bounds.append((pos, pos + len(s)))
        pos += len(s) + len(separator)
    sent_of = [next(k for k, (a, b) in enumerate(bounds) if a <= st < b) for st, _ in spans]
    weights = [float(lam) if is_key[i] else 1.0 for i in sent_of]
    return TokenWeights(text, words, spans, sent_of, list(sentences), weights, [bool(k) for k in is_key])


def world_key_sentences(report, sections: Sequence[str] = ("findings", "impression"),
                        include_agnostic: bool = True) -> tuple[list[str], list[bool]]:
    """A world :class:`~rrg_lite.world.report.Report` -> (sentence texts, key flags) of ``sections``.

    Key = the sentence states a present finding, definite or uncertain: tag ``"finding"``, or a ``"comparison"``
    about a finding that is still there ("the left pleural effusion has decreased"; not "… has resolved", which
    negates its label). These are the sentences a labeler reads as positive/uncertain, the ones Algorithm 1 means
    to find. Negatives, normals and input-agnostic sentences are not key.
    """
    sents = [s for s in report.sentences if s.section in sections and (include_agnostic or not s.agnostic)]
    key = [s.tag == "finding" or (s.tag == "comparison" and bool(s.finding_ids) and not s.negated) for s in sents]
    return [s.text for s in sents], key


# ---- the two loss forms ------------------------------------------------------------------------------------
def tlw_loss(losses: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor | None = None, form: str = "paper",
             lam: float = 1.75) -> torch.Tensor:
    """Per-token losses ℓ (B, T), weights c (B, T) (λ on key tokens, 1 elsewhere), mask (B, T) bool -> scalar.

    ``"paper"``: Σ m·c·ℓ / Σ m (Eq. 10 averaged over the N target tokens).
    ``"code"``: Σ m·ℓ / Σ m + (λ − 1)·Σ m·s·ℓ / Σ m·s with s = [c > 1] the key mask (0 if no key token).
    """
    if form not in LOSS_FORMS:
        raise ValueError(f"tlw_loss: form must be one of {LOSS_FORMS}, got {form!r}")
    if losses.shape != weights.shape or losses.ndim != 2:
        raise ValueError(f"tlw_loss: losses {tuple(losses.shape)} and weights {tuple(weights.shape)} must be one "
                         "(B, T) shape")
    m = torch.ones_like(losses) if mask is None else mask.to(losses.dtype)
    if m.shape != losses.shape:
        raise ValueError(f"tlw_loss: mask {tuple(m.shape)} does not match losses {tuple(losses.shape)}")
    n = m.sum().clamp_min(1.0)
    if form == "paper":
        return (m * weights * losses).sum() / n
    s = m * (weights > 1).to(losses.dtype)
    key = (s * losses).sum() / s.sum() if float(s.sum()) > 0 else losses.new_zeros(())
    return (m * losses).sum() / n + (lam - 1.0) * key


def tlw_lm_loss(logits: torch.Tensor, labels: torch.Tensor, loss_weights: torch.Tensor, form: str = "paper",
                lam: float = 1.75) -> torch.Tensor:
    """:func:`tlw_loss` on a causal LM's output: logits (B, S, V), labels (B, S) (−100 = no loss), loss_weights
    (B, S) aligned with ``labels`` (as :func:`rrg_lite.mllm.prompt.encode_example` builds them).

    ``"paper"`` is :func:`rrg_lite.mllm.losses.weighted_lm_loss` (norm "mean"), the MLLM's own weighted loss;
    ``"code"`` composes the two terms from :func:`rrg_lite.mllm.losses.per_token_loss` (the shift is there).
    """
    if form == "paper":
        return weighted_lm_loss(logits, labels, loss_weights, norm="mean")
    if loss_weights.shape != labels.shape:
        raise ValueError(f"tlw_lm_loss: loss_weights {tuple(loss_weights.shape)} must match labels "
                         f"{tuple(labels.shape)}")
    losses = per_token_loss(logits, labels)                                  # (B, S-1), for labels[:, 1:]
    mask = labels[:, 1:] != IGNORE_INDEX
    return tlw_loss(losses, loss_weights[:, 1:].to(losses.device, losses.dtype), mask, form=form, lam=lam)
