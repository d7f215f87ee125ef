"""Reg2RG's region prompt, region–report alignment targets, parsing them back, and region recognition (Table III)."""
import itertools
import random

import numpy as np
import pytest
import torch

from rrg_lite.mllm.text import IMAGE_TOKEN, REGION_TOKEN
from rrg_lite.systems.reg2rg.alignment import (
    UNASSIGNED,
    normalise_area,
    parse_regions,
    parse_slots,
    prefix,
    region_prompt,
    region_recognition,
    region_target,
    rra_example,
    shuffle_regions,
    split_prefixed,
    strip_prefixes,
)
from rrg_lite.systems.reg2rg.features import RegionTokens

REPORTS = {
    "lung": "A 11 mm nodule is seen in the right upper lobe. No effusion.",
    "heart": "Heart size is normal: no pericardial effusion.",        # a colon inside a report is not a prefix
    "trachea and bronchie": "No peribronchial thickening is seen.",
}


# ---- prompt and target ---------------------------------------------------------------------------------------
def test_prefix_and_target_by_hand():
    assert prefix(0, "abdomen") == "The region 0 is abdomen:"             # the paper's Fig. 5 numbering
    t = region_target(["lung", "heart"], {"lung": "Clear.", "heart": "  Enlarged\n heart. "})
    assert t == "The region 0 is lung: Clear. The region 1 is heart: Enlarged heart."
    assert region_target(["lung", "heart"], {"lung": "Clear.", "heart": "Big."}, prefixes=False) == "Clear. Big."
    assert region_target(["lung", "thyroid"], {"lung": "Clear."}, missing="Normal.") == \
        "The region 0 is lung: Clear. The region 1 is thyroid: Normal."


def test_prompt_has_one_slot_per_region_and_no_names():
    regions = list(REPORTS)
    p = region_prompt(regions, ["heart", "trachea and bronchie", "lung"])
    assert p == (f"Global view: {IMAGE_TOKEN} Region 0: {REGION_TOKEN} Region 1: {REGION_TOKEN} "
                 f"Region 2: {REGION_TOKEN} Write the report of every region, naming the area of each region first.")
    assert p.count(REGION_TOKEN) == 3 and p.count(IMAGE_TOKEN) == 1
    assert not any(name in p.lower() for name in ("lung", "heart", "trachea"))   # no name bias
    local_only = region_prompt(regions, with_image=False, instruction="Report.")
    assert IMAGE_TOKEN not in local_only and local_only.count(REGION_TOKEN) == 3 and local_only.endswith("Report.")


def test_shuffle_is_seeded_and_a_permutation():
    regions = ["abdomen", "bone", "heart", "lung", "pleura"]
    a, b = shuffle_regions(regions, 3), shuffle_regions(regions, np.random.default_rng(3))
    assert a == b and sorted(a) == sorted(regions)
    assert regions == ["abdomen", "bone", "heart", "lung", "pleura"]          # the input is not changed
    rng = np.random.default_rng(0)
    orders = {tuple(shuffle_regions(regions, rng)) for _ in range(30)}      # a fresh order every step
    assert len(orders) > 10
    assert sorted(shuffle_regions(regions, random.Random(0))) == sorted(regions)


def test_rra_example_rows_put_the_right_tokens_in_each_slot():
    regions = list(REPORTS)
    ex = rra_example(regions, REPORTS, rng=1)
    assert [regions[r] for r in ex.rows] == ex.order
    assert ex.target == region_target(ex.order, REPORTS)
    tokens = RegionTokens(regions=torch.arange(3.0)[:, None, None].expand(3, 2, 4), image=torch.zeros(5, 4))
    emb = tokens.visual_embeds(order=ex.rows)["region"]
    assert [int(emb[k, 0, 0]) for k in range(3)] == ex.rows                  # slot k holds region ex.order[k]
    plain = rra_example(regions, REPORTS, rra=False)                         # Table VII "without RRA"
    assert plain.order == regions and "The region" not in plain.target
    assert plain.target == " ".join(" ".join(REPORTS[r].split()) for r in regions)
    test_time = rra_example(regions, REPORTS, rng=0, rra=False, shuffle=True)
    assert sorted(test_time.order) == sorted(regions) and "The region" not in test_time.target


# ---- reading it back -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", list(itertools.permutations(REPORTS)))
def test_round_trip_for_every_shuffle_of_three_regions(order):
    target = region_target(order, REPORTS)
    assert parse_regions(target) == REPORTS
    assert parse_slots(target) == dict(enumerate(order))
    assert strip_prefixes(target) == " ".join(REPORTS[a] for a in order)
    assert "The region" not in strip_prefixes(target)


