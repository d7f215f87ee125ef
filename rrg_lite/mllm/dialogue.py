"""Multi-turn chat examples with the loss on assistant turns only (M4CXR §III-C multi-turn CoT, ViPET stage 3).

A conversation is a list of messages, the images written as placeholders in the user turns::

    messages = [{"role": "user", "content": "Which of the following findings are present? <image> Findings: ..."},
                {"role": "assistant", "content": "Cardiomegaly, pleural effusion."},            # turn 1
                {"role": "user", "content": "Based on the previous conversation, describe the findings."},
                {"role": "assistant", "content": "The heart is enlarged. ..."}]                 # turn 2
    ex = encode_dialogue(tok, messages, num_visual_tokens={"<image>": 32}, num_images={"<image>": 1})
    ex["labels"]            # token ids on both assistant turns (+ the end-of-turn token), -100 elsewhere
    ex["assistant_spans"]   # [(start, end), ...] of every assistant turn in input_ids

``train_on="assistant"`` (default) learns every assistant turn, ``train_on="last"`` only the final one (the
M4CXR turn-2-only ablation: the findings list is context, not a target). A conversation that ends with a user
turn is a generation prompt: the template's generation prompt is appended and there are no labels (M4CXR feeds
the model's *own* turn-1 answer back this way: append it as an assistant message, then the turn-2 question).

How turn boundaries are found, for any chat template (the word-level one of :mod:`rrg_lite.mllm.text`,
Llama-3's, Mistral's, ...): the whole conversation is rendered and tokenized once, ``full``. For assistant turn i
the template renders two prefixes,

    before_i = tokens(render(messages[:i], add_generation_prompt=True))    # ... up to "assistant:" / its header
    upto_i   = tokens(render(messages[:i + 1]))                            # ... through this turn's end token

and turn i is ``full[len(before_i):len(upto_i)]``: its content plus whatever the template closes a turn with
(``</s>``, ``<|eot_id|>``). This holds only if both prefixes are token prefixes of ``full`` — true for the usual
templates, false for one that rewrites earlier turns (e.g. drops past reasoning) or whose tokenizer merges
across the boundary — so it is *checked*, and a violation is a ``ValueError`` naming the turn, never a silently
shifted label.

Placeholders are expanded to K copies after the boundaries are found (as in
:func:`rrg_lite.mllm.prompt.encode_example`); ``assistant_spans`` are in the expanded positions.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from rrg_lite.mllm.prompt import IGNORE_INDEX, expand_placeholders, placeholder_expansion

__all__ = ["ROLES", "TRAIN_ON", "encode_dialogue", "assistant_token_spans"]

ROLES = ("system", "user", "assistant")
#: Which assistant turns carry labels: every one, or only the final one.
TRAIN_ON = ("assistant", "last")


def _check_messages(messages: Sequence[Mapping[str, str]], system: str | None) -> list[dict]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise ValueError(f"message {i} must be a dict with 'role' and 'content', got {m!r}")
        if m["role"] not in ROLES:
            raise ValueError(f"message {i} has role {m['role']!r}; roles are {ROLES}")
        if not isinstance(m["content"], str):
            raise ValueError(f"message {i} content must be a string, got {type(m['content']).__name__}")
        if m["role"] == "system" and i != 0:
            raise ValueError(f"message {i}: a system message may only come first")
        out.append({"role": m["role"], "content": m["content"]})
    if system is not None:
        if out[0]["role"] == "system":
            raise ValueError("system= given but the messages already start with a system message")
        out.insert(0, {"role": "system", "content": system})
    turns = [m for m in out if m["role"] != "system"]
    if not turns or turns[0]["role"] != "user":
        raise ValueError("the conversation must start (after an optional system message) with a user turn")
    if out[-1]["role"] == "system":
        raise ValueError("the conversation ends with a system message")
    return out


def _render(tokenizer, messages: list[dict], add_generation_prompt: bool) -> list[int]:
    try:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=False)
    except Exception as err:  # a template's own raise_exception (e.g. roles must alternate)
        raise ValueError(f"the chat template refused the conversation ({len(messages)} messages): {err}") from err
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def assistant_token_spans(tokenizer, messages: list[dict]) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of the rendered conversation and the ``(start, end)`` of each assistant turn (unexpanded).

    ``messages`` as checked by :func:`encode_dialogue`. Raises ``ValueError`` if the template is not
    prefix-stable at an assistant turn (see the module docstring).
    """
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("encode_dialogue needs a tokenizer with a chat_template")
    generation = messages[-1]["role"] == "user"
    full = _render(tokenizer, messages, add_generation_prompt=generation)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:i], add_generation_prompt=True)
        upto = _render(tokenizer, messages[: i + 1], add_generation_prompt=False)
        for name, prefix in (("the conversation before it (with the generation prompt)", before),
                             ("the conversation through it", upto)):
            if full[: len(prefix)] != prefix:
                at = next((j for j, (a, b) in enumerate(zip(full, prefix)) if a != b), min(len(full), len(prefix)))
                raise ValueError(
                    f"the chat template is not prefix-stable at assistant turn {i}: {name} does not tokenize to a "
                    f"prefix of the whole conversation (first difference at token {at}); the turn boundaries "
                    "cannot be found — use a template that renders earlier turns unchanged"
                )
        if len(upto) <= len(before):
            raise ValueError(f"assistant turn {i} renders to no tokens after the generation prompt")
        spans.append((len(before), len(upto)))
    return full, spans


