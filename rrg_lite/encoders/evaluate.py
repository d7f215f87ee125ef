"""Everything chapter 4 measures about a frozen encoder, in one call.

    result = evaluate_encoder(bundle, probe_train, probe_test)     # two EncoderData of held-out studies
    result["auc"]            {label: AUC} of the linear probe on frozen features (probe_test)
    result["macro_auc"]      (macro, lo, hi): percentile bootstrap over the test studies
    result["shuffled"]       (macro, lo, hi) of the same probe fitted on shuffled training labels (a no-image control:
                             the features are the image's, but the labels they are fitted to are another study's)
    result["pixels"]         (macro, lo, hi) of the same probe on max/min/mean-pooled standardised pixels per patch
                             (no learning): what the pixels carry at the encoder's patch grid
    result["by_size"]        AUC per lesion-size bin (positives of the bin against all negatives)
    result["retrieval"]      report->image and image->report R@1 / R@5 with chance k/n (CLIP towers only)

Both probe sets come from a world seed the encoder never saw (``probe_seed``), so nothing here is a training score.
"""
from __future__ import annotations

import torch

from rrg_lite.encoders.probe import (auc_by_size, bootstrap_macro_auc, fit_linear_probe, pixel_features,
                                     pooled_features, roc_auc)
from rrg_lite.encoders.teach import embed_images, embed_reports
from rrg_lite.train.contrastive import recall_at_k, retrieval_chance, similarity

SIZE_BINS = {"ct": (0, 30, 300, float("inf")), "xray": (0, 300, 1500, float("inf"))}


def evaluate_encoder(bundle, probe_train, probe_test, n_boot: int = 200, seed: int = 0, l2: float = 1e-2) -> dict:
    enc = bundle.encoder
    f_tr = pooled_features(enc, probe_train.images)
    f_te = pooled_features(enc, probe_test.images)
    y_tr, y_te = probe_train.labels, probe_test.labels
    probe = fit_linear_probe(f_tr, y_tr, l2=l2)
    scores = probe.scores(f_te)
    auc = roc_auc(scores, y_te)
    names = probe_test.label_names
    macro = bootstrap_macro_auc(scores, y_te, n_boot=n_boot, seed=seed)
    perm = torch.randperm(len(y_tr), generator=torch.Generator().manual_seed(seed))
    shuffled = bootstrap_macro_auc(fit_linear_probe(f_tr, y_tr[perm], l2=l2).scores(f_te), y_te, n_boot=n_boot,
                                   seed=seed)
    pixels = None
    if hasattr(enc, "standardize"):             # a world-trained SeeingEncoder: compare with its own pixels
        p_tr, p_te = pixel_features(enc, probe_train.images), pixel_features(enc, probe_test.images)
        pixels = bootstrap_macro_auc(fit_linear_probe(p_tr, y_tr, l2=1.0).scores(p_te), y_te, n_boot=n_boot, seed=seed)
    kind = "ct" if bundle.spec["modality"] == "ct" else "xray"
    by_size = auc_by_size(scores, y_te, probe_test.sizes, bins=SIZE_BINS[kind])
    out = {"auc": {n: float(a) for n, a in zip(names, auc.tolist())}, "macro_auc": macro, "shuffled": shuffled, "pixels": pixels,
           "by_size": [{**b, "per_label": {names[j]: a for j, a in b["per_label"].items()}} for b in by_size],
           "scores": scores, "probe": probe, "n_test": len(y_te), "prevalence": y_te.float().mean(0).tolist()}
    if bundle.heads is not None and bundle.heads.image_proj is not None:
        sim = similarity(embed_images(enc, bundle.heads, probe_test.images), embed_reports(bundle.heads, probe_test.reports))
        n = sim.shape[0]
        out["retrieval"] = {f"{d} R@{k}": recall_at_k(s, k) for d, s in (("image->report", sim), ("report->image", sim.T))
                            for k in (1, 5)}
        out["retrieval"].update({f"chance R@{k}": retrieval_chance(n, k) for k in (1, 5)})
    return out
