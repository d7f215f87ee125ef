"""Fusion blocks shared by the systems: one set of tokens reads another through cross-attention.

Queries (B, Nq, D) — given by the caller, or N learned latent vectors — attend keys/values (B, Nk, D_kv) and come
out as (B, Nq, D): the token count is the queries', whatever the number of keys. One implementation serves every
paper that needs it, so their variants differ only in the options they set (norm order, FFN, depth, biases):

- :mod:`rrg_lite.fusion.attention` — ``CrossAttentionConfig``, ``CrossAttention`` (the attention alone),
  ``CrossAttentionLayer`` (attention + residual + post- or pre-norm + optional FFN), ``CrossAttentionStack``
  (depth, optional learned queries, optional final norm), ``check_tokens``.

Users (in the paper rooms, which import this room, never the other way): ViPET-VLM's PET-query fusion
(:mod:`rrg_lite.systems.vipet.fusion`), LLM-RG4's adaptive token fusion (:mod:`rrg_lite.systems.llm_rg4.atf`).
Import from the submodule; this file re-exports nothing.
"""
