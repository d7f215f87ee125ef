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
