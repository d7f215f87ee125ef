"""Chapter 5 — "A multimodal LLM from parts": the LLaVA recipe on chest CT.

cpu:  the synthetic world (chest scan range, lesions 1.5x the default size), three CT windows, chapter 4's shared
      CT encoder (``encoder="shared"``: rrg_lite.encoders.hub.get_encoder("ct"), a hybrid ViT-3D pre-trained once
      on the world and cached; ``encoder="vit3d"`` trains a small one here instead), an M3D-style pooling
      projector, a tiny Llama (hidden 128, 2 layers) with a word-level vocabulary; the text-only baseline gets as
      many report steps as the image model; a few minutes on 2 cores.
full: CT-RATE (a local folder in the release's layout), M3D-CLIP's 3-D ViT (32x256x256, 4x16x16 patches, width 768,
      one channel), Llama-3.2-1B-Instruct, LoRA r=8/alpha=32/dropout=0.05 (M4CXR), bf16 on a GPU. Memory estimate:
      :func:`rrg_lite.mllm.memory.estimate_training_memory`.
"""

REQUIRED = {"full": ("data_root", "encoder_weights")}
PATHS = ("data_root",)
HUB_IDS = ("llm", "encoder_weights")

PROFILES = {
    "cpu": {
        "data_root": None,                  # None: generate the synthetic world in memory
        "n_train": 1600,
        "n_test": 200,
        "world": {"lesion_size_scale": 1.5},  # WorldConfig knobs: lesions 1.5x larger, so more are visible at 64x64
        "workers": 2,                       # processes generating the world (same data for any number)
        "lazy": False,                      # True: keep CT-RATE volumes on disk, load per batch
        "feature_cache": None,              # a folder: frozen features on disk (computed once, read lazily)
        "volume_shape": [32, 64, 64],
        "windows": ["lung", "mediastinum", "bone"],  # one input channel per CT window
        "standardize": False,               # the shared encoder standardises each voxel itself (vit3d: set True)
        "encoder": "shared",                # shared (chapter 4's, cached) | vit3d (trained here) | m3d-clip
        "encoder_weights": None,            # None: no real weights (shared / vit3d are trained on the world)
        "patch_size": [8, 16, 16],
        "patch_embed": "conv_max",          # vit3d only: conv | linear | conv_max | voxel_max | conv_stem
        "stem_cell": [2, 4, 4],
        "stem_width": 32,
        "encoder_width": 64,
        "encoder_depth": 2,
        "encoder_heads": 4,
        "encoder_epochs": 12,               # vit3d only: label pre-training in the chapter
        "encoder_lr": 5e-3,
        "probe_pool": "meanmax",            # how the label probe pools patch tokens during pre-training
        "pool_kernel": [2, 2, 2],           # M3D spatial pooling of the patch grid: 4x4x4 -> 8 tokens
        "llm": "tiny",                      # tiny: a tiny Llama from a config; else a Hub id or local path
        "llm_hidden": 128,
        "llm_layers": 2,
        "text_steps": 200,                  # LM warm-up on reports (stands in for LM pre-training) = baseline
        "text_lr": 3e-3,
        "align_steps": 50,                  # stage 1: projector only
        "align_lr": 1e-2,
        "lora_steps": 600,                  # stage 2: projector + LoRA
        "lora_lr": 1e-2,
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "batch_size": 16,
        "grad_accum": 1,
        "max_new_tokens": 180,
        "gen_batch_size": 100,
        "n_boot": 1000,
        "output_dir": None,  # None: nothing kept; a folder: checkpoints, reports and scores
        "resume": False,  # True: continue each training run from its latest checkpoint in output_dir
        "precision": "auto",                # bf16 on a GPU that has it, else fp32
        "device": "auto",                   # the GPU if there is one
        "threads": 2,                       # torch/BLAS threads (RRG_THREADS overrides)
        "seed": 0,
    },
    "full": {
        "data_root": "/data/CT-RATE",
        "n_train": 0,                       # 0: every study of the split (train trains, valid is held out)
        "n_test": 0,
        "world": {},
        "workers": 1,
        "lazy": True,
        "feature_cache": "runs/feature_cache",   # CT-RATE's features do not fit in RAM (~300 GB for train)
        "volume_shape": [32, 256, 256],
        "windows": [[0, 2000]],             # one channel, -1000..1000 HU -> [0, 1] (M3D-CLIP reads one channel)
        "standardize": False,               # a pre-trained encoder keeps the normalisation it was trained with
        "encoder": "m3d-clip",
        "encoder_weights": "GoodBaiBai88/M3D-CLIP",   # a Hub id (safetensors fetched) or a local file/folder
        "patch_size": [4, 16, 16],
        "patch_embed": "conv",              # unused by m3d_clip
        "stem_cell": [2, 4, 4],
        "stem_width": 32,
        "encoder_width": 768,                # M3D-CLIP's ViT: width 768, 12 layers, 12 heads (MLP 4 × width)
        "encoder_depth": 12,
        "encoder_heads": 12,
        "encoder_epochs": 0,                # pre-trained: no label pre-training
        "encoder_lr": 1e-4,
        "probe_pool": "mean",
        "pool_kernel": [2, 2, 2],           # 8x16x16 = 2048 patch tokens -> 256 (M3D)
        "llm": "meta-llama/Llama-3.2-1B-Instruct",
        "llm_hidden": 2048,
        "llm_layers": 16,
        "text_steps": 0,                    # the LM is pre-trained
        "text_lr": 1e-4,
        "align_steps": 2000,
        "align_lr": 3e-4,
        "lora_steps": 10000,
        "lora_lr": 1e-4,
        "lora_r": 8,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "batch_size": 8,
        "grad_accum": 4,
        "max_new_tokens": 512,
        "gen_batch_size": 8,
        "n_boot": 1000,
        "output_dir": "runs/mllm_from_parts",
        "resume": False,
        "precision": "bf16",                # bf16 autocast, fp32 master weights and optimizer state
        "device": "cuda",
        "threads": None,
        "seed": 0,
    },
}
