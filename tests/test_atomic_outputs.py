"""Outputs are written atomically: a writer that fails mid-write leaves the old file or none, never half a file.

Each case makes the library call under a writer fail (PIL's save, the fsync before the rename, the copy behind an
append) and checks that no partial target and no temporary file remain, and that an existing target is unchanged.
The reasoning command line turns a locked request cache into a one-line error and exit status 2.
"""
import hashlib
from pathlib import Path

import pytest
from PIL import Image

import rrg_lite.data.atomic as atomic
import rrg_lite.world.writers as writers
from rrg_lite.prompting import reasoning
from rrg_lite.prompting.cache import CacheLockedError
from rrg_lite.world.ct import generate_petct_cohort
from rrg_lite.world.xray import generate_xray_cohort


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _temporaries(root: Path) -> list[Path]:
    # atomic_path's temporary files are hidden: ".<name>.<random>.tmp<suffix>"
    return [p for p in root.rglob(".*") if p.is_file()]


@pytest.fixture(scope="module")
def xrays():
    return generate_xray_cohort(2, seed=1)


def _failing_save(self, fp, *args, **kwargs):
    """PIL's save that dies half way: some bytes reach the file, then the disk is 'full'."""
    with open(fp, "wb") as fh:
        fh.write(b"\xff\xd8 half an image")
    raise OSError(28, "No space left on device")


def test_image_writer_failing_mid_write_leaves_no_partial_file(tmp_path, xrays, monkeypatch):
    monkeypatch.setattr(Image.Image, "save", _failing_save)
    with pytest.raises(OSError, match="No space left"):
        writers.write_mimic(xrays, tmp_path / "fresh")
    assert not [p for p in (tmp_path / "fresh").rglob("*.jpg")]
    assert _temporaries(tmp_path / "fresh") == []


def test_image_writer_failing_mid_write_keeps_existing_files(tmp_path, xrays, monkeypatch):
    writers.write_mimic(xrays, tmp_path)
    before = _tree(tmp_path)
    assert any(name.endswith(".jpg") for name in before)
    monkeypatch.setattr(Image.Image, "save", _failing_save)
    with pytest.raises(OSError, match="No space left"):
        writers.write_mimic(xrays, tmp_path)
    assert _tree(tmp_path) == before and _temporaries(tmp_path) == []


def test_volume_writer_failing_before_the_rename_keeps_existing_files(tmp_path, monkeypatch):
    studies = generate_petct_cohort(1, seed=1)
    writers.write_petct(studies, tmp_path)
    before = _tree(tmp_path)
    assert f"{studies[0].study_id}/CT.nii.gz" in before
    calls = []

    def failing_fsync(path):   # the temporary file is complete; flushing it to disk fails (EIO)
        calls.append(path)
        if len(calls) == 2:    # CT.nii.gz is replaced, PET.nii.gz is not
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomic, "_fsync", failing_fsync)
    with pytest.raises(OSError, match="Input/output"):
        writers.write_petct(studies, tmp_path)
    assert _tree(tmp_path) == before   # same bytes: the replaced CT is the identical new version
    assert _temporaries(tmp_path) == []


def test_append_failing_mid_copy_keeps_the_old_rows(tmp_path, xrays, monkeypatch):
    writers.write_mimic(xrays[:1], tmp_path)
    before = _tree(tmp_path)

    def failing_copy(src, dst):  # half the existing CSV reaches the temporary copy, then the copy fails
        data = Path(src).read_bytes()
        Path(dst).write_bytes(data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writers.shutil, "copyfile", failing_copy)
    with pytest.raises(OSError, match="No space left"):
        writers.write_mimic(xrays[1:], tmp_path, start_index=1, append=True)
    after = _tree(tmp_path)
    csvs = [name for name in before if name.endswith(".csv") or name.endswith(".jsonl")]
    assert csvs and all(after[name] == before[name] for name in csvs)
    assert _temporaries(tmp_path) == []


def test_append_adds_rows_atomically(tmp_path):
    target = tmp_path / "t.csv"
    target.write_text("a,b\n1,2\n", encoding="utf-8")
    writers._append_text(target, "3,4\n")
    assert target.read_text(encoding="utf-8") == "a,b\n1,2\n3,4\n"
    assert _temporaries(tmp_path) == []


def test_reasoning_cli_reports_a_locked_cache_and_exits_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "records.jsonl").write_text('{"study_id": "s1", "report": "Findings: normal."}\n', encoding="utf-8")
    cache = tmp_path / "out" / "llm_cache.sqlite"
    side = Path(str(cache) + ".unsaved.jsonl")

    def locked_map(self, *args, **kwargs):
        raise CacheLockedError(f"{cache}: the cache database stayed locked for more than 30 s", results=[],
                               unsaved_path=side)

    monkeypatch.setattr(reasoning.LLMRunner, "map", locked_map)
    status = reasoning.main(["--records", str(tmp_path / "records.jsonl"), "--out", str(tmp_path / "out"),
                             "--base-url", "http://127.0.0.1:9/v1", "--model", "m"])
    err = capsys.readouterr().err
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(cache) in err and "locked" in err and "wait for the other run" in err and str(side) in err
