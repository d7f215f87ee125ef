"""Evaluation: generate reports with a :class:`~rrg_lite.mllm.model.MultimodalLM` and score them.

    preds = generate_reports(mllm, examples, batch_size=32, max_new_tokens=200)     # greedy
    scores = score_generated(preds, refs, labeler="ctrate")                          # rrg_lite.metrics

``examples`` are dicts from ``mllm.encode_example(prompt, num_images=...)`` (no target) plus their visual inputs.
"""
from __future__ import annotations

from typing import Sequence

import torch
from tqdm.auto import tqdm

from rrg_lite.mllm.prompt import MLLMCollator


@torch.no_grad()
def generate_reports(mllm, examples: Sequence[dict], batch_size: int = 32, max_new_tokens: int = 200,
                     progress: bool = True, desc: str = "generate", **gen_kwargs) -> list[str]:
    """Left-pad, generate and decode every example, in order (greedy unless ``do_sample=True`` is passed)."""
    if any("labels" in e for e in examples):
        examples = [{k: v for k, v in e.items() if k != "labels"} for e in examples]
    collate = MLLMCollator(mllm.tokenizer.pad_token_id, padding_side="left")
    was_training = mllm.training
    mllm.eval()
    device = next(mllm.parameters()).device
    out: list[str] = []
    for start in tqdm(range(0, len(examples), batch_size), desc=desc, disable=not progress):
        chunk = [{k: v for k, v in e.items() if k in ("input_ids", "attention_mask", "images", "features", "visual_embeds")}
                 for e in examples[start: start + batch_size]]
        batch = collate(chunk)
        batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        out.extend(mllm.generate_text(**batch, max_new_tokens=max_new_tokens, **gen_kwargs))
    mllm.train(was_training)
    return out


def score_generated(preds: Sequence[str], refs: Sequence[str], labeler: str = "ctrate",
                    metrics: Sequence[str] = ("bleu", "rouge_l", "cider", "clinical")):
    """:func:`rrg_lite.metrics.report.score_reports` with the offline metrics (dict name -> MetricResult)."""
    from rrg_lite.metrics.report import score_reports

    return score_reports(list(preds), list(refs), metrics=list(metrics), labeler=labeler)
