"""Atomic file output: a killed or crashed writer leaves the old file or no file, never half a file.

Every output the data code writes (manifests, NIfTI volumes, report JSON) goes through :func:`atomic_path`:
the bytes are written to a temporary file *in the same folder* (so the final rename never crosses file
systems), flushed to disk, and moved over the destination with :func:`os.replace`, which POSIX and Windows
make atomic. A reader therefore sees either the complete previous version or the complete new one.

    with atomic_path("out/manifest.jsonl") as tmp:     # tmp: a Path next to the destination
        tmp.write_text(...)                            # or nib.save(img, tmp), df.to_csv(tmp) ...
    write_text_atomic("out/report.json", text)
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "atomic_open", "write_text_atomic", "write_bytes_atomic"]

# mkstemp creates files readable by the owner only; outputs get the usual permissions (0666 minus the umask).
_UMASK = os.umask(0)
os.umask(_UMASK)


def _suffix(path: Path) -> str:
    # keep the full extension (".nii.gz", ".csv.gz"): libraries such as nibabel pick the format from it
    suffixes = "".join(path.suffixes[-2:]) if path.suffixes else ""
    return ".tmp" + suffixes


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync; the rename is still atomic
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on a clean exit it replaces ``path`` atomically.

    On an exception (or a kill) the temporary file is removed (or left as a hidden ``.<name>.*.tmp*`` file that no
    reader globbing ``*.nii.gz`` / ``*.jsonl`` confuses with data, since its name starts with a dot) and ``path``
    is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_suffix(path), dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{path}: the writer did not create its temporary file {tmp}")
        _fsync(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator:
    """``open()`` for writing, atomically: the file appears at ``path`` only once the block has finished."""
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"atomic_open writes whole files; mode must be 'w', 'wt' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh
            fh.flush()


def write_text_atomic(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    with atomic_open(path, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(path)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)
