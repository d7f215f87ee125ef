"""Chapter 7 — preference optimisation with GREEN: μ²-LLM's second stage (SFT → DPO on GREEN-ranked pairs).

The architecture is the μ² chapter's (``rrg_lite.profiles.mu2``, same profile name): frozen 3-D ViT features,
the μ² tokenizer and the language model. This profile holds what stage 2 adds. ``cpu``: the world's CT studies,
a short SFT run trained in the notebook, ``num_samples`` reports sampled per training question, ranked by the
offline GREEN approximation, DPO against the frozen SFT model. ``full``: the paper's setting — the μ² SFT
checkpoint, the official GREEN model for ranking (local weights, the user's choice); values the paper does not give
are ours and say so. The paper states β ∈ (0.1, 0.5).

The shared fields (``encoder``, ``encoder_weights``, ``encoder_width``, ``llm``) are the μ² profile's of the same
name, so that ``-p llm …`` means the same in both chapters; with ``sft_checkpoint`` set, the checkpoint's own
saved configuration decides the architecture.
"""
from .mu2 import PROFILES as _MU2

REQUIRED = {"full": ("data_root", "sft_checkpoint", "encoder_weights")}
PATHS = ("data_root", "sft_checkpoint", "encoder_weights", "green_model")
HUB_IDS = ("llm",)
IGNORED_WITH = {"sft_checkpoint": ("llm",)}  # the SFT folder brings its own LM


def _shared(name: str) -> dict:
    return {k: _MU2[name][k] for k in ("encoder", "encoder_weights", "encoder_width", "encoder_depth", "encoder_heads",
                                       "llm")}


PROFILES = {
    "cpu": {
        "data_root": None,          # None = the synthetic world in memory
        "dataset": "world",
        "world_seed": 0,
        "n_train": 128,             # studies; 3 body-part questions each
        "n_test": 48,
        "sft_checkpoint": None,     # a saved SFT MLLM (safetensors folder); None = train one here
        "feature_cache": None,      # a folder: the frozen features on disk (chapter 6's cache is reused)
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
        **_shared("cpu"),
        "output_dir": None,  # a folder: the pairs (JSONL), the DPO policy's weights and the scores
        "resume": False,  # True: continue each training run from its latest checkpoint in output_dir
        "precision": "auto",
        "device": "auto",
        "threads": 1,
        "seed": 0,
    },
    "full": {
        "data_root": None,          # a converted CT-RATE or AMOS-MM folder; required
        "dataset": "amos-mm",
        "world_seed": 0,
        "n_train": 0,               # 0 = the whole split
        "n_test": 0,
        "feature_cache": "runs/feature_cache",
        "sft_checkpoint": None,     # the μ² chapter's SFT model: <mu2 output_dir>/sft (python -m rrg_lite.run mu2); required
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
        **_shared("full"),
        "output_dir": "runs/preference_optimisation",
        "resume": False,
        "precision": "bf16",
        "device": "cuda",
        "threads": None,
        "seed": 0,
    },
}
