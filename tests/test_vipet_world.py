"""ViPET-VLM's world: the three overlapping z-regions, the PET/CT hard cases, the Vietnamese report, VQA per crop.

Slicing is checked by hand on toy volumes; the hard cases on a generated cohort (16 whole-body studies, seed 3).
"""
import hashlib
import unicodedata

import numpy as np
import pytest
from scipy import ndimage

from rrg_lite.data.petct import crop_regions, region_slices, scaled_overlap
from rrg_lite.prompting.parsing import CT_FORBIDDEN, PET_FORBIDDEN
from rrg_lite.world import petct_grammar as PG
from rrg_lite.world.config import WorldConfig
from rrg_lite.world.ct import generate_ct_cohort, generate_petct_cohort
from rrg_lite.world.findings import TWIN_KINDS
from rrg_lite.world.pet import BENIGN_SUV_CAP, HOT_SUV, MALIGNANT_SUV, PET_VOXEL_FACTOR, region_boundaries
from rrg_lite.world.petct import (PetCtConfig, crop_dialogue, lesion_facts, split_regions, vietnamese_parts,
                                  vietnamese_report)
from rrg_lite.world.phantom import LABEL
from rrg_lite.world.vocab import CT_RATE_LABELS
from rrg_lite.world.xray import generate_xray_cohort


@pytest.fixture(scope="module")
def cohort():
    return generate_petct_cohort(16, seed=3)


# ---- 1. three z-regions with overlap, by hand ---------------------------------------------------------------
def test_region_slices_by_hand():
    # depth 10, chest starts at slice 3, abdomen at 7. Overlap 2: one slice past each boundary for the upper
    # region, one before it for the lower: [0,4) [2,8) [6,10); slices 2,3 and 6,7 are in two crops.
    assert region_slices(10, (3, 7), 2) == {"head_neck": (0, 4), "chest": (2, 8), "abdomen_pelvis": (6, 10)}
    # overlap 3: ceil(3/2) = 2 past, floor(3/2) = 1 before: [0,5) [2,9) [6,10); shared 2,3,4 and 6,7,8
    assert region_slices(10, (3, 7), 3) == {"head_neck": (0, 5), "chest": (2, 9), "abdomen_pelvis": (6, 10)}
    # no overlap: a partition
    assert region_slices(10, (3, 7), 0) == {"head_neck": (0, 3), "chest": (3, 7), "abdomen_pelvis": (7, 10)}
    # a huge overlap is clipped to the volume
    assert region_slices(10, (3, 7), 20) == {"head_neck": (0, 10), "chest": (0, 10), "abdomen_pelvis": (0, 10)}


def test_scaled_overlap_by_hand():
    assert scaled_overlap(375) == 20                 # the paper's volume: its 20 slices
    assert scaled_overlap(36) == 2                   # 20 · 36 / 375 = 1.92 -> 2
    assert scaled_overlap(48) == 3                   # 2.56 -> 3
    assert scaled_overlap(10) == 1                   # 0.53 -> 1, never rounded away
    assert scaled_overlap(36, overlap=0) == 0
    with pytest.raises(ValueError, match="depth"):
        scaled_overlap(0)


@pytest.mark.parametrize("bounds", [(0, 5), (5, 3), (3, 10), (4, 4)])
def test_region_slices_rejects_bad_boundaries(bounds):
    with pytest.raises(ValueError, match="boundaries"):
        region_slices(10, bounds, 2)


def test_region_slices_rejects_negative_overlap():
    with pytest.raises(ValueError, match="overlap"):
        region_slices(10, (3, 7), -1)


