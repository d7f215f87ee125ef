"""Evaluation: generate reports with a :class:`~rrg_lite.mllm.model.MultimodalLM` and score them.

    preds = generate_reports(mllm, examples, batch_size=32, max_new_tokens=200)     # greedy
    scores = score_generated(preds, refs, labeler="ctrate")                          # rrg_lite.metrics

``examples`` are dicts from ``mllm.encode_example(prompt, num_images=...)`` (no target) plus their visual inputs.
"""
from __future__ import annotations

from typing import Sequence

from rrg_lite.mllm.inference import batched_inference, unwrap_model
from rrg_lite.mllm.prompt import MLLMCollator

_MODEL_KEYS = ("input_ids", "attention_mask", "images", "features", "visual_embeds")


def generate_reports(mllm, examples: Sequence[dict], batch_size: int = 32, max_new_tokens: int = 200,
                     progress: bool = True, desc: str = "generate", shard: bool | str = "auto",
                     **gen_kwargs) -> list[str]:
    """Left-pad, generate and decode every example, in order (greedy unless ``do_sample=True`` is passed).

    Batches follow the model's device (:func:`rrg_lite.mllm.inference.batched_inference`); under
    ``accelerate launch`` each process generates its shard and every process gets all reports back, in order.
    With ``num_return_sequences=r`` the result holds r reports per example, consecutive.
    """
    items = [{k: v for k, v in e.items() if k in _MODEL_KEYS} for e in examples]
    r = int(gen_kwargs.get("num_return_sequences", 1))

    def generate(model, batch):
        return unwrap_model(model).generate_text(**batch, max_new_tokens=max_new_tokens, **gen_kwargs)

    out = batched_inference(mllm, items, generate, batch_size=batch_size,
                            collate=MLLMCollator(mllm.tokenizer.pad_token_id, padding_side="left"),
                            progress=progress, desc=desc, shard=shard, per_item=r)
    return out if r == 1 else [text for group in out for text in group]


def score_generated(preds: Sequence[str], refs: Sequence[str], labeler: str = "ctrate",
                    metrics: Sequence[str] = ("bleu", "rouge_l", "cider", "clinical")):
    """:func:`rrg_lite.metrics.report.score_reports` with the offline metrics (dict name -> MetricResult)."""
    from rrg_lite.metrics.report import score_reports

    return score_reports(list(preds), list(refs), metrics=list(metrics), labeler=labeler)
