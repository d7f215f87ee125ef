"""``MultimodalLM``: a vision encoder, visual tokenizers (projectors) and any Hugging Face causal LM.

The LLaVA recipe in one forward pass (shapes for a batch of B prompts of S tokens, LM width D)::

    input_ids (B, S)  --LM embedding-->  text_embeds (B, S, D)
    images    n_b per sample  --encoder-->  features (n, T, N, E)  --tokenizer(+question)-->  tokens (n, K, D)
    text_embeds with its placeholder positions overwritten by the tokens, in order  -->  LM  -->  logits, loss

The prompt already holds K copies of a slot's placeholder per image (see :mod:`rrg_lite.mllm.prompt`), so
visual tokens land at the placeholders' real positions: attention mask, positions and labels need no shifting.
Labels are forced to -100 on every placeholder position.

Slots: ``slots = {"image": "<image>", "region": "<region>"}`` maps a slot name to its placeholder token; each
slot has its own tokenizer in ``projectors`` and may share the ``encoder``. Visual inputs enter at one of three
depths, per slot:

- ``images``        raw pixels/voxels, (B, n, C, *spatial) or (B, n, T, C, *spatial), or a list of B tensors
                    (n_b, ...) — encoded, then tokenized;
- ``features``      pre-computed encoder outputs (B, n, T, N, E) or a list of (n_b, T, N, E) — tokenized only
                    (use this to encode a frozen encoder's features once, outside the training loop);
- ``visual_embeds`` ready tokens (B, n, K, D) or a list of (n_b, K, D) — spliced as they are (e.g. region
                    tokens made by a fusion module).

A bare tensor/list means slot ``"image"``; pass ``{"region": ...}`` for other slots.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from rrg_lite.mllm.attention import (QUERIES, VisualAttention, check_attentions, mean_attention_to, select_layers,
                                     visual_positions)
from rrg_lite.mllm.dialogue import encode_dialogue
from rrg_lite.mllm.losses import LOSS_WEIGHT_NORMS, per_token_loss, weighted_lm_loss
from rrg_lite.mllm.prompt import IGNORE_INDEX, encode_example
from rrg_lite.mllm.text import IMAGE_TOKEN, REGION_TOKEN, check_special_tokens

DEFAULT_SLOTS = {"image": IMAGE_TOKEN, "region": REGION_TOKEN}


def _per_sample(value, batch_size: int, what: str) -> list[torch.Tensor]:
    """A (B, n, ...) tensor or a list of B tensors (n_b, ...) -> list of B tensors."""
    if isinstance(value, torch.Tensor):
        if value.shape[0] != batch_size:
            raise ValueError(f"{what}: first dimension {value.shape[0]} != batch size {batch_size}")
        return list(value.unbind(0))
    value = list(value)
    if len(value) != batch_size:
        raise ValueError(f"{what}: {len(value)} entries for a batch of {batch_size} prompts")
    for i, v in enumerate(value):
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{what}[{i}] must be a tensor, got {type(v).__name__}")
    return value


def compact_rows(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move the positions where ``mask`` is True to the front of each row, keeping their order.

    x (B, S, D), mask (B, S) bool -> (B, L, D), (B, L) bool with L = the largest count of True in a row.
    """
    counts = mask.sum(1)
    length = max(int(counts.max()) if counts.numel() else 0, 1)
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :length]
    out = x.gather(1, order[..., None].expand(-1, -1, x.shape[-1]))
    out_mask = torch.arange(length, device=x.device)[None, :] < counts[:, None]
    return out * out_mask[..., None].to(out.dtype), out_mask


