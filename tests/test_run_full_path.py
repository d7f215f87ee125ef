"""Every training chapter's *full* code path, end to end on the CPU at toy size, through ``rrg_lite.run``.

The CPU profiles never touch what the full profiles depend on: a Hugging Face model folder with its own tokenizer
and chat template, M3D-CLIP-format encoder weights, dataset folders in the real layouts read lazily from disk,
checkpoints, and the SFT hand-off from chapter 6 to chapter 7 by path. Here each of those is a stand-in in the
real format, written offline:

- a tiny random Llama saved with ``save_pretrained``, its byte-level BPE tokenizer (trained on the world's reports
  with the 🤗 ``tokenizers`` library) saved beside it with a Llama-3-style chat template;
- a tiny M3D-shaped ViT (MONAI ``ViT``, perceptron patches, class token) whose weights are saved as
  ``vision_encoder.*`` safetensors, as in M3D-CLIP's release;
- CT-RATE and AMOS-MM folders written by the world's writers (``rrg_lite.world.writers``).

Then ``python -m rrg_lite.run <chapter> --profile full -p …`` runs with only sizes and step counts overridden.
"""
import json

import pytest
import torch

from rrg_lite.run import main

pytestmark = pytest.mark.slow

LLAMA3_STYLE_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
HIDDEN = 32


def _save_tiny_llm(folder, texts):
    """A 1-layer Llama + byte-level BPE tokenizer with a chat template, as `save_pretrained` writes them."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|pad|>", "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<|pad|>", bos_token="<|begin_of_text|>",
                                  eos_token="<|eot_id|>", additional_special_tokens=specials[3:])
    tok.chat_template = LLAMA3_STYLE_TEMPLATE
    config = LlamaConfig(vocab_size=len(tok), hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _save_tiny_m3d_vit(folder, img_size, patch_size=(4, 16, 16)):
    """M3D-CLIP's vision tower at toy width: MONAI ViT weights under ``vision_encoder.`` in model.safetensors."""
    from safetensors.torch import save_file

    from rrg_lite.encoders.pretrained import m3d_clip_vit

    torch.manual_seed(0)
    enc = m3d_clip_vit(None, img_size=img_size, patch_size=patch_size, hidden_size=HIDDEN, mlp_dim=4 * HIDDEN,
                       num_layers=1, num_heads=2)
    folder.mkdir(parents=True)
    state = {f"vision_encoder.{k}": v.contiguous() for k, v in enc.vit.state_dict().items()}
    state["text_encoder.dummy"] = torch.zeros(1)  # the CLIP checkpoint holds the text tower too: ignored
    save_file(state, str(folder / "model.safetensors"))
    return folder


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    from rrg_lite.world.ct import generate_ct_cohort
    from rrg_lite.world.writers import write_amosmm, write_ctrate

    root = tmp_path_factory.mktemp("full_path")
    studies = generate_ct_cohort(8, seed=5)
    texts = [s.report.text() for s in studies] + [t for s in studies for t in s.report.body_parts.values()]
    write_ctrate(studies[:6], root / "CT-RATE", "train")
    write_ctrate(studies[6:], root / "CT-RATE", "valid")
    write_amosmm({"train": studies[:5], "validation": studies[5:]}, root / "AMOS-MM")
    return {
        "root": root,
        "llm": _save_tiny_llm(root / "tiny-llama", texts + ["What are the findings in the chest?"]),
        "m3d_ct": _save_tiny_m3d_vit(root / "m3d-ct", img_size=(8, 32, 32)),
        "m3d_frames": _save_tiny_m3d_vit(root / "m3d-frames", img_size=(8, 32, 32)),
    }