def test_crop_regions_on_a_toy_volume():
    # every voxel of slice z holds z, so a crop's values are its slice indices
    vol = np.broadcast_to(np.arange(10, dtype=np.float32)[:, None, None], (10, 2, 2)).copy()
    mask = vol >= 5
    crops = crop_regions({"CT": vol, "PET": 2 * vol, "mask": mask}, (3, 7), overlap=2)
    assert crops["chest"]["CT"][:, 0, 0].tolist() == [2, 3, 4, 5, 6, 7]
    assert crops["chest"]["PET"][:, 0, 0].tolist() == [4, 6, 8, 10, 12, 14]
    assert crops["abdomen_pelvis"]["mask"].all() and crops["head_neck"]["CT"].shape == (4, 2, 2)
    # overlap=None scales the paper's 20 slices: 10 slices -> 1 (ceil(1/2)=1 past, 0 before)
    assert crop_regions({"CT": vol}, (3, 7))["chest"]["CT"][:, 0, 0].tolist() == [3, 4, 5, 6, 7]
    with pytest.raises(ValueError, match="z"):
        crop_regions({"CT": vol, "PET": vol[:9]}, (3, 7))
    with pytest.raises(ValueError, match="no volumes"):
        crop_regions({}, (3, 7))


def test_region_boundaries_from_the_anatomy():
    lab = np.zeros((10, 4, 4), np.uint8)
    lab[3:7, 1, 1] = LABEL["lung_right"]             # lung on slices 3..6: chest = [3, 7)
    lab[5, 2, 2] = LABEL["lung_left"]
    assert region_boundaries(lab) == (3, 7)
    with pytest.raises(ValueError, match="no lung"):
        region_boundaries(np.zeros((10, 4, 4), np.uint8))
    lab[0, 1, 1] = LABEL["lung_right"]               # lung in the first slice: nothing above the chest
    with pytest.raises(ValueError, match="whole-body"):
        region_boundaries(lab)


def test_split_regions_on_the_cohort(cohort):
    for st in cohort:
        crops = split_regions(st)
        assert [c.region for c in crops] == ["head_neck", "chest", "abdomen_pelvis"]
        d = st.ct.shape[0]
        o = scaled_overlap(d)
        assert crops[0].z0 == 0 and crops[-1].z1 == d
        for upper, lower in zip(crops, crops[1:]):
            assert upper.z1 - lower.z0 == o                       # neighbours share exactly the overlap
        parts = st.report.pet_ct_parts
        facts = lesion_facts(st)
        seen = []
        for c in crops:
            assert c.ct.shape == c.pet.shape == c.lesion_map.shape == (c.z1 - c.z0,) + st.ct.shape[1:]
            assert np.array_equal(c.ct, st.ct[c.z0:c.z1]) and np.array_equal(c.pet, st.pet[c.z0:c.z1])
            assert np.array_equal(c.masks["liver"], st.masks["liver"][c.z0:c.z1])
            assert (c.pet_text, c.ct_text) == (parts[c.region]["pet"], parts[c.region]["ct"])
            for f in c.findings:                                    # the crop shows what its halves describe
                assert c.finding_mask(f.id).any(), (st.study_id, c.region, f.kind)
            seen += [fa.finding_id for fa in c.facts]
        assert sorted(seen) == sorted(fa.finding_id for fa in facts)  # every lesion fact in exactly one crop


def test_overlap_knob(cohort):
    st = cohort[0]
    zero = split_regions(st, PetCtConfig(overlap=0))
    assert [c.z1 for c in zero[:2]] == [c.z0 for c in zero[1:]]     # a partition
    four = split_regions(st, PetCtConfig(overlap=4))
    assert four[0].z1 - four[1].z0 == 4 and four[1].z1 - four[2].z0 == 4
    with pytest.raises(ValueError, match="overlap"):
        PetCtConfig(overlap=-2)
    with pytest.raises(ValueError, match="language"):
        PetCtConfig(language="fr")


def test_split_regions_needs_pet():
    ct = generate_ct_cohort(1, seed=0)[0]
    with pytest.raises(ValueError, match="no PET"):
        split_regions(ct)
    with pytest.raises(ValueError, match="no PET"):
        lesion_facts(ct)


# ---- 2. the hard cases ----------------------------------------------------------------------------------------
def test_malignant_and_benign_suv_ranges(cohort):
    hot, cold = [], []
    for st in cohort:
        for f in st.findings:
            if f.present and f.hypermetabolic is not None:
                (hot if f.hypermetabolic else cold).append(f.suv_max)
    assert len(hot) >= 10 and len(cold) >= 10
    assert MALIGNANT_SUV[0] <= min(hot) and max(hot) <= MALIGNANT_SUV[1]
    assert max(cold) <= BENIGN_SUV_CAP[1] < HOT_SUV


