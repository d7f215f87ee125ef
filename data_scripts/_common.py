"""Shared command-line plumbing for the conversion scripts."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without installing


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", required=True, help="manifest file to write (JSON lines)")
    p.add_argument("--skip-bad", action="store_true", help="skip bad entries (counted) instead of stopping")
    return p


def finish(records, out: str) -> None:
    from rrg_lite.data.manifest import write_manifest

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = write_manifest(records, out)
    print(f"wrote {len(records)} studies to {path}")
