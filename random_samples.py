"""Random samples from a trained SinGAN, at any start scale or at arbitrary sizes.

    python random_samples.py --input_name balloons.png --mode random_samples --gen_start_scale 0
    python random_samples.py --input_name balloons.png --mode random_samples_arbitrary_sizes \
        --scale_h 2 --scale_v 1
    python random_samples.py --model_dir <a TrainedModels folder, ours or the reference's> ...
"""
import sys
from pathlib import Path

import numpy as np

from config import check_arguments, config_from_args, get_arguments, positive_float, \
    positive_int
from singan.apps.generation import model_folder, open_model, random_samples, samples_folder
from singan.cli import find_image, image_stem, resolve_seed, run
from singan.errors import SinGANError
from singan.image_io import read_image
from singan.metrics import diversity, sifid_scores
from singan.pyramid import plan_pyramid


def main():
    parser = get_arguments(__doc__)
    parser.add_argument("--input_dir", default="Input/Images", help="folder of the image")
    parser.add_argument("--input_name", help="training image file name")
    parser.add_argument("--model_dir", help="model folder (default: the one main_train.py "
                        "writes for --input_name and the current settings)")
    parser.add_argument("--mode", default="random_samples",
                        choices=["random_samples", "random_samples_arbitrary_sizes"])
    parser.add_argument("--gen_start_scale", type=int, default=0,
                        help="scales below it follow the training image's reconstruction")
    parser.add_argument("--scale_h", type=positive_float, default=1.5,
                        help="horizontal size factor (arbitrary sizes)")
    parser.add_argument("--scale_v", type=positive_float, default=1.0,
                        help="vertical size factor (arbitrary sizes)")
    parser.add_argument("--num_samples", type=positive_int, default=50, help="samples to draw")
    parser.add_argument("--sifid", action="store_true",
                        help="also score the samples with SIFID against the training image "
                             "(needs the Inception weights file, see SIFID/README.md)")
    parser.add_argument("--sifid_weights", default=None,
                        help="the Inception weights file for --sifid (default: SIFID's lookup)")
    parser.add_argument("--sifid_backbone", default="torchvision",
                        choices=["torchvision", "fid-inception"], help="weights for --sifid")
    args = parser.parse_args()
    check_arguments(parser, args)
    if not args.input_name and not args.model_dir:
        parser.error("give --input_name (a trained image) or --model_dir")

    cfg = config_from_args(args, mode="train")
    seed = resolve_seed(args.manualSeed)
    scale_factor = None
    if args.model_dir:
        folder = Path(args.model_dir)
        if args.input_name:   # the reference recomputes the factor from the image
            image = read_image(find_image(args.input_dir, args.input_name))
            scale_factor = plan_pyramid(image.shape[2], image.shape[3], cfg.min_size,
                                        cfg.max_size, cfg.scale_factor).scale_factor
        stem = image_stem(args.input_name) if args.input_name else folder.resolve().parent.name
    else:
        folder = model_folder(args.input_name, cfg)
        stem = image_stem(args.input_name)
    pyramid = open_model(folder, args.device, scale_factor,
                         train_hint=f"python main_train.py --input_name {args.input_name}")

    arbitrary = args.mode == "random_samples_arbitrary_sizes"
    scale_v, scale_h = (args.scale_v, args.scale_h) if arbitrary else (1.0, 1.0)
    out = samples_folder(args.out, stem, args.gen_start_scale, scale_v, scale_h, arbitrary)
    samples = random_samples(pyramid, out, args.num_samples, args.gen_start_scale, scale_v,
                             scale_h, seed, amp=args.amp)
    print(f"{args.num_samples} samples: {out}")
    report_quality(samples, pyramid.reals[-1], args)


def report_quality(samples, real, args):
    """The paper's diversity (always) and SIFID against the training image (--sifid)."""
    if len(samples) > 1:
        print(f"diversity: {diversity(samples, real):.4f} "
              "(per-pixel std across samples / std of the training image)")
    if not args.sifid:
        return
    from SIFID import SIFIDError
    try:
        label, values = sifid_scores(samples, real, args.sifid_weights, samples.device,
                                     args.sifid_backbone)
    except SIFIDError as err:
        print(f"warning: SIFID skipped: {err}", file=sys.stderr)
        return
    values = np.asarray(values)
    print(f"{label}: mean {values.mean():.4f}, std {values.std():.4f} over {len(values)} samples")


if __name__ == "__main__":
    run(main)
