"""PET/CT DICOM studies → NIfTI (CT in HU, PET in SUV on the CT grid) + report.json + manifest.

--dicom-root holds one folder per study with a CT/ and a PET/ series folder (names configurable). --reports is a
JSON file {study folder name: {"regions": {"head_neck": {"pet", "ct"}, "chest": ..., "abdomen_pelvis": ...},
"findings": ..., "impression": ...}} (ViPET-VLM's JSON-standardised reports). Only geometry and intensity leave
the DICOM headers; the PET is converted to body-weight SUV from its own tags and resampled onto the CT grid.

The manifest lists exactly the studies THIS run converted and then read back successfully: study folders left in
--out-root by earlier runs (stale, or truncated by a kill) are not listed. Every file is written atomically.
"""
import json
from pathlib import Path

from _common import check_outputs, cli, finish, parser


def convert_study(study_dir: Path, out_dir: Path, report: dict, ct_name="CT", pet_name="PET"):
    import numpy as np

    from rrg_lite.data.atomic import write_text_atomic
    from rrg_lite.data.images import dicom_volume_to_ras, reorient
    from rrg_lite.data.io import read_dicom_series, save_nifti
    from rrg_lite.data.petct import read_pet_suv, resample_like

    ct = read_dicom_series(study_dir / ct_name)
    pet = read_pet_suv(study_dir / pet_name)
    pet_on_ct = resample_like(pet, ct)
    affine_ras = dicom_volume_to_ras(ct)
    ct_w, spacing = reorient(ct.array, affine_ras)
    pet_w, _ = reorient(pet_on_ct, affine_ras)
    # world orientation (z I, y P, x L) → NIfTI (x, y, z) with an L-P-I affine
    sz, sy, sx = spacing
    affine = np.diag([-sx, -sy, -sz, 1.0])
    xyz = (2, 1, 0)
    save_nifti(np.transpose(np.clip(np.rint(ct_w), -1024, 3071), xyz), out_dir / "CT.nii.gz", affine, dtype=np.int16)
    save_nifti(np.transpose(pet_w, xyz), out_dir / "PET.nii.gz", affine, dtype=np.float32)
    write_text_atomic(out_dir / "report.json", json.dumps(report, indent=1, ensure_ascii=False) + "\n")


def verify_study(out_dir: Path) -> None:
    """Read back what was written: both volumes load, on one grid, with finite values."""
    from rrg_lite.data.io import ImageFileError, load_nifti

    ct, pet = load_nifti(out_dir / "CT.nii.gz"), load_nifti(out_dir / "PET.nii.gz")
    if ct.shape != pet.shape:
        raise ImageFileError(f"{out_dir}: CT {ct.shape} and PET {pet.shape} were written on different grids")


def load_reports(path: str) -> dict:
    from rrg_lite.data.manifest import DataFormatError

    p = Path(path)
    try:
        reports = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataFormatError(f"{p}: reports file not found", hint="check the --reports path") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{p}: not valid JSON ({exc})",
                              hint="fix the JSON (e.g. python -m json.tool reports.json shows where)") from None
    if not isinstance(reports, dict):
        raise DataFormatError(f"{p}: expected a JSON object {{study folder name: report}}, got "
                              f"{type(reports).__name__}", hint="write one object keyed by study folder name")
    return reports


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--dicom-root", required=True)
    p.add_argument("--reports", required=True, help="JSON file: study folder name → report")
    p.add_argument("--out-root", required=True, help="where the NIfTI study folders go")
    p.add_argument("--ct-name", default="CT")
    p.add_argument("--pet-name", default="PET")
    a = p.parse_args(argv)

    def run():
        from _common import UsageError

        check_outputs({"--dicom-root": a.dicom_root, "--reports": a.reports},
                      {"--out-root": a.out_root, "--out": a.out})
        if Path(a.out).resolve() == Path(a.out_root).resolve():
            raise UsageError(f"--out {a.out} and --out-root {a.out_root} are the same path; give the manifest a "
                             f"file name")
        from rrg_lite.data.formats.common import Problems
        from rrg_lite.data.formats.petct import read_petct
        from rrg_lite.data.io import ImageFileError
        from rrg_lite.data.manifest import DataFormatError

        dicom_root = Path(a.dicom_root)
        if not dicom_root.is_dir():
            raise DataFormatError(f"{dicom_root}: DICOM root folder not found", hint="check the --dicom-root path")
        reports = load_reports(a.reports)
        problems = Problems(a.skip_bad)
        written = []
        for study in sorted(d for d in dicom_root.iterdir() if d.is_dir()):
            try:
                if study.name not in reports:
                    raise DataFormatError(f"{study}: no report for this study in {a.reports}")
                if not isinstance(reports[study.name], dict):
                    raise DataFormatError(f"{a.reports}: report of {study.name!r} is "
                                          f"{type(reports[study.name]).__name__}, not an object")
                out_dir = Path(a.out_root) / study.name
                convert_study(study, out_dir, reports[study.name], a.ct_name, a.pet_name)
                verify_study(out_dir)
            except (ImageFileError, DataFormatError) as exc:
                problems.error(exc, study)   # re-raises (with a hint) unless --skip-bad
                continue
            written.append(study.name)
        problems.summary(str(dicom_root))
        if not written:
            raise DataFormatError(f"{dicom_root}: no study converted", hint="see the skipped lines above")
        # only the studies this run wrote and read back — never stale folders of earlier runs
        recs = read_petct(a.out_root, skip_bad=a.skip_bad, studies=written)
        finish(recs, a.out)
        if problems.skipped:
            print(f"skipped {len(problems.skipped)} studies (listed above)")
        return recs

    return cli(run)


if __name__ == "__main__":
    main()
