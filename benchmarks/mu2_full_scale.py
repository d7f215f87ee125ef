"""One real training step of μ²-LLM at the paper's size, on a GPU: what it costs in time and memory.

    python benchmarks/mu2_full_scale.py --scale full --device cuda --out mu2_full_scale.json   # needs ~30 GB GPU
    python benchmarks/mu2_full_scale.py --scale tiny                                          # seconds on a CPU

``full`` is chapter 6's full profile: M3D-CLIP's 3-D ViT (MONAI, 12 layers, width 768, patches 4×16×16) on
8 frames of 32×256×256, the μ² tokenizer of :data:`rrg_lite.systems.mu2.tokenizer.FULL_SCALE` (4 + 4 layers, 8 heads,
k = 1024, 1024 queries, width 2048) and a language model with Llama-3.2-1B-Instruct's shape (16 layers, hidden
2048, 32 heads, 8 KV heads, MLP 8192, vocabulary 128 256). All weights are *random*: nothing is downloaded, so
the numbers are about cost, not quality. With real weights, pass ``llm`` / ``encoder_weights`` to the chapter.

Measured: the frozen encoder's forward per volume, the tokenizer's forward + backward (LinVT and μ²), and full
SFT steps of tokenizer + LM in bf16 with AdamW on one repeated batch (the loss must fall), with peak memory.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import torch

SCALES = {
    # frames, slices per frame, in-plane size, ViT (width, layers, heads, mlp), LM (hidden, layers, heads, kv, mlp, vocab)
    "full": dict(frames=8, K=32, size=256, vit=(768, 12, 12, 3072), lm=(2048, 16, 32, 8, 8192, 128256),
                 answer_words=300, batch=2, k=1024, queries=1024, tok_layers=4, heads=8),
    "tiny": dict(frames=2, K=8, size=32, vit=(32, 1, 2, 64), lm=(32, 1, 2, 1, 64, 512),
                 answer_words=20, batch=2, k=8, queries=4, tok_layers=1, heads=2),
}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_gb(device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


def _reset_peak(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _timed(fn, device, repeats: int):
    fn()  # warm-up (kernels, allocator)
    _sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    _sync(device)
    return out, (time.perf_counter() - t) / repeats


def run(scale: str = "tiny", device: str = "cpu", dtype: str = "bfloat16", steps: int = 8, repeats: int = 3) -> dict:
    """Build every part at ``scale``, measure, and return a JSON-able dict of results."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from rrg_lite.encoders.pretrained import m3d_clip_vit
    from rrg_lite.mllm.model import MultimodalLM
    from rrg_lite.mllm.prompt import MLLMCollator
    from rrg_lite.mllm.text import build_word_tokenizer
    from rrg_lite.systems.mu2.tokenizer import FULL_SCALE, Mu2Tokenizer

    s = SCALES[scale]
    dev, dt = torch.device(device), getattr(torch, dtype)
    torch.manual_seed(0)
    out = {"scale": scale, "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", "dtype": dtype}

    # 1. the frozen 3-D ViT on one volume = T frames of K x H x W
    E, vit_layers, vit_heads, vit_mlp = s["vit"]
    encoder = m3d_clip_vit(weights=None, img_size=(s["K"], s["size"], s["size"]), hidden_size=E, mlp_dim=vit_mlp,
                           num_layers=vit_layers, num_heads=vit_heads).to(dev, dt).eval().requires_grad_(False)
    frames = torch.rand(s["frames"], 1, s["K"], s["size"], s["size"], device=dev, dtype=dt)
    _reset_peak(dev)
    with torch.no_grad():
        feats, sec = _timed(lambda: encoder(frames), dev, repeats)
    N = feats.shape[1]
    out["encoder"] = {"input": list(frames.shape), "features": [s["frames"], N, E], "seconds_per_volume": sec,
                      "peak_gb": _peak_gb(dev), "parameters": sum(p.numel() for p in encoder.parameters())}
    feats = feats[None].expand(s["batch"], -1, -1, -1).contiguous()  # (B, T, N, E)
    del encoder

    # 2. the tokenizer alone, forward + backward, LinVT and μ²
    D, lm_layers, lm_heads, lm_kv, lm_mlp, vocab = s["lm"]
    cfg = replace(FULL_SCALE, in_dim=E, dim=D, k=s["k"], num_queries=s["queries"], num_heads=s["heads"],
                  refiner_layers=s["tok_layers"], aggregation_layers=s["tok_layers"], max_tokens=max(N, 16))
    question = torch.randn(s["batch"], 12, D, device=dev, dtype=dt)
    out["tokenizer"] = {}
    for name in ("Baseline", "μ² (SFT)"):
        tok = Mu2Tokenizer(cfg.variant(name)).to(dev, dt)

        def fwd_bwd():
            tok.zero_grad(set_to_none=True)
            y = tok(feats, question)
            y.float().pow(2).mean().backward()
            return y

        _reset_peak(dev)
        y, sec = _timed(fwd_bwd, dev, repeats)
        out["tokenizer"][name] = {"output": list(y.shape), "seconds_fwd_bwd": sec, "peak_gb": _peak_gb(dev),
                                  "parameters": sum(p.numel() for p in tok.parameters())}
        del tok

    # 3. SFT steps: μ² tokenizer + a Llama-3.2-1B-shaped LM, everything trained, bf16 weights, AdamW
    words = [f"w{i}" for i in range(400)]
    text_tok = build_word_tokenizer([" ".join(words), "What are the findings in the abdomen ?"])
    lm_cfg = LlamaConfig(vocab_size=max(vocab, len(text_tok)), hidden_size=D, intermediate_size=lm_mlp,
                         num_hidden_layers=lm_layers, num_attention_heads=lm_heads, num_key_value_heads=lm_kv,
                         max_position_embeddings=4096, tie_word_embeddings=True, pad_token_id=text_tok.pad_token_id,
                         bos_token_id=text_tok.bos_token_id, eos_token_id=text_tok.eos_token_id)
    lm_cfg._attn_implementation = "sdpa"
    lm = LlamaForCausalLM(lm_cfg)
    mllm = MultimodalLM(lm, text_tok, {"image": Mu2Tokenizer(cfg)}).to(dev, dt)
    answer = " ".join(words[i % len(words)] for i in range(s["answer_words"]))
    examples = []
    for _ in range(s["batch"]):
        ex = mllm.encode_example("What are the findings in the abdomen ? <image>", answer)
        ex["features"] = feats[:1]  # (1, T, N, E): one CT per example
        examples.append(ex)
    batch = MLLMCollator(text_tok.pad_token_id)(examples)
    batch = {k: (v.to(dev) if torch.is_tensor(v) else [f.to(dev) for f in v]) for k, v in batch.items()}
    opt = torch.optim.AdamW(mllm.parameters(), lr=1e-4 if scale == "full" else 1e-2)
    losses, times = [], []
    _reset_peak(dev)
    for _ in range(steps):
        _sync(dev)
        t = time.perf_counter()
        loss = mllm(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(dev)
        times.append(time.perf_counter() - t)
        losses.append(float(loss.detach()))
    out["sft"] = {"sequence_length": int(batch["input_ids"].shape[1]), "batch": s["batch"],
                  "visual_tokens": s["queries"], "losses": losses,
                  "seconds_per_step_after_first": sum(times[1:]) / max(len(times) - 1, 1),
                  "first_step_seconds": times[0], "peak_gb": _peak_gb(dev),
                  "parameters": sum(p.numel() for p in mllm.parameters())}
    if not losses[-1] < losses[0]:
        raise RuntimeError(f"the loss did not fall over {steps} steps on one repeated batch: {losses}")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=list(SCALES), default="tiny")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    res = run(args.scale, args.device, args.dtype, args.steps)
    text = json.dumps(res, indent=1, ensure_ascii=False)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return res


if __name__ == "__main__":
    main()
