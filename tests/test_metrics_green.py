"""GREEN: the formula, parsing judge output (malformed included), the offline judge."""
import numpy as np
import pytest

from rrg_lite.metrics.green import (StructFinding, compare_findings, findings_from_records, green_from_counts,
                                    green_from_outputs, green_offline, green_official, parse_green_output)

GOOD = """[Explanation]:
The candidate misses the effusion and places the nodule on the wrong side.

[Clinically Significant Errors]:
(a) False report of a finding in the candidate: 0.
(b) Missing a finding present in the reference: 1. Left pleural effusion
(c) Misidentification of a finding's anatomic location/position: 1. Nodule side
(d) Misassessment of the severity of a finding: 0.
(e) Mentioning a comparison that isn't in the reference: 0.
(f) Omitting a comparison detailing a change from a prior study: 0.

[Clinically Insignificant Errors]:
(a) False report of a finding in the candidate: 2.

[Matched Findings]:
2. Nodule; Cardiomegaly
"""


def test_formula_by_hand():
    assert green_from_counts(2, (0, 1, 1, 0, 0, 0)) == 0.5
    assert green_from_counts(0, (0,) * 6) == 0.0
    assert green_from_counts(3, (0,) * 6) == 1.0
    with pytest.raises(ValueError):
        green_from_counts(1, (0, 0))


def test_parse_good_and_gpt4_numbering():
    c = parse_green_output(GOOD)
    assert c.ok and c.matched == 2 and c.errors == (0, 1, 1, 0, 0, 0) and c.score == 0.5
    gpt = GOOD.replace("(a)", "(1)").replace("(b)", "(2)").replace("(c)", "(3)")
    assert parse_green_output(gpt).errors == (0, 1, 1, 0, 0, 0)
    none = "[Clinically Significant Errors]:\nNo clinically significant errors.\n\n[Matched Findings]:\n4. a; b; c; d"
    assert parse_green_output(none).score == 1.0


@pytest.mark.parametrize("bad", [None, "", "garbage", "[Matched Findings]:\n3.", 42])
def test_malformed_is_counted_not_raised(bad):
    c = parse_green_output(bad)
    assert not c.ok and c.score is None
    res = green_from_outputs([GOOD, bad])
    assert res.value == 0.5 and res.n == 2 and "malformed" in res.notes[0]
    assert np.isnan(res.per_example[1])


def test_missing_matched_section_scores_zero():
    c = parse_green_output(GOOD.split("[Matched Findings]")[0])
    assert c.ok and c.score == 0.0 and "Matched" in c.problem


def test_compare_findings_categories():
    ref = [StructFinding("Pleural Effusion", 1, "left", 2, change="worse"), StructFinding("Cardiomegaly", 1),
           StructFinding("Lung Lesion", 1, "right"), StructFinding("Pneumothorax", 0)]
    cand = [StructFinding("Pleural Effusion", 1, "left", 3), StructFinding("Lung Lesion", 1, "left"),
            StructFinding("Edema", 1, change="new"), StructFinding("Pneumothorax", 0)]
    c = compare_findings(ref, cand)
    # matched: effusion, lesion, pneumothorax (negative on both); (a) edema; (b) cardiomegaly;
    # (c) lesion side; (d) effusion severity; (f) effusion change omitted
    assert c.matched == 3
    assert c.errors == (1, 1, 1, 1, 0, 1)
    assert c.score == 3 / (3 + 5)


def test_offline_free_text_and_records():
    ref = "Large left pleural effusion. Mild cardiomegaly. No pneumothorax."
    same = green_offline([ref], [ref])
    assert same.value == 1.0
    worse = green_offline(["Small right pleural effusion. No cardiomegaly. No pneumothorax."], [ref])
    c = worse.extra["counts"][0]
    assert c.errors[1] == 1 and c.errors[2] == 1 and c.errors[3] == 1  # missed cardiomegaly, side, severity
    recs = [{"kind": "pleural_effusion", "label": "Pleural effusion", "side": "left", "severity": "severe",
             "location": "left pleural space", "change": None}]
    f = findings_from_records(recs)
    assert f[0].key == "Pleural effusion" and f[0].severity == 3 and f[0].side == "left"


def test_offline_is_fast_and_ranks():
    refs = ["There is a moderate right pleural effusion. Heart size is normal. No pneumothorax."] * 50
    good = ["Moderate right pleural effusion. Normal heart size. No pneumothorax."] * 50
    bad = ["No pleural effusion. The heart is enlarged. Large left pneumothorax."] * 50
    assert green_offline(good, refs).value > green_offline(bad, refs).value


def test_official_needs_local_weights():
    with pytest.raises(FileNotFoundError, match="not a local directory"):
        green_official(["a"], ["b"], model_path="StanfordAIMI/GREEN-RadLlama2-7b")
