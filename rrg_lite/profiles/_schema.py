"""The one schema every chapter's profiles follow: the same name for the same setting, in every chapter.

A chapter that trains or loads a model has every field of :data:`MODEL_FIELDS`; the others use the ones that
apply (a chapter with an output folder calls it ``output_dir``, never ``out_dir``). :data:`RENAMED` lists the
old names, which no profile may define; reading one from a profile still works, with a warning, so that an old
notebook keeps running while it is updated.

Each chapter module (``rrg_lite/profiles/<chapter>.py``) may also say what :func:`rrg_lite.profiles.check_profile`
insists on:

- ``REQUIRED = {"full": ("data_root", ...)}`` — fields that must be set (not None) under that profile;
- ``PATHS = ("data_root", "encoder_weights", ...)`` — fields that, when set, must exist on disk;
- ``HUB_IDS = ("llm", ...)`` — fields that may be a local folder or a Hugging Face id (fetched only because the
  user named it; an error offline unless it is already in the Hugging Face cache);
- ``IGNORED_WITH = {"sft_checkpoint": ("llm",)}`` — fields not checked while another one is set (unused then).
"""
from __future__ import annotations

#: field -> what it means (the README and tests use this; values are checked by :func:`check_value`).
COMMON_FIELDS = {
    "data_root": "None = the synthetic world, generated in memory; else a folder converted by data_scripts/",
    "encoder": "the vision encoder: one of ENCODERS",
    "encoder_weights": "None = random init (pre-trained in the chapter); else a safetensors file or folder (or a Hub id)",
    "encoder_width": "E, the width of the encoder's tokens (with encoder_depth / encoder_heads: its size)",
    "llm": '"tiny" = a tiny random Llama with a word-level tokenizer; else a Hugging Face id or a local folder',
    "output_dir": "where checkpoints and results go (None: nothing is kept)",
    "resume": "True: every training run continues from its latest complete checkpoint in output_dir",
    "precision": "Accelerate's mixed precision: one of PRECISIONS (bf16 = bf16 autocast over fp32 master weights)",
    "device": 'one of DEVICES, or "cuda:N"; "cuda" means a GPU is required (checked before any work)',
    "seed": "the seed every random thing starts from",
}

#: What to pass when a profile requires a field that is not set (check_profile's message).
REQUIRED_HINTS = {
    "data_root": "the dataset's folder, converted by data_scripts/ (e.g. /data/AMOS-MM or /data/CT-RATE)",
    "encoder_weights": "the vision encoder's weights: a local safetensors file or folder",
    "sft_checkpoint": "the SFT model chapter 6 saved: <its output_dir>/sft (python -m rrg_lite.run mu2 --output-dir D)",
    "nifti_path": "a CT volume of your own (.nii.gz)",
}

#: Fields of every chapter that trains or loads a model (the chapters in :data:`MODEL_CHAPTERS`).
MODEL_FIELDS = tuple(COMMON_FIELDS)
MODEL_CHAPTERS = ("mllm", "mu2", "dpo", "vipet", "reg2rg", "llm_rg4", "m4cxr")

ENCODERS = {
    "shared": "the book's world-trained encoder of chapter 4 (rrg_lite.encoders.hub.get_encoder): trained once, cached",
    "vit3d": "the package's small 3-D ViT (rrg_lite.encoders.vit.vit3d), sized by the profile",
    "m3d-clip": "M3D-CLIP's vision tower (rrg_lite.encoders.pretrained.m3d_clip_vit), weights from encoder_weights",
    "vit2d": "the package's small 2-D ViT (rrg_lite.encoders.vit.vit2d), for X-rays",
    "rad-dino": "RAD-DINO (rrg_lite.encoders.pretrained.rad_dino), weights from encoder_weights",
}
PRECISIONS = ("auto", "no", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")

#: old name -> new name. No profile may define an old name.
RENAMED = {
    "encoder_checkpoint": "encoder_weights",
    "encoder_dim": "encoder_width",
    "out_dir": "output_dir",
    "mixed_precision": "precision",
    "num_threads": "threads",
}
#: old encoder names -> new ones (accepted in overrides, with the new name stored).
RENAMED_ENCODERS = {"tiny-vit3d": "vit3d", "vit3d-m3d-clip": "m3d-clip", "m3d_clip": "m3d-clip"}


def check_value(chapter: str, key: str, value):
    """``value`` normalised, or a ``ValueError`` saying which values ``key`` accepts (common fields only)."""
    if value is None:
        return value
    if key == "encoder":
        value = RENAMED_ENCODERS.get(value, value)
        if value not in ENCODERS:
            raise ValueError(f"parameter 'encoder' of chapter {chapter!r} must be one of {', '.join(ENCODERS)}, "
                             f"got {value!r}")
    elif key == "precision" and value not in PRECISIONS:
        raise ValueError(f"parameter 'precision' of chapter {chapter!r} must be one of {', '.join(PRECISIONS)}, "
                         f"got {value!r}")
    elif key == "device" and not (value in DEVICES or (isinstance(value, str) and value.startswith("cuda:")
                                                      and value[5:].isdigit())):
        raise ValueError(f"parameter 'device' of chapter {chapter!r} must be one of {', '.join(DEVICES)} or "
                         f"'cuda:N', got {value!r}")
    return value
