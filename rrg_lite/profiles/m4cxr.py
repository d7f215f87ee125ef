"""Chapter M4CXR — one multitask chest X-ray MLLM: instruction dataset, C-Abstractor, multi-turn CoT, Table VIII.

``full`` is the paper's setting (Table II, Sec. IV-D of {cite}`park2024m4cxr`): MIMIC-CXR (converted by
data_scripts/), RAD-DINO (518 px, 37 × 37 = 1369 tokens of width 768), a C-Abstractor of depth 3, MLP depth 2,
hidden 1024 -> 361 tokens, Mistral-7B-Instruct-v0.2 with LoRA r 8 / α 32 / dropout 0.05 (official code: q and v);
stage 1 projector only, 2k steps, lr 3e-4, wd 1e-2, global batch 256; stage 2 40k steps, lr 1e-4, wd 1e-4,
batch 64; AdamW, cosine, warm-up 500; bf16. (The paper also tunes RAD-DINO in stage 2; here the encoder stays
frozen so its features are computed once — say so when comparing.)

``cpu`` scales that down: the world's X-rays (frontal + lateral, priors), the book's frozen world-trained 2-D ViTs
(8 × 8 = 64 tokens of width 64), a C-Abstractor of depth 1, hidden 64 -> 16 tokens (the paper's ~4:1 ratio), a
tiny Llama of width 64 warmed up on the conversations' text, short stages. Values the paper does not give are ours.
Measured cost (2 shared cores at load ~8-10, so several times slower than an idle pair): one seed of CoT +
single-turn with the controls took 820 s (warm-up 150 s, stage 2 285 s per variant, evaluation 40 s per variant);
the whole 6 variants × 3 seeds does NOT fit five minutes at these sizes — the chapter should run CoT and
single-turn × 3 seeds and the other variants × 1 seed, or lower ``stage2_steps``.
"""

REQUIRED = {"full": ("data_root", "encoder_weights")}
PATHS = ("data_root",)
HUB_IDS = ("llm", "encoder_weights")

_VARIANTS = ["M4CXR (CoT)", "Exp1 single-turn", "Exp3 w/o image understanding", "Exp4 w/o VQA",
             "linear projector", "pool-only projector"]

PROFILES = {
    "cpu": {
        # data: the synthetic world (studies of other seeds than the encoders were trained on)
        "data_root": None,          # None = the world; else a MIMIC-CXR-JPG-layout folder (data_scripts/)
        "dataset": "world",
        "n_train": 500,
        "n_test": 100,
        "world_seed": 1000,
        "views": ["frontal", "lateral"],
        # encoder (frozen; features computed once for every variant and seed)
        "encoder": "vit2d",          # the book's world-trained 2-D ViT per view (rrg_lite.encoders.hub)
        "encoder_weights": None,     # None: world-trained, cached; full: RAD-DINO
        "encoder_width": 64,
        # projector (Sec. IV-D, scaled)
        "projector": "c-abstractor",
        "projector_depth": 1,        # paper 3
        "projector_hidden": 64,      # paper 1024
        "num_queries": 16,           # 4 × 4 of the 8 × 8 grid (paper 361 of 1369)
        "mlp_depth": 2,
        # language model
        "llm": "tiny",
        "llm_hidden": 64,
        "llm_layers": 2,
        "lora_r": 8,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "lora_targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],  # ours: a
        # tiny LM needs more than q/v to take up a new task mix in a few hundred steps
        # instruction data
        "sampling": "type_ratios",   # empirical weights exist only for Table X's datasets
        "type_ratios": [0.54, 0.35, 0.11],   # MRG / image understanding / VQA (Sec. V-D)
        "paraphrase": False,         # True: draw among the templates (0 = Table IX, 1-2 ours)
        # training (ours: CPU scale)
        "lm_warmup_steps": 150,      # text-only warm-up of the tiny LM (stand-in for a pre-trained LLM)
        "lm_warmup_lr": 3e-3,
        "stage1_steps": 60,
        "stage1_lr": 3e-3,
        "stage1_weight_decay": 1e-2,
        "stage2_steps": 200,
        "stage2_lr": 3e-3,
        "stage2_weight_decay": 1e-4,
        "batch_size": 16,
        "warmup_steps": 10,
        # evaluation
        "max_new_tokens": 72,
        "turn1_max_new_tokens": 24,
        "eval_batch_size": 100,
        "n_boot": 1000,
        # experiment
        "variants": _VARIANTS,
        "seeds": [0, 1, 2],
        # run settings (the schema every chapter shares)
        "output_dir": None,
        "resume": False,
        "precision": "no",
        "device": "cpu",
        "threads": 1,
        "seed": 0,
    },
    "full": {
        "data_root": None,           # a MIMIC-CXR-JPG folder converted by data_scripts/; required
        "dataset": "mimic-cxr",
        "n_train": 0,                # 0 = the whole split
        "n_test": 0,
        "world_seed": 1000,
        "views": ["frontal", "lateral"],
        "encoder": "rad-dino",
        "encoder_weights": "microsoft/rad-dino",   # fetched only because it is named here; offline: a local path
        "encoder_width": 768,
        "projector": "c-abstractor",
        "projector_depth": 3,
        "projector_hidden": 1024,
        "num_queries": 361,
        "mlp_depth": 2,
        "llm": "mistralai/Mistral-7B-Instruct-v0.2",
        "llm_hidden": 4096,
        "llm_layers": 32,
        "lora_r": 8,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "lora_targets": ["q_proj", "v_proj"],      # the official code
        "sampling": "type_ratios",
        "type_ratios": [0.54, 0.35, 0.11],
        "paraphrase": False,
        "lm_warmup_steps": 0,        # the LLM is pre-trained
        "lm_warmup_lr": 3e-4,
        "stage1_steps": 2000,
        "stage1_lr": 3e-4,
        "stage1_weight_decay": 1e-2,
        "stage2_steps": 40000,
        "stage2_lr": 1e-4,
        "stage2_weight_decay": 1e-4,
        "batch_size": 64,            # stage 2's global batch (stage 1: 256 in the paper)
        "warmup_steps": 500,
        "max_new_tokens": 256,
        "turn1_max_new_tokens": 48,
        "eval_batch_size": 16,
        "n_boot": 1000,
        "variants": _VARIANTS,
        "seeds": [0],
        "output_dir": "runs/m4cxr",
        "resume": False,
        "precision": "bf16",
        "device": "cuda",
        "threads": None,
        "seed": 0,
    },
}
