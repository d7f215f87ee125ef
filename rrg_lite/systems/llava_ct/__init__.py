"""Chapter 5, "A multimodal LLM from parts": the LLaVA recipe on chest CT (synthetic world or a CT-RATE folder).

The recipe is the one M3D and CT-CHAT follow: a 3-D ViT encodes the volume, a projector turns its patch tokens
into LLM-width tokens spliced in at ``<image>``, and a causal LM writes the report; stage 1 trains the projector
with the LM frozen (alignment), stage 2 adds LoRA adapters (instruction tuning). The generic parts live in the
shared rooms (:mod:`rrg_lite.mllm`, :mod:`rrg_lite.tokenizers.pooling`, :mod:`rrg_lite.train.loop`,
:mod:`rrg_lite.encoders`); this room holds the chapter's own glue.

===========================================  ======================================================================
idea                                         code (:mod:`rrg_lite.systems.llava_ct.recipe`)
===========================================  ======================================================================
CT preprocessing: two HU windows             :func:`~.recipe.preprocess_ct` (lung + mediastinum window, resize)
as channels, one shape for every study
data: the world in memory or CT-RATE         :func:`~.recipe.load_ct_report_data` → :class:`~.recipe.CTReportData`;
(NIfTI + CSV), lazily read volumes           :func:`~.recipe.make_ct_report_data`, :func:`~.recipe.load_ctrate_report_data`,
                                             :class:`~.recipe.VolumeFiles`
the vision encoder (tiny 3-D ViT on CPU,     :func:`~.recipe.build_encoder`, :func:`~.recipe.resolve_weights`
M3D-CLIP's ViT at full scale)
the LM (word-level tiny Llama on CPU, any    :func:`~.recipe.build_language_model`
Hugging Face causal LM at full scale)
prompts with / without the image             :data:`~.recipe.IMAGE_PROMPT`, :data:`~.recipe.TEXT_PROMPT`,
                                             :func:`~.recipe.report_examples`
stage 0 (text), 1 (align), 2 (LoRA)          :func:`~.recipe.train_stage` around :func:`rrg_lite.train.loop.train`;
                                             freezing policy in :func:`rrg_lite.mllm.stages.configure_stage`
wrong-image control                          :func:`rrg_lite.data.controls.derangement` (each study gets another study's features)
===========================================  ======================================================================

Profiles: :mod:`rrg_lite.profiles.mllm`. Entry point: ``python -m rrg_lite.run mllm_from_parts``.
"""
