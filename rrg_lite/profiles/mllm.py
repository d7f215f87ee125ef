"""Chapter 4 — "A multimodal LLM from parts": the LLaVA recipe on chest CT.

cpu:  the synthetic world, a 2-layer ViT-3D pre-trained on labels for seconds, an M3D-style pooling projector,
      a tiny Llama (hidden 128, 2 layers) with a word-level vocabulary; finishes in a few minutes on 2 cores.
full: CT-RATE converted by ``data_scripts/``, M3D-CLIP's 3-D ViT (32x256x256, 4x16x16 patches, width 768),
      Llama-3.2-1B-Instruct, LoRA r=8/alpha=32/dropout=0.05 (M4CXR), bf16 on a GPU. Memory estimate:
      :func:`rrg_lite.mllm.memory.estimate_training_memory`.
"""

PROFILES = {
    "cpu": {
        "data_root": None,                  # None: generate the synthetic world in memory
        "n_train": 400,
        "n_test": 100,
        "volume_shape": [32, 64, 64],
        "encoder": "vit3d",                 # vit3d (small, CPU) | m3d_clip (MONAI ViT) — with encoder_weights
        "encoder_weights": None,
        "patch_size": [8, 16, 16],
        "encoder_dim": 64,
        "encoder_depth": 2,
        "encoder_epochs": 8,
        "pool_kernel": [1, 2, 2],           # M3D spatial pooling of the patch grid
        "llm": None,                        # None: tiny Llama from a config; else a Hub id or local path
        "llm_hidden": 128,
        "llm_layers": 2,
        "text_steps": 200,                  # LM warm-up on reports (stands in for LM pre-training) = baseline
        "align_steps": 150,                 # stage 1: projector only
        "align_lr": 1e-2,
        "lora_steps": 300,                  # stage 2: projector + LoRA
        "lora_lr": 3e-3,
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "batch_size": 16,
        "grad_accum": 1,
        "max_new_tokens": 180,
        "mixed_precision": "auto",
        "n_boot": 1000,
    },
    "full": {
        "data_root": "/data/CT-RATE",
        "n_train": 0,                       # 0: every study of the split
        "n_test": 0,
        "volume_shape": [32, 256, 256],
        "encoder": "m3d_clip",
        "encoder_weights": "GoodBaiBai88/M3D-CLIP",
        "patch_size": [4, 16, 16],
        "encoder_dim": 768,
        "encoder_depth": 12,
        "encoder_epochs": 0,                # pre-trained: no label pre-training
        "pool_kernel": [2, 2, 2],           # 8x16x16 = 2048 patch tokens -> 256 (M3D)
        "llm": "meta-llama/Llama-3.2-1B-Instruct",
        "llm_hidden": 2048,
        "llm_layers": 16,
        "text_steps": 0,                    # the LM is pre-trained
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
        "mixed_precision": "bf16",
        "n_boot": 1000,
    },
}
