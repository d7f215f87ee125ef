"""LLM-RG4 (flexible chest X-ray report generation): scenarios, ATF, TLW, the hall. detector, the recipe and the
experiment are built; the rewriting loop's DiscBERT step is to come.

Paper: ``papers/llm_rg4.txt``; engineering map in the design notes (SYSTEMS.md §3). Each row maps a part of the
paper to the code that builds it (or will); the shared parts it uses are in brackets.

=================================================  ==============================================================
paper                                              code
=================================================  ==============================================================
four scenarios sn / sw / mn / mw (lateral view     :class:`.scenarios.Scenario`, :func:`.scenarios.scenario_of`,
and prior report optional)                         ``Scenario.inputs``
stage 2: each mini-batch from one scenario,        :func:`.scenarios.round_robin_batches` (seeded, every item once
scenarios round-robin (code)                       per epoch)
ATF, Eq. 5–7: perceivers p_f (N learned queries    :class:`.atf.AdaptiveTokenFusion` configured by
V' read v_f), p_l, p_t (the frontal query          :class:`.atf.ATFConfig` (the perceivers are
features read v_l and v_t), "Linear" to D          :class:`rrg_lite.fusion.attention.CrossAttentionStack`)
ATF, Eq. 8: concat on the feature axis (N, 3D),    ``AdaptiveTokenFusion.forward`` (``has_lateral`` / ``has_prior``
zeros for a missing input, fixed order, linear     per sample: a batch may mix scenarios); always N tokens:
projection: N tokens in every scenario             ``tokens_for(scenario)``
Table 4 "ATF ✗": interleaved inputs, the token     :class:`.atf.InterleavedTokens` (per-input projectors, token
count grows (502 vs 204)                           axis; ``tokens_for(scenario)``; masks via
                                                   :func:`rrg_lite.mllm.model.compact_rows`)
TLW, Eq. 10: ``L(t_j) = −c_j log p(t_j)``          :func:`.tlw.tlw_lm_loss` / :func:`.tlw.tlw_loss`, ``form="paper"``
                                                   (= :func:`rrg_lite.mllm.losses.weighted_lm_loss`); the code's
                                                   two-term form ``form="code"``
Algorithm 1: CheXbert labels (13, no "No           :func:`.tlw.token_weights` -> :class:`.tlw.TokenWeights` (per
Finding"), integrated gradients per positive /     word token; ``.spans`` for
uncertain label, max, Gaussian smoothing,          :func:`rrg_lite.mllm.prompt.token_weights_from_spans`);
sentence > 0.4 -> λ = 1.75                         :func:`.tlw.integrated_gradients`, :func:`.tlw.token_attributions`,
                                                   :func:`.tlw.gaussian_smooth`, :func:`.tlw.sentence_weights`;
                                                   knobs in :class:`.tlw.TLWConfig`
CheXbert, as a differentiable labeler to           :class:`.tlw.TokenLabeler` (embedding + 1-D conv + pool, 14
attribute through                                  sigmoid heads; ``fit``)
controls for TLW: random sentences of the same     :func:`.tlw.random_sentence_weights`, :func:`.tlw.oracle_weights`
count, oracle key sentences                        (:func:`.tlw.world_key_sentences`)
DiscBERT: four binary heads (prior comparison,     :class:`.discriminator.InputAgnosticDetector`,
prior procedure, view, communication)              :func:`.discriminator.fit_detector`,
                                                   :func:`.discriminator.head_scores` (encoder:
                                                   :class:`rrg_lite.encoders.text.NgramTextEncoder`; categories of
                                                   :mod:`rrg_lite.metrics.hallucination`)
hall. (Tables 2–3): share of reports with          :func:`.discriminator.hallucination_rate`,
input-agnostic content; comparisons allowed only   :func:`.discriminator.hall_rate_from_flags`,
with a prior, views only in m*                     :func:`.discriminator.allowed_categories`; the rule-based
                                                   detector stays in :mod:`rrg_lite.metrics.hallucination`
data rewriting loop: judge → rewrite → re-judge,   exists in part: :mod:`rrg_lite.prompting.rewriting` (LLM judge);
≤ 3 rounds, CheXbert label check                   DiscBERT as the judge: planned
frozen encoders (RAD-DINO, CXR-BERT); the clean   :func:`.recipe.prepare_data` -> :class:`.recipe.RG4Data` (features once:
per-scenario target (MIMIC-RG4) and the original   :func:`rrg_lite.encoders.hub.get_encoder`, prior report through
report                                             :class:`.recipe.PriorReportEncoder`); :func:`.recipe.clean_sentences`
ATF / interleaved tokens feeding the LLM           :class:`.recipe.RG4Model` (fusion -> ``visual_embeds`` of
                                                   :class:`rrg_lite.mllm.model.MultimodalLM`; TLW via ``loss_weights``)
stage 1 (ATF frontal, LLM frozen, sn), stage 2     :func:`.recipe.train_stage` (:func:`.recipe.configure`,
(ATF + LoRA, all scenarios, one scenario a batch)  :func:`.recipe.add_lora`; single-scenario batches as loop items)
Table 4 ablation, Table 5 mixed vs per-scenario,   :mod:`.experiment`: :data:`.experiment.VARIANTS`,
original vs clean training, input controls         :func:`.experiment.prepare`, :func:`.experiment.run_experiment`,
                                                   :func:`.experiment.table4` / ``table5`` / ``headlines`` (paired
                                                   intervals) / ``reference_hall``; :func:`.experiment.paper_table`
=================================================  ==============================================================

What the paper leaves open and what these modules chose is said in each module's docstring (the perceivers' and
projectors' build, ``add_bias_kv``, the text mask in :mod:`.atf`; IG baseline, steps and rule, the attribution
normalisation, σ, the labeler's pooling and the loss normalisation in :mod:`.tlw`; sentence- vs report-level
detection in :mod:`.discriminator`; the end of an epoch when one scenario runs out in :mod:`.scenarios`).
"""