def test_benign_twins_are_ct_identical(cohort):
    pairs = []
    for st in cohort:
        groups = {}
        for f in st.findings:
            if "twin_group" in f.params:
                groups.setdefault(f.params["twin_group"], []).append(f)
        for fs in groups.values():
            assert len(fs) == 2
            mal, ben = sorted(fs, key=lambda f: not f.hypermetabolic)
            assert mal.hypermetabolic and not ben.hypermetabolic and mal.kind in TWIN_KINDS
            assert (mal.kind, mal.size_mm, mal.subtype) == (ben.kind, ben.size_mm, ben.subtype)
            for lm, lb in zip(mal.params["layers"], ben.params["layers"]):
                assert lm["hu"] == lb["hu"] and [b["r"] for b in lm["blobs"]] == [b["r"] for b in lb["blobs"]]
            assert mal.suv_max >= MALIGNANT_SUV[0] and ben.suv_max < HOT_SUV
            ct_m, ct_b = (st.ct[st.finding_mask(f.id)].mean() for f in (mal, ben))
            pairs.append(ct_m > ct_b)
    # malignancy only in PET: the malignant twin is as often brighter on CT as not (9 pairs at seed 3: 4 brighter)
    assert len(pairs) >= 6 and 0.2 <= np.mean(pairs) <= 0.8


def test_normal_size_hot_nodes_are_only_in_pet(cohort):
    nodes = 0
    for st in cohort:
        for f in st.findings:
            if f.kind != "normal_size_node":
                continue
            nodes += 1
            assert f.size_mm < PG.SMALL_MM and f.label is None and f.suv_max >= MALIGNANT_SUV[0]
            said = [s for s in st.report.sentences if f.id in s.finding_ids and s.section == "findings"]
            assert said and all(s.part == "pet" for s in said)           # no CT sentence describes it
        # not enlarged, so it never sets CT-RATE's "Lymphadenopathy"
        lymph = bool(st.labels[CT_RATE_LABELS.index("Lymphadenopathy")])
        assert lymph == any(g.kind == "lymphadenopathy" for g in st.findings)
    assert nodes >= 2


def test_cold_cysts_are_only_in_ct(cohort):
    cysts = 0
    for st in cohort:
        for f in st.findings:
            if f.kind not in ("liver_cyst", "renal_cyst"):
                continue
            cysts += 1
            parts = {s.part for s in st.report.sentences if f.id in s.finding_ids and s.section == "findings"}
            assert parts == {"ct"} and f.suv_max < HOT_SUV
    assert cysts >= 3


def test_physiological_uptake_fills_the_threshold_mask(cohort):
    for st in cohort:
        hot = st.pet >= HOT_SUV                                        # the paper's "simple thresholding"
        assert (hot & st.masks["brain"]).any() and (hot & st.masks["bladder"]).any()
        # most of the mask is not a lesion: "hot" alone does not mean "lesion"
        assert (hot & (st.lesion_map == 0)).sum() > 0.5 * hot.sum()


