"""μ²-LLM {cite}`li2025mu2`: the μ² Tokenizer (LinVT + RPE, DTS, DMTP), SFT then DPO on GREEN, reasoning data.

Chapters 6 (tokenizer and its ablation), 7 (preference optimisation) and 8 (reports to reasoning data). μ²
extends LinVT: the LinVT blocks are shared (:mod:`rrg_lite.tokenizers.linvt`, which never imports this room).

==================================================  =================================================================
paper                                               code
==================================================  =================================================================
§2.1 set-up: a CT of any depth cut into T frames    :func:`.tokenizer.volume_to_frames`; the ablation's frames and
of K slices, a ViT3D per frame                      frozen features: :func:`.ablation.ct_to_frames`,
                                                    :func:`.ablation.encode_frames`, :func:`.ablation.build_frame_encoder`
§2.2 LinVT baseline (SVR: refiner, hard top-k,      blocks in :mod:`rrg_lite.tokenizers.linvt`; the baseline tokenizer
fixed multi-scale pooling; TTA)                     :func:`.tokenizer.linvt_tokenizer` (every μ² flag off)
§2.2 RPE, ``A_ij = q_i k_jᵀ/√d + P_r(i − j)``,      :class:`.tokenizer.RelativePositionBias`,
one table per head                                  :func:`.tokenizer.relative_position_index`
§2.2 DTS, ``α⁽ʳ⁾ = softmax(W_s⁽ʳ⁾ V_flat)``,         :class:`.tokenizer.SoftTokenSelection`
``V_top⁽ʳ⁾ = Σ_i α_i⁽ʳ⁾ V_flat(i)``
§2.2 DMTP, ``w_s = softmax_s(g(ȳ_s))``              :class:`.tokenizer.DynamicMultiScalePooling`
the assembled tokenizer, its flags, the paper's     :class:`.tokenizer.Mu2Tokenizer`, :class:`.tokenizer.Mu2Config`,
full-scale setting (§3)                             :data:`.tokenizer.FULL_SCALE`
§3 Table 2, the component ablation                  :data:`.tokenizer.ABLATION_VARIANTS`, :data:`.tokenizer.PAPER_TABLE2`;
                                                    the rebuilt experiment :mod:`.ablation` (:func:`.ablation.prepare_world`,
                                                    :func:`.ablation.prepare_manifest` for AMOS-MM folders,
                                                    :func:`.ablation.run_ablation`, :func:`.ablation.summarize`,
                                                    :func:`.ablation.paper_table`); the image-gain control
                                                    :func:`.ablation.image_gain_interval`
cost of depth (any T, fixed LLM input)              :mod:`.cost` (:func:`.cost.cost_vs_depth`)
§2.3 DPO on GREEN-ranked samples                    the recipe: SFT model from :func:`.ablation.train_variant`;
                                                    pairs ranked by GREEN in :mod:`rrg_lite.train.preference`; the loss
                                                    ``L_DPO`` in :mod:`rrg_lite.train.dpo` (both shared: any system can
                                                    use preference data)
§2.4 prompt engineering: five-stage reasoning       :class:`rrg_lite.prompting.reasoning.Mu2ReasoningPipeline` with the
synthesis, rewriting, translation                   ``mu2.*`` templates of :mod:`rrg_lite.prompting.templates`;
                                                    :mod:`rrg_lite.prompting.rewriting` (shared prompting runner)
==================================================  =================================================================

Profiles: :mod:`rrg_lite.profiles.mu2`, :mod:`rrg_lite.profiles.dpo`, :mod:`rrg_lite.profiles.reasoning`.
Entry points: ``python -m rrg_lite.run mu2`` and ``python -m rrg_lite.run preference_optimisation``.
"""
