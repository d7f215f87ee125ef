"""Talking to large language models, and the data pipelines built on them.

Modules (import from them directly; this file re-exports nothing):

- ``clients``   : ``ChatRequest`` and three interchangeable clients — ``OpenAICompatibleClient`` (any server that
                  speaks ``POST /v1/chat/completions``: vLLM, Ollama, llama.cpp, hosted APIs), ``HFLocalClient``
                  (🤗 Transformers generation in-process) and the offline stand-in from ``standin``.
- ``cache``     : ``RequestCache``, an on-disk (SQLite) store of finished calls keyed by a hash of the request and the client that answers it (model, endpoint, prompt version, sampling).
- ``runner``    : ``LLMRunner`` — cache look-up, retries with back-off, timeouts, a concurrency limit, re-asking
                  after malformed replies, and counters of everything that went wrong.
- ``templates`` : versioned prompt templates (μ² reasoning synthesis, rewriting, translation, PET/CT split, …).
- ``parsing``   : the extraction rules (μ²'s regular expressions, yes/no, strict PET/CT JSON) and ``MalformedReply``.
- ``standin``   : ``OfflineStandInLLM`` — a rule-based stand-in that answers the templates' prompts from the
                  synthetic world's structured records, so the pipelines run offline. It is not a language model.
- ``reasoning`` : μ²'s five-stage report → questions → thinking + answers → filter → refine → report thinking.
- ``rewriting`` : μ²'s report paraphrasing and translation, LLM-RG4's judge/rewrite loop.
- ``petct``     : ViPET-VLM's split of a PET/CT report into ``{"PET": …, "CT": …}`` with schema validation.
- ``jsonl``     : JSONL reading/writing (atomic) and provenance records.
"""
