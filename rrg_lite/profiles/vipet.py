"""ViPET-VLM (PET/CT report generation): the recipe and its ablation (Tables 1–2 of the paper, rebuilt with controls).

``full`` is the paper's setting where it states one (SYSTEMS.md §1): ViMed-PET region crops (head-neck, chest,
abdomen-pelvis, 20-slice overlap), a CT-ViT-sized 3-D encoder per modality (width 512) fine-tuned with
one-directional CLIP (``clip_objective="clip"``, Eq. 3–4), PET-query cross-attention fusion with L_cross, a linear
projector, Mistral-7B (the paper's LLM, LLaVA-Med lineage), stage 2 projector-only, stage 3 LoRA + projector on
single- and multi-turn VQA and reports, + λ·L_align. The paper gives no learning rates, steps, batch size, LoRA
rank, λ, SUV threshold or input size: those values are ours and marked so. CT-ViT's weights have no loader in the
package, so the full profile trains the package's 3-D ViT at that width (``encoder="vit3d"``); the recipe's
LLM path is the tiny Llama only (a pre-trained LLM is named here for the record; :mod:`rrg_lite.systems.vipet.recipe`
says it is not wired yet).

``cpu`` is a scale-down meant to run every variant × 3 seeds in a few minutes on 2 cores — *not yet measured at this
size* (the first measurements ran on a machine loaded ~10× and are in the issue's report): 160 + 40 world studies →
480 + 120 region crops resized to 8 × 64 × 64, patches 4 × 16 × 16 (32 tokens per modality), encoders of width 64
(stage 1a with the world's lesion labels and masks beside CLIP: a stand-in for CT-ViT's pre-training), a tiny
Llama of width 64 warmed up on the training texts, the impression as the target (every lesion's size, SUVmax and
suspicion in ~20 words, which the fact metrics read).
"""

REQUIRED = {"full": ("data_root",)}
PATHS = ("data_root", "encoder_weights")
HUB_IDS = ("llm",)

#: The experiment's rows (SYSTEMS.md §1: Table 1's 2×2 and the controls); see rrg_lite.systems.vipet.experiment.
_VARIANTS = ["PET only", "PET only + L_align", "fusion (w/o L_align)", "ViPET-VLM", "CT only", "concatenation",
             "CT as query", "random ROI"]

