"""Train SinGAN on one image, then write 50 random samples.

    python main_train.py --input_name balloons.png [--niter 2000 --max_size 250 ...]
    python main_train.py --model consingan --train_mode generation --input_name balloons.png
    python main_train.py --model consingan --fine_tune --model_dir <model> --naive_img <image>
"""
from config import add_consingan_arguments, check_arguments, check_consingan_arguments, \
    config_from_args, consingan_config_from_args, get_arguments, non_negative_int
from singan.apps.generation import random_samples, samples_folder, train_model
from singan.cli import find_image, image_stem, resolve_seed, run
from singan.guards import check_writable


def main():
    parser = get_arguments(__doc__)
    parser.add_argument("--input_dir", default="Input/Images", help="folder of the image")
    parser.add_argument("--input_name", help="training image file name (required)")
    parser.add_argument("--mode", default="train", choices=["train"], help="task")
    parser.add_argument("--force", action="store_true",
                        help="retrain from scratch even if a (partial) model exists")
    parser.add_argument("--num_samples", type=non_negative_int, default=50,
                        help="random samples written after training (0: none)")
    add_consingan_arguments(parser)
    args = parser.parse_args()
    check_consingan_arguments(parser, args)
    check_arguments(parser, args)
    if args.model == "consingan":
        return main_consingan(args)

    cfg = config_from_args(args, mode="train")
    seed = resolve_seed(args.manualSeed)
    image = find_image(args.input_dir, args.input_name)
    out = samples_folder(args.out, image_stem(args.input_name))
    if args.num_samples > 0:
        check_writable(out, "samples folder")   # now, not after the training
    pyramid, folder = train_model(image, cfg, args.device, seed, args.force, quiet=args.quiet)
    print(f"model: {folder}")
    if args.num_samples > 0:
        random_samples(pyramid, out, args.num_samples, seed=seed, amp=args.amp)
        print(f"{args.num_samples} random samples: {out}")


def main_consingan(args):
    """ConSinGAN: train (or fine-tune), then write random samples where the mode has them."""
    from singan import consingan   # here: it imports torchvision, which SinGAN runs never need
    seed = resolve_seed(args.manualSeed)
    if args.fine_tune:
        model, folder = consingan.fine_tune_model(args.model_dir, args.naive_img, args.niter,
                                                  args.device, seed, args.force, args.quiet)
        print(f"fine-tuned model: {folder}")
        print(f"evaluate it: python evaluate_model.py --model_dir {folder} "
              f"--naive_img {args.naive_img}")
        return
    cfg = consingan_config_from_args(args)
    image = find_image(args.input_dir, args.input_name)
    model, folder = consingan.train_model(image, cfg, args.device, seed, args.force,
                                          quiet=args.quiet)
    print(f"model: {folder}")
    if args.num_samples > 0 and not cfg.image_input:
        out = consingan.output_folder(model, folder, args.out) / "random_samples"
        consingan.random_samples(model, out, args.num_samples, seed=seed)
        print(f"{args.num_samples} random samples: {out}")
    print(f"evaluate it: python evaluate_model.py --model_dir {folder}"
          + (" --naive_img <naive image>" if cfg.image_input else ""))


if __name__ == "__main__":
    run(main)