def encode_dialogue(tokenizer, messages: Sequence[Mapping[str, str]], *, num_visual_tokens: Mapping[str, int],
                    num_images: Mapping[str, int] | None = None, system: str | None = None,
                    max_length: int | None = None, train_on: str = "assistant") -> dict:
    """Token ids and labels for one conversation (see the module docstring).

    Args:
        messages: ``[{"role": "user" | "assistant" | "system", "content": str}, ...]``, starting with a user turn
            (after an optional system message); placeholders (``<image>``) in user turns, one per image.
        num_visual_tokens / num_images: as in :func:`rrg_lite.mllm.prompt.encode_example` (over all turns).
        system: a system prompt put in front (or give it as the first message).
        max_length: cut the sequence's end to fit; an error if nothing of the last trained turn would remain.
        train_on: ``"assistant"`` (every assistant turn) or ``"last"`` (the final assistant turn only).

    Returns ``{"input_ids": (S,), "attention_mask": (S,), "labels": (S,) (absent when the conversation ends with
    a user turn), "assistant_spans": [(start, end), ...]}``.
    """
    if train_on not in TRAIN_ON:
        raise ValueError(f"train_on must be one of {TRAIN_ON}, got {train_on!r}")
    messages = _check_messages(messages, system)
    generation = messages[-1]["role"] == "user"
    ids, spans = assistant_token_spans(tokenizer, messages)
    expand = placeholder_expansion(tokenizer, num_visual_tokens)
    for start, end in spans:
        if any(i in expand for i in ids[start:end]):
            raise ValueError("an assistant turn contains an image placeholder; images go in user turns")
    trained = [] if generation or not spans else (spans if train_on == "assistant" else spans[-1:])
    label_of = [IGNORE_INDEX] * len(ids)
    for start, end in trained:
        label_of[start:end] = ids[start:end]

    expanded, source = expand_placeholders(ids, expand, num_images, f"{len(messages)}-message conversation")
    labels = [label_of[p] for p in source]
    first = {}                                    # unexpanded position -> its first expanded position
    for j, p in enumerate(source):
        first.setdefault(p, j)
    new_spans = [(first[s], first[e - 1] + 1) for s, e in spans]
    if max_length is not None and len(expanded) > max_length:
        if generation:
            raise ValueError(f"the conversation is {len(expanded)} tokens (with visual tokens) > max_length={max_length}")
        last_start = first[trained[-1][0]] if trained else len(expanded)
        if max_length <= last_start:
            raise ValueError(f"the conversation up to its last trained assistant turn is {last_start} tokens "
                             f"(with visual tokens) >= max_length={max_length}: no target token would remain")
        expanded, labels = expanded[:max_length], labels[:max_length]
        new_spans = [(s, min(e, max_length)) for s, e in new_spans if s < max_length]

    out = {"input_ids": torch.tensor(expanded)}
    out["attention_mask"] = torch.ones_like(out["input_ids"])
    if not generation:
        out["labels"] = torch.tensor(labels)
    out["assistant_spans"] = new_spans
    return out
