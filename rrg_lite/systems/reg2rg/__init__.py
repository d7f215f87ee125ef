"""Reg2RG (region-guided chest CT report generation): empty room, documented ahead of its chapter.

Paper: ``papers/reg2rg.txt``; engineering map in the design notes (SYSTEMS.md §2).

=================================================  ==============================================================
paper                                              planned module (shared parts it uses)
=================================================  ==============================================================
``R = LLM(G, L_1 … L_n)``; masks ``M_Aj`` (the     region masks from :mod:`rrg_lite.world` / :mod:`rrg_lite.data`
world gives them; SAT at full scale)
local feature decoupling: texture                  ``reg2rg.features`` (mask → crop/resize in :mod:`rrg_lite.data`,
``L^t_j = f_A(f_V(Crop(M_j ⊙ V)))`` (32 tokens),   3-D ViT from :mod:`rrg_lite.encoders`, perceiver from
geometry ``L^g_j = f_P(f_M(M_j))`` (1 token)       :mod:`rrg_lite.tokenizers.perceiver`; cached frozen features)
global ``G = f_A(f_V(V))``; prompt ``<image>``,    region assembly in :mod:`rrg_lite.fusion` / ``<region i>`` slots of
``<region i>``                                     :mod:`rrg_lite.mllm`
region–report alignment: regions shuffled, target  ``reg2rg.alignment``
"The region i is {area}: …", prefixes removed
LoRA r 8 / α 32, ZeRO-2 + gradient checkpointing   ``reg2rg.recipe`` (:mod:`rrg_lite.mllm.stages`, Accelerate configs)
Tables V–VIII (LFD, features, RRA, decoder);       ``reg2rg.experiment``; CE with the paper's harmonic-of-weighted
Table III region recognition                       F1 and the code's weighted F1 (:mod:`rrg_lite.metrics`)
=================================================  ==============================================================
"""
