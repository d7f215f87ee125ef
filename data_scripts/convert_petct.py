"""PET/CT DICOM studies → NIfTI (CT in HU, PET in SUV on the CT grid) + report.json + manifest.

--dicom-root holds one folder per study with a CT/ and a PET/ series folder (names configurable). --reports is a
JSON file {study folder name: {"regions": {"head_neck": {"pet", "ct"}, "chest": ..., "abdomen_pelvis": ...},
"findings": ..., "impression": ...}} (ViPET-VLM's JSON-standardised reports). Only geometry and intensity leave
the DICOM headers; the PET is converted to body-weight SUV from its own tags and resampled onto the CT grid.
"""
import json
from pathlib import Path

from _common import finish, parser


def convert_study(study_dir: Path, out_dir: Path, report: dict, ct_name="CT", pet_name="PET"):
    import numpy as np

    from rrg_lite.data.images import dicom_volume_to_ras, reorient
    from rrg_lite.data.io import read_dicom_series
    from rrg_lite.data.petct import read_pet_suv, resample_like
    from rrg_lite.world.writers import _save_volume

    ct = read_dicom_series(study_dir / ct_name)
    pet = read_pet_suv(study_dir / pet_name)
    pet_on_ct = resample_like(pet, ct)
    affine_ras = dicom_volume_to_ras(ct)
    ct_w, spacing = reorient(ct.array, affine_ras)
    pet_w, _ = reorient(pet_on_ct, affine_ras)
    # world orientation (z I, y P, x L) → NIfTI (x, y, z) with an L-P-I affine
    sz, sy, sx = spacing
    affine = np.diag([-sx, -sy, -sz, 1.0])
    out_dir.mkdir(parents=True, exist_ok=True)
    _save_volume(np.clip(np.rint(ct_w), -1024, 3071), out_dir / "CT.nii.gz", affine, np.int16)
    _save_volume(pet_w, out_dir / "PET.nii.gz", affine, np.float32)
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--dicom-root", required=True)
    p.add_argument("--reports", required=True, help="JSON file: study folder name → report")
    p.add_argument("--out-root", required=True, help="where the NIfTI study folders go")
    p.add_argument("--ct-name", default="CT")
    p.add_argument("--pet-name", default="PET")
    a = p.parse_args(argv)
    from rrg_lite.data.formats.petct import read_petct
    from rrg_lite.data.io import ImageFileError
    from rrg_lite.data.manifest import DataFormatError

    reports = json.loads(Path(a.reports).read_text(encoding="utf-8"))
    skipped = []
    for study in sorted(d for d in Path(a.dicom_root).iterdir() if d.is_dir()):
        try:
            if study.name not in reports:
                raise DataFormatError(f"{study}: no report for this study in {a.reports}")
            convert_study(study, Path(a.out_root) / study.name, reports[study.name], a.ct_name, a.pet_name)
        except (ImageFileError, DataFormatError) as exc:
            if not a.skip_bad:
                raise
            skipped.append(str(exc))
    if skipped:
        print(f"skipped {len(skipped)} studies; first: {skipped[0]}")
    recs = read_petct(a.out_root, skip_bad=a.skip_bad)
    finish(recs, a.out)
    return recs


if __name__ == "__main__":
    main()