PROFILES = {
    "cpu": {
        # data
        "data_root": None,                 # None = the synthetic world; else a PET/CT folder (read_petct layout)
        "n_train": 160,                    # studies (patients); 3 crops each
        "n_test": 40,
        "world_seed": 0,
        "world": {},                       # WorldConfig overrides (pet and whole_body are set by the recipe)
        "overlap": None,                   # None = the paper's 20 slices scaled to the volume (2 here)
        "region_boundaries": [0.3, 0.55],  # real data only: head-neck | chest | abdomen-pelvis as depth fractions
        "volume_shape": [8, 64, 64],       # every crop resized to this (D, H, W)
        "patch_size": [4, 16, 16],         # 2 × 4 × 4 = 32 tokens per modality
        "windows": ["lung", "mediastinum", "bone"],
        "suv_clip": 15.0,                  # PET input = SUV / 15 clipped to [0, 1]
        "suv_threshold": 2.5,              # the ROI of L_align (ours; the paper: "simple thresholding")
        "roi_rule": "any",                 # a token is ROI if any of its voxels is
        "target": "impression",            # what stages 2–3 write: "impression" or "report" (the region report)
        "qa_per_crop": 3,
        "workers": 2,                      # processes generating the world (same data for any number)
        # stage 1a: one encoder per modality
        "encoder": "vit3d",
        "encoder_weights": None,           # None: trained here (stage 1a)
        "encoder_width": 64,
        "clip_objective": "labels+dense+clip",   # the paper: "clip"; + the world's labels/masks at CPU size
        "clip_epochs": 12,
        "clip_lr": 3e-3,
        "clip_batch_size": 32,
        "clip_weight": 0.5,
        # stage 1b: fusion + L_cross
        "fusion_heads": 1,                 # Eq. 6 as written
        "fusion_steps": 150,
        "fusion_lr": 1e-3,
        "fusion_batch_size": 64,
        # LLM and stages 2–3
        "llm": "tiny",
        "llm_hidden": 64,
        "llm_layers": 2,
        "lm_warmup_steps": 150,            # text-only warm-up once per seed (stands in for a pre-trained LLM)
        "lr": 5e-3,                        # the warm-up's
        "batch_size": 16,
        "stage2_steps": 60,
        "stage2_lr": 3e-3,
        "stage3_steps": 160,
        "stage3_lr": 3e-3,
        "stage3_tasks": ["report", "qa", "dialogue"],
        "lora_r": 8,
        "lora_alpha": 16,
        "lam": 0.5,                        # λ of Eq. 12 (ours; the paper gives none)
        "align_reading": "union",
        # experiment
        "variants": _VARIANTS,
        "seeds": [0, 1, 2],
        "max_new_tokens": 64,
        "eval_batch_size": 64,
        "n_boot": 1000,
        # run settings (the schema every chapter shares)
        "output_dir": None,
        "resume": False,
        "precision": "no",
        "device": "cpu",
        "threads": 2,
        "seed": 0,
    },
    "full": {
        "data_root": None,                 # a ViMed-PET folder converted by data_scripts/convert_petct.py; required
        "n_train": 0,                      # 0 = every study but the held-out ones
        "n_test": 300,                     # ours (the paper states no split; split by patient)
        "world_seed": 0,
        "world": {},
        "overlap": 20,                     # the paper's 20 slices
        "region_boundaries": [0.3, 0.55],  # ours (ViMed-PET's cuts are not published)
        "volume_shape": [64, 256, 256],    # ours (not stated)
        "patch_size": [8, 16, 16],
        "windows": ["lung", "mediastinum", "bone"],
        "suv_clip": 15.0,
        "suv_threshold": 2.5,
        "roi_rule": "any",
        "target": "report",
        "qa_per_crop": 3,                  # (world only; ViMed-PET: ≈3.4 per pair from GPT-4o)
        "workers": 8,
        "encoder": "vit3d",                # CT-ViT-sized (CT2Rep's CT-ViT has no loader here)
        "encoder_weights": None,
        "encoder_width": 512,
        "clip_objective": "clip",          # Eq. 3–4 as written
        "clip_epochs": 20,                 # ours
        "clip_lr": 1e-4,                   # ours
        "clip_batch_size": 64,             # ours
        "clip_weight": 1.0,
        "fusion_heads": 1,
        "fusion_steps": 5000,              # ours
        "fusion_lr": 1e-4,                 # ours
        "fusion_batch_size": 64,
        "llm": "mistralai/Mistral-7B-Instruct-v0.2",   # the paper's LLM family (named, never fetched by default)
        "llm_hidden": 4096,
        "llm_layers": 32,
        "lm_warmup_steps": 0,              # a pre-trained LLM needs none
        "lr": 2e-5,
        "batch_size": 8,                   # ours
        "stage2_steps": 3000,              # ours
        "stage2_lr": 1e-3,                 # ours (LLaVA's projector stage)
        "stage3_steps": 10000,             # ours
        "stage3_lr": 2e-4,                 # ours (LoRA)
        "stage3_tasks": ["report", "qa", "dialogue"],
        "lora_r": 16,                      # ours
        "lora_alpha": 32,
        "lam": 0.5,                        # ours
        "align_reading": "union",
        "variants": _VARIANTS,
        "seeds": [0, 1, 2],
        "max_new_tokens": 512,
        "eval_batch_size": 16,
        "n_boot": 1000,
        "output_dir": "runs/vipet",
        "resume": False,
        "precision": "bf16",
        "device": "cuda",
        "threads": None,
        "seed": 0,
    },
}