class MultimodalLM(nn.Module):
    """A multimodal causal LM around ``lm`` (a 🤗 causal LM, possibly wrapped by PEFT).

    Args:
        lm: the causal language model.
        tokenizer: its (text) tokenizer, with the placeholder tokens added.
        projectors: slot name -> visual tokenizer ``(n, T, N, E) [+ question] -> (n, K, D)``, or one module
            for slot ``"image"``.
        encoder: optional vision encoder ``(m, C, *spatial) -> (m, N, E)`` with attributes ``spatial_dims``
            and ``in_channels`` (and ``img_size`` to check shapes); shared by every slot.
        slots: slot name -> placeholder token (default ``{"image": "<image>", "region": "<region>"}``).
    """

    def __init__(self, lm, tokenizer, projectors: nn.Module | Mapping[str, nn.Module], encoder: nn.Module | None = None,
                 slots: Mapping[str, str] | None = None):
        super().__init__()
        if isinstance(projectors, nn.Module) and not isinstance(projectors, nn.ModuleDict):
            projectors = {"image": projectors}
        self.projectors = nn.ModuleDict(dict(projectors))
        self.slots = dict(slots or {k: v for k, v in DEFAULT_SLOTS.items() if k in self.projectors} or DEFAULT_SLOTS)
        unknown = set(self.projectors) - set(self.slots)
        if unknown:
            raise ValueError(f"projectors for unknown slots {sorted(unknown)}; slots are {self.slots}")
        self.lm = lm
        self.encoder = encoder
        self.tokenizer = tokenizer
        vocab_rows = lm.get_input_embeddings().num_embeddings
        ids = check_special_tokens(tokenizer, self.slots.values(), vocab_size=vocab_rows)
        self.slot_token_ids = {slot: ids[token] for slot, token in self.slots.items()}
        d = lm.get_input_embeddings().embedding_dim
        for slot, proj in self.projectors.items():
            out_dim = getattr(proj, "out_dim", d)
            if out_dim != d:
                raise ValueError(f"the {slot!r} tokenizer outputs width {out_dim} but the LM hidden size is {d}")

    # ----------------------------------------------------------------------------------------------- helpers
    @property
    def hidden_size(self) -> int:
        return self.lm.get_input_embeddings().embedding_dim

    def num_visual_tokens(self, slot: str = "image", num_frames: int = 1, num_patches: int | None = None) -> int:
        """K, the number of tokens one image of ``slot`` becomes (and of placeholders in the prompt)."""
        proj = self.projectors[slot]
        if num_patches is None and self.encoder is not None:
            num_patches = getattr(self.encoder, "num_patches", None)
        return proj.tokens_for(num_frames, num_patches) if hasattr(proj, "tokens_for") else proj.num_tokens

    def encode_example(self, prompt: str, target: str | None = None, num_images: Mapping[str, int] | int = 1,
                       num_frames: int = 1, num_patches: int | None = None, **kwargs) -> dict:
        """:func:`rrg_lite.mllm.prompt.encode_example` with this model's tokenizer and token counts.

        ``num_images``: an int (slot "image") or slot name -> count. Slots absent from the prompt need 0.
        """
        counts, n = self._placeholder_counts(num_images, num_frames, num_patches)
        return encode_example(self.tokenizer, prompt, target, num_visual_tokens=counts, num_images=n, **kwargs)

    def encode_dialogue(self, messages, num_images: Mapping[str, int] | int = 1, num_frames: int = 1,
                        num_patches: int | None = None, **kwargs) -> dict:
        """:func:`rrg_lite.mllm.dialogue.encode_dialogue` with this model's tokenizer and token counts.

        ``num_images`` counts the images over all turns (an int = slot "image"). ``kwargs``: ``system``,
        ``max_length``, ``train_on`` ("assistant" or "last").
        """
        counts, n = self._placeholder_counts(num_images, num_frames, num_patches)
        return encode_dialogue(self.tokenizer, messages, num_visual_tokens=counts, num_images=n, **kwargs)

    def _placeholder_counts(self, num_images, num_frames, num_patches) -> tuple[dict, dict]:
        """(placeholder -> K tokens per image, placeholder -> number of images) for every slot with a tokenizer."""
        if isinstance(num_images, int):
            num_images = {"image": num_images}
        unknown = set(num_images) - set(self.slots)
        if unknown:
            raise ValueError(f"num_images for unknown slots {sorted(unknown)}; slots: {sorted(self.slots)}")
        counts = {self.slots[s]: self.num_visual_tokens(s, num_frames, num_patches) for s in self.projectors}
        n = {self.slots[s]: num_images.get(s, 0) for s in self.projectors}
        return counts, n

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Run the encoder: (n, C, *spatial) or (n, T, C, *spatial) -> features (n, T, N, E)."""
        enc = self.encoder
        if enc is None:
            raise ValueError("this MultimodalLM has no encoder: pass `features=` (n, T, N, E) instead of `images=`")
        if not images.is_floating_point():
            raise TypeError(f"images must be floating point (normalised intensities), got {images.dtype}")
        sd, ch = enc.spatial_dims, enc.in_channels
        if images.ndim == sd + 2:
            images = images.unsqueeze(1)
        if images.ndim != sd + 3 or images.shape[2] != ch:
            raise ValueError(
                f"images for a {sd}-D encoder with {ch} channel(s) must be (n, {ch}, *{sd} spatial dims) or "
                f"(n, T, {ch}, *spatial) per sample; got {tuple(images.shape)}"
            )
        img_size = getattr(enc, "img_size", None)
        if img_size is not None and tuple(images.shape[3:]) != tuple(img_size):
            raise ValueError(f"images have spatial shape {tuple(images.shape[3:])}, the encoder expects {tuple(img_size)}")
        n, t = images.shape[:2]
        flat = images.reshape(n * t, *images.shape[2:])
        param = next(enc.parameters(), None)
        if param is not None:
            flat = flat.to(device=param.device, dtype=param.dtype)
        trainable = any(p.requires_grad for p in enc.parameters())
        with torch.set_grad_enabled(trainable and torch.is_grad_enabled()):
            feats = enc(flat)  # (n*T, N, E)
        return feats.reshape(n, t, *feats.shape[1:])

    def _slot_inputs(self, value, slot_default: str = "image") -> dict:
        if value is None:
            return {}
        if isinstance(value, Mapping):
            return dict(value)
        return {slot_default: value}

    # ----------------------------------------------------------------------------------------------- inputs
    def build_inputs(self, input_ids, attention_mask=None, labels=None, images=None, features=None,
                     visual_embeds=None):
        """Embeddings with visual tokens spliced in, and labels masked on placeholders.

        Returns ``(inputs_embeds (B, S, D), attention_mask (B, S), labels (B, S) or None)``.
        """
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must be (B, S), got {tuple(input_ids.shape)}")
        b = input_ids.shape[0]
        embed_layer = self.lm.get_input_embeddings()
        # Token tensors follow the embedding table (a caller that built them on the CPU still works on a GPU model).
        device = embed_layer.weight.device
        input_ids = input_ids.to(device)
        attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(device)
        labels = labels.to(device) if labels is not None else None
        text_embeds = embed_layer(input_ids)  # (B, S, D); placeholder rows are overwritten below
        ids = torch.tensor(list(self.slot_token_ids.values()), device=input_ids.device)
        is_placeholder = torch.isin(input_ids, ids)

        inputs = {"images": self._slot_inputs(images), "features": self._slot_inputs(features),
                  "visual_embeds": self._slot_inputs(visual_embeds)}
        for kind, per_slot in inputs.items():
            for slot in per_slot:
                if slot not in self.slot_token_ids:
                    raise ValueError(f"{kind} given for unknown slot {slot!r}; slots: {sorted(self.slot_token_ids)}")

        question = None
        embeds = text_embeds
        for slot, token_id in self.slot_token_ids.items():
            given = [k for k in inputs if slot in inputs[k]]
            positions = input_ids == token_id  # (B, S)
            if not given:
                if positions.any():
                    rows = positions.any(1).nonzero().flatten().tolist()
                    raise ValueError(f"prompt(s) {rows} contain {self.slots[slot]} placeholders but no {slot} inputs were given")
                continue
            if len(given) > 1:
                raise ValueError(f"slot {slot!r}: give only one of {given}")
            kind = given[0]
            samples = _per_sample(inputs[kind][slot], b, f"{kind}[{slot!r}]")
            counts = [s.shape[0] for s in samples]
            if sum(counts) == 0:
                if positions.any():
                    raise ValueError(f"{self.slots[slot]} placeholders in the prompt but zero {slot} inputs")
                continue
            flat = torch.cat([s for s in samples if s.shape[0] > 0], dim=0)
            if kind == "visual_embeds":
                if flat.ndim != 3 or flat.shape[-1] != embeds.shape[-1]:
                    raise ValueError(f"visual_embeds[{slot!r}] must be (n, K, D={embeds.shape[-1]}) per sample, got {tuple(flat.shape)}")
                tokens = flat
            else:
                feats = self.encode_images(flat) if kind == "images" else flat
                if slot not in self.projectors:
                    raise ValueError(f"no tokenizer for slot {slot!r}: pass visual_embeds for it")
                if question is None:
                    # The question = the prompt text the LM reads: attended, not a placeholder, not a target.
                    qmask = attention_mask.bool() & ~is_placeholder
                    if labels is not None:
                        qmask &= labels == IGNORE_INDEX
                    question = compact_rows(text_embeds, qmask)
                repeat = torch.tensor(counts, device=input_ids.device)
                q_embeds = question[0].repeat_interleave(repeat, dim=0)
                q_mask = question[1].repeat_interleave(repeat, dim=0)
                proj = self.projectors[slot]
                p = next(proj.parameters(), None)
                if p is not None and feats.is_floating_point():
                    feats = feats.to(device=p.device)
                tokens = proj(feats, question_embeds=q_embeds, question_mask=q_mask)  # (n, K, D)
            k = tokens.shape[1]
            for row, n_row in enumerate(counts):
                found = int(positions[row].sum())
                if found != n_row * k:
                    raise ValueError(
                        f"prompt {row}: {found} {self.slots[slot]} placeholder tokens but {n_row} {slot}(s) x {k} "
                        f"tokens = {n_row * k}; write one {self.slots[slot]} per {slot} in the prompt and encode it "
                        "with encode_example (which expands each placeholder to K tokens)"
                    )
            mask = positions[..., None].expand_as(embeds)
            embeds = embeds.masked_scatter(mask, tokens.to(device=embeds.device, dtype=embeds.dtype))
        if labels is not None:
            labels = labels.masked_fill(is_placeholder, IGNORE_INDEX)
        return embeds, attention_mask, labels

    # ----------------------------------------------------------------------------------------------- forward
    def forward(self, input_ids, attention_mask=None, labels=None, images=None, features=None, visual_embeds=None,
                loss_weights=None, loss_weight_norm: str = "mean", **lm_kwargs):
        """The LM's output: ``.logits`` (B, S, V) and, with ``labels``, ``.loss``.

        Without ``loss_weights`` the loss is the LM's own mean cross-entropy over target tokens. With
        ``loss_weights`` (B, S) (LLM-RG4 TLW, from ``encode_example(target_weights=...)`` + the collator) it is
        :func:`rrg_lite.mllm.losses.weighted_lm_loss` with ``loss_weight_norm`` "mean" (Σ c·ℓ / N, the paper's)
        or "weighted_mean" (Σ c·ℓ / Σ c). ``lm_kwargs`` go to the LM, e.g. ``output_attentions=True`` (eager
        attention; see :meth:`visual_attention`).
        """
        if loss_weight_norm not in LOSS_WEIGHT_NORMS:
            raise ValueError(f"loss_weight_norm must be one of {LOSS_WEIGHT_NORMS}, got {loss_weight_norm!r}")
        embeds, attention_mask, labels = self.build_inputs(input_ids, attention_mask, labels, images, features, visual_embeds)
        if loss_weights is None:
            return self.lm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels, **lm_kwargs)
        if labels is None:
            raise ValueError("loss_weights given without labels: weights belong to target tokens")
        out = self.lm(inputs_embeds=embeds, attention_mask=attention_mask, **lm_kwargs)
        # Item assignment keeps the ModelOutput's dict view and attribute in step (out["loss"] and out.loss).
        out["loss"] = weighted_lm_loss(out.logits, labels, loss_weights.to(out.logits.device), norm=loss_weight_norm)
        return out

    def sequence_logprobs(self, input_ids, attention_mask=None, labels=None, images=None, features=None,
                          visual_embeds=None, average: bool = False, loss_weights=None) -> torch.Tensor:
        """log p(target | prompt, images) per sample, summed (or averaged) over labelled tokens: (B,).

        The quantity DPO compares between the policy and the reference model: Σ_j −ℓ_j with ℓ from
        :func:`rrg_lite.mllm.losses.per_token_loss`. ``loss_weights`` is accepted so that a training batch can be
        passed as it is, and not used: log-probabilities are unweighted.
        """
        if labels is None:
            raise ValueError("sequence_logprobs needs labels (the target tokens; -100 elsewhere)")
        embeds, attention_mask, labels = self.build_inputs(input_ids, attention_mask, labels, images, features, visual_embeds)
        logits = self.lm(inputs_embeds=embeds, attention_mask=attention_mask).logits
        total = -per_token_loss(logits, labels).sum(1)          # ignored positions contribute exactly 0
        if not average:
            return total
        return total / (labels[:, 1:] != IGNORE_INDEX).sum(1).clamp(min=1)

    def visual_attention(self, input_ids, attention_mask=None, labels=None, images=None, features=None,
                         visual_embeds=None, *, slot: str = "image", layers=None, queries: str = "targets",
                         **forward_kwargs) -> VisualAttention:
        """ViPET Eq. 10 in the training forward pass: ``(attention (B, K), positions (B, K), output)``.

        ``attention[b, k]`` is the mean over layers (``layers``: indices, default all), heads and query rows of
        the attention onto the k-th ``slot`` visual token of sample b (:func:`rrg_lite.mllm.attention.mean_attention_to`;
        each row sums to ≤ 1). Query rows: ``queries="targets"`` — the answer tokens (labels != -100 after
        placeholder masking; needs labels), or ``"after_image"`` — every attended token after the sample's last
        visual token. ``positions`` are the visual tokens' sequence positions (-1 padding when samples have
        different numbers of images), to map tokens to an ROI mask. ``output`` is :meth:`forward`'s output of
        the same pass (its ``.loss`` is L_llm, weighted if ``loss_weights`` is in ``forward_kwargs``); the map is
        differentiable, so ``output.loss + λ·L_align(attention)`` trains in one pass. Needs an eager-attention LM.
        """
        if queries not in QUERIES:
            raise ValueError(f"queries must be one of {QUERIES}, got {queries!r}")
        if slot not in self.slot_token_ids:
            raise ValueError(f"unknown slot {slot!r}; slots: {sorted(self.slot_token_ids)}")
        if queries == "targets" and labels is None:
            raise ValueError("queries='targets' needs labels (the answer tokens); pass queries='after_image' without them")
        out = self(input_ids, attention_mask, labels, images, features, visual_embeds, output_attentions=True,
                   **forward_kwargs)
        attn = select_layers(check_attentions(getattr(out, "attentions", None)), layers)
        device = attn[0].device
        input_ids = input_ids.to(device)
        positions = visual_positions(input_ids, self.slot_token_ids[slot])              # (B, K)
        if positions.shape[1] == 0:
            raise ValueError(f"no {self.slots[slot]} tokens in the batch: nothing to attend to")
        real = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.to(device).bool()
        if queries == "targets":
            # build_inputs forces -100 on placeholders; do the same here so no visual token is its own query
            placeholder = torch.isin(input_ids, torch.tensor(list(self.slot_token_ids.values()), device=device))
            query_mask = (labels.to(device) != IGNORE_INDEX) & ~placeholder & real
        else:
            last = positions.max(1).values                                              # (B,), -1 if none
            query_mask = (torch.arange(input_ids.shape[1], device=device)[None, :] > last[:, None]) & real
            query_mask &= last[:, None] >= 0
        return VisualAttention(mean_attention_to(attn, query_mask, positions), positions, out)

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, images=None, features=None, visual_embeds=None,
                 max_new_tokens: int = 128, do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                 top_k: int | None = None, num_return_sequences: int = 1, seed: int | None = None, **gen_kwargs):
        """Generate from ``inputs_embeds`` (greedy by default, or sampling). Returns new token ids (B*r, new).

        Prompts must be left-padded (``MLLMCollator(padding_side="left")``) so that every row continues from
        its last real token. ``seed`` makes sampling reproducible without touching the global RNG.
        """
        if attention_mask is not None and (attention_mask[:, -1] == 0).any():
            raise ValueError("generation needs left-padded prompts: use MLLMCollator(pad_id, padding_side='left')")
        embeds, attention_mask, _ = self.build_inputs(input_ids, attention_mask, None, images, features, visual_embeds)
        kwargs = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, num_return_sequences=num_return_sequences,
                      pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id)
        if do_sample:
            kwargs.update(temperature=temperature, top_p=top_p, top_k=top_k or 0)
        kwargs.update(gen_kwargs)
        devices = [embeds.device] if embeds.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            return self.lm.generate(inputs_embeds=embeds, attention_mask=attention_mask, **kwargs)

    def generate_text(self, *args, **kwargs) -> list[str]:
        """:meth:`generate`, decoded without special tokens."""
        out = self.generate(*args, **kwargs)
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]
