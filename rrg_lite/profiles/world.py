"""Chapter 2 — the synthetic radiology world: how many studies to generate and at which size.

``cpu`` generates a cohort small enough for the chapter's 90-second budget on 2 cores (statistics over a few
hundred reports, one guided patient, a small on-disk build that the readers read back). ``full`` builds the
datasets the other chapters' full profiles can train on (256² × 64–128-slice CTs, 512² X-rays) with all cores,
and, when ``data_root`` names a converted real dataset (``data_scripts/``), computes the same statistics on it.
"""

PATHS = ("data_root",)

PROFILES = {
    "cpu": {
        "data_root": None,          # None = the synthetic world; a path = a real dataset converted by data_scripts/
        "real_format": "ct-rate",   # format of data_root: "ct-rate", "mimic-cxr", "amos-mm", "petct"
        "seed": 0,
        "n_ct": 120,                # CT studies for the statistics
        "n_xray": 300,              # X-ray studies for the statistics
        "n_petct": 2,               # PET/CT studies for the tour
        "n_build": 20,              # studies of each kind written to disk and read back
        "ct_size": 64,              # in-plane pixels
        "ct_depth": [24, 48],       # slice count range
        "xray_size": 128,
        "xray_grid": 64,
        "lesion_size_scale": 1.0,
        "lesion_contrast": 1.0,
        "noise_hu": 12.0,
        "label_balance": 0.25,
        "workers": 1,
        "output_dir": None,         # None = a temporary folder
    },
    "full": {
        "data_root": None,
        "real_format": "ct-rate",
        "seed": 0,
        "n_ct": 5000,
        "n_xray": 20000,
        "n_petct": 200,
        "n_build": 5000,
        "ct_size": 256,
        "ct_depth": [64, 128],
        "xray_size": 512,
        "xray_grid": 192,
        "lesion_size_scale": 1.0,
        "lesion_contrast": 1.0,
        "noise_hu": 12.0,
        "label_balance": 0.0,
        "workers": 16,
        "output_dir": "world_data",
    },
}
