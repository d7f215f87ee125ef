"""What a deeper CT costs the tokenizer: time and peak memory vs the number of frames T, on CPU.

μ² cuts a volume into T frames instead of resizing it, so the tokenizer's work grows with depth while the LLM's
input length does not (it always receives ``num_queries`` visual tokens). :func:`cost_vs_depth` measures that:
for T = 1…8 it times a forward pass (the fastest of ``repeats``, the usual micro-benchmark choice: other
processes only ever add time) and records the peak CPU memory allocated by
PyTorch during one pass, as seen by ``torch.profiler`` (allocations are attributed per operator, so a temporary
that lives and dies inside one operator is not counted: a slight under-estimate, the same for every T).
:func:`plot_cost_vs_depth` draws the result.
"""
from __future__ import annotations

import contextlib
import os
import time

import torch

__all__ = ["peak_cpu_memory_bytes", "cost_vs_depth", "plot_cost_vs_depth"]


@contextlib.contextmanager
def _quiet_stderr():
    """The Kineto profiler prints start/stop lines on the C-level stderr; keep notebook output clean."""
    try:
        fd = os.dup(2)
    except OSError:  # no real stderr (some notebook kernels): nothing to silence
        yield
        return
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(fd, 2)
            os.close(fd)


def peak_cpu_memory_bytes(fn) -> tuple[int, object]:
    """Run ``fn()`` under the profiler; return (peak of PyTorch's live CPU allocations in bytes, fn's result).

    The peak is the running maximum of the allocations minus frees, in the order the operators started.
    """
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak, result


def cost_vs_depth(
    tokenizer,
    tokens_per_frame: int,
    frames=range(1, 9),
    batch_size: int = 1,
    question_length: int = 16,
    repeats: int = 3,
    seed: int = 0,
) -> list[dict]:
    """Time and memory of ``tokenizer`` for inputs of T frames × ``tokens_per_frame`` tokens, for each T.

    Returns one dict per T: ``frames``, ``input_tokens`` (T·N), ``output_tokens`` (what the LLM receives),
    ``seconds`` (fastest forward time, no gradient), ``peak_mb`` (peak CPU memory of one forward, MB).
    """
    g = torch.Generator().manual_seed(seed)
    was_training = tokenizer.training
    tokenizer.eval()
    rows = []
    try:
        with torch.no_grad():
            question = torch.randn(batch_size, question_length, tokenizer.out_dim, generator=g)
            for T in frames:
                feats = torch.randn(batch_size, T, tokens_per_frame, tokenizer.in_dim, generator=g)
                run = lambda: tokenizer(feats, question)  # noqa: E731
                run()  # warm-up (allocator, kernels)
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    run()
                    times.append(time.perf_counter() - start)
                peak, out = peak_cpu_memory_bytes(run)
                rows.append(
                    {
                        "frames": T,
                        "input_tokens": T * tokens_per_frame,
                        "output_tokens": out.shape[1],
                        "seconds": min(times),
                        "peak_mb": peak / 2**20,
                    }
                )
    finally:
        tokenizer.train(was_training)
    return rows


def plot_cost_vs_depth(results: dict[str, list[dict]], ax=None):
    """Three panels vs T: time, peak memory, LLM visual-token count; ``results`` maps a label to rows."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(1, 3, figsize=(12, 3.2))
    for label, rows in results.items():
        T = [r["frames"] for r in rows]
        ax[0].plot(T, [1000 * r["seconds"] for r in rows], "o-", label=label)
        ax[1].plot(T, [r["peak_mb"] for r in rows], "o-", label=label)
        ax[2].plot(T, [r["output_tokens"] for r in rows], "o-", label=label)
    for a, title in zip(ax, ["forward time (ms)", "peak CPU memory (MB)", "visual tokens given to the LLM"]):
        a.set_xlabel("frames T (depth / K slices)")
        a.set_title(title)
        a.grid(alpha=0.3)
    ax[2].set_ylim(bottom=0)
    ax[0].legend()
    return ax
