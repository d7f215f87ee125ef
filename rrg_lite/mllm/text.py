"""Text side of the multimodal LM: special placeholder tokens, a word-level tokenizer, chat formatting.

Two tokenizer paths share everything downstream:

- CPU profile: :func:`build_word_tokenizer` learns a word-level vocabulary from the world's reports with the
  🤗 ``tokenizers`` library (words and punctuation are tokens; a ``▁`` marks a preceding space so decoding
  restores the text) and wraps it as a Transformers fast tokenizer with a small chat template.
- Full profile: any ``AutoTokenizer`` (e.g. Llama-3.2-1B-Instruct); :func:`add_special_tokens` registers the
  placeholders and :func:`check_special_tokens` refuses a tokenizer that lacks them.

Placeholders: one ``<image>`` per image in the prompt text, one ``<region>`` per region slot. At encoding time
(:mod:`rrg_lite.mllm.prompt`) each placeholder is expanded to K copies, one per visual token, so that the
visual embeddings later replace them at their real positions.
"""
from __future__ import annotations

from typing import Iterable

IMAGE_TOKEN = "<image>"
REGION_TOKEN = "<region>"
PLACEHOLDER_TOKENS = (IMAGE_TOKEN, REGION_TOKEN)

# Words the chat template uses: they must be in a word-level vocabulary even if no report contains them.
_CHAT_WORDS = "user : assistant : system :"

# A minimal chat template for tokenizers that have none (the word-level one). Real instruct models bring theirs.
# An assistant turn ends with EOS, so a multi-turn example (rrg_lite.mllm.dialogue) learns to stop each turn,
# as encode_example's single target does: "<s>user: Q assistant: A</s> user: Q2 assistant:".
SIMPLE_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %} {% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def build_word_tokenizer(texts: Iterable[str], min_frequency: int = 1, extra_texts: Iterable[str] = (),
                         max_vocab: int | None = None):
    """A word-level fast tokenizer trained on ``texts`` (e.g. the world's training reports and prompts).

    Special tokens: ``<pad>`` (0), ``<unk>`` (1), ``<s>`` (2), ``</s>`` (3), ``<image>``, ``<region>``.
    Words seen fewer than ``min_frequency`` times map to ``<unk>``. Returns a ``PreTrainedTokenizerFast``
    whose ``chat_template`` is :data:`SIMPLE_CHAT_TEMPLATE`.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = list(texts) + list(extra_texts) + [_CHAT_WORDS]
    if not any(t.strip() for t in texts):
        raise ValueError("build_word_tokenizer: no non-empty text to learn a vocabulary from")
    specials = ["<pad>", "<unk>", "<s>", "</s>", *PLACEHOLDER_TOKENS]
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    # Strip each text segment between special tokens, so "a <image> b" does not produce a lone "▁" token.
    tok.normalizer = normalizers.Strip()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation()])
    tok.decoder = decoders.Metaspace()
    trainer = trainers.WordLevelTrainer(
        special_tokens=specials, min_frequency=min_frequency, vocab_size=max_vocab or 10**9, show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        additional_special_tokens=list(PLACEHOLDER_TOKENS),
    )
    hf.chat_template = SIMPLE_CHAT_TEMPLATE
    hf.padding_side = "right"
    return hf


def add_special_tokens(tokenizer, model=None, tokens: Iterable[str] = PLACEHOLDER_TOKENS) -> list[int]:
    """Register the placeholder tokens (and a pad token if missing) on a Hugging Face tokenizer.

    If ``model`` (a causal LM) is given, its embedding matrix is resized to the new vocabulary. The new rows
    are never trained for placeholders (visual embeddings replace them), but the pad row must exist.
    Returns the placeholder token ids.
    """
    tokens = list(tokens)
    missing = [t for t in tokens if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    if tokenizer.pad_token is None:
        # Llama-3 has no pad token; a dedicated one keeps padding distinct from end-of-text.
        tokenizer.add_special_tokens({"pad_token": "<pad>"})
    if model is not None:
        emb = model.get_input_embeddings()
        if emb.num_embeddings < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id
    return [tokenizer.convert_tokens_to_ids(t) for t in tokens]


def check_special_tokens(tokenizer, tokens: Iterable[str] = PLACEHOLDER_TOKENS, vocab_size: int | None = None) -> dict[str, int]:
    """Return ``{token: id}``; raise a clear error if a placeholder, pad or eos token is missing.

    ``vocab_size`` (the LM's embedding rows) catches a tokenizer that knows the token while the model was
    never resized for it.
    """
    vocab = tokenizer.get_vocab()
    missing = [t for t in tokens if t not in vocab]
    if missing:
        raise ValueError(
            f"the tokenizer lacks the special token(s) {missing}; call "
            "rrg_lite.mllm.text.add_special_tokens(tokenizer, model) before building the MultimodalLM"
        )
    if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer needs a pad token and an eos token (add_special_tokens adds a pad token)")
    ids = {t: vocab[t] for t in tokens}
    if vocab_size is not None:
        too_big = {t: i for t, i in ids.items() if i >= vocab_size}
        if too_big or tokenizer.pad_token_id >= vocab_size:
            raise ValueError(
                f"token ids {too_big or {'pad': tokenizer.pad_token_id}} are outside the LM's {vocab_size} embedding rows; "
                "resize the model with add_special_tokens(tokenizer, model)"
            )
    return ids
