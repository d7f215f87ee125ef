"""The CI entry point and the Makefile fail when a stage fails — including a pytest stage that collects nothing."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fake_make(tmp_path: Path, status: int) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    make = bin_dir / "make"
    make.write_text(f"#!/bin/sh\necho \"fake make $*\"\nexit {status}\n")
    make.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.parametrize("status", [0, 1, 5])
def test_ci_run_exits_with_make_tests_status(tmp_path, status):
    out = subprocess.run(["bash", str(ROOT / ".ci" / "run")], env=_fake_make(tmp_path, status), capture_output=True,
                         text=True, timeout=120)
    assert "fake make test" in out.stdout
    assert f"with exit status {status}" in out.stdout
    assert out.returncode == status


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_a_pytest_stage_that_collects_nothing_fails_the_target(tmp_path):
    probe = tmp_path / "probe.mk"
    probe.write_text(f"include {ROOT / 'Makefile'}\nprobe:\n"
                     "\t$(call pytest_stage,-m no_such_marker tests/test_ci.py -q -p no:cacheprovider)\n")
    out = subprocess.run(["make", "-s", "-f", str(probe), "probe"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode != 0
    assert "collected no tests (exit 5)" in out.stderr
