"""A multimodal causal LM from parts: vision encoder -> visual tokenizer -> any 🤗 causal LM (LLaVA recipe).

Import from the submodules (this file re-exports nothing).

Build (CPU profile: word-level tokenizer + tiny Llama; full profile: any Hub id or path)::

    from rrg_lite.mllm.text import build_word_tokenizer, add_special_tokens, IMAGE_TOKEN, REGION_TOKEN
    from rrg_lite.mllm.lm import tiny_llama, load_causal_lm
    from rrg_lite.mllm.model import MultimodalLM
    from rrg_lite.mllm.prompt import MLLMCollator, encode_example
    from rrg_lite.mllm.dialogue import encode_dialogue                      # multi-turn chat
    from rrg_lite.mllm.losses import per_token_loss, weighted_lm_loss       # shifted CE, weighted CE
    from rrg_lite.mllm.attention import mean_attention_to, visual_positions # attention to visual tokens
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
                                      # (weighted CE when the batch holds loss_weights, see below)
    lp = mllm.sequence_logprobs(**batch)            # (B,) sum of log p(target tokens)  — for DPO
    embeds, mask, labels = mllm.build_inputs(...)   # (B, S, D) with visual tokens spliced in
    ids = mllm.generate(**left_padded_batch_without_labels, max_new_tokens=200)             # greedy
    texts = mllm.generate_text(**batch, do_sample=True, temperature=0.8, top_p=0.9, seed=0,
                               num_return_sequences=4)                                      # sampling

Per-token loss weights (LLM-RG4 token-level loss weighting, :mod:`rrg_lite.mllm.losses`)::

    from rrg_lite.mllm.prompt import token_weights_from_spans, target_token_ids
    w = token_weights_from_spans(tok, report, [(start, end, 1.75)])   # key sentence x1.75, other tokens 1, EOS 1
    ex = mllm.encode_example(prompt, target=report, num_images=1, target_weights=w)   # ex["loss_weights"] (S,)
    out = mllm(**collator([ex, ...]), loss_weight_norm="mean")   # Σ c·ℓ / N_target  ("weighted_mean": Σ c·ℓ / Σ c)
    ell = per_token_loss(out.logits, batch["labels"])            # (B, S-1) the shifted per-token CE (losses module)

Multi-turn chat, loss on assistant turns only (M4CXR multi-turn CoT, :mod:`rrg_lite.mllm.dialogue`)::

    msgs = [{"role": "user", "content": "Which findings are present? <image>"},
            {"role": "assistant", "content": "Cardiomegaly."},
            {"role": "user", "content": "Now describe the findings."},
            {"role": "assistant", "content": report}]
    ex = mllm.encode_dialogue(msgs, num_images=1)                 # labels on both answers (+ their end token)
    ex = mllm.encode_dialogue(msgs, num_images=1, train_on="last")   # labels on the final answer only
    gen = mllm.encode_dialogue(msgs[:3], num_images=1)            # ends with a user turn: generation prompt, no labels

Attention from text to visual tokens (ViPET Eq. 10, :mod:`rrg_lite.mllm.attention`; needs an eager LM,
``tiny_llama(tok, ..., attn_implementation="eager")``)::

    va = mllm.visual_attention(**batch, slot="image", queries="targets")   # or "after_image"; layers=[-1]
    va.attention   # (B, K) mean over layers, heads, answer tokens of the attention on each visual token (Σ ≤ 1)
    va.positions   # (B, K) each visual token's sequence position (-1 padding), to map tokens to an ROI mask
    loss = va.output.loss + lam * l_align(va.attention)      # one forward pass; differentiable
    mllm(**batch, output_attentions=True).attentions         # the raw per-layer (B, H, S, S) maps

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
tokenizer without the placeholder tokens, right-padded prompts for generation, target weights of the wrong
length, a chat template that rewrites earlier turns (turn boundaries not prefix-stable), an LM that returns no
attentions (SDPA instead of eager) -> ``ValueError``/``TypeError`` saying what is wrong.
"""
