"""The synthetic world: determinism, consistency of record/image/report/labels, and the mechanisms it exists for."""
import hashlib

import numpy as np
import pytest

from rrg_lite.world.checks import ct_problems, xray_problems
from rrg_lite.world.config import WorldConfig
from rrg_lite.world.ct import generate_ct_cohort, make_ct_study
from rrg_lite.world.findings import CT_KINDS
from rrg_lite.world.vocab import CHEXPERT_LABELS, CT_RATE_LABELS, REGIONS
from rrg_lite.world.xray import CXR_KINDS, make_xray_study


def _digest(study) -> str:
    h = hashlib.sha256()
    for arr in (study.ct, study.labelmap, study.lesion_map) if hasattr(study, "ct") else \
            (study.frontal, study.lateral if study.lateral is not None else np.zeros(1)):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(study.report.text().encode())
    h.update(repr(study.qa).encode())
    return h.hexdigest()


def test_same_seed_same_study_different_seed_different():
    assert _digest(make_ct_study(7)) == _digest(make_ct_study(7))
    assert _digest(make_ct_study(7)) != _digest(make_ct_study(8))
    assert _digest(make_xray_study(7)) == _digest(make_xray_study(7))
    assert _digest(make_xray_study(7)) != _digest(make_xray_study(8))


def test_cohort_study_depends_only_on_seed_and_index():
    a = generate_ct_cohort(3, seed=5)
    b = generate_ct_cohort(5, seed=5)
    assert [_digest(s) for s in a] == [_digest(s) for s in b[:3]]


def test_ct_study_fields_shapes_and_variable_depth():
    cfg = WorldConfig()
    studies = [make_ct_study(i, cfg) for i in range(6)]
    depths = {s.ct.shape[0] for s in studies}
    assert len(depths) > 1, "slice count should vary"
    for s in studies:
        d, h, w = s.ct.shape
        assert (h, w) == (cfg.ct_size, cfg.ct_size) and cfg.ct_depth[0] <= d <= cfg.ct_depth[1]
        assert s.ct.dtype == np.float32 and len(s.spacing) == 3
        assert s.labels.shape == (18,) and set(np.unique(s.labels)) <= {0, 1}
        assert set(REGIONS) <= set(s.masks) and {"liver", "spleen", "kidney_left"} <= set(s.masks)
        assert s.report.findings and s.report.impression
        assert all({"question", "answer", "type", "category"} <= set(q) for q in s.qa)


@pytest.mark.parametrize("scan_range", ["chest", "cap"])
def test_ct_records_reports_images_and_labels_agree(scan_range):
    cfg = WorldConfig(scan_range=scan_range, p_prior_ct=0.5)
    for i in range(25):
        s = make_ct_study(i, cfg)
        assert ct_problems(s) == [], (i, ct_problems(s))


def test_petct_is_consistent_and_hot_is_not_lesion():
    cfg = WorldConfig(pet=True, scan_range="whole_body")
    hot_lesion, cold_lesion, brain, bladder = [], [], [], []
    for i in range(8):
        s = make_ct_study(i, cfg)
        assert ct_problems(s) == []
        for f in s.findings:
            if f.hypermetabolic is not None and f.present:
                (hot_lesion if f.hypermetabolic else cold_lesion).append(f.suv_max)
        brain.append(s.pet[s.masks["brain"]].mean())
        bladder.append(s.pet[s.masks["bladder"]].mean())
        parts = s.report.pet_ct_parts
        assert set(parts) == {"head_neck", "chest", "abdomen_pelvis"}
        assert all(p["pet"] for p in parts.values())
    assert hot_lesion and cold_lesion
    assert min(hot_lesion) > max(cold_lesion), "hypermetabolic lesions read hotter than the others"
    # physiological uptake is as hot as lesions: "hot" alone does not mean "lesion"
    assert np.mean(brain) > 4 and np.mean(bladder) > 4


def test_ct_labels_cover_all_18_and_abdominal_findings_exist():
    seen, kinds = set(), set()
    for s in generate_ct_cohort(60, seed=1, cfg=WorldConfig(label_balance=0.5)):
        seen |= {CT_RATE_LABELS[i] for i in np.nonzero(s.labels)[0]}
        kinds |= {f.kind for f in s.findings}
    assert seen == set(CT_RATE_LABELS)
    assert {"liver_cyst", "renal_cyst", "hepatic_steatosis"} <= kinds


