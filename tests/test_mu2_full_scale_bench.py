"""The GPU benchmark of chapter 6's full profile, run at its tiny scale on the CPU (same code path)."""
import importlib.util
from pathlib import Path

import pytest


def _bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "mu2_full_scale.py"
    spec = importlib.util.spec_from_file_location("mu2_full_scale", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_full_scale_benchmark_runs_at_tiny_scale():
    bench = _bench()
    res = bench.run("tiny", device="cpu", dtype="float32", steps=4, repeats=1)
    s = bench.SCALES["tiny"]
    n = (s["K"] // 4) * (s["size"] // 16) ** 2  # M3D-CLIP patches 4x16x16
    assert res["encoder"]["features"] == [s["frames"], n, s["vit"][0]]
    for name in ("Baseline", "μ² (SFT)"):
        assert res["tokenizer"][name]["output"] == [s["batch"], s["queries"], s["lm"][0]]
    losses = res["sft"]["losses"]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert res["sft"]["sequence_length"] > s["queries"] + s["answer_words"]


def test_full_scale_matches_the_chapter_profile():
    from rrg_lite.profiles import load_profile

    full, s = load_profile("mu2", "full"), _bench().SCALES["full"]
    assert (s["frames"], s["K"], s["size"]) == (full.num_frames, full.slices_per_frame, full.ct_size)
    assert (s["k"], s["queries"], s["tok_layers"], s["heads"]) == (full.k, full.num_queries, full.refiner_layers,
                                                                   full.num_heads)
    assert s["vit"][0] == full.encoder_width and s["lm"][:2] == (full.llm_hidden, full.llm_layers)
    with pytest.raises(KeyError):
        _bench().run("huge")
