"""Chapter — Reg2RG: region-guided chest CT report generation (local feature decoupling, region–report alignment).

``full`` is the paper's setting (§IV-A of {cite}`chen2025reg2rg` and its released code): RadGenome-ChestCT
(CT-RATE volumes, ten SAT region masks, GPT-4 region reports), RadFM's frozen ViT3D + Perceiver (32 tokens per
region and for the global view), a 3-layer mask ViT (width 255 → FC), LLaMA2-7B with LoRA r 8 / α 32 / dropout 0.1
on q_proj and v_proj, AdamW lr 5e-5 constant with warm-up, effective batch 16, sampling with top_k 30 and up to
500 new tokens. The book has no RadFM loader: ``encoder="m3d-clip"`` reads a 3-D CT ViT from ``encoder_weights``
(nothing is downloaded unless named). Steps are ours (the paper: 6 epochs of 24,128 pairs at batch 16 ≈ 9,000).

``cpu`` is a scale-down of the same structure (7 models × 3 seeds; measured 22 min on one thread of a loaded
2-core machine, so *not* yet the book's few-minute budget, and no model learnt to read its visual tokens at this
size — see the chapter's issue note): three regions
(heart, lung, mediastinum — heart and lung in every study, mediastinum in ~80 %),
the book's cached CT encoder (32×64×64, 3 windows, 64 tokens) as f_V for the whole volume and for every crop,
4 perceiver tokens per region and for the global view, a 3-layer mask ViT of width 32 on 8×16×16 masks, a tiny
Llama of width 64 warmed up on the region reports (a stand-in for a pre-trained LLM), then the LM and LFD's f_A,
f_M, f_P trained together (``lm_tuning="full"``: a tiny LM learns little through LoRA; ``"lora"`` is the paper's).
The load average was ~8 during that measurement, so an idle 2-core machine should take roughly a quarter of it.
"""

_REGIONS_CPU = ["heart", "lung", "mediastinum"]
_REGIONS_ALL = ["abdomen", "bone", "breast", "esophagus", "heart", "lung", "mediastinum", "pleura", "thyroid",
                "trachea and bronchie"]
_VARIANTS = ["Reg2RG", "without LFD", "GLB (RadFM)", "TXT", "TXT+GEO", "TXT+GEO+GLB (without RRA)",
             "RRA, trained unshuffled"]

REQUIRED = {"full": ("data_root", "encoder_weights")}
PATHS = ("data_root", "encoder_weights")
HUB_IDS = ("llm", "encoder_weights")

