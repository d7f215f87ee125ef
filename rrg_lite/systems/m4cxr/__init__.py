"""M4CXR (multitask chest X-ray MLLM): empty room, documented ahead of its chapter.

Paper: ``papers/m4cxr.txt``; engineering map in the design notes (SYSTEMS.md §4).

=================================================  ==============================================================
paper                                              planned module (shared parts it uses)
=================================================  ==============================================================
``X_i = C-Abstractor(RAD-DINO(x_i))``, 361 tokens  C-Abstractor in :mod:`rrg_lite.tokenizers`; 2-D ViT from
                                                   :mod:`rrg_lite.encoders`
one instruction dataset from many task templates   ``m4cxr.instructions`` (Table IX templates, system prompt)
(Table IX): MRG, classification, grounding, VQA
boxes as text ``[x1,y1,x2,y2]``, integers 0–100    box utilities in :mod:`rrg_lite.data.boxes`
task sampling ratios 0.54 / 0.35 / 0.11,           ``m4cxr.sampling`` (weighted multi-dataset sampler)
strategies D1–D4 (Table VII)
multi-turn chain-of-thought MRG (findings list,    ``m4cxr.cot`` (multi-turn chat of :mod:`rrg_lite.mllm`; the
then the report; own turn-1 answer fed back)       model's own turn 1 at inference)
stage 1 projector, stage 2 all (Table II)          ``m4cxr.recipe``
Table VIII ablation; mF1 / MF1 / eF1, grounding    ``m4cxr.experiment`` (metrics in :mod:`rrg_lite.metrics`)
mIoU, VQA accuracy
=================================================  ==============================================================
"""
