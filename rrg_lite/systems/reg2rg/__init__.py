"""Reg2RG (region-guided chest CT report generation): the paper's parts, its recipe and its experiment (chapter to come).

Paper: ``papers/reg2rg.txt``; engineering map in the design notes (SYSTEMS.md §2). Each row maps a part of the
paper to the code that builds it (or will); the shared parts it uses are in brackets.

=================================================  ==============================================================
paper                                              code
=================================================  ==============================================================
``R = LLM(G, L_1 … L_n)`` (Eq. 1); masks ``M_Aj``  region masks from :mod:`rrg_lite.world` (``CTStudy.region_masks``)
(Eq. 2; the world gives them, SAT at full scale)   and RadGenome's files
                                                   (:func:`rrg_lite.data.formats.ctrate.read_radgenome`)
mask → box → ``Crop(M ⊙ V)`` → encoder input       shared: :func:`rrg_lite.data.regions.crop_region` /
                                                   ``crop_regions`` (``tight_box``, ``expand_box``, ``mask_volume``,
                                                   ``resize_mask``)
§III-B local feature decoupling: texture           :class:`.features.LocalFeatureDecoupling` configured by
``L^t_j = f_A(f_V(Crop(M_j ⊙ V)))`` (Eq. 3, 32     :class:`.features.LFDConfig` (frozen f_V: any 3-D encoder;
tokens), geometry ``L^g_j = f_P(f_M(M_j))`` (Eq.   f_A: :class:`rrg_lite.tokenizers.perceiver.PerceiverResampler`;
4, uncropped mask, 3-layer ViT, mean, FC),         f_M: :func:`rrg_lite.encoders.vit.vit3d`, 3 layers);
``L_j = Concat`` (Eq. 5) → (33, D)                 output :class:`.features.RegionTokens` (R, 33, D) + (32, D)
§III-C global ``G = f_A(f_V(V))`` (Eq. 7); the     ``RegionTokens.visual_embeds`` / ``num_visual_tokens`` for
prompt ``<image>`` ← G, ``<region i>`` ← L_i       :mod:`rrg_lite.mllm` (``visual_embeds=``); the prompt:
                                                   :func:`.alignment.region_prompt` (one ``<region>`` slot per region)
§III-D region–report alignment: regions shuffled   :func:`.alignment.shuffle_regions`, :func:`.alignment.region_target`,
every step (Eq. 8), prefix "The region i is        :func:`.alignment.rra_example` (prompt, target, token rows);
{area}:", plain LM loss (Eq. 9); prefixes removed  reading back: :func:`.alignment.strip_prefixes`,
before evaluation                                  :func:`.alignment.parse_regions`, :func:`.alignment.parse_slots`
Table III region recognition P/R/F1                :func:`.alignment.region_recognition` (slot-level reading, see
                                                   the module; :func:`rrg_lite.metrics.clinical.per_label_prf`)
CE: RadBERT labels, 18 CT-RATE classes, support-   shared: :func:`rrg_lite.metrics.clinical.clinical_efficacy_weighted`
weighted P and R; the paper's F1 = 2PR/(P+R) of    (``F1-of-weighted-PR`` = the paper's, ``weighted-F1`` = the
them, the released evaluator's = weighted F1       evaluator's / sklearn ``average="weighted"``)
Table V (LFD), Table VI (TXT / GEO / GLB)          flags of :class:`.features.LFDConfig`; named settings:
                                                   :func:`.features.ablation_config` (``"no_lfd"``, ``"glb"``,
                                                   ``"txt"``, ``"txt+geo"``, ``"txt+geo+glb"``, ``"full"``)
Table VII (RRA)                                    ``rra_example(..., rra=False)``: fixed order, no prefixes
Fig. 3 report-length distributions (KDE, KL)       shared: :mod:`rrg_lite.metrics.lengths`
data: RadGenome pairs (mask + report per region);  :mod:`.recipe`: :func:`.recipe.load_region_studies` (world or a
frozen f_V cached per study and region              RadGenome folder), :func:`.recipe.extract_region_features`
LoRA r 8 / α 32 / 0.1 on q, v; AdamW; shuffled      :func:`.recipe.build_model` (:class:`.recipe.Reg2RGModel`,
regions every step; decoding; prefix-free scoring   :mod:`rrg_lite.mllm.stages`), :class:`.recipe.RRADataset`,
                                                   :func:`.recipe.train_model`, :func:`.recipe.generate`,
                                                   :func:`.recipe.score_reports`
Tables V–VII rebuilt on the world, controls        :mod:`.experiment`: :data:`.recipe.VARIANTS`,
(another patient's tokens, constant mask, train-   :func:`.experiment.run_experiment`, :func:`.experiment.swap_patients`,
unshuffled/test-shuffled, global-only)             :func:`.experiment.constant_mask`, :func:`.experiment.summarize`,
                                                   :func:`.experiment.compare` / ``image_gain`` (paired bootstrap),
                                                   :func:`.experiment.paper_table`
Table VIII (decoder GPT-2 vs LLaMA2-7B)            not rebuilt (the CPU decoder is a tiny Llama; full: ``llm``)
=================================================  ==============================================================

What the paper leaves open and what these modules chose is said in each module's docstring (Table V's baseline
has no geometry token, the mask's resize and f_M's size, the fill value, cached frozen features in
:mod:`.features`; the prompt wording, slot numbering from 0, parsing rules and the reading of Table III in
:mod:`.alignment`).
"""
