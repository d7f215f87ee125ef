"""Checkpoint guarantees of the training loop (issue 13 §3, in Accelerate's format): config checks on resume,
output_dir ownership, "latest" never half-written, named errors for truncated files, a real SIGKILL and resume."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from rrg_lite.train import checkpoint as ckpt
from rrg_lite.train.loop import TrainConfig, train
from test_train_loop import BASE, Net, Pairs


def _run(tmp_path, **kw):
    model = Net()
    res = train(model, Pairs(), TrainConfig(**{**BASE, "output_dir": str(tmp_path), **kw}))
    return model, res


def test_resume_with_a_changed_config_fails_naming_the_keys(tmp_path):
    _run(tmp_path, save_every=1, stop_after_steps=3)
    with pytest.raises(ckpt.CheckpointError, match=r"2 differing key\(s\).*train\.lr: stored 0\.01, now 0\.02.*train\.seed"):
        _run(tmp_path, resume_from="latest", lr=2e-2, seed=5)
    # the caller's run_config is compared too
    with pytest.raises(ckpt.CheckpointError, match=r"run\.hidden: stored <absent>, now 64"):
        train(Net(), Pairs(), TrainConfig(**BASE, output_dir=str(tmp_path), resume_from="latest"), run_config={"hidden": 64})
    # keys that do not change the trajectory may change
    _, res = _run(tmp_path, resume_from="latest", log_every=3, desc="again", save_every=2)
    assert res.global_step == 7


def test_a_reused_output_dir_does_not_silently_resume_or_overwrite(tmp_path):
    _run(tmp_path)
    with pytest.raises(ckpt.CheckpointError, match="already holds a training run.*resume_from='latest'"):
        _run(tmp_path, lr=5e-2)                       # a different run into the same folder
    with pytest.raises(ckpt.CheckpointError, match="already holds a training run"):
        _run(tmp_path)                                # even the same config: starting over would discard the old one
    model, res = _run(tmp_path, lr=5e-2, overwrite_output_dir=True)
    assert ckpt.read_json(tmp_path / "run.json")["train"]["lr"] == 5e-2
    assert ckpt.read_json(tmp_path / "final" / "config.json")["train"]["lr"] == 5e-2
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step_7"]
    # "latest" on a run that never checkpointed still checks that it is the same run
    (tmp_path / "checkpoints").rename(tmp_path / "elsewhere")
    with pytest.raises(ckpt.CheckpointError, match="run.json was written by a run with a different config"):
        _run(tmp_path, resume_from="latest", lr=1e-3)


def test_latest_skips_half_written_and_truncated_checkpoints(tmp_path):
    _run(tmp_path, save_every=1, stop_after_steps=4, keep_last=None)
    root = tmp_path / "checkpoints"
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step_1", "step_2", "step_3", "step_4"]
    # a kill while writing step 5 leaves its temporary folder: never a candidate
    (root / ".tmp-step_5").mkdir()
    (root / ".tmp-step_5" / "model.safetensors").write_bytes(b"\0" * 10)
    # a step folder without its completion marker (e.g. copied by hand, half-way) is not complete either
    (root / "step_4" / "complete.json").unlink()
    # and a complete checkpoint truncated afterwards fails its size check
    opt = root / "step_3" / "optimizer.bin"
    opt.write_bytes(opt.read_bytes()[:100])
    assert ckpt.latest_checkpoint(tmp_path).name == "step_2"
    with pytest.raises(ckpt.CheckpointError, match=r"step_3/optimizer.bin: 100 bytes, complete.json says \d+"):
        ckpt.verify_checkpoint(root / "step_3")
    with pytest.raises(ckpt.CheckpointError, match="incomplete checkpoint"):
        _run(tmp_path, resume_from=str(root / "step_4"))
    with pytest.warns(UserWarning, match="skipping a damaged checkpoint.*step_3/optimizer.bin"):
        _, res = _run(tmp_path, resume_from="latest")
    assert res.resumed_from.endswith("step_2") and res.global_step == 7
    assert not (root / ".tmp-step_5").exists()          # stale temporary folders are cleaned up


def test_truncated_files_raise_errors_that_name_them(tmp_path):
    model, _ = _run(tmp_path)
    final = tmp_path / "final" / "model.safetensors"
    final.write_bytes(final.read_bytes()[:50])
    with pytest.raises(ckpt.CheckpointError, match=r"final/model.safetensors: cannot read the safetensors file"):
        ckpt.load_final_weights(tmp_path / "final", Net())
    state = tmp_path / "checkpoints" / "step_7" / "trainer_state.json"
    state.write_text(state.read_text()[:40])
    with pytest.raises(ckpt.CheckpointError, match=r"trainer_state.json: not valid JSON"):
        ckpt.read_json(state)
    with pytest.raises(ckpt.CheckpointError, match=r"step_7/trainer_state.json: \d+ bytes, complete.json says"):
        _run(tmp_path, resume_from=str(state.parent))
    # "latest" with only damaged checkpoints stops rather than silently starting over
    with pytest.raises(ckpt.CheckpointError, match=r"no intact checkpoint to resume; damaged: .*trainer_state.json"):
        _run(tmp_path, resume_from="latest")
    # a corrupt file whose size still matches (bytes overwritten in place) is named by the reader
    w = tmp_path / "checkpoints" / "step_7" / "model.safetensors"
    w.write_bytes(b"\xff" * w.stat().st_size)
    with pytest.raises(ckpt.CheckpointError, match=r"step_7/model.safetensors: cannot read"):
        ckpt.load_model_weights(Net(), w)


def test_keep_last_prunes_old_checkpoints(tmp_path):
    _run(tmp_path, save_every=1, keep_last=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step_6", "step_7"]


def test_config_differences_by_hand():
    diff = ckpt.config_differences({"a": 1, "b": {"c": (1, 2)}, "log_every": 1}, {"a": 1, "b": {"c": [1, 3]}, "log_every": 5},
                                   ignore={"log_every"})
    assert diff == [("b.c", [1, 2], [1, 3])]


_KILLED_RUN = textwrap.dedent("""
    import sys, time, torch
    sys.path.insert(0, {root!r})
    from test_train_loop import BASE, Net, Pairs
    from rrg_lite.train.loop import TrainConfig, train

    def slow_loss(model, batch):
        time.sleep(0.25)                       # leaves time to be killed between two checkpoints
        return model(**batch)["loss"]

    train(Net(), Pairs(), TrainConfig(**BASE, output_dir={out!r}, save_every=1), loss_fn=slow_loss)
""")


def _slow_loss(model, batch):
    return model(**batch)["loss"]


@pytest.mark.slow
def test_sigkill_and_resume_gives_the_uninterrupted_weights(tmp_path):
    out = tmp_path / "run"
    script = tmp_path / "killed.py"
    script.write_text(_KILLED_RUN.format(root=str(Path(__file__).resolve().parent), out=str(out)))
    proc = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
        latest = ckpt.latest_checkpoint(out)
        if latest is not None and int(latest.name.split("_")[1]) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = ckpt.latest_checkpoint(out)
    assert done is not None and 3 <= int(done.name.split("_")[1]) < 7 and not (out / "final").exists()

    full = Net()
    train(full, Pairs(), TrainConfig(**BASE), loss_fn=_slow_loss)
    resumed = Net()
    torch.manual_seed(999)
    res = train(resumed, Pairs(), TrainConfig(**BASE, output_dir=str(out), save_every=1, resume_from="latest"),
                loss_fn=_slow_loss)
    assert res.resumed_from == str(done) and res.final_dir == str(out / "final")
    for (name, p), q in zip(full.named_parameters(), resumed.parameters()):
        assert torch.equal(p, q), name
    assert json.loads((out / "final" / "config.json").read_text())["step"] == 7
