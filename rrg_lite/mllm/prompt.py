"""Turning (prompt, images, target report) into token ids and labels, and padding them into batches.

One example::

    ex = encode_example(tokenizer, "Write the findings. <image>", "The lungs are clear.",
                        num_visual_tokens={"<image>": 32}, num_images={"<image>": 1})
    ex["input_ids"]   # [bos, chat..., <image> x 32, ..., 'assistant', ':', The, lungs, are, clear, ., </s>]
    ex["labels"]      # -100 on every prompt and placeholder position, the target ids (and </s>) after

With ``target_weights=`` (one float per target token incl. EOS, see :func:`token_weights_from_spans`) the example
also holds ``ex["loss_weights"]`` (S,), 0 on the prompt, for the LLM-RG4 weighted loss
(:mod:`rrg_lite.mllm.losses`). Multi-turn conversations: :mod:`rrg_lite.mllm.dialogue`.

Each placeholder written once in the prompt is expanded to K copies here — K visual tokens will replace them
one for one — so positions, attention mask and labels already have their final length before the model runs.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch

IGNORE_INDEX = -100


def format_prompt(tokenizer, prompt: str, chat: bool = True, system: str | None = None) -> str:
    """The prompt as the LM sees it: the tokenizer's chat template (user turn + generation prompt) or raw text.

    Raw text (``chat=False``, LLaVA stage-1 style "image then report") gets the BOS token in front.
    """
    if chat:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("chat=True but the tokenizer has no chat_template; pass chat=False or set one")
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return (tokenizer.bos_token or "") + prompt


def placeholder_expansion(tokenizer, num_visual_tokens: Mapping[str, int]) -> dict[int, tuple[str, int]]:
    """Placeholder token id -> (placeholder string, K copies); a placeholder the tokenizer lacks is an error."""
    vocab = tokenizer.get_vocab()
    expand = {}
    for token, k in num_visual_tokens.items():
        if token not in vocab:
            raise ValueError(f"the tokenizer does not know the placeholder {token!r}; call add_special_tokens first")
        expand[vocab[token]] = (token, int(k))
    return expand


def expand_placeholders(ids: Sequence[int], expand: Mapping[int, tuple[str, int]],
                        num_images: Mapping[str, int] | None, what: str) -> tuple[list[int], list[int]]:
    """Each placeholder id in ``ids`` -> K copies (``expand`` from :func:`placeholder_expansion`).

    Returns ``(expanded ids, source)`` with ``source[j]`` the index in ``ids`` that expanded position j came from
    (so labels or spans computed on ``ids`` can be carried over). ``num_images`` (placeholder -> images given)
    is checked against the placeholders found; ``what`` names the text in the error.
    """
    counts = {token: 0 for token, _ in expand.values()}
    out: list[int] = []
    source: list[int] = []
    for pos, i in enumerate(ids):
        k = 1
        if i in expand:
            token, k = expand[i]
            counts[token] += 1
        out.extend([i] * k)
        source.extend([pos] * k)
    if num_images is not None:
        for token, n in num_images.items():
            if counts.get(token, 0) != n:
                raise ValueError(f"the prompt has {counts.get(token, 0)} {token} placeholder(s) but {n} image(s) "
                                 f"were given: {what}")
    return out, source


def target_token_ids(tokenizer, target: str) -> list[int]:
    """The target's token ids as :func:`encode_example` learns them: the text's tokens, then EOS."""
    return tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def token_weights_from_spans(tokenizer, target: str, spans: Sequence[tuple[int, int, float]], default: float = 1.0,
                             eos_weight: float | None = None) -> list[float]:
    """Per-token weights for :func:`encode_example`'s ``target_weights`` from weighted character spans of ``target``.

    ``spans``: ``(start, end, weight)`` character ranges ``target[start:end]`` (e.g. LLM-RG4's key sentences with
    λ = 1.75). A token takes the largest weight among the spans its non-space characters overlap, ``default``
    when it overlaps none; the EOS token takes ``eos_weight`` (``default`` if None). Returns a list as long as
    :func:`target_token_ids` (tokens + EOS). Needs a fast tokenizer (character offsets).
    """
    try:
        enc = tokenizer(target, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError as err:  # slow (Python) tokenizers have no offsets
        raise ValueError("token_weights_from_spans needs a fast tokenizer (character offsets)") from err
    for start, end, weight in spans:
        if not 0 <= start < end <= len(target):
            raise ValueError(f"span ({start}, {end}) is not a non-empty character range of a {len(target)}-character target")
        if weight < 0:
            raise ValueError(f"span ({start}, {end}) has a negative weight {weight}")
    weights = []
    for a, b in enc["offset_mapping"]:
        # Offsets of word pieces often include the space before the word: trim it so that the first word of a
        # sentence does not also count as the end of the previous one.
        while a < b and target[a].isspace():
            a += 1
        while b > a and target[b - 1].isspace():
            b -= 1
        hits = [w for s, e, w in spans if a < e and b > s]
        weights.append(float(max(hits)) if hits else float(default))
    return weights + [float(default if eos_weight is None else eos_weight)]


def encode_example(tokenizer, prompt: str, target: str | None = None, *,
                   num_visual_tokens: Mapping[str, int], num_images: Mapping[str, int] | None = None,
                   chat: bool = True, system: str | None = None, max_length: int | None = None,
                   target_weights: Sequence[float] | torch.Tensor | None = None) -> dict:
    """Token ids and labels for one example.

    Args:
        prompt: text with one placeholder (e.g. ``<image>``) per image / region slot, in the order the
            images are given to the model.
        target: the report to learn (``None`` for generation: no labels, no EOS).
        num_visual_tokens: placeholder string -> K (tokens that the slot's tokenizer produces per image).
        num_images: placeholder string -> number of images supplied; a mismatch with the prompt is an error.
        max_length: truncate the *target* (never the prompt: it holds the placeholders) to fit.
        target_weights: optional loss weight per target token (LLM-RG4 TLW), one per id of
            :func:`target_token_ids` — the target's tokens and its EOS; word- or sentence-level weights are
            mapped with :func:`token_weights_from_spans`. Truncated with the target.

    Returns ``{"input_ids": LongTensor (S,), "attention_mask": (S,), "labels": (S,) or absent,
    "loss_weights": float (S,) (0 on the prompt) only if target_weights}``.
    """
    text = format_prompt(tokenizer, prompt, chat=chat, system=system)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    expand = placeholder_expansion(tokenizer, num_visual_tokens)
    prompt_ids, _ = expand_placeholders(ids, expand, num_images, repr(prompt))
    if max_length is not None and len(prompt_ids) >= max_length:
        raise ValueError(f"the prompt alone is {len(prompt_ids)} tokens (with visual tokens) >= max_length={max_length}")
    if target is None and target_weights is not None:
        raise ValueError("target_weights given without a target (weights belong to target tokens)")
    out = {"input_ids": prompt_ids}
    if target is not None:
        target_ids = target_token_ids(tokenizer, target)
        weights = None
        if target_weights is not None:
            weights = [float(w) for w in (target_weights.tolist() if isinstance(target_weights, torch.Tensor)
                                          else target_weights)]
            if len(weights) != len(target_ids):
                raise ValueError(
                    f"target_weights has {len(weights)} entries but the target has {len(target_ids)} tokens "
                    "(its tokens + EOS); build them with target_token_ids / token_weights_from_spans"
                )
            if any(not math.isfinite(w) or w < 0 for w in weights):
                raise ValueError("target_weights must be finite and non-negative")
        if max_length is not None:
            target_ids = target_ids[: max_length - len(prompt_ids)]
            weights = weights[: len(target_ids)] if weights is not None else None
        out["input_ids"] = prompt_ids + target_ids
        out["labels"] = torch.tensor([IGNORE_INDEX] * len(prompt_ids) + target_ids)
        if weights is not None:
            out["loss_weights"] = torch.tensor([0.0] * len(prompt_ids) + weights, dtype=torch.float32)
    out["input_ids"] = torch.tensor(out["input_ids"])
    out["attention_mask"] = torch.ones_like(out["input_ids"])
    return out


VISUAL_KEYS = ("images", "features", "visual_embeds")


class MLLMCollator:
    """Pads examples into a batch for :class:`rrg_lite.mllm.model.MultimodalLM`.

    ``padding_side="right"`` for training, ``"left"`` for generation (new tokens follow the last prompt token).
    Visual inputs (``images``, ``features``, ``visual_embeds``; a tensor (n_i, ...) or a dict slot -> tensor)
    are kept as per-sample lists; samples may have different numbers of images. ``loss_weights`` (per-token
    loss weights, LLM-RG4 TLW) are padded with 0. Other keys are dropped unless listed in ``keep`` (they are
    then returned as lists, e.g. reference reports for evaluation).
    """

    def __init__(self, pad_token_id: int, padding_side: str = "right", keep: Sequence[str] = ()):
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.pad_token_id, self.padding_side, self.keep = pad_token_id, padding_side, tuple(keep)

    def _pad(self, seqs: list[torch.Tensor], value: int | float) -> torch.Tensor:
        length = max(len(s) for s in seqs)
        out = torch.full((len(seqs), length), value, dtype=seqs[0].dtype)
        for row, s in enumerate(seqs):
            if self.padding_side == "right":
                out[row, : len(s)] = s
            else:
                out[row, length - len(s):] = s
        return out

    def __call__(self, examples: list[dict]) -> dict:
        batch = {
            "input_ids": self._pad([e["input_ids"] for e in examples], self.pad_token_id),
            "attention_mask": self._pad([e["attention_mask"] for e in examples], 0),
        }
        if all("labels" in e for e in examples):
            batch["labels"] = self._pad([e["labels"] for e in examples], IGNORE_INDEX)
        with_weights = ["loss_weights" in e for e in examples]
        if any(with_weights):
            if not all(with_weights):
                raise ValueError("some examples in the batch have 'loss_weights' and others do not; give every "
                                 "example weights (all 1.0 = the plain loss) or none")
            batch["loss_weights"] = self._pad([e["loss_weights"] for e in examples], 0.0)
        for key in VISUAL_KEYS:
            present = [key in e for e in examples]
            if any(present):
                if not all(present):
                    raise ValueError(f"some examples in the batch have {key!r} and others do not")
                values = [e[key] for e in examples]
                if isinstance(values[0], Mapping):
                    batch[key] = {slot: [v[slot] for v in values] for slot in values[0]}
                else:
                    batch[key] = values
        for key in self.keep:
            batch[key] = [e.get(key) for e in examples]
        return batch