PROFILES = {
    "cpu": {
        # data
        "data_root": None,                 # None: the synthetic world; else a CT-RATE folder with radgenome/
        "n_train": 200,
        "n_test": 40,
        "world_seed": 0,
        "world": {"lesion_size_scale": 1.5},   # the CT encoder's world (its cache key), so f_V sees what it learnt
        "regions": _REGIONS_CPU,
        # frozen encoder f_V (features cached once per study and region)
        "encoder": "shared",               # the book's world-trained CT encoder (rrg_lite.encoders.hub)
        "encoder_weights": None,
        "encoder_width": 64,
        "encoder_overrides": None,         # get_encoder("ct", **overrides) (tests train a smaller one)
        "volume_shape": [32, 64, 64],      # f_V's input: the crops and the whole volume are resized to it
        "windows": ["lung", "mediastinum", "bone"],
        "margin": 0,                       # voxels around each mask's box (0 = the tight box, Eq. 3)
        "standardize_regions": False,      # True: z-score crop tokens per area (recipe.standardize_regions)
        # LFD: f_A (perceiver), f_M (mask ViT) + f_P
        "num_texture_tokens": 4,           # K (paper 32)
        "perceiver_depth": 1,              # paper 6
        "perceiver_heads": 4,              # paper 8
        "mask_shape": [8, 16, 16],         # f_M's input (the code: the mask at 256×256×64)
        "mask_patch": [4, 4, 4],           # a 2×4×4 grid (the code: 32×32×16 patches, a 4×8×8 grid)
        "mask_dim": 32,                    # code 255
        "mask_depth": 3,                   # paper: 3 layers
        "mask_heads": 4,
        # language model
        "llm": "tiny",
        "llm_hidden": 64,
        "llm_layers": 2,
        "lm_warmup_steps": 100,            # text-only warm-up on the region reports, once per seed
        "warmup_lr": 3e-3,
        "lm_tuning": "full",               # "lora" (the paper) or "full" (a tiny random LM learns little through LoRA)
        "lora_r": 8,
        "lora_alpha": 32,
        "lora_dropout": 0.1,
        "lora_targets": ["q_proj", "v_proj"],
        # training (region–report alignment)
        "variants": _VARIANTS,
        "seeds": [0, 1, 2],
        "align_steps": 0,                  # stage 1: LFD only, the LM frozen (0 = one stage, as the paper)
        "align_lr": 5e-3,
        "steps": 120,
        "batch_size": 16,
        "grad_accum": 1,
        "lr": 2e-3,
        "warmup_steps": 10,
        "schedule": "cosine",
        "max_length": None,
        # evaluation
        "test_order_seed": 1234,           # one fixed region order per test study, the same for every model
        "max_new_tokens": 96,
        "eval_batch_size": 64,
        "do_sample": False,                # greedy on CPU (deterministic); the code samples with top_k 30
        "top_k": 30,
        "bootstrap": 1000,
        # run settings (the schema every chapter shares)
        "output_dir": None,
        "resume": False,
        "precision": "no",
        "device": "cpu",
        "threads": 1,
        "seed": 0,
    },
    "full": {
        "data_root": None,                 # a CT-RATE folder with RadGenome-ChestCT (data_scripts/); required
        "n_train": 0,                      # 0 = the whole split (24,128 train / 1,564 valid pairs)
        "n_test": 0,
        "world_seed": 0,
        "world": {},
        "regions": _REGIONS_ALL,
        "encoder": "m3d-clip",             # a 3-D CT ViT from encoder_weights (RadFM's ViT3D in the paper)
        "encoder_weights": None,           # local safetensors file/folder or a Hub id you name; required
        "encoder_width": 768,
        "encoder_overrides": None,
        "volume_shape": [64, 256, 256],    # the paper's 256×256×64 for crops and the whole volume
        "windows": [[-400.0, 1200.0]],     # HU clamp [−1000, 200] as one channel (the code: (x + 400) / 600)
        "margin": 0,
        "standardize_regions": False,      # RadFM's features as they are (the paper)
        "num_texture_tokens": 32,
        "perceiver_depth": 6,
        "perceiver_heads": 8,
        "mask_shape": [64, 256, 256],
        "mask_patch": [16, 32, 32],
        "mask_dim": 256,                   # the code: 255 (not divisible by 8 heads; ours 256)
        "mask_depth": 3,
        "mask_heads": 8,
        "llm": "meta-llama/Llama-2-7b-hf",
        "llm_hidden": 4096,
        "llm_layers": 32,
        "lm_warmup_steps": 0,
        "warmup_lr": 0.0,
        "lm_tuning": "lora",
        "lora_r": 8,
        "lora_alpha": 32,
        "lora_dropout": 0.1,
        "lora_targets": ["q_proj", "v_proj"],
        "variants": _VARIANTS,
        "seeds": [0],
        "align_steps": 0,
        "align_lr": 1e-4,
        "steps": 9000,                     # ours: ≈ 6 epochs of RadGenome at batch 16
        "batch_size": 4,
        "grad_accum": 4,                   # effective batch 16
        "lr": 5e-5,
        "warmup_steps": 100,
        "schedule": "constant",            # constant with warm-up (the paper)
        "max_length": 1024,
        "test_order_seed": 1234,
        "max_new_tokens": 500,
        "eval_batch_size": 8,
        "do_sample": True,
        "top_k": 30,
        "bootstrap": 1000,
        "output_dir": "runs/reg2rg",
        "resume": False,
        "precision": "bf16",
        "device": "cuda",
        "threads": None,
        "seed": 0,
    },
}
