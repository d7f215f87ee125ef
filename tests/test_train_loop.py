"""The Accelerate training loop: learning, accumulation, schedules, safetensors checkpoints, exact resume."""
import math

import pytest
import torch
from torch import nn

from rrg_lite.train.checkpoint import load_model_weights, save_model_weights
from rrg_lite.train.loop import TrainConfig, train
from rrg_lite.train.schedules import lr_multiplier


class Pairs(torch.utils.data.Dataset):
    def __init__(self, n=22):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


class Net(nn.Module):
    def __init__(self, dropout=0.3):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(4, 16), nn.Dropout(dropout), nn.Linear(16, 1))

    def forward(self, x, y):
        return {"loss": ((self.body(x) - y) ** 2).mean()}


BASE = dict(lr=1e-2, batch_size=4, grad_accum=2, max_steps=7, warmup_steps=2, progress=False, log_every=1)


def test_schedules_by_hand():
    assert lr_multiplier(0, "cosine", 2, 10) == 0.0
    assert lr_multiplier(1, "cosine", 2, 10) == 0.5
    assert lr_multiplier(2, "cosine", 2, 10) == 1.0
    assert lr_multiplier(6, "cosine", 2, 10) == pytest.approx(0.5)       # halfway through the decay
    assert lr_multiplier(10, "cosine", 2, 10) == pytest.approx(0.0)
    assert lr_multiplier(10, "cosine", 2, 10, min_lr_ratio=0.1) == pytest.approx(0.1)
    assert lr_multiplier(6, "linear", 2, 10) == pytest.approx(0.5)
    assert lr_multiplier(9, "constant", 2, 10) == 1.0
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_multiplier(0, "step", 0, 1)


def test_training_reduces_loss_and_logs():
    model = Net(dropout=0.0)
    res = train(model, Pairs(64), TrainConfig(lr=3e-2, batch_size=8, epochs=15, schedule="constant", progress=False, log_every=1))
    losses = [h["loss"] for h in res.history]
    assert len(losses) == 15 * 8 and res.global_step == 120
    assert sum(losses[-8:]) < 0.1 * sum(losses[:8])
    assert res.samples_per_second > 0 and res.samples_seen == 15 * 64


def test_grad_accumulation_equals_bigger_batch():
    a, b = Net(0.0), Net(0.0)
    train(a, Pairs(16), TrainConfig(lr=1e-2, batch_size=8, grad_accum=1, max_steps=3, schedule="constant", progress=False, max_grad_norm=None))
    train(b, Pairs(16), TrainConfig(lr=1e-2, batch_size=4, grad_accum=2, max_steps=3, schedule="constant", progress=False, max_grad_norm=None))
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_scheduler_follows_lr_multiplier():
    res = train(Net(), Pairs(), TrainConfig(**BASE))
    lrs = [h["lr"] for h in res.history]
    want = [1e-2 * lr_multiplier(s, "cosine", 2, 7) for s in range(1, 8)]
    assert lrs == pytest.approx(want)


@pytest.mark.parametrize("stop_at", [3, 4])  # 3 = exactly at an epoch end (22 samples / 4 / 2 -> 3 steps), 4 = mid-epoch
def test_stop_and_resume_equals_uninterrupted(tmp_path, stop_at):
    full = Net()
    ref = train(full, Pairs(), TrainConfig(**BASE))
    first = train(Net(), Pairs(), TrainConfig(**BASE, output_dir=str(tmp_path), save_every=1, stop_after_steps=stop_at))
    assert first.stopped_early and first.last_checkpoint.endswith(f"checkpoints/step_{stop_at}")
    assert first.final_dir is None and not (tmp_path / "final").exists()  # an interrupted run has no final weights
    resumed_model = Net()
    torch.manual_seed(1234)  # a different global RNG state: the checkpoint must restore it
    resumed = train(resumed_model, Pairs(), TrainConfig(**BASE, output_dir=str(tmp_path), resume_from="latest"))
    assert resumed.global_step == 7 and resumed.resumed_from.endswith(f"step_{stop_at}")
    for (name, p), q in zip(full.named_parameters(), resumed_model.parameters()):
        assert torch.equal(p, q), name
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in ref.history]


def test_checkpoint_files_are_safetensors_and_checked(tmp_path):
    model = Net()
    train(model, Pairs(), TrainConfig(**BASE, output_dir=str(tmp_path)))
    folder = tmp_path / "checkpoints" / "step_7"
    assert sorted(p.name for p in folder.iterdir()) == ["complete.json", "model.safetensors", "optimizer.bin",
                                                       "random_states_0.pkl", "trainer_state.json"]
    assert sorted(p.name for p in (tmp_path / "final").iterdir()) == ["config.json", "model.safetensors"]
    for weights in (folder / "model.safetensors", tmp_path / "final" / "model.safetensors"):
        other = Net(dropout=0.0)
        for p in other.parameters():
            p.data.zero_()
        load_model_weights(other, weights)
        for p, q in zip(model.parameters(), other.parameters()):
            assert torch.equal(p, q)
    wrong = nn.Linear(3, 3)
    save_model_weights(wrong, tmp_path / "wrong.safetensors")
    with pytest.raises(ValueError, match="do not belong"):
        load_model_weights(other, tmp_path / "wrong.safetensors")


def test_no_trainable_parameters_is_an_error():
    model = Net()
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train(model, Pairs(), TrainConfig(**BASE))
