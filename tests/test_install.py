"""The install files agree with each other, and the package imports without network."""
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _norm(req: str) -> str:
    return req.replace(" ", "").lower()


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_norm(r) for r in project["dependencies"]}
    for extra in ("test", "book", "full"):
        wanted |= {_norm(r) for r in project["optional-dependencies"][extra]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {_norm(r) for r in pip_section if not r.startswith("-e")}
    assert listed == wanted, f"only in environment.yml: {sorted(listed - wanted)}; only in pyproject: {sorted(wanted - listed)}"


def test_torch_is_pinned_to_the_cpu_wheel():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.13.0" in deps


def test_package_imports():
    import rrg_lite.data.io  # noqa: F401
    import rrg_lite.data.transforms  # noqa: F401
    import rrg_lite.profiles  # noqa: F401
    import rrg_lite.viz.slices  # noqa: F401


def test_nodeps_requirements_are_installed_by_make_and_importable():
    """medspaCy and PyRuSH come from requirements-nodeps.txt (their spaCy<3.8 pin would pull numpy back to 1.x)."""
    names = [line.split("==")[0] for line in (ROOT / "requirements-nodeps.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert names == ["medspacy", "PyRuSH"]
    assert "--no-deps -r requirements-nodeps.txt" in (ROOT / "Makefile").read_text()
    import numpy
    import spacy
    from medspacy.context import ConTextRule  # noqa: F401  (imports PyRuSH and QuickUMLS on the way)

    assert int(numpy.__version__.split(".")[0]) >= 2 and spacy.__version__.startswith("3.")
