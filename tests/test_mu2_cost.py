"""The cost-vs-depth measurement: it measures something real and the LLM input length stays fixed."""
import torch

from rrg_lite.systems.mu2.tokenizer import Mu2Config, Mu2Tokenizer
from rrg_lite.systems.mu2.cost import cost_vs_depth, peak_cpu_memory_bytes

TINY = Mu2Config(in_dim=8, dim=16, num_heads=2, refiner_layers=1, aggregation_layers=1, k=8, num_queries=4,
                 gate_hidden=8, max_frames=8, max_tokens=16, max_frame_distance=8, max_token_distance=16)


def test_peak_memory_sees_a_known_allocation():
    def make():
        a = torch.ones(256, 1024)  # 1 MiB of float32
        b = a + 1  # another MiB while a is alive
        return b.sum()

    peak, out = peak_cpu_memory_bytes(make)
    assert out.item() == 2 * 256 * 1024
    assert 2 * 2**20 <= peak < 3 * 2**20


def test_cost_vs_depth_rows():
    torch.manual_seed(0)
    tok = Mu2Tokenizer(TINY)
    rows = cost_vs_depth(tok, tokens_per_frame=16, frames=[1, 4], repeats=1)
    assert [r["frames"] for r in rows] == [1, 4]
    assert [r["input_tokens"] for r in rows] == [16, 64]
    assert [r["output_tokens"] for r in rows] == [4, 4]  # the LLM sees the same number of tokens
    assert all(r["seconds"] > 0 for r in rows)
    assert rows[1]["peak_mb"] > rows[0]["peak_mb"] > 0  # four times the tokens needs more memory
    assert tok.training  # mode restored
