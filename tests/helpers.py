"""Small helpers that several test modules share (importable because pytest puts tests/ on sys.path)."""
import importlib.util
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "data_scripts"


def data_script(name: str):
    """Import ``data_scripts/<name>.py`` as a module (the scripts are not a package)."""
    sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
