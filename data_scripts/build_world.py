"""Write the synthetic world in the real datasets' layouts (CT-RATE + RadGenome, MIMIC-CXR-JPG, AMOS-MM, PET/CT)."""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--n-ct", type=int, default=500)
    p.add_argument("--n-xray", type=int, default=1000)
    p.add_argument("--n-amos", type=int, default=0)
    p.add_argument("--n-petct", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--ct-size", type=int, default=64)
    p.add_argument("--xray-size", type=int, default=128)
    a = p.parse_args(argv)
    from rrg_lite.world.build import build_datasets
    from rrg_lite.world.config import WorldConfig

    t = time.perf_counter()
    times = build_datasets(a.out, a.n_ct, a.n_xray, a.n_amos, a.n_petct, a.seed,
                           WorldConfig(ct_size=a.ct_size, xray_size=a.xray_size), a.workers, progress=True)
    print({k: round(v, 1) for k, v in times.items()}, f"total {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
