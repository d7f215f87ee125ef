"""A multimodal causal LM from parts: vision encoder -> visual tokenizer -> any 🤗 causal LM (LLaVA recipe).

Import from the submodules (this file re-exports nothing).

Build (CPU profile: word-level tokenizer + tiny Llama; full profile: any Hub id or path)::

    from rrg_lite.mllm.text import build_word_tokenizer, add_special_tokens, IMAGE_TOKEN, REGION_TOKEN
    from rrg_lite.mllm.lm import tiny_llama, load_causal_lm
    from rrg_lite.mllm.model import MultimodalLM
    from rrg_lite.mllm.prompt import MLLMCollator, encode_example
    from rrg_lite.mllm.stages import configure_stage, apply_lora, count_parameters

    tok = build_word_tokenizer(train_reports + prompts)          # or: lm, tok = load_causal_lm("meta-llama/Llama-3.2-1B-Instruct")
    lm = tiny_llama(tok, hidden_size=128, num_layers=2)          # placeholders <image>, <region> already in the vocab
    mllm = MultimodalLM(lm, tok, projectors={"image": projector}, encoder=vit)   # encoder optional

Encode and batch (one ``<image>`` per image in the prompt; it is expanded to K placeholder tokens)::

    ex = mllm.encode_example("Write the findings. <image>", target=report, num_images=1, num_frames=T)
    ex["features"] = feats            # (n_images, T, N, E) pre-computed encoder features, or
    ex["images"] = volume             # (n_images, C, D, H, W) / (n_images, T, C, k, H, W) raw input, or
    ex["visual_embeds"] = tokens      # (n_images, K, D) ready LLM-width tokens; any of them may be a dict
                                      # slot -> tensor, e.g. {"image": ..., "region": ...}
    batch = MLLMCollator(tok.pad_token_id, padding_side="right")([ex, ...])   # "left" for generation

Model calls (B prompts, S tokens, D = LM hidden size)::

    out = mllm(**batch)               # 🤗 CausalLMOutput: .loss (mean CE over target tokens), .logits (B, S, V)
    lp = mllm.sequence_logprobs(**batch)            # (B,) sum of log p(target tokens)  — for DPO
    embeds, mask, labels = mllm.build_inputs(...)   # (B, S, D) with visual tokens spliced in
    ids = mllm.generate(**left_padded_batch_without_labels, max_new_tokens=200)             # greedy
    texts = mllm.generate_text(**batch, do_sample=True, temperature=0.8, top_p=0.9, seed=0,
                               num_return_sequences=4)                                      # sampling

Visual tokenizers receive ``(features (n, T, N, E), question_embeds (n, L, D), question_mask (n, L))``: the
question is the LM's input embeddings of the prompt tokens (attended, not placeholders, not targets), one
copy per image. Labels are -100 on prompt and placeholder positions (``encode_example`` + ``build_inputs``).

Training stages (freezing policy; LoRA through PEFT)::

    configure_stage(mllm, "align")      # stage 1: projector only; encoder and LM frozen
    apply_lora(mllm, r=8, alpha=32, dropout=0.05, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"))
    configure_stage(mllm, "lora")       # stage 2: projector + LoRA adapters (train_encoder=True to tune the ViT)
    configure_stage(mllm, "full")       # everything
    configure_stage(mllm, "text")       # LM only (text-only baseline / LM warm-up)

Errors: a prompt whose placeholder count does not match the images, images of the wrong shape/dtype, an LM or
tokenizer without the placeholder tokens, right-padded prompts for generation -> ``ValueError``/``TypeError``
saying what is wrong.
"""