def test_xray_consistency_views_priors_and_labels():
    kinds, one_view, lateral_only, changes = set(), 0, 0, set()
    for i in range(60):
        s = make_xray_study(i)
        assert xray_problems(s) == [], (i, xray_problems(s))
        assert s.labels.shape == (14,)
        vals = set(np.unique(s.labels[~np.isnan(s.labels)]))
        assert vals <= {-1.0, 0.0, 1.0}
        kinds |= {f.kind for f in s.findings}
        one_view += sum(len(f.views) == 1 for f in s.findings)
        lateral_only += sum(f.views == ("lateral",) for f in s.findings)
        changes |= {f.change for f in s.findings if f.change}
        # "No Finding" is 1 exactly when no pathology is positive or uncertain
        patho = [CHEXPERT_LABELS.index(l) for l in CHEXPERT_LABELS if l not in ("Support Devices", "No Finding")]
        has_patho = np.isin(s.labels[patho], (1.0, -1.0)).any()
        assert (s.labels[-1] == 1.0) == (not has_patho)
    assert kinds == set(CXR_KINDS)
    assert one_view > 0 and lateral_only > 0
    assert {"new", "unchanged", "resolved"} <= changes


def test_lateral_only_finding_is_absent_from_the_frontal_image():
    cfg = WorldConfig(p_one_view_only=1.0, p_lateral=1.0, p_prior_xray=0.0)
    for i in range(40):
        s = make_xray_study(i, cfg)
        lat = [f for f in s.findings if f.views == ("lateral",)]
        if lat:
            f = lat[0]
            assert any(b["finding_id"] == f.id and b["view"] == "lateral" for b in s.boxes)
            assert not any(b["finding_id"] == f.id and b["view"] == "frontal" for b in s.boxes)
            return
    pytest.fail("no lateral-only finding in 40 studies")


def test_prior_sizes_follow_the_change():
    for i in range(40):
        s = make_xray_study(i, WorldConfig(p_prior_xray=1.0))
        assert s.prior is not None and s.prior.prior is None
        for f in s.findings:
            if f.change == "increased":
                assert f.prior_size_mm < f.size_mm
            if f.change == "decreased":
                assert f.prior_size_mm > f.size_mm
            if f.change == "resolved":
                assert not f.present and f.label not in [CHEXPERT_LABELS[k] for k in np.nonzero(s.labels == 1)[0]] \
                    or any(g.present and g.label == f.label for g in s.findings)


def test_input_agnostic_sentences_are_tagged_and_removable():
    found = False
    for i in range(30):
        s = make_xray_study(i, WorldConfig(p_input_agnostic_xray=1.0))
        tags = [x.tag for x in s.report.sentences if x.agnostic]
        assert tags
        clean = s.report.text(include_agnostic=False)
        for x in s.report.sentences:
            if x.agnostic:
                found = True
                assert x.text not in clean
    assert found


def test_small_lesions_fade_with_crude_downsampling():
    """Pooled 4× in-plane (64² → 16²), nodules ≤ 10 mm drop to the level of noise and vessels; ≥ 20 mm ones stay."""
    import torch

    small, large = [], []
    cfg = WorldConfig(scan_range="chest", noise_hu=0.0)
    for i in range(90):
        s = make_ct_study(i, cfg)
        for f in s.findings:
            if f.kind != "lung_nodule" or 10 < f.size_mm < 20:
                continue
            m = s.finding_mask(f.id)
            pooled = torch.nn.functional.avg_pool3d(torch.from_numpy(s.ct)[None, None], (1, 4, 4))[0, 0].numpy()
            d, h, w = pooled.shape
            mp = m[:, : h * 4, : w * 4].reshape(d, h, 4, w, 4).any(axis=(2, 4))
            (small if f.size_mm <= 10 else large).append(pooled[mp].max() + 850)
    assert len(small) >= 3 and len(large) >= 3
    assert np.median(small) < 100 < 150 < np.median(large), (np.median(small), np.median(large))


def test_reports_are_moderate_in_length_and_varied():
    lengths, first = [], set()
    for i in range(40):
        s = make_ct_study(i)
        lengths.append(s.report.word_count())
        first.add(s.report.sentences[0].text)
    assert 25 <= np.median(lengths) <= 130, np.median(lengths)
    assert len(first) > 5  # varied phrasing/order


def test_catalog_labels_are_the_real_names():
    assert {k.label for k in CT_KINDS.values() if k.label} == set(CT_RATE_LABELS)
    assert {k.label for k in CXR_KINDS.values()} | {"No Finding"} == set(CHEXPERT_LABELS)