def _run(chapter, out, params, capsys):
    argv = [chapter, "--profile", "full", "--output-dir", str(out)]
    for key, value in params.items():
        argv += ["-p", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    assert main(argv) == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    printed = json.loads(capsys.readouterr().out)
    assert printed["chapter"] == results["chapter"]
    return results


def test_mllm_from_parts_full_path(stand_ins, tmp_path, capsys):
    """CT-RATE folder read lazily, M3D-format weights, an HF LM folder with a chat template, the feature cache on
    disk, checkpoints per stage, and a resumed rerun."""
    out = tmp_path / "ch05"
    params = {
        "data_root": str(stand_ins["root"] / "CT-RATE"), "encoder_weights": str(stand_ins["m3d_ct"]),
        "llm": str(stand_ins["llm"]), "device": "auto", "precision": "auto",
        "volume_shape": [8, 32, 32], "encoder_width": HIDDEN, "encoder_depth": 1, "encoder_heads": 2,
        "align_steps": 2, "lora_steps": 2, "batch_size": 2, "grad_accum": 1, "max_new_tokens": 6, "gen_batch_size": 4,
        "lora_r": 2, "feature_cache": str(tmp_path / "features"),
    }
    results = _run("mllm_from_parts", out, params, capsys)
    assert results["n_train"] == 6 and results["n_test"] == 2 and results["config"]["lazy"] is True
    assert set(results["scores"]) == {"text-only baseline", "stage 1 (image, frozen LM)", "stage 2 (image, LoRA)",
                                      "stage 2, another study's image"}
    for stage in ("1_align", "2_lora"):
        assert (out / stage / "final" / "model.safetensors").exists(), stage
    caches = list((tmp_path / "features").glob("*/index.json"))  # frozen features on disk, read lazily
    assert len(caches) == 1 and len(json.loads(caches[0].read_text())["ids"]) == 8
    lines = (out / "reports.jsonl").read_text().splitlines()
    assert len(lines) == 4 * 2 and json.loads(lines[0])["study_id"]
    # the same command again refuses to overwrite the runs; with --resume it continues them (nothing left to train)
    argv = ["mllm_from_parts", "--profile", "full", "--output-dir", str(out)] + [
        a for k, v in params.items() for a in ("-p", f"{k}={json.dumps(v) if not isinstance(v, str) else v}")]
    assert main(argv) == 2 and "--resume" in capsys.readouterr().err
    assert main(argv + ["--resume"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["scores"] == results["scores"]  # resumed at the last step: the same trained model
    assert list((tmp_path / "features").glob("*/index.json")) == caches  # the same features, read from the cache


def test_mu2_then_preference_optimisation_by_path(stand_ins, tmp_path, capsys):
    """Chapter 6 on an AMOS-MM folder writes <out>/sft; chapter 7 reads it by path alone and runs DPO."""
    common = {"data_root": str(stand_ins["root"] / "AMOS-MM"), "encoder_weights": str(stand_ins["m3d_frames"]),
              "device": "auto", "precision": "auto", "feature_cache": str(tmp_path / "features")}
    out6 = tmp_path / "ch06"
    r6 = _run("mu2", out6, {
        **common, "llm": str(stand_ins["llm"]), "llm_hidden": HIDDEN, "encoder_width": HIDDEN, "encoder_depth": 1,
        "encoder_heads": 2, "ct_size": 32, "slices_per_frame": 8, "volume_shape": [16, 32, 32], "num_frames": 2,
        "num_heads": 2, "refiner_layers": 1, "aggregation_layers": 1, "k": 4, "num_queries": 2, "mlp_ratio": 2,
        "variants": ["μ² (SFT)"], "seeds": [0], "steps": 2, "batch_size": 2, "warmup_steps": 1,
        "max_new_tokens": 6, "eval_batch_size": 4, "use_meteor": False, "bootstrap": 20,
    }, capsys)
    sft = out6 / "sft"
    assert r6["sft_checkpoint"] == str(sft)
    for name in ("model.safetensors", "mllm.json", "lm_config.json", "tokenizer/tokenizer_config.json"):
        assert (sft / name).exists(), name
    assert "chat_template" in json.loads((sft / "tokenizer" / "tokenizer_config.json").read_text()) or \
        (sft / "tokenizer" / "chat_template.jinja").exists()
    assert (out6 / "runs" / "mu2_sft_s0" / "final" / "model.safetensors").exists()
    assert r6["summary"][0]["variant"] == "μ² (SFT)"
    caches = sorted((tmp_path / "features").glob("*/index.json"))
    assert len(caches) == 2  # the train and validation cases' frozen features, on disk

    out7 = tmp_path / "ch07"
    r7 = _run("preference_optimisation", out7, {
        **common, "sft_checkpoint": str(sft), "num_samples": 2, "betas": [0.1], "beta": 0.1, "dpo_steps": 2,
        "dpo_batch_size": 2, "max_new_tokens": 6, "bootstrap": 20,
    }, capsys)
    assert r7["sft"]["source"] == str(sft)
    assert sorted((tmp_path / "features").glob("*/index.json")) == caches  # chapter 7 read chapter 6's features
    assert (out7 / "pairs.jsonl").exists()
    if isinstance(r7["dpo"], dict):  # a random toy model may sample no usable pair: then DPO is skipped, said so
        assert set(r7["dpo"]) == {"0.1"} and (out7 / "dpo_beta_0.1" / "model" / "mllm.json").exists()
    else:
        assert "no preference pairs" in r7["dpo"]


def test_sft_folder_round_trip_gives_the_same_outputs(stand_ins, tmp_path):
    """save_sft → load_sft rebuilds the same model (weights, tokenizer, chat template) from the folder alone."""
    from types import SimpleNamespace

    from rrg_lite.profiles import load_profile
    from rrg_lite.systems.mu2 import ablation as mu2
    from rrg_lite.systems.mu2.preference import load_sft, save_sft

    cfg = load_profile("mu2", "cpu", llm=str(stand_ins["llm"]), llm_hidden=HIDDEN, encoder_width=8, k=4,
                       num_queries=2, num_heads=2)
    text_tok = mu2.text_tokenizer_for(cfg, [])
    model = mu2.build_mllm(cfg, "μ² (SFT)", text_tok, 0, lm=mu2.new_lm(cfg, text_tok, 0)).eval()
    save_sft(tmp_path / "sft", model, text_tok, cfg)
    again, tok2, arch = load_sft(tmp_path / "sft")
    assert tok2.chat_template == text_tok.chat_template and len(tok2) == len(text_tok)
    assert isinstance(arch, SimpleNamespace) and arch.k == 4
    feats = torch.randn(1, 2, mu2.tokens_per_frame(cfg), 8)
    from rrg_lite.mllm.prompt import MLLMCollator

    ex = model.encode_example("<image> What are the findings in the chest?", "None.")
    ex["features"] = feats
    batch = MLLMCollator(text_tok.pad_token_id)([ex])
    with torch.no_grad():
        assert torch.allclose(model(**batch).loss, again.eval()(**batch).loss)
    with pytest.raises(Exception, match="no saved MLLM folder"):
        load_sft(tmp_path / "nothing")


def test_entry_point_under_accelerate_launch_two_cpu_processes(stand_ins, tmp_path):
    """`accelerate launch -m rrg_lite.run …` (2 processes, gloo): it trains, every held-out study is generated
    once, and only process 0 writes the results."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "ch05_ddp"
    params = {"data_root": str(stand_ins["root"] / "CT-RATE"), "encoder_weights": str(stand_ins["m3d_ct"]),
              "llm": str(stand_ins["llm"]), "device": "cpu", "precision": "no", "volume_shape": [8, 32, 32],
              "encoder_width": HIDDEN, "encoder_depth": 1, "encoder_heads": 2, "align_steps": 2, "lora_steps": 2,
              "batch_size": 2, "grad_accum": 1, "max_new_tokens": 6, "gen_batch_size": 4, "lora_r": 2}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(root),
           "ACCELERATE_CONFIG_FILE": str(tmp_path / "no_config.yaml"), "ACCELERATE_USE_CPU": "1", "RRG_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29531",
           "-m", "rrg_lite.run", "mllm_from_parts", "--profile", "full", "--output-dir", str(out)]
    for k, v in params.items():
        cmd += ["-p", f"{k}={json.dumps(v) if not isinstance(v, str) else v}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["n_test"] == 2 and len(results["scores"]) == 4
    rows = [json.loads(line) for line in (out / "reports.jsonl").read_text().splitlines()]
    assert sorted((r["model"], r["study_id"]) for r in rows) == sorted({(r["model"], r["study_id"]) for r in rows})
    assert len(rows) == 4 * 2
    assert proc.stdout.count('"chapter": "mllm_from_parts"') == 1  # the summary is printed by process 0 only
