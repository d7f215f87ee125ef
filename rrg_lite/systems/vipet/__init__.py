"""ViPET-VLM (PET/CT report generation): the paper's equations, its recipe and its ablation (the chapter is to come).

Paper: ``papers/vipet_vlm.txt``; engineering map in the design notes (SYSTEMS.md §1). Each row maps a part of the
paper to the code that builds it (or will); the shared parts it uses are in brackets.

=================================================  ==============================================================
paper                                              code
=================================================  ==============================================================
report split into strict JSON ``{"PET", "CT"}``    exists: :mod:`rrg_lite.prompting.petct` (shared prompting)
§3.2.1 stage 1a, CLIP per modality, image→text     :func:`.fusion.one_way_clip_loss` (the package's InfoNCE,
InfoNCE with cosine similarity (Eq. 3, 4)          :func:`rrg_lite.train.contrastive.info_nce`, one direction);
                                                   the encoders' training: :func:`.clip.train_modality_encoder`
                                                   (the package's encoder pre-training, ``symmetric=False``);
                                                   R@k over distinct texts: :func:`.clip.retrieval_at_k`
§3.2.1 stage 1b, PET-query cross-attention,        :class:`.fusion.PetCtFusion` configured by
``Q = V_PET W_Q, K = V_CT W_K, V = V_CT W_V``      :class:`.fusion.FusionConfig`; the attention of Eq. 5–6 alone:
(Eq. 5), ``Z̄ = softmax(QKᵀ/√d)V`` (Eq. 6),         :class:`.fusion.CrossAttention`; post-norm as printed
``Z' = LN(V_PET + Z̄)`` (Eq. 7),                    (``norm="pre"`` an option)
``Z_cross = LN(Z' + FFN(Z'))`` (Eq. 8)
controls for the fusion: concatenation instead     ``FusionConfig(mode="concat_tokens")`` (a related codebase's),
of cross-attention, CT as the query                ``mode="concat_features"`` (per-token, co-registered),
                                                   ``query="ct"``
``L_cross``: pooled Z_cross vs the full report     :func:`.fusion.one_way_clip_loss` on Z_cross (mean-pooled by
(Eq. 9)                                            :func:`.fusion.pool_tokens`)
§3.2.2 projector: one linear layer                 :mod:`rrg_lite.tokenizers.linear`
§3.2.2 stage 2 projector only; §3.2.3 stage 3      :func:`.recipe.train_stage2`, :func:`.recipe.train_stage3`
LoRA on single- and multi-turn VQA (+ λ·L_align)   (:mod:`rrg_lite.mllm.stages`, multi-turn chat in
                                                   :mod:`rrg_lite.mllm`; Eq. 10 in the training pass through
                                                   :meth:`rrg_lite.mllm.MultimodalLM.visual_attention`); data:
                                                   :func:`.recipe.make_petct_data` / :func:`.recipe.load_petct_folder`
§3.2.4 the ROI: thresholded PET (high SUV) on      :func:`.alignment.high_suv_mask`, :func:`.alignment.token_roi_mask`
the image tokens                                   (voxel→token rule a parameter),
                                                   :func:`.alignment.token_roi_fraction`; regions:
                                                   :func:`.alignment.roi_components`
§3.2.4 the visual attention map, mean over         :func:`.alignment.visual_attention_map` (attentions from an eager
layers and heads (Eq. 10)                          🤗 model, e.g. :mod:`rrg_lite.mllm.model`)
``L_align`` (Eq. 11), union reading by default,    :func:`.alignment.attention_alignment_loss` (``reading="union"``,
per-region and literal readings as options;        ``"components"``, ``"literal"``); the attention mass on the ROI:
``L = L_llm + λ·L_align`` (Eq. 12)                 :func:`.alignment.roi_attention_share`;
                                                   :func:`.alignment.final_loss`
control for ``L_align``: a random ROI of the       :func:`.alignment.random_roi_like` (scattered or shifted, seeded)
same size
Tables 1–2: the 2×2 fusion × alignment ablation    :mod:`.experiment` (:data:`.experiment.VARIANTS`: + CT only,
                                                   concatenation, CT as query, random ROI; wrong image / wrong CT
                                                   at evaluation; :func:`.experiment.paper_table`); profile
                                                   :mod:`rrg_lite.profiles.vipet`
=================================================  ==============================================================

What the paper leaves open and what these modules chose is said in each module's docstring (heads, blocks, FFN,
pooling, τ in :mod:`.fusion`; SUV threshold, voxel→token rule, text-row aggregation, the reading of Eq. 11,
images without ROI and λ in :mod:`.alignment`).
"""
