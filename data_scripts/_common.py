"""Shared command-line plumbing for the conversion scripts.

Every converter's ``main`` runs through :func:`cli`, which gives the same behaviour to all of them:

- outputs are checked against inputs before anything is read (:func:`check_outputs`): an output equal to an input
  would overwrite the dataset, an output folder inside an input folder would be read back as data next time;
- a bad file ends the run with ONE line on stderr — the file, the problem, what to do — and exit status 1
  (2 for a bad command line), not a traceback; with ``--skip-bad`` each skipped entry is one ``skipped:`` line and
  the run ends with the count;
- the manifest is written atomically (:func:`rrg_lite.data.manifest.write_manifest`).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable, Mapping

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without installing


class UsageError(ValueError):
    """A command line that cannot be run as given (e.g. an output path inside the input)."""


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", required=True, help="manifest file to write (JSON lines)")
    p.add_argument("--skip-bad", action="store_true", help="skip bad entries (counted) instead of stopping")
    return p


def _within(a: Path, b: Path) -> bool:
    """True when ``a`` is ``b`` or lies inside it."""
    return a == b or b in a.parents


def check_outputs(inputs: Mapping[str, str | Path | None], outputs: Mapping[str, str | Path | None]) -> None:
    """Refuse outputs that are an input, lie inside an input folder, or contain an input.

    ``inputs``/``outputs`` map option names (``"--root"``) to paths; ``None`` entries are ignored. Paths are
    compared after resolving symbolic links, so ``--out ./x`` and ``--root x`` are the same place.
    """
    ins = {k: Path(v).expanduser().resolve() for k, v in inputs.items() if v}
    for oname, out in outputs.items():
        if not out:
            continue
        o = Path(out).expanduser().resolve()
        for iname, i in ins.items():
            if o == i:
                raise UsageError(f"{oname} {out} is the same path as the input {iname}; the converter would "
                                 f"overwrite its own input: choose an output outside the dataset")
            if i.is_dir() and _within(o, i):
                raise UsageError(f"{oname} {out} is inside the input folder {iname} {i}; outputs written there "
                                 f"would change the dataset and be read back as data on the next run: choose a "
                                 f"path outside {i}")
            if _within(i, o):
                raise UsageError(f"{oname} {out} contains the input {iname} {i}; its contents would be read as "
                                 f"outputs: choose a separate output folder")


def _hint(exc: BaseException) -> str:
    hint = getattr(exc, "hint", None)
    if hint:
        return hint
    from rrg_lite.data.io import ImageFileError

    if isinstance(exc, ImageFileError):
        return "replace or remove this file, or rerun with --skip-bad to skip the study (counted)"
    return "fix the file named above (or the path given on the command line) and rerun"


def cli(body: Callable[[], object]) -> object:
    """Run a converter's body: one clear line per error on stderr instead of a traceback.

    Raises ``SystemExit(1)`` for bad data, ``SystemExit(2)`` for a bad command line; returns the body's result.
    """
    from rrg_lite.data.io import ImageFileError
    from rrg_lite.data.manifest import DataFormatError

    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("rrg_lite.data").setLevel(logging.INFO)
    try:
        return body()
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except (DataFormatError, ImageFileError) as exc:
        print(f"error: {exc}. What to do: {_hint(exc)}", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as exc:   # unreadable input, unwritable output
        where = exc.filename or ""
        print(f"error: {where}: {exc.strerror or exc}. What to do: check the path and its permissions",
              file=sys.stderr)
        raise SystemExit(1) from None


def finish(records, out: str) -> None:
    from rrg_lite.data.manifest import write_manifest

    path = write_manifest(records, out)
    print(f"wrote {len(records)} studies to {path}")
