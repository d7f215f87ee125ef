"""The pipelines offline: μ² five stages, stage-3 heuristics, PET/CT split, rewriting loops, local HF client."""
import json

import pytest

from rrg_lite.prompting.cache import RequestCache
from rrg_lite.prompting.clients import ChatRequest, PermanentLLMError
from rrg_lite.prompting.jsonl import read_jsonl, write_jsonl
from rrg_lite.prompting.parsing import parse_pet_ct_json
from rrg_lite.prompting.petct import split_pet_ct_reports
from rrg_lite.prompting.reasoning import (Mu2ReasoningPipeline, contradiction, heuristic_rejections,
                                          is_non_english, is_vacuous, parse_report_thinking)
from rrg_lite.prompting.rewriting import parse_judgment, paraphrase_reports, rg4_rewrite_reports, translate_reports
from rrg_lite.prompting.runner import LLMRunner
from rrg_lite.prompting.standin import DEFAULT_FAULTS, OfflineStandInLLM, correct_answer, sentence_tags
from rrg_lite.prompting.templates import TEMPLATES


def records(n=12):
    out = []
    for i in range(n):
        out.append({
            "study_id": f"s{i}", "image": f"img{i}.nii.gz",
            "report": f"A {5 + i} mm nodule is seen in the lung with FDG uptake. The liver is normal. Case {i}.",
            "findings": [{"label": "Lung nodule", "organ": "lung", "size_mm": 5 + i, "hypermetabolic": i % 2 == 0,
                          "suv": 3.0 + i}],
            "normal": ["liver"],
        })
    return out


def runner(llm):
    return LLMRunner(llm, RequestCache(":memory:"), progress=False, sleep=lambda s: None)


def test_standin_answers_are_right_by_construction():
    rec = records(1)[0]
    assert correct_answer(rec, "What is the size of the lung nodule in the lung?")[0] == "About 5 mm."
    assert correct_answer(rec, "Is the lung nodule in the lung hypermetabolic?")[0].startswith("Yes")
    assert correct_answer(rec, "Is there an abnormality in the liver?")[0] == "No, the liver appears normal."
    assert correct_answer(rec, "What is the patient's name?") is None
    llm = OfflineStandInLLM.perfect([rec])
    with pytest.raises(PermanentLLMError):
        llm.chat(ChatRequest((("user", "Tell me a joke"),)))
    with pytest.raises(PermanentLLMError):  # a report it has no record of
        llm.chat(TEMPLATES["mu2.questions"].request(report="unknown report"))
    with pytest.raises(ValueError, match="unknown stand-in faults"):
        OfflineStandInLLM([rec], faults={"typo": 1.0})


def test_perfect_standin_keeps_everything(tmp_path):
    recs = records(4)
    stats = Mu2ReasoningPipeline(runner(OfflineStandInLLM.perfect(recs)), tmp_path).run(recs)
    assert stats["filter"]["in"] == stats["filter"]["out"] == stats["questions"]["questions"]
    assert stats["report_thinking"]["out"] == 4
    final = read_jsonl(tmp_path / "reasoning.jsonl")
    assert [r["study_id"] for r in final] == ["s0", "s1", "s2", "s3"]
    first = final[0]
    assert first["image"] == "img0.nii.gz" and first["report"] == recs[0]["report"]
    assert {"question": "What is the size of the lung nodule in the lung?", "answer": "About 5 mm."}.items() <= \
        next(q for q in first["qa"] if "size" in q["question"]).items()
    assert all("report" not in q["thinking"].lower() for q in first["qa"])  # stage 4 removed report references
    parse_report_thinking(first["report_thinking"])
    assert first["provenance"]["prompts"]["answer"] == "mu2.answer@v1"
    assert first["provenance"]["model"] == "offline-standin"
    for line in read_jsonl(tmp_path / "stage2_answers.jsonl"):
        assert line["provenance"]["stage"] == "answer" and len(line["provenance"]["request"]) == 16


def test_faulty_standin_rejections_are_counted_by_reason(tmp_path):
    recs = records(30)
    llm = OfflineStandInLLM(recs, faults={"wrong_answer": 0.2, "non_english": 0.1, "vacuous": 0.1,
                                          "contradiction": 0.1, "malformed": 0.2})
    run = runner(llm)
    stats = Mu2ReasoningPipeline(run, tmp_path).run(recs)
    reasons = stats["filter"]["reasons"]
    for reason in ("llm_no", "non_english", "vacuous", "contradiction:change_without_prior"):
        assert reasons.get(reason, 0) > 0, reasons
    assert run.stats["malformed:no_answer"] > 0  # re-asked, mostly recovered
    rejected = read_jsonl(tmp_path / "rejected.jsonl")
    assert sum(r["stage"] == "filter" for r in rejected) == stats["filter"]["in"] - stats["filter"]["out"]
    kept = read_jsonl(tmp_path / "stage3_filtered.jsonl")
    # everything kept is correct according to the record
    by_report = {r["study_id"]: r for r in recs}
    for k in kept:
        assert correct_answer(by_report[k["study_id"]], k["question"])[0] == k["answer"]


def test_heuristics_by_hand():
    report = "A new 8 mm nodule is seen in the right lung. No effusion."
    assert is_non_english("Observo la imagen con cuidado y veo una lesión en la zona indicada.")
    assert not is_non_english("I see a nodule in the right lung, which is the answer.")
    assert is_vacuous("Let me think about this.", report)
    assert not is_vacuous("I look at the right lung and see a small nodule of about eight millimetres.", report)
    assert contradiction("The nodule has improved.", "An 8 mm nodule in the right lung.") == "change_without_prior"
    assert contradiction("The nodule is stable.", report + " Compared with the prior study.") == "new_but_improved"
    assert contradiction("The nodule is present in the right lung.", report) is None
    assert heuristic_rejections("Let me think.", "It has improved.", "A nodule.") == \
        ["vacuous", "contradiction:change_without_prior"]


