"""InfoNCE by hand and against the cross-entropy formulation; retrieval recall; the n-gram text tower."""
import math

import pytest
import torch
import torch.nn.functional as F

from rrg_lite.encoders.text import NgramTextEncoder, ngrams
from rrg_lite.train.contrastive import LogitScale, info_nce, recall_at_k, retrieval_chance, similarity


def test_info_nce_two_by_two_by_hand():
    eye = torch.eye(2)
    # matched pairs, tau = 1: logits = I; each row/column: log(e^1 + e^0) - 1
    assert info_nce(eye, eye, temperature=1.0).item() == pytest.approx(math.log(1 + math.e) - 1)
    # both reports equal to image 0: logits [[1, 1], [0, 0]]
    text = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    i2t = math.log(2)                                             # rows: log(2e) - 1 and log(2) - 0
    t2i = ((math.log(math.e + 1) - 1) + (math.log(math.e + 1) - 0)) / 2   # columns [1, 0] and [1, 0]
    assert info_nce(eye, text, 1.0, symmetric=False).item() == pytest.approx(i2t)
    assert info_nce(eye, text, 1.0).item() == pytest.approx((i2t + t2i) / 2)
    # a lower temperature sharpens: matched pairs -> loss towards 0
    assert info_nce(eye, eye, 0.01).item() < 1e-6


def test_info_nce_matches_cross_entropy_reference():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    tau = 0.3
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / tau
    target = torch.arange(7)
    ref_i2t = F.cross_entropy(logits, target)
    ref = (ref_i2t + F.cross_entropy(logits.T, target)) / 2
    assert info_nce(a, b, tau, symmetric=False).item() == pytest.approx(ref_i2t.item(), rel=1e-6)
    assert info_nce(a, b, tau).item() == pytest.approx(ref.item(), rel=1e-6)
    # learnable temperature: gradients reach the logit scale
    scale = LogitScale(0.07)
    assert scale().item() == pytest.approx(1 / 0.07)
    info_nce(a, b, 1.0 / scale()).backward()
    assert scale.log_scale.grad is not None and scale.log_scale.grad.abs() > 0
    with pytest.raises(ValueError, match="at least 2"):
        info_nce(a[:1], b[:1])
    with pytest.raises(ValueError, match="one shape"):
        info_nce(a, b[:, :3])


def test_recall_at_k_and_chance():
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.1], [0.0, 0.1, 0.7]])
    assert recall_at_k(sim, 1) == pytest.approx(2 / 3)          # row 1's partner is second
    assert recall_at_k(sim, 2) == pytest.approx(1.0)
    assert recall_at_k(torch.zeros(4, 4), 1) == 0.0               # ties count against the query
    assert retrieval_chance(100, 5) == pytest.approx(0.05)
    assert similarity(torch.eye(3), torch.eye(3)).diagonal().tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="square"):
        recall_at_k(torch.zeros(2, 3))


def test_ngram_text_encoder_is_deterministic_and_keeps_negation():
    assert "no pleural" in ngrams("No pleural effusion. Heart normal.")
    assert "effusion heart" not in ngrams("No pleural effusion. Heart normal.")   # sentences break n-grams
    enc = NgramTextEncoder(dim=8, buckets=512)
    ids1, _ = enc.tokenize(["No pleural effusion."])
    ids2, _ = enc.tokenize(["Small pleural effusion."])
    assert set(ids1.tolist()) != set(ids2.tolist())
    assert enc.tokenize(["No pleural effusion."])[0].tolist() == ids1.tolist()
    out = enc.encode(["a b", "", "c"])
    assert out.shape == (3, 8)
