"""`python -m rrg_lite.run`: the chapter list, parameters, the fail-fast check and clear errors (no training here)."""
import json
import subprocess
import sys

import pytest

from rrg_lite.run import CHAPTERS, main, parse_overrides


def test_help_lists_every_chapter_in_a_fresh_process():
    out = subprocess.run([sys.executable, "-m", "rrg_lite.run", "--help"], capture_output=True, text=True, check=True)
    for name, ch in CHAPTERS.items():
        assert name in out.stdout and ch.notebook in out.stdout
    assert "mllm_from_parts" in out.stdout and "[notebook]" in out.stdout


def test_every_chapter_is_a_notebook_and_every_runner_imports():
    import importlib
    from pathlib import Path

    notebooks = {p.stem for p in (Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    for name, ch in CHAPTERS.items():
        if ch.notebook != "04_teaching_an_encoder_to_see":  # the encoders chapter's notebook lands separately
            assert ch.notebook in notebooks, name
        if ch.runner:
            module, _, fn = ch.runner.partition(":")
            assert callable(getattr(importlib.import_module(module), fn)), ch.runner
    assert {n for n, c in CHAPTERS.items() if c.runner} >= {"mllm_from_parts", "mu2", "preference_optimisation"}


def test_chapter_help_shows_its_parameters(capsys):
    with pytest.raises(SystemExit) as err:
        main(["06", "--help"])  # numbers and notebook names are aliases
    assert err.value.code == 0
    text = capsys.readouterr().out
    assert "run_tokenizer_ablation" in text and "encoder_weights" in text and '"m3d-clip"' in text


def test_overrides_are_read_as_json_or_strings():
    assert parse_overrides(["steps=3", "lr=1e-4", "seeds=[0, 1]", "use_meteor=false", "data_root=null",
                            "llm=meta-llama/Llama-3.2-1B-Instruct", "x=None"]) == {
        "steps": 3, "lr": 1e-4, "seeds": [0, 1], "use_meteor": False, "data_root": None,
        "llm": "meta-llama/Llama-3.2-1B-Instruct", "x": None}
    with pytest.raises(SystemExit, match="-p expects key=value"):
        parse_overrides(["steps"])


def test_full_profile_check_fails_fast_with_exit_2(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["mu2", "--profile", "full"]) == 2
    err = capsys.readouterr().err
    assert "data_root is not set" in err and "encoder_weights is not set" in err and "sees no CUDA GPU" in err
    assert main(["mllm_from_parts", "-p", "encoder_dim=8"]) == 2
    assert "it is called 'encoder_width' now" in capsys.readouterr().err


def test_check_only_prints_the_summary(capsys):
    assert main(["preference_optimisation", "--check"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["chapter"] == "preference_optimisation" and summary["check"]["downloads"] == []


def test_notebook_chapters_check_their_parameters_before_a_kernel_starts(capsys, tmp_path):
    with pytest.raises(SystemExit, match="has no parameter"):
        main(["images", "-p", "n_slicez=3", "--output-dir", str(tmp_path)])
    assert main(["images", "--profile", "full", "--check"]) == 2
    assert "nifti_path is not set" in capsys.readouterr().err


@pytest.mark.parametrize("notebook", sorted((__import__("pathlib").Path(__file__).resolve().parents[1] / "notebooks")
                                            .glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem)
def test_papermill_sees_every_parameter(notebook):
    """A parameters line whose comment holds "=" is silently dropped by papermill's parser: -p could not set it."""
    import nbformat
    import papermill as pm

    nb = nbformat.read(notebook, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    names = {line.split("=")[0].strip() for line in cell.source.splitlines()
             if "=" in line and not line.lstrip().startswith("#")}
    assert names <= set(pm.inspect_notebook(str(notebook))), "write those comments without '='"
