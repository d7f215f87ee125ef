"""Chapter 6 — preference optimisation with GREEN: μ²-LLM's second stage (SFT → DPO on GREEN-ranked pairs).

The architecture is the μ² chapter's (``rrg_lite.profiles.mu2``, same profile name): frozen 3-D ViT features,
the μ² tokenizer and the language model. This profile holds what stage 2 adds. ``cpu``: the world's CT studies,
a short SFT run trained in the notebook, ``num_samples`` reports sampled per training question, ranked by the
offline GREEN approximation, DPO against the frozen SFT model. ``full``: the paper's setting — the μ² SFT
checkpoint, the official GREEN model for ranking (local weights, the user's choice); values the paper does not give
are ours and say so. The paper states β ∈ (0.1, 0.5).
"""

PROFILES = {
    "cpu": {
        "data_root": None,          # None = the synthetic world in memory
        "dataset": "world",
        "world_seed": 0,
        "n_train": 128,             # studies; 3 body-part questions each
        "n_test": 48,
        "sft_checkpoint": None,     # a saved SFT MLLM (safetensors folder); None = train one here
        "sft_steps": 240,           # fewer leave the SFT model writing one answer for every question
        "sft_lr": 3e-3,
        "batch_size": 16,
        # preference data
        "num_samples": 4,           # reports sampled per training question
        "temperature": 1.0,
        "top_p": 0.95,
        "green_labeler": "ct",      # the offline GREEN's labeler
        "green_model": None,        # local weights of the GREEN judge (full scale); None = offline approximation
        # DPO
        "beta": 0.5,                # the chapter's main run (the top of the paper's range)
        "betas": [0.05, 0.1, 0.5],  # the β sweep
        "dpo_steps": 40,
        "dpo_lr": 5e-4,
        "dpo_batch_size": 8,
        "reference": "precomputed", # copy | disable_adapter | precomputed
        "max_new_tokens": 48,
        "bootstrap": 1000,
        "seed": 0,
    },
    "full": {
        "data_root": None,          # a converted CT-RATE or AMOS-MM folder; required
        "dataset": "amos-mm",
        "world_seed": 0,
        "n_train": 0,               # 0 = the whole split
        "n_test": 0,
        "sft_checkpoint": None,     # the μ² chapter's SFT run (output_dir/step_N); required at full scale
        "sft_steps": 0,
        "sft_lr": 1e-4,
        "batch_size": 8,
        "num_samples": 8,           # ours: the paper says "a large number of medical reports"
        "temperature": 1.0,
        "top_p": 0.95,
        "green_labeler": "ct",
        "green_model": None,        # a local folder with the GREEN judge (StanfordAIMI/GREEN-RadLlama2-7b); required
        "beta": 0.1,
        "betas": [0.1, 0.3, 0.5],
        "dpo_steps": 2000,          # ours
        "dpo_lr": 5e-6,             # ours
        "dpo_batch_size": 8,
        "reference": "copy",
        "max_new_tokens": 512,
        "bootstrap": 1000,
        "seed": 0,
    },
}
