"""Profiles: the one place that says what a chapter's parameters are, and loud failures for typos."""
import pytest

from rrg_lite.profiles import ProfileError, available_chapters, available_profiles, load_profile


def test_defaults_and_overrides():
    cfg = load_profile("images", "cpu")
    assert cfg.name == "cpu" and cfg.n_slices == 40
    over = load_profile("images", "cpu", n_slices=12, nifti_path=None, target_spacing=(1, 1, 1))
    assert over.n_slices == 12  # taken
    assert over.nifti_path is None  # None keeps the profile's value
    assert over.target_spacing == [1, 1, 1]  # tuples accepted for lists
    assert over["window"] == "lung" and "seed" in over and over.as_dict()["n_slices"] == 12


def test_every_chapter_has_a_cpu_and_a_full_profile_with_the_same_parameters():
    for chapter in available_chapters():
        names = available_profiles(chapter)
        assert {"cpu", "full"} <= set(names), f"{chapter}: profiles {names}"
        cpu, full = (load_profile(chapter, n).as_dict() for n in ("cpu", "full"))
        assert set(cpu) == set(full), f"{chapter}: cpu and full profiles name different parameters"


def test_clear_errors():
    with pytest.raises(ProfileError, match="unknown profile 'gpu' for chapter 'images'; choose one of: cpu, full"):
        load_profile("images", "gpu")
    with pytest.raises(ProfileError, match="unknown chapter 'imagez'"):
        load_profile("imagez")
    with pytest.raises(ProfileError, match="has no parameter 'n_slice'; its parameters are"):
        load_profile("images", "cpu", n_slice=3)
    with pytest.raises(ProfileError, match="'n_slices' of chapter 'images' must be int .* got str 'many'"):
        load_profile("images", "cpu", n_slices="many")
    with pytest.raises(ProfileError, match="must be int"):
        load_profile("images", "cpu", n_slices=True)
    cfg = load_profile("images")
    with pytest.raises(AttributeError, match="read-only"):
        cfg.n_slices = 3
    with pytest.raises(AttributeError, match="has no parameter 'nope'"):
        cfg.nope


# ---- one schema for every chapter -------------------------------------------------------------------------------
from rrg_lite.profiles import ProfileCheckError, check_profile  # noqa: E402
from rrg_lite.profiles import _schema  # noqa: E402


def test_no_chapter_uses_an_old_name_and_model_chapters_have_every_common_field():
    for chapter in available_chapters():
        for name in available_profiles(chapter):
            values = load_profile(chapter, name).as_dict()
            old = sorted(set(values) & set(_schema.RENAMED))
            assert not old, f"{chapter}/{name} uses old names {old}: rename to {[_schema.RENAMED[o] for o in old]}"
            if chapter in _schema.MODEL_CHAPTERS:
                missing = [k for k in _schema.MODEL_FIELDS if k not in values]
                assert not missing, f"{chapter}/{name} lacks the common fields {missing}"
            if "encoder" in values:
                assert values["encoder"] in _schema.ENCODERS, f"{chapter}/{name}: encoder {values['encoder']!r}"
            if chapter in _schema.MODEL_CHAPTERS:
                assert values["llm"] is not None, f"{chapter}/{name}: llm is 'tiny' or a model, never None"
                assert values["precision"] in _schema.PRECISIONS and values["device"] in _schema.DEVICES


def test_shared_settings_have_the_same_value_in_the_two_mu2_chapters():
    for name in ("cpu", "full"):
        mu2, dpo = load_profile("mu2", name), load_profile("dpo", name)
        for key in ("encoder", "encoder_weights", "encoder_width", "llm"):
            assert mu2[key] == dpo[key], (name, key)


def test_common_values_are_checked_and_old_names_explained():
    with pytest.raises(ProfileError, match="'precision' of chapter 'mllm' must be one of auto, no, bf16, fp16"):
        load_profile("mllm", "cpu", precision="bf32")
    with pytest.raises(ProfileError, match="'device' of chapter 'mu2' must be one of"):
        load_profile("mu2", "cpu", device="tpu")
    with pytest.raises(ProfileError, match="'encoder' of chapter 'mu2' must be one of shared, vit3d, m3d-clip, vit2d, rad-dino"):
        load_profile("mu2", "cpu", encoder="resnet")
    assert load_profile("mu2", "cpu", encoder="tiny-vit3d").encoder == "vit3d"  # old encoder names still accepted
    with pytest.raises(ProfileError, match="no parameter 'encoder_checkpoint' \\(it is called 'encoder_weights' now\\)"):
        load_profile("mu2", "cpu", encoder_checkpoint="/x")
    with pytest.warns(DeprecationWarning, match="'out_dir' is now called 'output_dir'"):
        assert load_profile("world", "cpu").out_dir is None


def test_cpu_profiles_pass_the_check():
    for chapter in available_chapters():
        summary = check_profile(load_profile(chapter, "cpu"))
        assert summary["downloads"] == [], f"{chapter}: the CPU profile must not download anything"


def test_full_profile_without_data_weights_or_gpu_fails_fast_naming_each(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ProfileCheckError) as err:
        check_profile(load_profile("mu2", "full"))
    text = str(err.value)
    assert "profile 'full' of chapter 'mu2' cannot run here" in text
    assert "data_root is not set" in text and "-p data_root" in text
    assert "encoder_weights is not set" in text
    assert "device='cuda' but torch" in text and "sees no CUDA GPU" in text and "device=cpu" in text
    with pytest.raises(ProfileCheckError, match="sft_checkpoint is not set"):
        check_profile(load_profile("dpo", "full"))
    with pytest.raises(ProfileCheckError, match="data_root='/data/CT-RATE': no such file or folder"):
        check_profile(load_profile("mllm", "full"))


def test_full_profile_check_passes_with_local_files_and_cpu(tmp_path, monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    data, weights, lm = tmp_path / "AMOS-MM", tmp_path / "m3d.safetensors", tmp_path / "llm"
    data.mkdir()
    weights.write_bytes(b"")
    lm.mkdir()
    with pytest.raises(ProfileCheckError, match="folder without config.json"):
        check_profile(load_profile("mu2", "full", data_root=str(data), encoder_weights=str(weights),
                                   llm=str(lm), device="cpu"))
    (lm / "config.json").write_text("{}")
    summary = check_profile(load_profile("mu2", "full", data_root=str(data), encoder_weights=str(weights),
                                         llm=str(lm), device="cpu"))
    assert summary["device"] == "cpu" and summary["downloads"] == []
    import os

    assert os.environ.get("ACCELERATE_USE_CPU") == "1"  # Accelerate will stay on the CPU in this process
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ProfileCheckError, match="not in the Hugging Face cache and downloads are off"):
        check_profile(load_profile("mu2", "full", data_root=str(data), encoder_weights=str(weights),
                                   llm="nobody/not-a-model", device="cpu"))
    with pytest.raises(ProfileCheckError, match="precision='fp16' needs a GPU"):
        check_profile(load_profile("mu2", "full", data_root=str(data), encoder_weights=str(weights),
                                   llm=str(lm), device="cpu", precision="fp16"))
    with pytest.raises(ProfileCheckError, match="data_root=.* is a file"):
        check_profile(load_profile("mu2", "full", data_root=str(weights), encoder_weights=str(weights),
                                   llm=str(lm), device="cpu"))
