"""Helpers shared by the readers: CSV with required columns, text cleaning, counted skips."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pandas as pd

from ..manifest import DataFormatError

log = logging.getLogger("rrg_lite.data")


SKIP_HINT = "fix or remove this entry, or rerun with --skip-bad (skip_bad=True) to skip such entries (they are counted)"


class Problems:
    """Bad rows/files: raise at once (default) or, with ``skip_bad=True``, count and log them.

    ``problems.skipped`` is a list of (file, reason). Each skip is logged at INFO as one ``skipped: <where>:
    <reason>`` line (the converter CLIs show them), and :meth:`summary` logs the count at WARNING.
    """

    def __init__(self, skip_bad: bool = False):
        self.skip_bad = skip_bad
        self.skipped: list[tuple[str, str]] = []

    def __call__(self, where: str | Path, reason: str) -> None:
        if not self.skip_bad:
            raise DataFormatError(f"{where}: {reason}", hint=SKIP_HINT)
        self.skipped.append((str(where), reason))
        log.info("skipped: %s: %s", where, reason)

    def error(self, exc: Exception, where: str | Path | None = None) -> None:
        """Like calling the object, for an exception whose message already names its file."""
        if not self.skip_bad:
            if isinstance(exc, DataFormatError) and exc.hint is None:
                exc.hint = SKIP_HINT
            raise exc
        self.skipped.append((str(where or ""), str(exc)))
        log.info("skipped: %s", exc)

    def summary(self, what: str) -> None:
        if self.skipped:
            log.warning("%s: skipped %d bad entries (first: %s: %s)", what, len(self.skipped), *self.skipped[0])


def read_csv(path: str | Path, required: tuple[str, ...], what: str = "CSV") -> pd.DataFrame:
    """A CSV as strings (NaN for blanks) with ``required`` columns checked; errors name the file."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"{path}: {what} file not found",
                              hint="check that --root points at the dataset folder in its published layout")
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
