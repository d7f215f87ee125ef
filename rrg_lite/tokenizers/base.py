"""The base class of every visual tokenizer (projector) that sits between a vision encoder and an LLM.

A visual tokenizer maps encoder features ``(B, T, N, E)`` to ``(B, K, D)`` LLM-width tokens. The multimodal
LM (:class:`rrg_lite.mllm.model.MultimodalLM`) always passes the prompt's LM input embeddings, so a
text-conditioned tokenizer (LinVT, μ²) and a text-free one (linear, pooling, perceiver) plug in the same way.
"""
from __future__ import annotations

import torch
from torch import nn


class VisualTokenizer(nn.Module):
    """Base class: subclasses set ``in_dim`` (E), ``out_dim`` (D), ``num_tokens`` (K) and implement ``tokenize``.

    ``num_tokens`` may depend on the number of frames T for projectors that keep every token (linear);
    ``tokens_for(T, N)`` answers how many tokens an input of T frames x N patches produces.
    """

    in_dim: int
    out_dim: int
    uses_text: bool = False  # True for tokenizers that read question_embeds (LinVT, μ²)

    def tokens_for(self, num_frames: int, num_patches: int) -> int:
        return self.num_tokens

    def forward(
        self,
        features: torch.Tensor,
        question_embeds: torch.Tensor | None = None,
        question_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_features(features, self.in_dim, type(self).__name__)
        if question_embeds is not None:
            if question_embeds.ndim != 3 or question_embeds.shape[0] != features.shape[0]:
                raise ValueError(
                    f"{type(self).__name__}: question_embeds must be (B={features.shape[0]}, L, D), "
                    f"got {tuple(question_embeds.shape)}"
                )
            if question_mask is not None and question_mask.shape != question_embeds.shape[:2]:
                raise ValueError(
                    f"{type(self).__name__}: question_mask must be {tuple(question_embeds.shape[:2])}, "
                    f"got {tuple(question_mask.shape)}"
                )
        tokens = self.tokenize(features, question_embeds, question_mask)
        return tokens

    def tokenize(self, features, question_embeds, question_mask) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


def check_features(features: torch.Tensor, in_dim: int, who: str) -> None:
    """Raise a clear error unless ``features`` is a floating (B, T, N, E) tensor with E == ``in_dim``."""
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"{who}: features must be a torch.Tensor (B, T, N, E), got {type(features).__name__}")
    if features.ndim != 4:
        raise ValueError(
            f"{who}: features must be (B, T, N, E) — batch, frames, patch tokens, width — "
            f"got a {features.ndim}-D tensor of shape {tuple(features.shape)}"
        )
    if not features.is_floating_point():
        raise TypeError(f"{who}: features must be floating point, got {features.dtype}")
    if features.shape[-1] != in_dim:
        raise ValueError(f"{who}: features have width E={features.shape[-1]}, the tokenizer expects {in_dim}")
