"""The language model: a tiny Llama built from a config (CPU profile) or any pre-trained causal LM (full).

Both return a 🤗 ``PreTrainedModel`` with ``get_input_embeddings()``, ``forward(inputs_embeds=...)`` and
``generate(inputs_embeds=...)`` — all the multimodal wrapper needs.
"""
from __future__ import annotations

import torch


def tiny_llama(tokenizer, hidden_size: int = 128, num_layers: int = 2, num_heads: int = 4, num_kv_heads: int = 2,
               intermediate_size: int | None = None, max_positions: int = 1024, seed: int = 0,
               attn_implementation: str = "sdpa"):
    """A randomly initialised Llama-architecture causal LM sized for a CPU (~0.1–1 M parameters).

    Same blocks as Llama-3 (RMSNorm, RoPE, grouped-query attention, SwiGLU MLP), tied input/output
    embeddings; vocabulary and special-token ids come from ``tokenizer``.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config._attn_implementation = attn_implementation
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def load_causal_lm(name_or_path: str, dtype: torch.dtype | str | None = "auto", attn_implementation: str | None = None,
                   trust_remote_code: bool = False, add_placeholders: bool = True, **kwargs):
    """Load ``AutoModelForCausalLM`` + ``AutoTokenizer`` from a Hub id or a local path and add the placeholders.

    Nothing is downloaded unless ``name_or_path`` is a Hub id (the caller's choice). Returns ``(model, tokenizer)``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rrg_lite.mllm.text import add_special_tokens

    tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        name_or_path, dtype=dtype, attn_implementation=attn_implementation, trust_remote_code=trust_remote_code, **kwargs
    )
    if add_placeholders:
        add_special_tokens(tokenizer, model)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def text_tokenizer_for(llm: str, texts=(), extra_texts=()):
    """The LM's tokenizer: a word-level one learned from ``texts`` (+ ``extra_texts``, e.g. the prompts) when
    ``llm == "tiny"``, else the pre-trained LLM's own (``AutoTokenizer``; Hub id or local folder) with the placeholder
    tokens added. Every system's recipe builds its tokenizer here."""
    from rrg_lite.mllm.text import add_special_tokens, build_word_tokenizer

    if llm == "tiny":
        return build_word_tokenizer(list(texts), extra_texts=list(extra_texts))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(llm)
    add_special_tokens(tok)
    return tok


def new_language_model(llm: str, tokenizer, hidden_size: int = 128, num_layers: int = 2, seed: int = 0,
                       **tiny_kwargs):
    """A fresh LM for ``tokenizer`` (from :func:`text_tokenizer_for`): a seeded :func:`tiny_llama` of that size
    (``tiny_kwargs``: heads, ``attn_implementation``, ...) when ``llm == "tiny"``, else the pre-trained ``llm`` in fp32.

    fp32 weights for a pre-trained LM: bf16 runs autocast over fp32 master weights (pure-bf16 weights lose small
    updates). Its tokenizer must have the size of ``tokenizer`` (both with the placeholders), else ValueError.
    """
    if llm == "tiny":
        return tiny_llama(tokenizer, hidden_size=hidden_size, num_layers=num_layers, seed=seed, **tiny_kwargs)
    lm, tok = load_causal_lm(llm, dtype=torch.float32, attn_implementation=tiny_kwargs.get("attn_implementation"))
    if len(tok) != len(tokenizer):
        raise ValueError(f"{llm}: tokenizer sizes differ ({len(tok)} vs {len(tokenizer)})")
    return lm


def llama_parameter_count(vocab_size: int, hidden_size: int, intermediate_size: int, num_layers: int,
                          num_heads: int, num_kv_heads: int, tie_word_embeddings: bool) -> int:
    """Parameters of a Llama model, counted analytically (checked against a built model in the tests).

    Per layer: q/o projections 2*h*h, k/v projections 2*h*(h/heads*kv_heads), SwiGLU MLP 3*h*i, two RMSNorms 2*h.
    Plus the embedding v*h, a final RMSNorm h, and an LM head v*h unless tied.
    """
    head_dim = hidden_size // num_heads
    attn = 2 * hidden_size * hidden_size + 2 * hidden_size * head_dim * num_kv_heads
    mlp = 3 * hidden_size * intermediate_size
    per_layer = attn + mlp + 2 * hidden_size
    total = vocab_size * hidden_size + num_layers * per_layer + hidden_size
    if not tie_word_embeddings:
        total += vocab_size * hidden_size
    return total
