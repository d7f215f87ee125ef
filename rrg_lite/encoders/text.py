"""A small report encoder for CLIP-style pre-training on the CPU: hashed word n-grams -> mean embedding -> MLP.

    enc = NgramTextEncoder(dim=128)
    ids, offsets = enc.tokenize(["No pleural effusion.", "Small left pleural effusion."])
    enc(ids, offsets)                       # (2, dim)
    enc.encode(texts)                       # the same, from strings

CT-CLIP and M3D-CLIP pair their image encoder with a pre-trained BERT; at CPU size a bag of word unigrams and
bigrams is enough for the world's reports and trains in seconds. Bigrams keep the negations ("no effusion") and
sides ("left pleural") that a bag of single words would lose. Tokens are hashed into ``buckets`` rows (the hashing
trick, a fixed CRC32, so the same text gives the same ids in every process — Python's ``hash`` is salted).
"""
from __future__ import annotations

import re
import zlib

import torch
from torch import nn

_WORD = re.compile(r"[a-z0-9]+")


def ngrams(text: str, n: int = 2) -> list[str]:
    """Lower-cased word 1..n-grams of ``text`` (a sentence boundary breaks the n-grams)."""
    out = []
    for sentence in re.split(r"[.;:\n]", text.lower()):
        words = _WORD.findall(sentence)
        for k in range(1, n + 1):
            out += [" ".join(words[i: i + k]) for i in range(len(words) - k + 1)]
    return out


class NgramTextEncoder(nn.Module):
    """texts -> (B, dim): ``EmbeddingBag(mean)`` over hashed 1..n-grams, then LayerNorm -> Linear -> GELU -> Linear."""

    def __init__(self, dim: int = 128, buckets: int = 2 ** 15, n: int = 2, width: int = 128):
        super().__init__()
        self.buckets, self.n, self.dim = buckets, n, dim
        self.bag = nn.EmbeddingBag(buckets, width, mode="mean")
        self.mlp = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, dim))

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (ids (total,), offsets (B,)) for ``EmbeddingBag``; an empty text gets one id of its own (bucket 0)."""
        ids, offsets = [], []
        for t in texts:
            offsets.append(len(ids))
            grams = ngrams(t, self.n) or [""]
            ids += [zlib.crc32(g.encode()) % self.buckets for g in grams]
        return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.bag(ids, offsets))

    def encode(self, texts: list[str]) -> torch.Tensor:
        return self(*self.tokenize(texts))
