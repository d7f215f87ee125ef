"""rrg-lite: radiology report generation, rebuilt chapter by chapter.

Shared rooms (used by two or more systems; they never import :mod:`rrg_lite.systems`): ``world``, ``data``,
``encoders``, ``tokenizers``, ``fusion``, ``mllm``, ``train``, ``metrics``, ``prompting``, ``viz``, ``profiles``.
One room per paper: :mod:`rrg_lite.systems` (``llava_ct``, ``mu2``, ``vipet``, ``reg2rg``, ``llm_rg4``, ``m4cxr``).
Run a chapter outside Jupyter: ``python -m rrg_lite.run --help`` (:mod:`rrg_lite.run`).
"""