def test_pet_ct_split(tmp_path):
    recs = records(20)
    llm = OfflineStandInLLM(recs, faults={"invalid_json": 0.3, "leak": 0.3})
    run = runner(llm)
    stats = split_pet_ct_reports(run, recs, tmp_path)
    assert stats["split"] + sum(stats["rejected"].values()) == 20 and stats["split"] >= 15
    assert stats["malformed_replies"]["invalid_json"] > 0
    assert stats["malformed_replies"]["ct_has_uptake"] > 0
    rows = read_jsonl(tmp_path / "petct_split.jsonl")
    for row in rows:
        parse_pet_ct_json(json.dumps({"PET": row["PET"], "CT": row["CT"]}))  # every kept row obeys the schema
    assert "SUVmax 3.0" in rows[0]["PET"] and "5 mm" in rows[0]["CT"]
    assert "no increased fdg uptake" in rows[1]["PET"].lower()
    # with every reply broken, every study is rejected, with its reason
    broken = runner(OfflineStandInLLM(recs, faults={"invalid_json": 1.0}))
    stats = split_pet_ct_reports(broken, recs[:3], tmp_path / "b")
    assert stats["split"] == 0 and stats["rejected"] == {"malformed:invalid_json": 3}


def test_rg4_loop_removes_unsupported_sentences(tmp_path):
    report = ("PA and lateral views of the chest were obtained. Compared with the prior study, the effusion is "
              "unchanged. There is a small left pleural effusion. Findings were discussed with Dr. Smith.")
    assert sentence_tags("Findings were discussed with Dr. Smith.") == ["communication"]
    assert sentence_tags("PA and lateral views of the chest were obtained.") == ["view"]
    recs = [{"study_id": "a", "report": report, "inputs": "frontal view only; no prior report"},
            {"study_id": "b", "report": report, "inputs": "frontal and lateral views; prior report"}]
    run = runner(OfflineStandInLLM.perfect([]))
    stats = rg4_rewrite_reports(run, recs, tmp_path, labeler=lambda t: "effusion" in t)
    out = {r["study_id"]: r for r in read_jsonl(tmp_path / "rg4_rewritten.jsonl")}
    assert out["a"]["rewritten"] == "There is a small left pleural effusion."
    assert out["b"]["rewritten"].startswith("PA and lateral views") and "discussed" not in out["b"]["rewritten"]
    assert stats["out"] == 2 and out["a"]["rounds"] == 1
    # a labeler that sees the change discards the rewrite
    stats = rg4_rewrite_reports(run, recs[:1], tmp_path / "x", labeler=lambda t: "prior" in t)
    assert stats["out"] == 0 and stats["rejected"] == {"labels_changed": 1}
    # a judge that never agrees leaves the report unresolved after max_rounds
    stats = rg4_rewrite_reports(run, recs[:1], tmp_path / "y", judge=lambda text, inputs: ["always"], max_rounds=2)
    assert stats["rejected"] == {"unresolved": 1}
    assert parse_judgment("OK") == [] and parse_judgment("- a\n- b") == ["a", "b"]


def test_paraphrase_with_label_check_and_translation(tmp_path):
    recs = records(40)
    llm = OfflineStandInLLM(recs, faults={"drop_sentence": 0.3})
    labeler = lambda t: ("nodule" in t, "liver" in t)  # noqa: E731
    stats = paraphrase_reports(runner(llm), recs, ["Example report one."], tmp_path, labeler=labeler)
    assert stats["out"] + stats["rejected"].get("labels_changed", 0) == 40
    assert stats["rejected"].get("labels_changed", 0) > 0
    for row in read_jsonl(tmp_path / "paraphrased.jsonl"):
        assert labeler(row["paraphrase"]) == labeler(row["report"])
    stats = translate_reports(runner(llm), recs[:2], "English", "German", tmp_path)
    rows = read_jsonl(tmp_path / "translated_german.jsonl")
    assert stats["out"] == 2 and "Leber" in rows[0]["text"]


def test_jsonl_errors_name_file_and_line(tmp_path):
    path = tmp_path / "x.jsonl"
    write_jsonl(path, [{"a": 1}])
    path.write_text(path.read_text() + "{broken\n")
    with pytest.raises(ValueError, match="x.jsonl:2"):
        read_jsonl(path)


@pytest.mark.slow
def test_hf_local_client_on_a_tiny_random_model():
    torch = pytest.importorskip("torch")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from rrg_lite.prompting.clients import HFLocalClient

    vocab = {w: i for i, w in enumerate(["<pad>", "<eos>", "<unk>", "user", ":", "assistant", "hello", "lung",
                                         "nodule", "yes", "no", "\n"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>",
                                        unk_token="<unk>")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                         pad_token_id=0, eos_token_id=1))
    client = HFLocalClient(model=model, tokenizer=tokenizer, name="tiny")
    request = ChatRequest((("user", "hello lung"),), max_tokens=5, temperature=0.8, top_p=0.9, seed=3)
    a, b = client.chat(request), client.chat(request)
    assert isinstance(a, str) and a == b  # seeded sampling is reproducible
    greedy = client.chat(ChatRequest((("user", "hello lung"),), max_tokens=4))
    assert set(greedy.split()) <= set(vocab)
    out = runner(client).run(request)
    assert out.text == a
