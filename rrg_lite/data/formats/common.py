"""Helpers shared by the readers: CSV with required columns, text cleaning, counted skips."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pandas as pd

from ..manifest import DataFormatError

log = logging.getLogger("rrg_lite.data")


class Problems:
    """Bad rows/files: raise at once (default) or, with ``skip_bad=True``, count and log them.

    ``problems.skipped`` is a list of (file, reason); readers return it in ``problems`` for the caller to report.
    """

    def __init__(self, skip_bad: bool = False):
        self.skip_bad = skip_bad
        self.skipped: list[tuple[str, str]] = []

    def __call__(self, where: str | Path, reason: str) -> None:
        if not self.skip_bad:
            raise DataFormatError(f"{where}: {reason}")
        self.skipped.append((str(where), reason))

    def summary(self, what: str) -> None:
        if self.skipped:
            log.warning("%s: skipped %d bad entries (first: %s: %s)", what, len(self.skipped), *self.skipped[0])


def read_csv(path: str | Path, required: tuple[str, ...], what: str = "CSV") -> pd.DataFrame:
    """A CSV as strings (NaN for blanks) with ``required`` columns checked; errors name the file."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"{path}: {what} file not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=True)
    except Exception as exc:
        raise DataFormatError(f"{path}: not a readable CSV ({type(exc).__name__}: {exc})") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataFormatError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    return df


def text(value) -> str:
    """A CSV cell as clean text ('' for blank/NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return " ".join(str(value).split())


def number(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    s = str(value).strip()
    if not s:
        return None
    try:
        return float(s)
    except ValueError:
        return None


def read_annotations(path: Path) -> dict[str, dict]:
    """The world's ground-truth sidecar (``world_annotations.jsonl``), keyed by the dataset's name; {} if absent."""
    if not path.exists():
        return {}
    out = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"{path}:{i}: not JSON ({exc})") from exc
            out[rec["name"]] = rec
    return out
