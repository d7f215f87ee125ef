"""Visual tokenizers: modules that turn encoder features into a fixed number of LLM-width tokens.

Every visual tokenizer follows one interface (defined in :mod:`rrg_lite.tokenizers.base`)::

    tokens = tokenizer(features, question_embeds=None, question_mask=None)

    features         (B, T, N, E)  T frames x N patch tokens of width E from the vision encoder (2-D images: T = 1)
    question_embeds  (B, L, D)     the LM's input embeddings of the prompt text (ignored by text-free tokenizers)
    question_mask    (B, L) bool   True where ``question_embeds`` holds a real token
    tokens           (B, K, D)     K = ``tokenizer.num_tokens`` visual tokens of the LM's hidden size D

Modules (import from the submodule; this file re-exports nothing):

- :mod:`rrg_lite.tokenizers.base`      ``VisualTokenizer`` (the base class and its input checks)
- :mod:`rrg_lite.tokenizers.linear`    ``LinearProjector`` — LLaVA's per-token linear / MLP projector, K = T*N
- :mod:`rrg_lite.tokenizers.pooling`   ``SpatialPoolingProjector`` — M3D's 3-D average pooling of the patch grid + MLP
- :mod:`rrg_lite.tokenizers.perceiver` ``PerceiverResampler`` — K learned latents cross-attend to all patch tokens
- :mod:`rrg_lite.tokenizers.cabstractor` ``CAbstractor`` — Honeybee's C-Abstractor (M4CXR): positional embedding,
  residual conv blocks, adaptive pool to s×s, conv blocks, MLP; K = T·s·s; ``pool_only_projector`` (depth 0) is the
  pool-only control
- :mod:`rrg_lite.tokenizers.linvt`     LinVT's blocks (refiner, hard top-k, multi-scale pooling, text-conditioned
  aggregation); the μ² tokenizer that extends them lives in its paper's room, :mod:`rrg_lite.systems.mu2.tokenizer`
"""
