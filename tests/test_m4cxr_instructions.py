"""M4CXR's instruction builder: Table IX templates, CoT dialogue and its parser, world facts -> conversations."""
import numpy as np
import pytest

from rrg_lite.data.boxes import parse_box, parse_labeled_boxes
from rrg_lite.systems.m4cxr.instructions import (CXR_CONDITIONS, NOT_FOUND, NOT_PRESENT, SYSTEM_PROMPT, TASK_TYPES,
                                                 TASKS, TEMPLATES, StudyFacts, available_tasks, build_instruction,
                                                 cot_dialogue, cot_followup, facts_from_xray_study, findings_answer,
                                                 parse_findings_list)


def _facts(**kw):
    prior = StudyFacts(study_id="s0", views=("frontal",), findings="Small left effusion.",
                       labels={"pleural effusion": 1})
    base = dict(study_id="s1", views=("frontal", "lateral"), findings="Heart is enlarged. Small left effusion.",
                labels={"Cardiomegaly": 1, "Pleural Effusion": 1, "Edema": 0, "Atelectasis": -1},
                finding_boxes=[("pleural effusion", [60, 70, 90, 95]), ("pleural effusion", [5, 70, 20, 90]),
                               ("cardiomegaly", [30, 40, 75, 80])],
                organ_boxes=[("heart", [30, 40, 75, 80])], region_boxes=[("left lower zone", [55, 60, 95, 95])],
                phrases=[("Small left effusion.", [60, 70, 90, 95])], qa=[("Is there edema?", "No")],
                diff_qa=[("What has changed?", "effusion increased")],
                instructions=[("Summarise the report.", "Cardiomegaly and effusion.")], prior=prior, source="toy")
    base.update(kw)
    return StudyFacts(**base)


def test_task_list_matches_table_i_and_x():
    assert len(TASKS) == 17
    types = list(TASK_TYPES.values())
    assert types.count("mrg") == 3 and types.count("image_understanding") == 11 and types.count("vqa") == 3
    assert len(CXR_CONDITIONS) == 13 and "no finding" not in CXR_CONDITIONS and CXR_CONDITIONS[0] == \
        "enlarged cardiomediastinum"
    # template 0 is Table IX's wording
    assert TEMPLATES["grounded_finding"][0] == ("radiology image: {images} Provide a finding name for this region. "
                                                "{bbox}")
    assert TEMPLATES["vqa"][0] == "radiology image: {images} Answer the question. {question}"


def test_findings_answer_and_parser_round_trip():
    cands = list(CXR_CONDITIONS)
    for positives in ([], ["atelectasis"], ["cardiomegaly", "pleural effusion", "support devices"], cands):
        text = findings_answer(positives)
        assert parse_findings_list(text, cands) == positives
    assert findings_answer([]) == NOT_FOUND == "Not found."
    assert findings_answer(["Edema", "Atelectasis"]) == "edema, atelectasis."


def test_parser_reads_model_style_answers():
    cands = list(CXR_CONDITIONS)
    # candidate order, not answer order; case, spaces, "and", semicolons and a final period tolerated
    assert parse_findings_list("Pleural Effusion,  EDEMA and atelectasis.", cands) == ["edema", "atelectasis",
                                                                                         "pleural effusion"]
    assert parse_findings_list("edema; edema.", cands) == ["edema"]
    assert parse_findings_list("not found", cands) == [] and parse_findings_list("", cands) == []
    assert parse_findings_list("edema, nodule", cands) == ["edema"]          # unknown items ignored ...
    with pytest.raises(ValueError, match=r"\['nodule'\] are not candidate"):
        parse_findings_list("edema, nodule", cands, strict=True)              # ... or reported
    with pytest.raises(ValueError, match="string"):
        parse_findings_list(None, cands)


def test_cot_dialogue_two_turns():
    msgs = cot_dialogue(["edema", "atelectasis", "pleural effusion"], ["pleural effusion", "edema"], "Edema. Effusion.")
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert msgs[0]["content"] == ("radiology image: <image> Which of the following findings are present in the "
                                  "radiology image? Findings: edema, atelectasis, pleural effusion")
    assert msgs[1]["content"] == "edema, pleural effusion."                   # candidate order
    assert msgs[2]["content"] == ("Based on the previous conversation, provide a description of the findings in "
                                  "the radiology image.")
    assert msgs[3]["content"] == "Edema. Effusion."
    with pytest.raises(ValueError, match=r"\['nodule'\] are not among the candidates"):
        cot_dialogue(["edema"], ["nodule"], "x")
    with pytest.raises(ValueError, match="report"):
        cot_dialogue(["edema"], [], "  ")
    with pytest.raises(ValueError, match="scope"):
        cot_dialogue(["edema"], [], "x", scope="video")