def test_pet_is_coarser_and_blurrier_than_ct(cohort):
    k = PET_VOXEL_FACTOR
    for st in cohort:
        blocks = st.pet.reshape(st.pet.shape[0], st.pet.shape[1] // k, k, st.pet.shape[2] // k, k)
        assert np.ptp(blocks, axis=(2, 4)).max() == 0                 # one PET voxel = k×k CT voxels
        assert np.ptp(st.ct.reshape(blocks.shape), axis=(2, 4)).max() > 0
        for f in st.findings:
            if f.hypermetabolic:                                         # the uptake spills past the CT outline
                m = st.finding_mask(f.id)
                ring = ndimage.binary_dilation(m) & ~m
                assert (st.pet[ring] > 0.5 * f.suv_max).any(), (st.study_id, f.kind)


def test_impression_needs_both_halves(cohort):
    grades = set()
    for st in cohort:
        for fa in lesion_facts(st):
            grade = PG.suspicion_grade(st.findings[fa.finding_id].kind, fa.size_mm, fa.malignant)
            grades.add(grade)
            imp = [s for s in st.report.sentences if s.section == "impression" and fa.finding_id in s.finding_ids]
            assert len(imp) == 1
            words = PG.IMPRESSION["en"][grade].split(":")[-1].strip()
            assert imp[0].text.endswith(words), (imp[0].text, grade)
    assert {"high", "low", "cyst"} <= grades and grades & {"nodal", "moderate"}


def test_suspicion_grade_by_hand():
    assert PG.suspicion_grade("lung_nodule", 12.0, True) == "high"         # hot, ≥ 10 mm
    assert PG.suspicion_grade("lung_nodule", 8.0, True) == "moderate"      # same uptake, small: CT changes it
    assert PG.suspicion_grade("lung_nodule", 12.0, False) == "low"         # same size, cold: PET changes it
    assert PG.suspicion_grade("normal_size_node", 7.0, True) == "nodal"
    assert PG.suspicion_grade("lymphadenopathy", 14.0, True) == "high"
    assert PG.suspicion_grade("liver_cyst", 20.0, False) == "cyst"


def test_halves_keep_to_their_modality(cohort):
    for st in cohort:
        for region, part in st.report.pet_ct_parts.items():
            assert part["pet"], region                                 # every region has a PET sentence
            assert PET_FORBIDDEN.search(part["pet"]) is None, part["pet"]
            assert CT_FORBIDDEN.search(part["ct"]) is None, part["ct"]


def test_ct_and_xray_streams_are_untouched():
    """The hard constraint: PET-gated draws leave CT and X-ray byte-identical (hashes taken before the PET work)."""
    def h(*arrays):
        m = hashlib.sha256()
        for a in arrays:
            m.update(a.tobytes() if isinstance(a, np.ndarray) else str(a).encode())
        return m.hexdigest()[:16]
    ct = generate_ct_cohort(2, seed=0)
    xr = generate_xray_cohort(2, seed=0)
    assert not any(f.kind == "normal_size_node" or "twin_group" in f.params for s in ct for f in s.findings)
    assert [h(s.ct, s.labels, s.report.text()) for s in ct] == CT_HASHES
    assert [h(s.frontal, s.labels, s.report.text()) for s in xr] == XRAY_HASHES
    assert WorldConfig().pet is False


#: sha256[:16] of (volume/image, labels, report text) of the default world, seed 0, taken before any PET/CT change
CT_HASHES = ["6818b814854ace41", "a985b8a322561962"]
XRAY_HASHES = ["4c195c70cabdaf15", "4e9cf5b6a09a0e0b"]


# ---- 4. Vietnamese ---------------------------------------------------------------------------------------------
def test_vietnamese_report_keys_and_nfc(cohort):
    keys = ["Đầu - cổ", "Lồng ngực", "Ổ bụng - khung chậu", "Hệ cơ - xương", "Kết luận"]
    for st in cohort:
        rep = vietnamese_report(st)
        assert list(rep) == [unicodedata.normalize("NFC", k) for k in keys]
        for text in rep.values():
            assert text and unicodedata.normalize("NFC", text) == text
    # a decomposed spelling of a key compares equal after NFC
    assert unicodedata.normalize("NFC", unicodedata.normalize("NFD", "Ổ bụng - khung chậu")) in rep


def test_vietnamese_bone_lesions_go_to_musculoskeletal(cohort):
    for st in cohort:
        rep = vietnamese_report(st)
        bones = [fa for fa in lesion_facts(st) if fa.lesion_type == "bone_lesion"]
        if bones:
            assert "thân đốt sống ngực" in rep["Hệ cơ - xương"]
            assert all("đốt sống" not in rep[k] for k in ("Đầu - cổ", "Lồng ngực", "Ổ bụng - khung chậu"))
            return
    pytest.skip("no bone lesion in the cohort")


def test_vietnamese_crops(cohort):
    st = cohort[1]
    vi = split_regions(st, PetCtConfig(language="vi"))
    parts = vietnamese_parts(st)
    for c in vi:
        assert c.language == "vi" and (c.pet_text, c.ct_text) == (parts[c.region]["pet"], parts[c.region]["ct"])
        assert "FDG" in c.pet_text and "SUVmax" not in c.ct_text
        # the dialogue stays English; its impression turn carries the crop's facts
        from rrg_lite.metrics.petct_facts import parse_facts
        said = parse_facts(c.dialogue[-1]["content"])
        assert sorted((f.lesion_type, f.position, f.malignant) for f in said) == \
            sorted((f.lesion_type, f.position, f.malignant) for f in c.facts)
    with pytest.raises(ValueError, match="language"):
        PG.lesion_noun("lung_nodule", "right upper lobe", "fr")
    with pytest.raises(ValueError, match="lesion kind"):
        PG.lesion_noun("emphysema", "both lungs")


# ---- 5. VQA per crop -------------------------------------------------------------------------------------------
def test_crop_qa_from_the_facts(cohort):
    from rrg_lite.mllm.text import IMAGE_TOKEN
    n_qa = []
    for st in cohort:
        for c in split_regions(st):
            n_qa.append(len(c.qa))
            by_id = {fa.finding_id: fa for fa in c.facts}
            for q in c.qa:
                assert set(q) == {"question", "answer", "type", "category", "finding_id"}
                fa = by_id.get(q["finding_id"])
                if q["category"] == "metabolism":
                    assert q["answer"] == ("Yes" if any(f.malignant for f in c.facts) else "No")
                elif q["category"] == "size":
                    assert q["answer"] == f"{int(round(fa.size_mm))} mm"
                elif q["category"] == "suv":
                    assert fa.malignant and q["answer"] == f"{fa.suv_max:.1f}"
                elif q["category"] == "malignancy":
                    assert q["answer"] == ("Yes" if fa.malignant else "No")
                elif q["category"] == "count":
                    assert q["answer"] == str(len(c.facts))
                elif q["category"] == "location":
                    assert q["answer"] == fa.position
            d = c.dialogue
            assert [m["role"] for m in d] == ["user", "assistant"] * 3
            assert d[0]["content"].startswith(IMAGE_TOKEN) and all(m["content"] for m in d)
            assert ("Yes" in d[1]["content"]) == any(f.malignant for f in c.facts)
    assert set(n_qa) == {3}                                             # ViMed-PET: ~3.4 per pair


def test_crop_qa_is_deterministic(cohort):
    a, b = split_regions(cohort[2]), split_regions(cohort[2])
    assert [c.qa for c in a] == [c.qa for c in b]
    other = split_regions(cohort[2], PetCtConfig(seed=1))
    assert [c.dialogue for c in other] == [crop_dialogue(c, cohort[2].physiological) for c in a]


def test_read_petct_understands_vimed_vietnamese_keys(tmp_path, cohort):
    import json

    from rrg_lite.data.formats.petct import read_petct
    from rrg_lite.data.manifest import DataFormatError
    from rrg_lite.world.writers import write_petct

    st = cohort[0]
    write_petct([st], tmp_path)
    rep = vietnamese_report(st)
    # a decomposed (NFD) key, as some editors save it, must be read as the same section
    on_disk = {unicodedata.normalize("NFD", k) if k == "Lồng ngực" else k: v for k, v in rep.items()}
    path = tmp_path / st.study_id / "report.json"
    path.write_text(json.dumps(on_disk, ensure_ascii=False), encoding="utf-8")
    (rec,) = read_petct(tmp_path)
    assert rec.region_reports["chest"] == rep["Lồng ngực"] and rec.region_reports["musculoskeletal"]
    assert rec.report["impression"] == rep["Kết luận"]
    assert rec.report["findings"].startswith(rep["Đầu - cổ"])
    assert all(p == {"pet": "", "ct": ""} for p in rec.pet_ct_parts.values())      # not split yet
    path.write_text(json.dumps({"Lồng ngực": 5}), encoding="utf-8")
    with pytest.raises(DataFormatError, match="must be text"):
        read_petct(tmp_path)
