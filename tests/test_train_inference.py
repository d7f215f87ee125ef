"""The one batched-inference helper: batches follow the model's device (checked on the `meta` device), eval mode
and no_grad inside and restored after, outputs in order, sharding covers every item exactly once."""
import numpy as np
import pytest
import torch
from torch import nn

from rrg_lite.mllm.inference import (batched_inference, gather_in_order, model_device, move_to_device,
                                     shard_indices)
from rrg_lite.mllm.lm import tiny_llama
from rrg_lite.mllm.model import MultimodalLM
from rrg_lite.mllm.prompt import MLLMCollator
from rrg_lite.mllm.text import build_word_tokenizer
from rrg_lite.tokenizers.base import VisualTokenizer

META = torch.device("meta")


def _devices(obj, out=None):
    """Every tensor's device inside a nested batch."""
    out = [] if out is None else out
    if isinstance(obj, torch.Tensor):
        out.append(obj.device.type)
    elif isinstance(obj, dict):
        for v in obj.values():
            _devices(v, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _devices(v, out)
    return out


def test_move_to_device_reaches_every_nested_tensor():
    batch = {"input_ids": torch.ones(2, 3, dtype=torch.long), "features": [torch.zeros(1, 2), torch.zeros(2, 2)],
             "visual_embeds": {"region": [torch.zeros(1, 4)]}, "pair": (torch.zeros(1), "text"), "ids": ["a", "b"],
             "n": 3}
    moved = move_to_device(batch, META, dtype=torch.bfloat16)
    assert set(_devices(moved)) == {"meta"} and len(_devices(moved)) == 5
    assert moved["input_ids"].dtype == torch.long              # ids keep their integer type
    assert moved["features"][1].dtype == torch.bfloat16        # floats are cast
    assert moved["pair"][1] == "text" and moved["ids"] == ["a", "b"] and moved["n"] == 3
    assert set(_devices(batch)) == {"cpu"}                     # the input is not modified


class OnMeta(nn.Module):
    """A mock model whose parameters live on the meta device; it records what it was fed."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3, device=META))
        self.seen = []

    def score(self, batch):
        self.seen.append((_devices(batch), self.training, torch.is_grad_enabled()))
        return torch.arange(len(batch["x"]), dtype=torch.float32) + 100 * batch["start"]


def test_batches_follow_the_model_device_and_come_back_in_order():
    model = OnMeta().train()
    assert model_device(model) == META
    items = [{"x": torch.randn(2), "extra": [torch.zeros(1)], "start": i} for i in range(7)]

    def collate(chunk):
        return {"x": torch.stack([c["x"] for c in chunk]), "extra": [c["extra"] for c in chunk], "start": chunk[0]["start"]}

    out = batched_inference(model, items, lambda m, b: m.score(b), batch_size=3, collate=collate)
    assert [float(o) for o in out] == [0, 1, 2, 300, 301, 302, 600]
    assert len(model.seen) == 3
    for devices, training, grad in model.seen:
        assert set(devices) == {"meta"} and not training and not grad
    assert model.training                                      # the training flag is restored


def test_training_flag_restored_when_fn_raises_and_bad_outputs_are_named():
    model = OnMeta().train()

    def boom(m, b):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        batched_inference(model, [1, 2], boom)
    assert model.training
    with pytest.raises(ValueError, match="fn returned 3 rows for a batch of 2 items"):
        batched_inference(model, [1, 2], lambda m, b: [0, 0, 0], batch_size=2)
    # r rows per item (num_return_sequences) become one list per item
    assert batched_inference(model, [1, 2, 3], lambda m, b: [f"{x}{j}" for x in b for j in "ab"], batch_size=2) == \
        [["1a", "1b"], ["2a", "2b"], ["3a", "3b"]]


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shards_cover_every_item_exactly_once(world):
    for n in range(0, 12):
        shards = [shard_indices(n, r, world) for r in range(world)]
        flat = sorted(i for s in shards for i in s)
        assert flat == list(range(n))
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    with pytest.raises(ValueError):
        shard_indices(3, 2, 2)


def test_gather_checks_exactly_once():
    assert gather_in_order(3, [2, 0, 1], ["c", "a", "b"]) == ["a", "b", "c"]
    with pytest.raises(RuntimeError, match="computed twice"):
        gather_in_order(2, [0, 0], ["a", "b"])
    with pytest.raises(RuntimeError, match="never computed"):
        gather_in_order(3, [0, 1], ["a", "b"])


# ------------------------------------------------------------------ the real callers, with a model on `meta`
class MeanTokens(VisualTokenizer):
    def __init__(self, in_dim=8, out_dim=16, k=2):
        super().__init__()
        self.in_dim, self.out_dim, self.num_tokens = in_dim, out_dim, k
        self.proj = nn.Linear(in_dim, out_dim)

    def tokenize(self, features, question_embeds=None, question_mask=None):
        return self.proj(features.mean(dim=(1, 2)))[:, None, :].repeat(1, self.num_tokens, 1)


def _meta_mllm():
    tok = build_word_tokenizer(["what is in the chest ?", "a nodule .", "no effusion ."])
    lm = tiny_llama(tok, hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=1)
    mllm = MultimodalLM(lm, tok, {"image": MeanTokens()}).to(META)
    calls = []

    def record(name, rows):
        def fake(*args, **kwargs):
            calls.append((name, _devices([args, kwargs])))
            ids = kwargs.get("input_ids", args[0] if args else None)
            return rows(len(ids))
        return fake

    # the model's own methods cannot run on `meta` (no data); record their inputs and answer on the CPU
    mllm.sequence_logprobs = record("logps", lambda b: -torch.ones(b))
    mllm.generate_text = record("generate", lambda b: ["a nodule ."] * b)
    return mllm, calls


def _examples(mllm, n, target=True):
    out = []
    for i in range(n):
        ex = mllm.encode_example("<image> what is in the chest ?", "a nodule ." if target else None)
        ex["features"] = torch.randn(1, 1, 3, 8)
        out.append(ex)
    return out


def test_generate_reports_and_reference_logps_feed_the_model_device():
    from rrg_lite.train.dpo import precompute_reference_logps
    from rrg_lite.train.evaluate import generate_reports

    mllm, calls = _meta_mllm()
    assert generate_reports(mllm, _examples(mllm, 5, target=False), batch_size=2, progress=False) == ["a nodule ."] * 5
    pairs = [{"id": i, "chosen": c, "rejected": r} for i, (c, r) in enumerate(zip(_examples(mllm, 3), _examples(mllm, 3)))]
    out = precompute_reference_logps(mllm, pairs, MLLMCollator(mllm.tokenizer.pad_token_id), batch_size=2)
    assert [p["ref_chosen_logps"] for p in out] == [-1.0] * 3
    assert [c[0] for c in calls] == ["generate"] * 3 + ["logps"] * 4
    for name, devices in calls:
        assert devices and set(devices) == {"meta"}, (name, devices)


def test_mu2_test_loss_and_answers_feed_the_model_device():
    from rrg_lite.systems.mu2.ablation import QASample, generate_answers, test_loss

    mllm, calls = _meta_mllm()
    samples = [QASample(f"s{i}", "what is in the chest ?", "a nodule .", "chest", torch.randn(1, 3, 8), 8) for i in range(5)]
    nll = test_loss(mllm, samples, batch_size=2)
    assert isinstance(nll, np.ndarray) and nll.tolist() == [1.0] * 5
    assert generate_answers(mllm, samples, batch_size=4) == ["a nodule ."] * 5
    assert [c[0] for c in calls] == ["logps"] * 3 + ["generate"] * 2
    for name, devices in calls:
        assert set(devices) == {"meta"}, (name, devices)
