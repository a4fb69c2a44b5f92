"""Random samples from a trained SinGAN, at any start scale or at arbitrary sizes.

    python random_samples.py --input_name balloons.png --mode random_samples --gen_start_scale 0
    python random_samples.py --input_name balloons.png --mode random_samples_arbitrary_sizes \
        --scale_h 2 --scale_v 1
    python random_samples.py --model_dir <a TrainedModels folder, ours or the reference's> ...
    python random_samples.py --input_dir <folder>     # every image's model, on Ray
"""
import sys

from ..apps.generation import open_trained_model, random_samples, samples_folder
from ..image_io import IMAGES_DIR
from ..metrics import SIFID_SKIPPED, SIFIDOptions, sample_quality
from . import image_stem, resolve_seed
from .options import (add_ray_arguments, check_arguments, check_ray_arguments,
                      cluster_from_args, config_from_args, get_arguments, model_dir_from_args,
                      positive_float, positive_int)


def main():
    parser = get_arguments(__doc__)
    parser.add_argument("--input_dir", default=None,
                        help="folder of --input_name (default: Input/Images); without "
                             "--input_name: samples of every image's model in it, on Ray")
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
    add_ray_arguments(parser)
    args = parser.parse_args()
    check_arguments(parser, args)
    folder_mode = not args.input_name and not args.model_dir and args.input_dir is not None
    check_ray_arguments(parser, args, folder_mode)
    if not args.input_name and not args.model_dir and not folder_mode:
        parser.error("give --input_name (a trained image), --model_dir, or --input_dir (a "
                     "folder of trained images)")
    if folder_mode and args.sifid:
        parser.error("--sifid scores one model; for a folder run evaluate_folder.py")
    args.input_dir = args.input_dir or IMAGES_DIR

    seed = resolve_seed(args.manualSeed)
    arbitrary = args.mode == "random_samples_arbitrary_sizes"
    scale_v, scale_h = (args.scale_v, args.scale_h) if arbitrary else (1.0, 1.0)
    if folder_mode:
        from singan.cluster import many
        result = many.sample_folder(many.list_images(args.input_dir), config_from_args(args),
                                    cluster=cluster_from_args(args),
                                    num_samples=args.num_samples,
                                    gen_start_scale=args.gen_start_scale, scale_v=scale_v,
                                    scale_h=scale_h, arbitrary=arbitrary, seed=seed, amp=args.amp,
                                    device=args.device, out_root=args.out,
                                    show_progress=not args.quiet)
        many.report(result, many.summary_path(args.out, args.input_dir, "samples"))
        return
    folder = model_dir_from_args(args)
    model = open_trained_model(folder, args.input_name, config_from_args(args), args.device,
                               args.input_dir)
    stem = image_stem(args.input_name) if args.input_name else folder.resolve().parent.name

    out = samples_folder(args.out, stem, args.gen_start_scale, scale_v, scale_h, arbitrary,
                         model.output_tag)
    samples = random_samples(model, out, args.num_samples, args.gen_start_scale, scale_v,
                             scale_h, seed, amp=args.amp)
    print(f"{args.num_samples} samples: {out}")
    report_quality(samples, model.trained_real, args)


def report_quality(samples, real, args):
    """The paper's diversity (always) and SIFID against the training image (--sifid)."""
    options = SIFIDOptions(backbone=args.sifid_backbone, weights=args.sifid_weights)
    for line in sample_quality(samples, real, options if args.sifid else None).lines():
        skipped = line.startswith(SIFID_SKIPPED)
        print(f"warning: {line}" if skipped else line, file=sys.stderr if skipped else sys.stdout)
