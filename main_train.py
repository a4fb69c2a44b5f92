"""Train SinGAN on one image, then write 50 random samples.

    python main_train.py --input_name balloons.png [--niter 2000 --max_size 250 ...]
"""
from config import check_arguments, config_from_args, get_arguments
from singan.apps.generation import random_samples, samples_folder, train_model
from singan.cli import find_image, image_stem, resolve_seed, run


def main():
    parser = get_arguments(__doc__)
    parser.add_argument("--input_dir", default="Input/Images", help="folder of the image")
    parser.add_argument("--input_name", required=True, help="training image file name")
    parser.add_argument("--mode", default="train", choices=["train"], help="task")
    parser.add_argument("--force", action="store_true",
                        help="retrain from scratch even if a (partial) model exists")
    parser.add_argument("--num_samples", type=int, default=50,
                        help="random samples written after training (0: none)")
    args = parser.parse_args()
    check_arguments(parser, args)

    cfg = config_from_args(args, mode="train")
    seed = resolve_seed(args.manualSeed)
    image = find_image(args.input_dir, args.input_name)
    pyramid, folder = train_model(image, cfg, args.device, seed, args.force, quiet=args.quiet)
    print(f"model: {folder}")
    if args.num_samples > 0:
        out = samples_folder(args.out, image_stem(args.input_name))
        random_samples(pyramid, out, args.num_samples, seed=seed)
        print(f"{args.num_samples} random samples: {out}")


if __name__ == "__main__":
    run(main)
