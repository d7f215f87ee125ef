"""One room per paper: what is that system's own idea and its experiment.

Shared rooms (``world``, ``data``, ``encoders``, ``tokenizers``, ``fusion``, ``mllm``, ``train``, ``metrics``,
``prompting``, ``viz``, ``profiles``) hold what two or more systems use and never import this package; imports
point one way, ``systems -> shared rooms``. Each room's ``__init__`` docstring maps the paper's sections and
equations to the modules that implement them, and imports nothing (import the submodules).

====================  ==================================================  =====================================
room                  paper                                               chapter (notebook)
====================  ==================================================  =====================================
:mod:`.llava_ct`      the LLaVA recipe on chest CT (M3D / CT-CHAT style)  05_mllm_from_parts
:mod:`.mu2`           μ²-LLM / μ² Tokenizer {cite}`li2025mu2`             06_mu2, 07_preference_optimisation,
                                                                          08_reports_to_reasoning
:mod:`.vipet`         ViPET-VLM (PET/CT)                                  (to come: parts built and tested)
:mod:`.reg2rg`        Reg2RG (region-guided chest CT)                     (to come: parts built and tested)
:mod:`.llm_rg4`       LLM-RG4 (flexible chest X-ray)                      (to come: parts built and tested)
:mod:`.m4cxr`         M4CXR (multitask chest X-ray)                       (to come: parts built and tested)
====================  ==================================================  =====================================

Every chapter with training also runs outside the notebook: ``python -m rrg_lite.run <chapter> …``
(see :mod:`rrg_lite.run`).
"""
