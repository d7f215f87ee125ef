"""Build the world's datasets on disk (the CPU profile's ``data_root``), generating in parallel, writing in order.

``build_datasets(root)`` writes::

    root/ct-rate/    CT-RATE + RadGenome-ChestCT layout (train and valid)
    root/mimic-cxr/  MIMIC-CXR-JPG layout (train and test splits, priors as earlier studies)
    root/amos-mm/    AMOS-MM layout          (only if n_amos > 0)
    root/petct/      PET/CT folders          (only if n_petct > 0)

Study i of each cohort depends only on (seed, cohort, i), so the files are byte-identical for any ``workers``.
Workers are started by :func:`rrg_lite.runtime.process_pool` (spawn, one thread each), never by forking the
caller: this runs inside Jupyter kernels, whose ZMQ and OpenMP threads make ``fork`` unsafe. Small cohorts are
generated in-process, where starting the workers would cost more than it saves.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..runtime import process_pool
from .config import WorldConfig
from .ct import make_ct_study
from .xray import make_xray_study


def _ct_job(args):
    seed, cfg, sid, pid = args[:4]
    return make_ct_study(seed, cfg, study_id=sid, patient_id=pid)


def _ctrate_job(args):
    """Generate one CT study and write its files in the worker; only the CSV rows travel back."""
    from .writers import ctrate_files
    root, split, n = args[4:]
    return ctrate_files(_ct_job(args), root, split, n)


def _mimic_job(args):
    from .writers import mimic_files
    seed, cfg, sid, pid, root, split, i = args
    return mimic_files(make_xray_study(seed, cfg, study_id=sid, subject_id=pid), root, split, i)


# A spawned worker costs about 0.7 s of imports; a study about 0.03 s of CPU (100 CT + 200 X-ray: 9.5 s on one
# core). Below this many studies per worker, one process is faster than a pool.
MIN_JOBS_PER_WORKER = 32


def _stream(job, args, workers: int, desc: str, progress: bool):
    it = None
    workers = min(workers, len(args) // MIN_JOBS_PER_WORKER)
    if workers > 1:
        pool = process_pool(workers)
        it = pool.map(job, args, chunksize=4)   # results in order, as they come
    else:
        pool = None
        it = map(job, args)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, total=len(args), desc=desc)
    try:
        yield from it
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _args(seed: int, cohort: int, n: int, cfg, prefix: str):
    seeds = np.random.SeedSequence([seed, cohort]).spawn(n)
    return [(seeds[i], cfg, f"{prefix}_{i:05d}", f"{prefix}p_{i:05d}") for i in range(n)]


def build_datasets(root: str | Path, n_ct: int = 500, n_xray: int = 1000, n_amos: int = 0, n_petct: int = 0,
                   seed: int = 0, cfg: WorldConfig | None = None, workers: int = 2, valid_fraction: float = 0.2,
                   progress: bool = False) -> dict[str, float]:
    """Generate and write the cohorts; returns seconds spent per dataset."""
    from .writers import ctrate_tables, mimic_tables, write_amosmm, write_petct

    cfg = cfg or WorldConfig()
    root = Path(root)
    times = {}
    t = time.perf_counter()
    if n_ct:
        n_valid = int(round(n_ct * valid_fraction))
        args = _args(seed, 1, n_ct, cfg.replace(scan_range="chest"), "ct")
        n_train = n_ct - n_valid
        args = [a + (root / "ct-rate", "train" if i < n_train else "valid", i + 1 if i < n_train else i - n_train + 1)
                for i, a in enumerate(args)]
        rows = list(_stream(_ctrate_job, args, workers, "CT-RATE", progress))
        ctrate_tables(rows[:n_train], root / "ct-rate", "train")
        ctrate_tables(rows[n_train:], root / "ct-rate", "valid")
        times["ct-rate"] = time.perf_counter() - t
    t = time.perf_counter()
    if n_xray:
        n_test = int(round(n_xray * valid_fraction))
        n_train = n_xray - n_test
        args = [a + (root / "mimic-cxr", "train" if i < n_train else "test", i)
                for i, a in enumerate(_args(seed, 2, n_xray, cfg, "cxr"))]
        rows = list(_stream(_mimic_job, args, workers, "MIMIC-CXR", progress))
        mimic_tables(rows, root / "mimic-cxr")
        times["mimic-cxr"] = time.perf_counter() - t
    t = time.perf_counter()
    if n_amos:
        n_valid = max(1, int(round(n_amos * valid_fraction)))
        studies = list(_stream(_ct_job, _args(seed, 3, n_amos, cfg.replace(scan_range="cap"), "amos"), workers,
                               "AMOS-MM", progress))
        write_amosmm({"train": studies[: n_amos - n_valid], "validation": studies[n_amos - n_valid:]}, root / "amos-mm")
        times["amos-mm"] = time.perf_counter() - t
    t = time.perf_counter()
    if n_petct:
        pcfg = cfg.replace(pet=True, scan_range="whole_body")
        write_petct(_stream(_ct_job, _args(seed, 4, n_petct, pcfg, "petct"), workers, "PET/CT", progress),
                    root / "petct")
        times["petct"] = time.perf_counter() - t
    return times