def test_cot_followup_feeds_back_the_models_own_turn_1():
    ex = build_instruction("single_image_mrg", _facts(), 0)
    gen = cot_followup(ex["messages"], "edema.")
    assert [m["role"] for m in gen] == ["system", "user", "assistant", "user"]
    assert gen[2]["content"] == "edema." and gen[3] == ex["messages"][3]
    with pytest.raises(ValueError, match="two-turn"):
        cot_followup(build_instruction("vqa", _facts(), 0)["messages"], "x")


def test_mrg_scenarios():
    f = _facts()
    single = build_instruction("single_image_mrg", f, np.random.default_rng(0))
    assert single["images"][0] in ("frontal", "lateral") and len(single["images"]) == 1
    assert single["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert single["messages"][2]["content"] == "cardiomegaly, pleural effusion."   # uncertain atelectasis = negative
    assert single["task_type"] == "mrg" and single["source"] == "toy" and single["study_id"] == "s1"
    multi = build_instruction("multi_image_mrg", f, 0)
    assert multi["images"] == ["frontal", "lateral"]
    assert multi["messages"][1]["content"].startswith("radiology images: <image> <image> Which of the following")
    study = build_instruction("multi_study_mrg", f, 0)
    assert study["images"] == ["prior/frontal", "frontal", "lateral"]
    q = study["messages"][1]["content"]
    assert q.startswith("prior radiology images: <image>, prior radiology report: Small left effusion. follow-up "
                        "images: <image> <image>, The radiology studies are given in chronological order. Which of")
    assert study["messages"][4]["content"] == "Heart is enlarged. Small left effusion."
    no_cot = build_instruction("single_image_mrg", f, 0, cot=False)
    assert [m["role"] for m in no_cot["messages"]] == ["system", "user", "assistant"]
    assert no_cot["messages"][1]["content"].endswith("Provide a description of the findings in the radiology image.")


def test_image_understanding_answers():
    f = _facts()
    ex = build_instruction("multi_finding_grounding", f, 0)
    assert ex["messages"][2]["content"] == ("cardiomegaly [30,40,75,80], pleural effusion [60,70,90,95], "
                                            "[5,70,20,90].")
    assert parse_labeled_boxes(ex["messages"][2]["content"])[2] == ("pleural effusion", [5, 70, 20, 90])
    assert build_instruction("abnormality_detection", f, 0)["messages"][2]["content"] == \
        "[60,70,90,95], [5,70,20,90], [30,40,75,80]."
    dc = build_instruction("disease_classification", f, 0)
    assert dc["messages"][2]["content"] == "cardiomegaly, pleural effusion."
    organ = build_instruction("organ_grounding", f, 0)["messages"]
    assert organ[1]["content"].endswith("Provide the bounding box coordinates of heart in the radiology image.")
    assert parse_box(organ[2]["content"]) == [30, 40, 75, 80]
    assert build_instruction("grounded_organ", f, 0)["messages"][2]["content"] == "heart"
    assert build_instruction("grounded_phrase", f, 0)["messages"][2]["content"] == "Small left effusion."
    assert build_instruction("phrase_grounding", f, 0)["messages"][1]["content"].endswith(
        "describes: Small left effusion.")
    assert build_instruction("grounded_anatomical_region", f, 0)["messages"][2]["content"] == "left lower zone."
    dvqa = build_instruction("difference_vqa", f, 0)
    assert dvqa["images"] == ["prior/frontal", "frontal"]
    assert dvqa["messages"][1]["content"].startswith("reference: <image>, main: <image> Using the provided")


def test_finding_grounding_positive_and_negative():
    f = _facts()
    answers = {build_instruction("finding_grounding", f, seed)["messages"][2]["content"] for seed in range(40)}
    assert NOT_PRESENT in answers
    assert "Yes. [60,70,90,95], [5,70,20,90]." in answers and "Yes. [30,40,75,80]." in answers
    # the negatives asked about are labels that are not positive and not uncertain
    for seed in range(40):
        ex = build_instruction("finding_grounding", f, seed)
        if ex["messages"][2]["content"] == NOT_PRESENT:
            assert "atelectasis" not in ex["messages"][1]["content"]
            assert "cardiomegaly" not in ex["messages"][1]["content"]


def test_seeded_choices_and_paraphrases():
    f = _facts()
    a = [build_instruction(t, f, np.random.default_rng(3), paraphrase=True) for t in available_tasks(f)]
    b = [build_instruction(t, f, np.random.default_rng(3), paraphrase=True) for t in available_tasks(f)]
    assert a == b
    used = {build_instruction("vqa", f, s, paraphrase=True)["template"] for s in range(30)}
    assert used == {0, 1, 2}
    assert {build_instruction("vqa", f, s)["template"] for s in range(10)} == {0}      # Table IX only by default
    for ex in a:                                                                     # one <image> per image key
        n = sum(m["content"].count("<image>") for m in ex["messages"])
        assert n == len(ex["images"])


def test_box_free_tasks_use_an_image_the_study_has():
    f = StudyFacts(study_id="lat", views=("lateral",), qa=[("Is there edema?", "No")],
                   instructions=[("Summarise.", "Normal.")])
    assert build_instruction("vqa", f, 0)["images"] == ["lateral"]
    assert build_instruction("instruction_following", f, 0)["images"] == ["lateral"]
    assert build_instruction("vqa", _facts(), 0)["images"] == ["frontal"]          # the box view when present


def test_plain_dict_input():
    d = {"study_id": "d1", "findings": "Lungs are clear.", "labels": {}, "prior": {"study_id": "d0", "findings": "x"}}
    ex = build_instruction("multi_study_mrg", d, 0)
    assert ex["messages"][2]["content"] == NOT_FOUND
    with pytest.raises(ValueError, match=r"unknown fields \['bogus'\]"):
        build_instruction("vqa", {"study_id": "d1", "bogus": 1}, 0)


def test_clear_errors():
    f = _facts(qa=[], prior=None, diff_qa=[])
    with pytest.raises(ValueError, match="unknown M4CXR task 'captioning'"):
        build_instruction("captioning", f, 0)
    with pytest.raises(ValueError, match="s1 cannot make a 'vqa' example: it has no qa"):
        build_instruction("vqa", f, 0)
    with pytest.raises(ValueError, match="no prior study"):
        build_instruction("multi_study_mrg", f, 0)
    with pytest.raises(ValueError, match=r"more than 5"):
        build_instruction("multi_image_mrg", _facts(views=tuple(f"v{i}" for i in range(6)) + ("frontal",)), 0)
    with pytest.raises(ValueError, match=r"box \[50, 10, 40, 20\], not four integers"):
        _facts(organ_boxes=[("heart", [50, 10, 40, 20])])
    with pytest.raises(ValueError, match="boxes are on view 'frontal'"):
        _facts(views=("lateral",))
    assert "vqa" not in available_tasks(f) and "difference_vqa" not in available_tasks(f)


def test_world_study_to_conversations():
    from rrg_lite.world.xray import make_xray_study

    study = make_xray_study(2)                     # frontal + lateral, a prior, atelectasis seen on lateral only
    f = facts_from_xray_study(study)
    assert f.views == ("frontal", "lateral") and f.prior is not None and f.dropped_boxes == 0
    assert f.positives == ["atelectasis", "support devices"]
    assert {n for n, _ in f.organ_boxes} == {"heart", "right lung", "left lung", "trachea", "mediastinum"}
    assert [n for n, _ in f.finding_boxes] == ["support devices"]      # no frontal box for the lateral-only finding
    assert f.phrases and f.phrases[0][1] == f.finding_boxes[0][1]
    assert ("How has the pneumothorax changed compared with the reference image?", "resolved") in f.diff_qa
    # pixel box on the 128-px frontal image -> 0–100: x1 = round(48 / 128 · 100) = 38
    px = next(b["box"] for b in study.boxes if b["kind"] == "finding" and b["view"] == "frontal")
    assert f.finding_boxes[0][1][0] == round(px[0] / 128 * 100)
    tasks = available_tasks(f)
    assert set(tasks) == set(TASKS)
    for t in tasks:
        ex = build_instruction(t, f, 0)
        assert ex["messages"][-1]["role"] == "assistant" and ex["messages"][-1]["content"].strip()
