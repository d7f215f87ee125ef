"""Papermill overrides reach the chapter, and bad ones fail with the profile's message."""
from pathlib import Path

import nbformat
import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTER_1 = ROOT / "notebooks" / "01_radiology_images.ipynb"

pytestmark = pytest.mark.notebook


def _stdout(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream")


def test_override_takes_effect(tmp_path):
    out = tmp_path / "ch01.ipynb"
    pm.execute_notebook(str(CHAPTER_1), str(out), parameters={"n_slices": 24, "window": "bone"},
                        cwd=str(CHAPTER_1.parent), progress_bar=False, kernel_name="python3")
    text = _stdout(nbformat.read(out, as_version=4))
    assert "shape:       (24, 128, 128)" in text  # the default profile would give 40 slices


@pytest.mark.parametrize("params, message", [
    ({"profile": "gpu"}, "unknown profile 'gpu' for chapter 'images'; choose one of: cpu, full"),
    ({"n_slices": "many"}, "parameter 'n_slices' of chapter 'images' must be int"),
    ({"profile": "full"}, "nifti_path is not set; it must name a CT volume of your own"),
])
def test_bad_parameters_fail_clearly(tmp_path, params, message):
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(CHAPTER_1), str(tmp_path / "bad.ipynb"), parameters=params,
                            cwd=str(CHAPTER_1.parent), progress_bar=False, kernel_name="python3")
    assert message in str(err.value)


CHAPTER_MU2 = ROOT / "notebooks" / "06_mu2.ipynb"


def test_full_profile_without_data_or_gpu_stops_in_its_first_cells(tmp_path):
    """`-p profile full` with nothing there stops at check_profile (seconds), not minutes into the chapter."""
    import time

    t0 = time.perf_counter()
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(CHAPTER_MU2), str(tmp_path / "full.ipynb"), parameters={"profile": "full"},
                            cwd=str(CHAPTER_MU2.parent), progress_bar=False, kernel_name="python3")
    assert "ProfileCheckError" in str(err.value) and "data_root is not set" in str(err.value)
    # cells 1-2: parameters and papermill's injected parameters; 3: the one that loads and checks the profile
    assert err.value.exec_count == 3 and "check_profile(cfg)" in err.value.source, err.value.exec_count
    assert time.perf_counter() - t0 < 120
