"""MIMIC-CXR-JPG (images + metadata/split/chexpert CSVs) with MIMIC-CXR reports → manifest (priors linked)."""
from _common import check_outputs, cli, finish, parser


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--root", required=True, help="MIMIC-CXR-JPG root (files/, mimic-cxr-2.0.0-*.csv[.gz])")
    p.add_argument("--reports-root", default=None, help="MIMIC-CXR root holding files/p1x/p…/s….txt (default: --root)")
    p.add_argument("--split", default="train", choices=["train", "validate", "test", "all"])
    p.add_argument("--views", default=None, help="comma-separated ViewPosition values to keep, e.g. PA,AP,LATERAL")
    p.add_argument("--no-image-check", action="store_true")
    p.add_argument("--no-label-check", action="store_true",
                   help="keep studies that have no row in the CheXpert CSV (empty labels, counted) instead of stopping")
    a = p.parse_args(argv)

    def run():
        check_outputs({"--root": a.root, "--reports-root": a.reports_root}, {"--out": a.out})
        from rrg_lite.data.formats.mimic import read_mimic

        recs = read_mimic(a.root, None if a.split == "all" else a.split, reports_root=a.reports_root,
                          require_images=not a.no_image_check, skip_bad=a.skip_bad,
                          views=tuple(a.views.split(",")) if a.views else None,
                          require_labels=not a.no_label_check)
        finish(recs, a.out)
        return recs

    return cli(run)


if __name__ == "__main__":
    main()
