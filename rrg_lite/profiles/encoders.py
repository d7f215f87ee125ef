"""Chapter 4 — "Teaching an encoder to see": pre-training the book's small encoders, and the encoder specs.

Two things live here:

- ``PROFILES``: the chapter's parameters (how many held-out studies it probes, which modalities, bootstrap size);
- ``SPECS``: per profile and modality, the encoder spec that :func:`rrg_lite.encoders.hub.get_encoder` pre-trains
  and caches (one cache entry per spec + world). Every chapter that wants "the CT encoder" gets the same one.

cpu: chest CT 32x64x64 in three windows (lung, mediastinum, bone), chest X-ray 128x128 per view; a hybrid ViT: a
     small CNN stem (``conv_stem``: stride-2 3x3(x3) convolutions down to the patch grid, 64 tokens) under 2
     transformer layers of width 64, no per-token LayerNorm at the output (it would erase "this token fired");
     supervised by the world's labels and lesion masks plus CLIP against the reports (weight 0.1: at 0.5 the
     contrastive term memorises the 800 reports and drowns the label signal). The pure-ViT stems (``voxel_max``,
     ``conv_max``) never left the label base rate on 600–800 studies (held-out macro AUC 0.55–0.62).
     Measured on 1 core-pair (2 threads, load ~2): CT 800 studies x 10 epochs ~80 s, X-ray 800 x 30 epochs ~65 s,
     plus ~20 s / ~10 s to generate the studies.
     World departures from real difficulty: CT lesions 1.5x the default size (``lesion_size_scale``, as chapter 5);
     X-ray lesion contrast 2.5x (``lesion_contrast``: at 1x most X-ray findings are a few grey levels on a 128-pixel
     film and even the trained encoder sees only the heart and effusions); everything else as in
     :mod:`rrg_lite.world.config`.
full: real encoders by path or Hub id (``encoder_weights``): M3D-CLIP's ViT for CT, RAD-DINO for X-ray; the same
     probe and retrieval code reads their features. Nothing is downloaded unless the user names weights.
"""

_VIT = {"embed_dim": 64, "depth": 2, "heads": 4, "patch_embed": "conv_stem", "stem_cell": [2, 4, 4], "stem_width": 64,
        "final_norm": False}
_TRAIN = {"objective": "labels+dense+clip", "epochs": 10, "lr": 3e-3, "batch_size": 32, "weight_decay": 0.05,
          "dense_weight": 1.0, "clip_weight": 0.1, "clip_dim": 64, "temperature": None, "symmetric": True,
          "std_floor": 0.05, "seed": 0, "data_seed": 0, "device": "cpu", "workers": 2}

_XRAY = {"n_train": 800, "epochs": 30, "lr": 2e-3, "world": {"lesion_contrast": 2.5}, "size": 128,
         "patch_size": [16, 16], "stem_cell": [4, 4], "std_floor": 0.02}

SPECS = {
    "cpu": {
        "ct": {**_VIT, **_TRAIN, "n_train": 800, "world": {"lesion_size_scale": 1.5}, "shape": [32, 64, 64],
               "windows": ["lung", "mediastinum", "bone"], "patch_size": [8, 16, 16]},
        "xray_frontal": {**_VIT, **_TRAIN, **_XRAY},
        "xray_lateral": {**_VIT, **_TRAIN, **_XRAY},
    },
}
SPECS["full"] = SPECS["cpu"]      # full scale loads real weights (get_encoder(..., weights=...)); specs unused

PROFILES = {
    "cpu": {
        "data_root": None,                # None: the synthetic world
        "encoder": "vit3d",               # the book's small ViTs (vit3d for CT; the X-ray views use the 2-D ViT)
        "encoder_weights": None,          # None: pre-train on the world (cached); else a safetensors path / Hub id
        "encoder_width": 64,
        "output_dir": None,
        "resume": False,
        "precision": "no",
        "device": "cpu",
        "seed": 0,
        "threads": 2,
        "modalities": ["ct", "xray_frontal"],
        "n_probe_train": 300,             # held-out studies (another seed) the linear probe is fitted on
        "n_probe_test": 300,              # held-out studies it is scored on
        "probe_seed": 1000,
        "clip_objectives": True,          # also train one-/two-directional CLIP-only encoders for the comparison
        "n_boot": 200,
    },
    "full": {
        "data_root": None,
        "encoder": "m3d-clip",
        "encoder_weights": "GoodBaiBai88/M3D-CLIP",
        "encoder_width": 768,
        "output_dir": None,
        "resume": False,
        "precision": "bf16",
        "device": "auto",
        "seed": 0,
        "threads": None,
        "modalities": ["ct"],
        "n_probe_train": 2000,
        "n_probe_test": 1000,
        "probe_seed": 1000,
        "clip_objectives": False,
        "n_boot": 1000,
    },
}
HUB_IDS = ("encoder_weights",)
