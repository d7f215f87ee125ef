"""AMOS-MM (dataset.json with per-body-part findings and VQA) → manifest."""
from _common import check_outputs, cli, finish, parser


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--root", required=True)
    p.add_argument("--split", default="train")
    p.add_argument("--json-name", default="dataset.json")
    p.add_argument("--no-image-check", action="store_true")
    a = p.parse_args(argv)

    def run():
        check_outputs({"--root": a.root}, {"--out": a.out})
        from rrg_lite.data.formats.amosmm import read_amosmm

        recs = read_amosmm(a.root, a.split, a.json_name, require_images=not a.no_image_check, skip_bad=a.skip_bad)
        finish(recs, a.out)
        return recs

    return cli(run)


if __name__ == "__main__":
    main()
