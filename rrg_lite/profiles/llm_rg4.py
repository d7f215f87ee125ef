"""Chapter — LLM-RG4: flexible chest X-ray report generation (four input scenarios, ATF, TLW, hall.).

``full`` is the paper's setting (SYSTEMS.md §3, code values): MIMIC-RG4 (MIMIC-CXR rewritten) in a MIMIC-CXR layout,
RAD-DINO for both views (518 px, 1369 patch tokens × 768, CLS dropped), CXR-BERT for the prior report (100
tokens × 768), Vicuna-7B v1.5; ATF with N = 128 queries, 12-head perceivers, "Linear" 768 → 2048 → 4096; stage 1
(frontal ATF only, LLM frozen, sn data, batch 24 × 2, lr 3e-4, 2 epochs, TLW on), stage 2 (ATF + LoRA r 32,
α 64, dropout 0.1 on q/v; cosine, 10 % warm-up, bf16; single-scenario batches in turn); TLW λ = 1.75 above 0.4.
Step counts at full scale are ours (the paper gives epochs): set them for your data size.

``cpu`` is a scale-down that trains every variant of the chapter × 3 seeds in a few minutes on 2 cores: world
X-ray studies that all have a lateral view and a prior study (so the four scenarios come from the same patients),
the book's frozen 2-D ViTs (:func:`rrg_lite.encoders.hub.get_encoder`, 64 tokens × 64 per view), the frozen CLIP
text tower of the frontal encoder for the prior report (one token per sentence), a tiny Llama (width 64, 2
layers) warmed up on the training reports (a stand-in for a pre-trained LLM), ATF with N = 8 queries, and the
impression as the target (short, image-determined: see ``sections``). Measured on the shared 2-core machine
(load ~6, 1 thread): the preparation ~2.5 min and ~3.5 min per seed for the 8 default variants — over the
5-minute goal; ``seeds=[0]`` or fewer ``variants`` for a quick run.
"""

_WORLD = {"lesion_contrast": 2.5,     # as the X-ray encoders' world (rrg_lite/profiles/encoders.py)
          "p_lateral": 1.0,           # every study has both views and a prior: one patient, four scenarios
          "p_prior_xray": 1.0,
          "p_one_view_only": 0.6,     # more lateral-only findings than the default 0.35: the claim's test set
          "p_input_agnostic_xray": 0.6}   # more input-agnostic sentences, so that original vs clean is visible

REQUIRED = {"full": ("data_root", "encoder_weights")}
PATHS = ("data_root",)
HUB_IDS = ("llm", "encoder_weights", "text_encoder")

PROFILES = {
    "cpu": {
        # data
        "data_root": None,               # None = the synthetic world, generated in memory
        "dataset": "world",
        "n_train": 320,
        "n_test": 80,
        "world_seed": 0,
        "world": _WORLD,
        # the target: these sections, without headers. CPU: the impression (the world's lists the positive
        # findings, else a normal statement): findings+impression is ~4x longer, ~4x slower per step, and at 200
        # steps its image gain was ~0.035 nats/token against ~0.15 for the impression (measured)
        "sections": ["impression"],
        # frozen encoders (features computed once, reused by every variant and seed)
        "encoder": "vit2d",              # the book's world-trained 2-D ViTs (frontal and lateral)
        "encoder_weights": None,         # None: get_encoder("xray_frontal"/"xray_lateral"), cached
        "encoder_width": 64,             # E (D' in the paper)
        "text_encoder": None,            # None: the frontal encoder's CLIP text tower (hashed n-grams), frozen
        "text_width": 64,
        "prior_tokens": 12,              # N_T: prior-report sentences (one token each), padded / cut
        # language model
        "llm": "tiny",
        "llm_hidden": 64,
        "llm_layers": 2,
        "lm_warmup_steps": 200,          # text-only warm-up of the tiny LM on the training reports, once per seed
        "lm_warmup_lr": 5e-3,
        # ATF (and the interleaved baseline's per-input projectors)
        "num_queries": 8,                # N
        "atf_heads": 4,
        "proj_hidden": 128,
        "atf_dropout": 0.1,
        # TLW
        "tlw_source": "labeler",         # labeler + integrated gradients (Algorithm 1) | oracle (world key tags)
        "tlw_form": "paper",             # paper (Eq. 10 averaged) | code (two separately normalised terms)
        "tlw_lambda": 1.75,
        "tlw_threshold": 0.4,
        "ig_steps": 16,
        "labeler_epochs": 30,
        # training
        "stage1_steps": 60,
        "stage1_lr": 3e-3,
        "stage2_steps": 150,
        "stage2_lr": 3e-3,
        "batch_size": 16,
        "warmup_ratio": 0.1,
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.1,
        # Table 4's rows, original-report training and TLW's random control; Table 5's per-scenario models
        # ("S2 ATF +TLW, sn only", ...) and "S2 ATF +oracle weights" are in experiment.VARIANTS (4 more runs a seed)
        "variants": ["S1", "S1 +TLW", "S2 interleaved", "S2 interleaved +TLW", "S2 ATF", "S2 ATF +TLW",
                     "S2 ATF +TLW, original reports", "S2 ATF +random-sentence weights"],
        "seeds": [0, 1, 2],
        # evaluation
        "max_new_tokens": 32,
        "eval_batch_size": 64,
        "n_boot": 1000,
        "detector_epochs": 8,
        # the common fields
        "output_dir": None,
        "resume": False,
        "precision": "no",
        "device": "cpu",
        "seed": 0,
    },
    "full": {
        "data_root": None,               # a MIMIC-CXR-layout folder converted by data_scripts/ (required)
        "dataset": "mimic-cxr",
        "n_train": 0,                    # 0 = every study of the split
        "n_test": 0,
        "world_seed": 0,
        "world": _WORLD,
        "sections": ["findings", "impression"],
        "encoder": "rad-dino",
        "encoder_weights": "microsoft/rad-dino",
        "encoder_width": 768,
        "text_encoder": "microsoft/BiomedVLP-CXR-BERT-specialized",
        "text_width": 768,
        "prior_tokens": 100,
        "llm": "lmsys/vicuna-7b-v1.5",
        "llm_hidden": 4096,
        "llm_layers": 32,
        "lm_warmup_steps": 0,            # a pre-trained LLM needs no warm-up
        "lm_warmup_lr": 0.0,
        "num_queries": 128,
        "atf_heads": 12,
        "proj_hidden": 2048,
        "atf_dropout": 0.1,
        "tlw_source": "labeler",
        "tlw_form": "paper",
        "tlw_lambda": 1.75,
        "tlw_threshold": 0.4,
        "ig_steps": 50,
        "labeler_epochs": 30,
        "stage1_steps": 4000,            # ours: ~2 epochs of the sn studies at batch 48
        "stage1_lr": 3e-4,
        "stage2_steps": 20000,
        "stage2_lr": 1e-4,
        "batch_size": 24,
        "warmup_ratio": 0.1,
        "lora_r": 32,
        "lora_alpha": 64,
        "lora_dropout": 0.1,
        "variants": ["S1", "S1 +TLW", "S2 interleaved", "S2 interleaved +TLW", "S2 ATF", "S2 ATF +TLW"],
        "seeds": [0],
        "max_new_tokens": 150,
        "eval_batch_size": 16,
        "n_boot": 1000,
        "detector_epochs": 15,
        "output_dir": None,
        "resume": False,
        "precision": "bf16",
        "device": "auto",
        "seed": 0,
    },
}
