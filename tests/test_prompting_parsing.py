"""Extraction rules (μ² Appendix A.2, ViPET-VLM's JSON schema) and prompt templates, on cases checked by hand."""
import pytest

from rrg_lite.prompting.clients import ChatRequest
from rrg_lite.prompting.parsing import (MalformedReply, extract_questions, extract_thinking_answer,
                                        parse_pet_ct_json, parse_yes_no)
from rrg_lite.prompting.templates import TEMPLATES, PromptError, PromptTemplate, identify


def test_question_rule_extracts_numbered_lines():
    reply = "Here are my questions:\n1. Where is the nodule?\n2.What is its size?\n10. Is follow-up needed?\n"
    assert extract_questions(reply) == ["Where is the nodule?", "What is its size?", "Is follow-up needed?"]


def test_question_rule_keeps_the_papers_quirk_on_decimals():
    # r".*?\d\.\ ?([^\n]*)" also fires on "2.5 cm": the capture is what follows the dot
    reply = "1. Is there a mass?\nThe mass measures 2.5 cm."
    assert extract_questions(reply) == ["Is there a mass?", "5 cm."]
    assert extract_questions(reply, require_question_mark=True) == ["Is there a mass?"]


@pytest.mark.parametrize("reply, reason", [("", "empty"), ("   \n", "empty"), ("- Where is it?", "no_questions")])
def test_question_rule_failures(reply, reason):
    with pytest.raises(MalformedReply) as info:
        extract_questions(reply)
    assert info.value.reason == reason


def test_thinking_and_answer_rules():
    reply = "Thinking: I see a nodule in the right lung.\nMore thoughts here.\n\nAnswer:Right lung.\nAnswer: ignored"
    # first line only for thinking (the rule stops at a newline), first "Answer:" wins, optional space
    assert extract_thinking_answer(reply) == ("I see a nodule in the right lung.", "Right lung.")


@pytest.mark.parametrize("reply, reason", [
    ("", "empty"),
    ("Thinking: a nodule.\nRight lung.", "no_answer"),
    ("Thinking: a nodule.\nAnswer: ", "empty_answer"),
    ("Answer: Right lung.", "no_thinking"),
])
def test_thinking_and_answer_failures(reply, reason):
    with pytest.raises(MalformedReply) as info:
        extract_thinking_answer(reply)
    assert info.value.reason == reason


def test_yes_no():
    assert parse_yes_no("Yes") is True and parse_yes_no(' "no". ') is False and parse_yes_no("YES.") is True
    for bad, reason in [("Maybe", "not_yes_no"), ("Yes, because the answer matches.", "not_yes_no"), ("", "empty")]:
        with pytest.raises(MalformedReply) as info:
            parse_yes_no(bad)
        assert info.value.reason == reason


def test_pet_ct_schema_accepts_a_clean_split():
    reply = '{"PET": "Focal FDG uptake in the right lung lesion (SUVmax 6.1).", "CT": "Nodule in the right lung measuring 12 mm."}'
    assert parse_pet_ct_json(reply) == {"PET": "Focal FDG uptake in the right lung lesion (SUVmax 6.1).",
                                        "CT": "Nodule in the right lung measuring 12 mm."}


@pytest.mark.parametrize("reply, reason", [
    ("", "empty"),
    ('Here you go: {"PET": "a", "CT": "b"}', "invalid_json"),
    ('["PET", "CT"]', "not_object"),
    ('{"PET": "a"}', "keys"),
    ('{"PET": "a", "CT": "b", "notes": "c"}', "keys"),
    ('{"PET": 3, "CT": "b"}', "not_string"),
    ('{"PET": " ", "CT": ""}', "both_empty"),
    ('{"PET": "Uptake in a 12 mm node.", "CT": "Node."}', "pet_has_anatomy"),
    ('{"PET": "Uptake.", "CT": "Node in the neck with SUVmax 4.2."}', "ct_has_uptake"),
    ('{"PET": "Uptake.", "CT": "Hypermetabolic node in the neck."}', "ct_has_uptake"),
])
def test_pet_ct_schema_rejections(reply, reason):
    with pytest.raises(MalformedReply) as info:
        parse_pet_ct_json(reply)
    assert info.value.reason == reason


def test_template_render_match_roundtrip_and_errors():
    t = TEMPLATES["mu2.answer"]
    assert t.id == "mu2.answer@v1" and t.fields == ("report", "question")
    messages = t.render(report="A 5 mm nodule.\nNo effusion.", question="Is there effusion?")
    assert messages[0] == ("system", t.system)
    assert t.match(messages[-1][1]) == {"report": "A 5 mm nodule.\nNo effusion.", "question": "Is there effusion?"}
    assert TEMPLATES["mu2.filter"].match(messages[-1][1]) is None
    with pytest.raises(PromptError, match="missing fields \\['question'\\]"):
        t.render(report="x")
    with pytest.raises(PromptError, match="unknown fields \\['extra'\\]"):
        t.render(report="x", question="y", extra="z")


def test_repeated_fields_and_literal_braces():
    t = TEMPLATES["mu2.translate"]  # {source_lang} appears twice
    user = t.render(source_lang="English", target_lang="German", text="No effusion.")[-1][1]
    assert t.match(user) == {"source_lang": "English", "target_lang": "German", "text": "No effusion."}
    split = TEMPLATES["vipet.split"].render(report="r")[-1][1]
    assert '{"PET": "...", "CT": "..."}' in split  # the JSON example survives str.format


def test_identify_finds_the_template():
    request = TEMPLATES["mu2.refine"].request(narrative="The report describes a nodule.")
    template, fields = identify(request)
    assert template.name == "mu2.refine" and fields == {"narrative": "The report describes a nodule."}
    assert identify(ChatRequest((("user", "hello"),))) is None
    custom = PromptTemplate("mine", 2, "Say {x}.")
    assert identify(custom.request(x="hi"), {"mine": custom})[1] == {"x": "hi"}
