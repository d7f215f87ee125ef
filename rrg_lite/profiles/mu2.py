"""Chapter 6 — μ²-LLM: the μ² Tokenizer rebuilt from LinVT, and its ablation (Table 2 of the paper).

``full`` is the paper's setting (§3 "Implementation Details" of {cite}`li2025mu2`): AMOS-MM (or CT-RATE)
volumes min-max normalised and resized/cropped to 8 frames × 32 × 256 × 256, a 3-D ViT the size of M3D-CLIP's
(width 768, patches 4 × 16 × 16 → 2048 tokens per frame), Llama-3.2-1B-Instruct (hidden size 2048),
4 refiner + 4 aggregation layers with 8 heads, k = 1024 soft tokens, 1024 learnable queries, AdamW with warm-up
and cosine decay, bf16. Values the paper does not give (learning rate, steps, batch size) are ours and say so.

``cpu`` is a scale-down of the same architecture that trains 5 variants × 3 seeds on oracle features (the world's
per-frame finding labels) and LinVT and μ² × 3 seeds on a tiny ViT's features, in a few minutes on 2 cores:
the world's CTs cut into frames of 8 slices of 64 × 64 (any depth → any T), a frozen tiny 3-D ViT (width 64,
patches 4 × 16 × 16 → 32 tokens per frame), a tiny Llama of width 64, one refiner and one aggregation layer,
4 heads, k = 32, 16 queries.
"""

REQUIRED = {"full": ("data_root", "encoder_weights")}
PATHS = ("data_root", "encoder_weights")
HUB_IDS = ("llm",)

