"""Super-resolution: upsample an image by --sr_factor with SinGAN (SPEC section 8).

    python SR.py --input_name <low-resolution image> --sr_factor 4

Trains SinGAN on the image with the SR schedule (alpha 100) into
TrainedModels/<image>/scale_factor=<1/in_scale>,alpha=100/, or reuses that model, then writes
Output/SR/<factor>/<image>_HR.png (sr_factor times the training image, i.e. the input, or the
input scaled down to --max_size) and <image>_compare.png (bicubic upsampling | SinGAN).
"""
import argparse

from ..apps.sr import MIN_SR_FACTOR, SR_ALPHA, super_resolution
from ..image_io import IMAGES_DIR
from . import find_image, resolve_seed
from .options import add_checkpoint_argument, check_arguments, config_from_args, get_arguments


def sr_factor(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > MIN_SR_FACTOR:
        raise argparse.ArgumentTypeError(
            f"must be greater than 1 (at least 2 ** (1/6) = {MIN_SR_FACTOR:.4f}, one "
            f"upsampling step), got {text}")
    return value


def main():
    parser = get_arguments(__doc__)
    parser.set_defaults(alpha=SR_ALPHA)
    parser.add_argument("--input_dir", default=IMAGES_DIR, help="folder of the image")
    parser.add_argument("--input_name", required=True, help="low-resolution image file name")
    parser.add_argument("--sr_factor", type=sr_factor, default=4.0, help="upsampling factor")
    parser.add_argument("--force", action="store_true",
                        help="retrain the SR model from scratch even if it exists")
    parser.add_argument("--mode", default="SR", choices=["SR"], help="task")
    add_checkpoint_argument(parser)
    args = parser.parse_args()
    check_arguments(parser, args)

    folder, hr, compare = super_resolution(
        find_image(args.input_dir, args.input_name), args.sr_factor,
        config_from_args(args), args.device, resolve_seed(args.manualSeed),
        args.out, args.force, args.quiet, checkpoint_minutes=args.checkpoint_minutes)
    print(f"model: {folder}")
    print(f"super-resolved: {hr} (side by side with bicubic: {compare})")
