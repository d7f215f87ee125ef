"""ViPET-VLM (PET/CT report generation): empty room, documented ahead of its chapter.

Paper: ``papers/vipet_vlm.txt``; engineering map in the design notes (SYSTEMS.md §1). Planned modules, each
mapped to the paper's equations; the shared parts they will call are named on the right.

=================================================  ==============================================================
paper                                              planned module (shared parts it uses)
=================================================  ==============================================================
report split into strict JSON ``{"PET", "CT"}``    exists: :mod:`rrg_lite.prompting.petct` (shared prompting)
stage 1a, CLIP per modality, one-directional       ``vipet.clip`` (InfoNCE from :mod:`rrg_lite.train`; 3-D ViTs
InfoNCE (Eq. 3, 4)                                 from :mod:`rrg_lite.encoders`)
stage 1b, PET-query cross-attention fusion,        ``vipet.fusion`` (the learned-query block of :mod:`rrg_lite.fusion`,
post-norm (Eq. 5–8), ``L_cross`` (Eq. 9)           PET tokens as queries, CT tokens as keys/values)
projector: one linear layer                        :mod:`rrg_lite.tokenizers.linear`
stage 2 projector only; stage 3 LoRA on single-    ``vipet.recipe`` (:mod:`rrg_lite.mllm.stages`, multi-turn chat in
and multi-turn VQA                                 :mod:`rrg_lite.mllm`)
attention-alignment loss toward high-SUV tokens,   ``vipet.alignment`` (attention to visual tokens from
``L = L_llm + λ·L_align`` (Eq. 10–11)              :mod:`rrg_lite.mllm.model`, eager attention)
Tables 1–2: the 2×2 fusion × alignment ablation    ``vipet.experiment`` (+ PET-only, CT-only, wrong-CT, random-ROI
                                                   controls)
=================================================  ==============================================================
"""
