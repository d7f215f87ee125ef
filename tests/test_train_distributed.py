"""Two processes equal one: `accelerate launch --num_processes 2` on CPU (gloo) trains the μ² model (hard top-k,
toy size) with the same loss curve as one process with the same global batch, and distributed evaluation gathers
every sample exactly once, in order; a run stopped and resumed under DDP ends with the uninterrupted weights.

Tolerance: losses and per-sample test NLLs agree to 1e-5 (absolute): the only difference is the order in which
gloo sums the two ranks' gradients (float32 rounding).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

def main(out, find_unused, per_device, ckpt_dir=None):
    """The run, identical in one process (called in-process by the test) and under `accelerate launch`."""
    import torch

    from rrg_lite.mllm.inference import batched_inference, distributed_world
    from rrg_lite.mllm.prompt import MLLMCollator
    from rrg_lite.mllm.text import build_word_tokenizer
    from rrg_lite.profiles import load_profile
    from rrg_lite.systems.mu2.ablation import QASample, build_mllm, make_examples, test_loss, tokens_per_frame
    from rrg_lite.train.evaluate import generate_reports
    from rrg_lite.train.loop import TrainConfig, train

    cfg = load_profile("mu2", "cpu", llm_hidden=32, k=8, num_queries=4, refiner_layers=1, aggregation_layers=1)
    g = torch.Generator().manual_seed(0)
    parts = ["chest", "abdomen", "pelvis"]
    # every question and answer has the same number of tokens, so the mean of per-rank mean losses is the
    # global mean (DDP averages per-rank gradients)
    samples = [QASample(str(i), f"What are the findings in the {parts[i % 3]}?", f"the {parts[i % 3]} is normal.",
                        parts[i % 3], torch.randn(cfg.num_frames, tokens_per_frame(cfg), cfg.encoder_width, generator=g), 40)
               for i in range(16)]
    tok = build_word_tokenizer([s.question + " " + s.answer for s in samples])
    mllm = build_mllm(cfg, "Baseline", tok, seed=0)           # LinVT's hard top-k: an unused score head
    tc = TrainConfig(lr=3e-3, batch_size=per_device, max_steps=6, warmup_steps=0, schedule="constant", seed=0,
                     progress=False, log_every=1, mixed_precision="no",
                     find_unused_parameters={"auto": None, "off": False}[find_unused])
    res = train(mllm, make_examples(mllm, samples), tc, collate_fn=MLLMCollator(tok.pad_token_id))
    rank, world = distributed_world()
    nll = test_loss(mllm, samples[:11], batch_size=2).tolist()                 # sharded over the ranks
    who = batched_inference(mllm, list(range(11)), lambda m, b: [(i, distributed_world()[0]) for i in b], batch_size=2)
    texts = generate_reports(mllm, make_examples(mllm, samples[:5], with_target=False), batch_size=2,
                             max_new_tokens=4, progress=False)
    result = {"world": world, "loss": [h["loss"] for h in res.history if "loss" in h], "nll": nll,
              "who": [list(w) for w in who], "texts": texts}
    if ckpt_dir is not None:  # the same run stopped after 3 steps and resumed, with every process checkpointing
        from dataclasses import replace

        stopped = build_mllm(cfg, "Baseline", tok, seed=0)
        train(stopped, make_examples(stopped, samples), replace(tc, output_dir=ckpt_dir, save_every=1, stop_after_steps=3),
              collate_fn=MLLMCollator(tok.pad_token_id))
        resumed = build_mllm(cfg, "Baseline", tok, seed=0)
        torch.manual_seed(1234 + rank)
        again = train(resumed, make_examples(resumed, samples), replace(tc, output_dir=ckpt_dir, resume_from="latest"),
                      collate_fn=MLLMCollator(tok.pad_token_id))
        result["resumed_loss"] = [h["loss"] for h in again.history if "loss" in h]
        result["resumed_equal"] = all(torch.equal(p, q) for p, q in zip(mllm.parameters(), resumed.parameters()))
        result["resumed_from"] = again.resumed_from
    if rank == 0 and out is not None:
        Path(out).write_text(json.dumps(result))
    return result


if __name__ == "__main__":  # under accelerate launch
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(tmp_path, nproc, find_unused="auto", per_device=2, ckpt_dir=None):
    out = tmp_path / f"out_{nproc}_{find_unused}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
           "ACCELERATE_CONFIG_FILE": str(tmp_path / "no_config.yaml"),   # ignore any user-level accelerate config
           # `--cpu` alone starts ONE process in Accelerate 1.x unless mpirun is installed; the torchrun-style
           # launch (`--multi_gpu`) with ACCELERATE_USE_CPU=1 gives N CPU processes on gloo (MULTI_CPU)
           "ACCELERATE_USE_CPU": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(nproc),
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), __file__, str(out), find_unused, str(per_device)]
    cmd += [str(ckpt_dir)] if ckpt_dir else []
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=str(tmp_path))
    return proc, (json.loads(out.read_text()) if proc.returncode == 0 else None)


@pytest.mark.slow
def test_two_processes_equal_one_and_evaluation_gathers_each_sample_once(tmp_path):
    two_proc, two = _launch(tmp_path, 2, per_device=2, ckpt_dir=tmp_path / "run")   # global batch 4 = 2 x 2
    assert two_proc.returncode == 0, two_proc.stderr[-3000:]
    one = main(None, "auto", per_device=4)                    # one process (this one), batch 4
    assert one["world"] == 1 and two["world"] == 2
    assert len(one["loss"]) == 6
    assert two["loss"] == pytest.approx(one["loss"], abs=1e-5)
    assert one["loss"][-1] < one["loss"][0]                   # it did learn
    assert two["nll"] == pytest.approx(one["nll"], abs=1e-5)
    assert two["texts"] == one["texts"]
    # every sample exactly once, in order, and both ranks did part of the work
    assert [i for i, _ in two["who"]] == list(range(11))
    assert {r for _, r in two["who"]} == {0, 1} and {r for _, r in one["who"]} == {0}
    # kill-and-resume under DDP (each process restores its own RNG from Accelerate's state): exact
    assert two["resumed_from"].endswith("checkpoints/step_3")
    assert two["resumed_loss"] == two["loss"] and two["resumed_equal"]
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "checkpoints" / "step_6").iterdir()) == [
        "complete.json", "model.safetensors", "optimizer.bin", "random_states_0.pkl", "random_states_1.pkl",
        "trainer_state.json"]
    assert (run / "final" / "model.safetensors").is_file()


@pytest.mark.slow
def test_without_find_unused_parameters_ddp_fails_on_the_unused_score_head(tmp_path):
    # the auto-detection in train() is what makes the run above work: switched off, DDP refuses the model
    proc, _ = _launch(tmp_path, 2, find_unused="off")
    assert proc.returncode != 0
    assert "find_unused_parameters" in proc.stderr
