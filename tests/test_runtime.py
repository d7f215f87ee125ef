"""Thread counts and worker processes (rrg_lite.runtime), and the world build's pool that uses them."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rrg_lite import runtime

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, sys
import numpy, torch
from threadpoolctl import threadpool_info
from rrg_lite.runtime import set_threads
n = set_threads(int(sys.argv[1]) if len(sys.argv) > 1 else None)
print(json.dumps({"returned": n, "torch": torch.get_num_threads(),
                  "pools": {p["user_api"]: p["num_threads"] for p in threadpool_info()},
                  "omp_env": os.environ.get("OMP_NUM_THREADS")}))
"""


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("RRG_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    return {**env, **extra}


def _run_child(args=(), **extra):
    out = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True,
                         env=_clean_env(**extra), timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_set_threads_sets_torch_blas_and_openmp_after_import():
    """torch and NumPy are imported (pools started at their default size) before set_threads(1) runs."""
    r = _run_child(["1"])
    assert r["returned"] == 1 and r["torch"] == 1
    assert r["pools"] and all(n == 1 for n in r["pools"].values()), r["pools"]
    assert r["omp_env"] == "1"


def test_rrg_threads_is_read_when_no_count_is_given():
    assert _run_child(RRG_THREADS="1")["torch"] == 1


def test_without_a_count_nothing_changes():
    r = _run_child()
    assert r["returned"] == r["torch"] >= 1 and r["omp_env"] is None


@pytest.mark.parametrize("bad", ["many", "0", "-2"])
def test_a_bad_rrg_threads_fails_clearly(monkeypatch, bad):
    monkeypatch.setenv("RRG_THREADS", bad)
    with pytest.raises(ValueError, match=f"RRG_THREADS={bad!r}"):
        runtime.set_threads()


def test_fork_is_refused_and_spawn_is_the_default():
    with pytest.raises(ValueError, match="fork is unsafe"):
        runtime.mp_context("fork")
    assert runtime.mp_context().get_start_method() == "spawn"


def _worker_view(_):
    # module-level, so spawned workers can unpickle it
    return {"omp": os.environ.get("OMP_NUM_THREADS"), "pid": os.getpid(),
            "parent_marker": "rrg_test_parent_marker" in sys.modules}


def test_process_pool_workers_start_clean_with_one_thread():
    sys.modules["rrg_test_parent_marker"] = sys  # a forked child would inherit this; a spawned one does not
    try:
        with runtime.process_pool(2) as pool:
            views = list(pool.map(_worker_view, range(4)))
    finally:
        del sys.modules["rrg_test_parent_marker"]
    assert all(v["omp"] == "1" for v in views)
    assert not any(v["parent_marker"] for v in views), "workers were forked from the caller"
    assert os.getpid() not in {v["pid"] for v in views}


def _tree_hash(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_world_build_through_the_pool_is_byte_identical(tmp_path, monkeypatch):
    """Small cohorts run in-process by default; force the pool so that the spawned path is what is compared."""
    from rrg_lite.world import build

    build.build_datasets(tmp_path / "one", n_ct=3, n_xray=4, n_amos=2, seed=5, workers=1)
    used = []
    real_pool = build.process_pool
    monkeypatch.setattr(build, "MIN_JOBS_PER_WORKER", 1)
    monkeypatch.setattr(build, "process_pool", lambda w: used.append(w) or real_pool(w))
    build.build_datasets(tmp_path / "two", n_ct=3, n_xray=4, n_amos=2, seed=5, workers=2)
    assert used and all(w == 2 for w in used), "the pool was not used"
    a, b = _tree_hash(tmp_path / "one"), _tree_hash(tmp_path / "two")
    assert len(a) > 20 and a == b


def test_small_cohorts_skip_the_pool(monkeypatch, tmp_path):
    from rrg_lite.world import build

    monkeypatch.setattr(build, "process_pool", lambda w: pytest.fail("a pool for 3 studies"))
    build.build_datasets(tmp_path, n_ct=3, n_xray=0, seed=1, workers=2)
