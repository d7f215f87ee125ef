"""Generation speed and memory of the CPU-profile datasets (500 CT studies + 1,000 X-ray studies ≤ 60 s on 2 cores).

Measured here at one fifth of that size and extrapolated from CPU time (user + system of this process and its
workers), which does not depend on how busy the machine is; wall time is printed for the record.
"""
import os
import resource
import time

import pytest

from rrg_lite.world.build import build_datasets


@pytest.mark.slow
def test_cpu_profile_build_fits_60_seconds_on_two_cores(tmp_path):
    t0, c0 = time.perf_counter(), os.times()
    build_datasets(tmp_path, n_ct=100, n_xray=200, workers=2, seed=0)
    c1 = os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system) + (c1.children_user - c0.children_user) \
        + (c1.children_system - c0.children_system)
    wall = time.perf_counter() - t0
    full_cpu = 5 * cpu
    print(f"1/5 scale: wall {wall:.1f} s, cpu {cpu:.1f} s → full scale ≈ {full_cpu / 2:.1f} s on 2 idle cores")
    assert full_cpu / 2 <= 60.0
    peak_mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    assert peak_mb < 2048 / 3, peak_mb   # three processes (main + 2 workers) stay under 2 GB together
    assert len(list((tmp_path / "ct-rate").rglob("*.nii.gz"))) > 100
