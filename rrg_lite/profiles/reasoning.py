"""Chapter 8 — from reports to reasoning data: μ²'s five-stage pipeline, ViPET-VLM's PET/CT split, rewriting.

``cpu`` runs every pipeline offline on the synthetic world's reports, answered by the rule-based offline stand-in
(:mod:`rrg_lite.prompting.standin`) — the first run through the chapter's loopback HTTP server, so the real
client, cache and retry code are exercised. ``full`` points the same pipelines at an OpenAI-compatible endpoint
(vLLM, Ollama, llama.cpp, a hosted API) and a converted dataset; nothing is contacted unless the user runs it.

``llm_client`` says how the LLM is reached (``offline`` stand-in, an ``openai``-compatible endpoint, a local ``hf``
model); ``llm`` is the model's name (what the endpoint serves, or a Hugging Face id for ``hf``).
"""

REQUIRED = {"full": ("data_root",)}
PATHS = ("data_root", "petct_root", "mimic_root")

PROFILES = {
    "cpu": {
        "data_root": None,       # None = the synthetic world, generated in memory
        "dataset": "world",
        "split": "train",
        "petct_root": None,      # full scale: a converted PET/CT folder for the ViPET-VLM split (None = skip)
        "mimic_root": None,      # full scale: MIMIC-CXR for the LLM-RG4 rewrite loop (None = skip)
        "world_seed": 0,
        "n_studies": 40,         # CT reports for the μ² pipeline
        "n_petct": 12,           # PET/CT reports for the ViPET-VLM split
        "n_xray": 16,            # chest X-ray reports for the LLM-RG4 rewrite loop
        "llm_client": "offline", # offline | openai | hf
        "base_url": None,        # OpenAI-compatible API root (llm_client="openai")
        "llm": "offline-standin",
        "api_key_env": None,     # name of the environment variable that holds the API key, if any
        "concurrency": 4,
        "timeout_s": 30.0,
        "max_retries": 3,
        "reask": 2,
        "temperature": 0.0,
        "max_questions": 30,
        "rg4_rounds": 3,
        "cache_path": None,      # None = a fresh temporary folder (set a path to resume a killed run)
        "output_dir": None,      # None = a fresh temporary folder
        "server_faults": 0.05,   # share of requests the loopback demo server answers with an HTTP 500 first
        "seed": 0,
    },
    "full": {
        "data_root": None,       # a converted CT-RATE / AMOS-MM / PET-CT folder (data_scripts/); required
        "dataset": "ct-rate",    # ct-rate | amos-mm
        "split": "train",
        "petct_root": None,
        "mimic_root": None,
        "world_seed": 0,
        "n_studies": 0,          # 0 = every report of the split
        "n_petct": 0,
        "n_xray": 0,
        "llm_client": "openai",
        "base_url": "http://localhost:8000/v1",   # e.g. `vllm serve meta-llama/Llama-3.1-8B-Instruct`
        "llm": "meta-llama/Llama-3.1-8B-Instruct",
        "api_key_env": None,
        "concurrency": 32,
        "timeout_s": 180.0,
        "max_retries": 5,
        "reask": 2,
        "temperature": 0.0,
        "max_questions": 30,
        "rg4_rounds": 3,
        "cache_path": None,
        "output_dir": "runs/reports_to_reasoning",
        "server_faults": 0.0,
        "seed": 0,
    },
}