PROFILES = {
    "cpu": {
        # data: the synthetic world (AMOS-MM-like questions about one body part)
        "data_root": None,  # None = generate the synthetic world in memory
        "dataset": "world",
        "n_train": 1000,  # ~3000 questions: one SFT run sees each about once, so it cannot memorise studies
        "n_test": 40,
        "world_seed": 0,
        "lesion_contrast": 2.0,  # world difficulty: lesions twice as contrasted and 1.5× larger than the default
        "lesion_size_scale": 1.5,
        "answers": "positive",  # only sentences about present findings (else "No abnormality ..."); "all" = AMOS-MM text
        "ct_size": 64,  # H = W of the CPU volumes
        "slices_per_frame": 8,  # K: frames are K × H × W, T = ceil(depth / K)
        "volume_shape": None,  # None = keep each volume's own depth (frames, not resizing)
        "num_frames": 6,  # T after padding with air frames (48 slices), so that a batch stacks
        "hu_range": [-200.0, 300.0],  # HU window scaled to [0, 1]; None = per-volume min-max (the paper)
        "feature_cache": None,  # a folder: AMOS-MM features computed once on disk (chapter 7 reads the same)
        # encoder (frozen; features are computed once)
        "encoder": "vit3d",
        "encoder_weights": None,  # None: random init, pre-trained on the world's frame labels below
        "encoder_pretrain_studies": 300,
        "encoder_pretrain_steps": 200,  # frame-level finding-kind labels: a stand-in for M3D-CLIP pre-training
        "encoder_pretrain_lr": 3e-3,
        "encoder_width": 64,  # E
        "encoder_depth": 2,
        "encoder_heads": 4,
        "patch_embed": "conv",  # or "conv_max" (chapter 5's stem); neither makes the world's lesions visible here
        "stem_cell": [2, 4, 4],
        "stem_width": 32,
        "probe_pool": "mean",  # how the frame-label probe pools patch tokens during pre-training
        "patch_size": [4, 16, 16],
        # language model
        "llm": "tiny",
        "llm_hidden": 64,  # D (the tokenizer's width = the LLM's hidden size)
        "llm_layers": 2,
        # tokenizer (scale-down of the paper's)
        "num_heads": 4,
        "refiner_layers": 1,
        "aggregation_layers": 1,
        "k": 32,
        "num_queries": 16,
        "mlp_ratio": 2,
        "dmtp_gate": "token",
        # the main ablation's features: "oracle" = the world's per-frame finding labels (a perfect encoder, so
        # that the tokenizers are compared on features that hold the answer), "encoder" = the frozen ViT's
        "ablation_features": "oracle",
        # training: one short SFT run per (variant, seed)
        "variants": ["Baseline", "+RPE", "+DTS", "+DMTP", "μ² (SFT)"],
        "seeds": [0, 1, 2],
        "lm_warmup_steps": 200,  # text-only warm-up of the tiny LM, once per seed (stands in for pre-training)
        "steps": 170,  # ~0.9 epoch of the 3000 training questions; chapter 6 trains 21 such runs in its 8-minute budget
        "batch_size": 16,
        "lr": 5e-3,
        "warmup_steps": 10,
        "max_new_tokens": 96,
        "eval_batch_size": 48,
        "use_meteor": True,
        "bootstrap": 1000,
        # cost vs depth
        "cost_frames": [1, 2, 3, 4, 5, 6, 7, 8],
        "cost_repeats": 3,
        # run settings (the schema every chapter shares)
        "output_dir": None,  # None: nothing kept; a folder: the μ² SFT checkpoint (chapter 7 reads it) and results
        "resume": False,  # True: continue each training run from its latest checkpoint in output_dir
        "precision": "auto",
        "device": "auto",
        "threads": 1,  # the models are tiny: one thread avoids synchronisation overhead on 2 cores
        "seed": 0,
    },
    "full": {
        "data_root": None,  # a converted AMOS-MM or CT-RATE folder (data_scripts/); required
        "dataset": "amos-mm",  # or "ct-rate"
        "n_train": 0,  # 0 = the whole split
        "n_test": 0,
        "world_seed": 0,
        "lesion_contrast": 1.0,  # (synthetic world only)
        "lesion_size_scale": 1.0,
        "answers": "all",
        "ct_size": 256,
        "slices_per_frame": 32,
        "volume_shape": [256, 256, 256],  # paper: min-max, resize/crop to 8 × 32 × 256 × 256
        "num_frames": 8,
        "hu_range": None,  # per-volume min-max normalisation, as in the paper
        "feature_cache": "runs/feature_cache",
        "encoder": "m3d-clip",  # M3D-CLIP's 3-D ViT (its vision tower)
        "encoder_weights": None,  # a local safetensors file or folder of its weights (the user's choice); required
        "encoder_pretrain_studies": 0,
        "encoder_pretrain_steps": 0,  # the real encoder comes pre-trained
        "encoder_pretrain_lr": 3e-3,
        "encoder_width": 768,  # M3D-CLIP's ViT: width 768, 12 layers, 12 heads (MLP 4 × width)
        "encoder_depth": 12,
        "encoder_heads": 12,
        "patch_embed": "conv",  # (vit3d only)
        "stem_cell": [2, 4, 4],
        "stem_width": 32,
        "probe_pool": "mean",
        "patch_size": [4, 16, 16],
        "llm": "meta-llama/Llama-3.2-1B-Instruct",
        "llm_hidden": 2048,
        "llm_layers": 16,
        "num_heads": 8,
        "refiner_layers": 4,
        "aggregation_layers": 4,
        "k": 1024,
        "num_queries": 1024,
        "mlp_ratio": 4,
        "dmtp_gate": "token",
        "ablation_features": "encoder",  # real data has no oracle
        "variants": ["Baseline", "+RPE", "+DTS", "+DMTP", "μ² (SFT)"],
        "seeds": [0, 1, 2],
        "lm_warmup_steps": 0,  # the LLM is pre-trained
        "steps": 20000,  # ours: the paper does not give step counts
        "batch_size": 8,  # ours (per GPU; the paper used 4 × A40)
        "lr": 1e-4,  # ours
        "warmup_steps": 500,
        "max_new_tokens": 512,
        "eval_batch_size": 16,
        "use_meteor": True,
        "bootstrap": 1000,
        "cost_frames": [1, 2, 3, 4, 5, 6, 7, 8],
        "cost_repeats": 3,
        "output_dir": "runs/mu2",
        "resume": False,
        "precision": "bf16",  # bf16 autocast, fp32 master weights (the paper trains in bf16)
        "device": "cuda",
        "threads": None,
        "seed": 0,
    },
}
