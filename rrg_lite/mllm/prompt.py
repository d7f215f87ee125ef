"""Turning (prompt, images, target report) into token ids and labels, and padding them into batches.

One example::

    ex = encode_example(tokenizer, "Write the findings. <image>", "The lungs are clear.",
                        num_visual_tokens={"<image>": 32}, num_images={"<image>": 1})
    ex["input_ids"]   # [bos, chat..., <image> x 32, ..., 'assistant', ':', The, lungs, are, clear, ., </s>]
    ex["labels"]      # -100 on every prompt and placeholder position, the target ids (and </s>) after

Each placeholder written once in the prompt is expanded to K copies here — K visual tokens will replace them
one for one — so positions, attention mask and labels already have their final length before the model runs.
"""
from __future__ import annotations

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


def encode_example(tokenizer, prompt: str, target: str | None = None, *,
                   num_visual_tokens: Mapping[str, int], num_images: Mapping[str, int] | None = None,
                   chat: bool = True, system: str | None = None, max_length: int | None = None) -> dict:
    """Token ids and labels for one example.

    Args:
        prompt: text with one placeholder (e.g. ``<image>``) per image / region slot, in the order the
            images are given to the model.
        target: the report to learn (``None`` for generation: no labels, no EOS).
        num_visual_tokens: placeholder string -> K (tokens that the slot's tokenizer produces per image).
        num_images: placeholder string -> number of images supplied; a mismatch with the prompt is an error.
        max_length: truncate the *target* (never the prompt: it holds the placeholders) to fit.

    Returns ``{"input_ids": LongTensor (S,), "attention_mask": (S,), "labels": (S,) or absent}``.
    """
    text = format_prompt(tokenizer, prompt, chat=chat, system=system)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    vocab = tokenizer.get_vocab()
    expand = {}
    for token, k in num_visual_tokens.items():
        if token not in vocab:
            raise ValueError(f"the tokenizer does not know the placeholder {token!r}; call add_special_tokens first")
        expand[vocab[token]] = (token, int(k))
    counts = {token: 0 for token in num_visual_tokens}
    prompt_ids: list[int] = []
    for i in ids:
        if i in expand:
            token, k = expand[i]
            counts[token] += 1
            prompt_ids.extend([i] * k)
        else:
            prompt_ids.append(i)
    if num_images is not None:
        for token, n in num_images.items():
            if counts.get(token, 0) != n:
                raise ValueError(
                    f"the prompt has {counts.get(token, 0)} {token} placeholder(s) but {n} image(s) were given: "
                    f"{prompt!r}"
                )
    if max_length is not None and len(prompt_ids) >= max_length:
        raise ValueError(f"the prompt alone is {len(prompt_ids)} tokens (with visual tokens) >= max_length={max_length}")
    out = {"input_ids": prompt_ids}
    if target is not None:
        target_ids = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        if max_length is not None:
            target_ids = target_ids[: max_length - len(prompt_ids)]
        out["input_ids"] = prompt_ids + target_ids
        out["labels"] = torch.tensor([IGNORE_INDEX] * len(prompt_ids) + target_ids)
    out["input_ids"] = torch.tensor(out["input_ids"])
    out["attention_mask"] = torch.ones_like(out["input_ids"])
    return out


VISUAL_KEYS = ("images", "features", "visual_embeds")


class MLLMCollator:
    """Pads examples into a batch for :class:`rrg_lite.mllm.model.MultimodalLM`.

    ``padding_side="right"`` for training, ``"left"`` for generation (new tokens follow the last prompt token).
    Visual inputs (``images``, ``features``, ``visual_embeds``; a tensor (n_i, ...) or a dict slot -> tensor)
    are kept as per-sample lists; samples may have different numbers of images. Other keys are dropped unless
    listed in ``keep`` (they are then returned as lists, e.g. reference reports for evaluation).
    """

    def __init__(self, pad_token_id: int, padding_side: str = "right", keep: Sequence[str] = ()):
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.pad_token_id, self.padding_side, self.keep = pad_token_id, padding_side, tuple(keep)

    def _pad(self, seqs: list[torch.Tensor], value: int) -> torch.Tensor:
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
