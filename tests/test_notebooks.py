"""Every chapter notebook runs on its CPU defaults, with pytest-notebook.

Notebooks are committed without outputs, so the regression diff ignores outputs and execution metadata; what
the test checks is that every cell runs without raising (pytest-notebook raises the cell's error otherwise).
A notebook that passes is stored in the book's execution cache (``_build/.jupyter_cache``, keyed by the code
of its cells), so that ``jupyter-book build`` after the tests shows these outputs instead of running every
chapter a second time.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest
from pytest_notebook.nb_regression import NBRegressionFixture

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
BOOK_CACHE = ROOT / "_build" / ".jupyter_cache"
TIMES = ROOT / "_build" / "notebook_times.json"

# Outputs are not committed (see the README's contributing section); only errors are checked.
IGNORE = ("/cells/*/outputs", "/cells/*/execution_count", "/cells/*/metadata", "/metadata")


def make_fixture(timeout: int = 1500) -> NBRegressionFixture:
    return NBRegressionFixture(exec_timeout=timeout, diff_ignore=IGNORE, post_processors=())


def store_in_book_cache(nb: nbformat.NotebookNode, path: Path) -> None:
    """Put an executed notebook into the jupyter-cache that the book build reads (myst-nb's "cache" mode)."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(str(BOOK_CACHE))
    cache.cache_notebook_bundle(CacheBundleIn(nb, str(path)), check_validity=False, overwrite=True)


def test_notebooks_exist():
    assert NOTEBOOKS, "no chapter notebooks found in notebooks/"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path):
    start = time.perf_counter()
    result = make_fixture().check(str(path))
    seconds = time.perf_counter() - start
    store_in_book_cache(result.nb_final, path)
    times = json.loads(TIMES.read_text()) if TIMES.exists() else {}
    times[path.name] = round(seconds, 1)
    TIMES.write_text(json.dumps(times, indent=1, sort_keys=True))


def test_a_raising_cell_fails_the_notebook_test(tmp_path):
    """The guarantee CI relies on: one cell that raises makes the notebook test fail."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("raise RuntimeError('chapter broke')")]
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(Exception, match="chapter broke"):
        make_fixture(timeout=120).check(str(path))


def test_notebooks_are_committed_without_outputs():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"


def test_each_notebook_has_one_parameters_cell_with_a_profile():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters', need exactly one"
        assert "profile" in tagged[0].source, f"{path.name}: the parameters cell does not set `profile`"
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), \
            f"{path.name}: the first cell must be the chapter's '# Title'"
