"""LLM-RG4 (flexible chest X-ray report generation): empty room, documented ahead of its chapter.

Paper: ``papers/llm_rg4.txt``; engineering map in the design notes (SYSTEMS.md §3).

=================================================  ==============================================================
paper                                              planned module (shared parts it uses)
=================================================  ==============================================================
four scenarios sn / sw / mn / mw (lateral view     ``llm_rg4.scenarios`` (multi-image study data model in
and prior report optional)                         :mod:`rrg_lite.data`)
data rewriting loop: judge → rewrite → re-judge,   exists in part: :mod:`rrg_lite.prompting.rewriting`; DiscBERT-like
≤ 3 rounds, CheXbert label check                   detector in :mod:`rrg_lite.metrics.hallucination`
adaptive token fusion: ``h_f``, ``h_l``, ``h_t``   ``llm_rg4.atf`` (learned-query cross-attention of
with frontal queries, concat on the feature axis,  :mod:`rrg_lite.fusion`)
zeros for missing inputs, N = 128 tokens
token-level loss weighting ``L = −c_j log p``,     ``llm_rg4.tlw`` (per-token loss weights of :mod:`rrg_lite.mllm`,
Algorithm 1 (integrated gradients, λ = 1.75);      labelers of :mod:`rrg_lite.metrics`)
the code's two-term form as an option
stage 1 (ATF frontal, LLM frozen), stage 2 (ATF +  ``llm_rg4.recipe`` (round-robin single-scenario batches)
LoRA r 32, all scenarios)
Table 4 ablation; input-agnostic hallucination     ``llm_rg4.experiment``
rate (Tables 2–3)
=================================================  ==============================================================
"""
