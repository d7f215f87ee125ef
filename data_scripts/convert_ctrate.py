"""CT-RATE (+ RadGenome-ChestCT) → manifest.

CT-RATE layout under --root: dataset/{train,valid}/..., radiology_text_reports/, multi_abnormality_labels/,
metadata/. RadGenome: --radgenome-csv <split>_region_report.csv and, optionally, --mask-dir <split>_region_mask.
"""
from _common import check_outputs, cli, finish, parser


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--root", required=True)
    p.add_argument("--split", default="train", choices=["train", "valid"])
    p.add_argument("--radgenome-csv", default=None)
    p.add_argument("--mask-dir", default=None)
    p.add_argument("--no-image-check", action="store_true", help="do not require the volume files to exist")
    a = p.parse_args(argv)

    def run():
        check_outputs({"--root": a.root, "--radgenome-csv": a.radgenome_csv, "--mask-dir": a.mask_dir},
                      {"--out": a.out})
        from rrg_lite.data.formats.ctrate import read_ctrate, read_radgenome

        recs = read_ctrate(a.root, a.split, require_images=not a.no_image_check, skip_bad=a.skip_bad)
        if a.radgenome_csv:
            recs = read_radgenome(a.root, a.split, recs, csv_path=a.radgenome_csv, mask_dir=a.mask_dir,
                                  skip_bad=a.skip_bad)
        finish(recs, a.out)
        return recs

    return cli(run)


if __name__ == "__main__":
    main()