def test_parsing_is_robust_to_missing_and_duplicate_prefixes():
    text = ("Comparison: none. The region 0 is lung: Nodule. "       # text before any prefix
            "Effusion is absent. "                                  # (part of region 0's text)
            "the Region 2  IS  Trachea and Bronchi : Patent. "      # case, spacing, the paper's spelling
            "The region 3 is lung: Emphysema. "                     # lung named twice
            "The region 2 is heart: Normal.")                       # slot 2 named twice: the first one counts
    assert parse_slots(text) == {0: "lung", 2: "trachea and bronchie", 3: "lung"}
    assert parse_regions(text) == {UNASSIGNED: "Comparison: none.", "lung": "Nodule. Effusion is absent. Emphysema.",
                                   "trachea and bronchie": "Patent.", "heart": "Normal."}
    assert strip_prefixes(text) == "Comparison: none. Nodule. Effusion is absent. Patent. Emphysema. Normal."
    # no prefix at all: everything is unassigned and strip leaves the text as it is
    assert parse_regions("Lungs: clear.  Heart normal.") == {UNASSIGNED: "Lungs: clear. Heart normal."}
    assert strip_prefixes("Lungs: clear.") == "Lungs: clear." and parse_slots("Lungs: clear.") == {}
    # an empty region report keeps its area (recognition still sees it)
    assert parse_regions("The region 0 is bone: The region 1 is lung: Clear.") == {"bone": "", "lung": "Clear."}
    # a full stop ends a would-be area: a sentence is never taken for an area name
    assert parse_slots("The region 4 is unremarkable. Heart: normal.") == {}
    assert [p.slot for p in split_prefixed(text)] == [None, 0, 2, 3, 2]
    assert parse_regions("") == {} and strip_prefixes("") == ""
    with pytest.raises(TypeError, match="must be a str"):
        parse_regions(None)


def test_normalise_area():
    assert normalise_area("  Trachea and   Bronchi") == "trachea and bronchie"
    assert normalise_area("Lungs") == "lung" and normalise_area("liver") == "liver"


# ---- region recognition (Table III) --------------------------------------------------------------------------------
def test_region_recognition_by_hand():
    orders = [["lung", "pleura", "heart"], ["lung", "pleura"], ["heart"], ["bone"]]
    preds = [
        "The region 0 is pleura: a. The region 1 is lung: b. The region 2 is heart: c.",   # lung/pleura swapped
        "The region 0 is lung: a. The region 1 is pleura: b. The region 2 is thyroid: c.",  # right + a slot never fed
        "Heart size is normal.",                                                           # no prefix
        {0: "liver"},                                                                      # a name outside the areas
    ]
    res = region_recognition(orders, preds)
    # lung: true at s1/0, s2/0; named lung at s1/1 (FP) and s2/0 (TP) -> TP 1, FP 1, FN 1: P = R = F1 = 1/2
    assert (res.precision["lung"], res.recall["lung"], res.f1["lung"], res.support["lung"]) == (0.5, 0.5, 0.5, 2)
    assert (res.precision["pleura"], res.recall["pleura"]) == (0.5, 0.5)                  # the mirror image
    # heart: s1/2 named right (TP), s3/0 has no prefix (FN) -> P = 1, R = 1/2, F1 = 2/3
    assert (res.precision["heart"], res.recall["heart"]) == (1.0, 0.5)
    assert res.f1["heart"] == pytest.approx(2 / 3)
    # thyroid: never fed, named once at a slot that does not exist -> FP 1: P = 0, R = 0/0 -> 0, support 0
    assert (res.precision["thyroid"], res.recall["thyroid"], res.support["thyroid"]) == (0.0, 0.0, 0)
    # bone: named "liver" -> FN: R = 0
    assert res.recall["bone"] == 0.0 and res.support["bone"] == 1
    assert (res.n_slots, res.missing, res.unknown, res.extra) == (7, 1, 1, 1)
    assert res.accuracy == pytest.approx(3 / 7)                     # s1/2, s2/0, s2/1
    rows = res.table()
    assert [r["region"] for r in rows][:3] == ["abdomen", "bone", "breast"] and len(rows) == 10


def test_recognition_of_perfect_parses_is_one():
    rng = np.random.default_rng(0)
    orders = [shuffle_regions(list(REPORTS), rng) for _ in range(6)]
    res = region_recognition(orders, [region_target(o, REPORTS) for o in orders])
    assert res.accuracy == 1.0 and all(res.f1[a] == 1.0 for a in REPORTS)
    assert res.missing == res.unknown == res.extra == 0


def test_clear_errors():
    with pytest.raises(ValueError, match="no report for region 'thyroid'"):
        region_target(["lung", "thyroid"], {"lung": "Clear."})
    with pytest.raises(ValueError, match="more than once"):
        region_target(["lung", "lung"], {"lung": "Clear."})
    with pytest.raises(ValueError, match="not a permutation"):
        region_prompt(["lung", "heart"], ["lung", "bone"])
    with pytest.raises(ValueError, match="no regions"):
        shuffle_regions([], 0)
    with pytest.raises(TypeError, match="rng must be"):
        shuffle_regions(["lung"], "seed")
    with pytest.raises(ValueError, match="needs an rng"):
        rra_example(["lung"], {"lung": "Clear."})
    with pytest.raises(ValueError, match="2 studies' orders but 1 predictions"):
        region_recognition([["lung"], ["heart"]], ["x"])
    with pytest.raises(ValueError, match=r"feeds areas \['liver'\]"):
        region_recognition([["liver"]], ["The region 0 is liver: x"])
