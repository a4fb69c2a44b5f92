"""Train SinGAN (or ConSinGAN) on one image, then write 50 random samples.

    python main_train.py --input_name balloons.png [--niter 2000 --max_size 250 ...]
    python main_train.py --model consingan --train_mode generation --input_name balloons.png
    python main_train.py --model consingan --fine_tune --model_dir <model> --naive_img <image>
    python main_train.py --input_dir <folder> [...]      # one model per image, on Ray
"""
from .. import train_model
from ..apps.evaluate import fine_tune_model
from ..apps.generation import random_samples, samples_folder
from ..apps.tensorboard_log import TensorBoardLog
from ..driver import RunOptions
from ..guards import check_writable
from ..image_io import IMAGES_DIR
from . import find_image, image_stem, resolve_seed
from .options import (add_checkpoint_argument, add_consingan_arguments, add_ray_arguments,
                      check_arguments, check_consingan_arguments, check_ray_arguments,
                      cluster_from_args, get_arguments, non_negative_int,
                      training_config_from_args)


def main():
    parser = get_arguments(__doc__, both_methods=True)
    parser.add_argument("--input_dir", default=None,
                        help=f"folder of --input_name (default: {IMAGES_DIR}); without "
                             "--input_name: train one model per image in it, on Ray")
    parser.add_argument("--input_name", help="training image file name")
    parser.add_argument("--mode", default="train", choices=["train"], help="task")
    parser.add_argument("--force", action="store_true",
                        help="retrain from scratch even if a (partial) model exists")
    parser.add_argument("--num_samples", type=non_negative_int, default=50,
                        help="random samples written after training (0: none)")
    parser.add_argument("--low_memory", action="store_true",
                        help="SinGAN's lean training step: the same numbers with about half the "
                             "memory (default: taken by itself when the plain step would not "
                             "fit)")
    add_checkpoint_argument(parser)
    parser.add_argument("--tensorboard", default=None, metavar="DIR",
                        help="also write TensorBoard event files (losses, gradient penalty, "
                             "noise amplitudes, each finished scale's images) into DIR "
                             "(needs requirements-tensorboard.txt)")
    graphs = parser.add_mutually_exclusive_group()
    graphs.add_argument("--cuda_graphs", action="store_true",
                        help="SinGAN on CUDA: replay each training iteration from a captured "
                             "CUDA graph (the same kernels and noise, launched at once); the "
                             "default on CUDA in fp32, this also takes it with --amp bf16")
    graphs.add_argument("--no_cuda_graphs", action="store_true",
                        help="run every training iteration eagerly, also on CUDA")
    add_consingan_arguments(parser)
    add_ray_arguments(parser)
    args = parser.parse_args()
    folder_mode = not args.input_name and args.input_dir is not None and not args.fine_tune
    check_consingan_arguments(parser, args, folder_mode)
    check_arguments(parser, args)
    check_ray_arguments(parser, args, folder_mode)

    seed = resolve_seed(args.manualSeed)
    if args.fine_tune:
        run = RunOptions(device=args.device, seed=seed, force=args.force,
                         show_progress=not args.quiet)
        model, folder = fine_tune_model(args.model_dir, args.naive_img, args.niter, run)
        print(f"fine-tuned model: {folder}")
        print(f"evaluate it: python evaluate_model.py --model_dir {folder} "
              f"--naive_img {args.naive_img}")
        return
    cfg = training_config_from_args(args)
    if folder_mode:
        from singan.cluster import many
        images = many.list_images(args.input_dir)
        result = many.train_folder(images, cfg, cluster=cluster_from_args(args),
                                   device=args.device, seed=seed, force=args.force,
                                   num_samples=args.num_samples, amp=args.amp, out_root=args.out,
                                   show_progress=not args.quiet,
                                   checkpoint_minutes=args.checkpoint_minutes)
        many.report(result, many.summary_path(args.out, args.input_dir))
        return
    image = find_image(args.input_dir or IMAGES_DIR, args.input_name)
    stem = image_stem(args.input_name)
    if args.num_samples > 0:
        check_writable(samples_folder(args.out, stem), "samples folder")   # now, not after
    board = TensorBoardLog(args.tensorboard) if args.tensorboard else None
    try:
        model = train_model(image, cfg, device=args.device, seed=seed, force=args.force,
                            low_memory=True if args.low_memory else None,
                            cuda_graphs=True if args.cuda_graphs else
                            False if args.no_cuda_graphs else None,
                            show_progress=not args.quiet, progress=board,
                            checkpoint_minutes=args.checkpoint_minutes)
    finally:
        if board is not None:
            board.close()
    print(f"model: {model.folder}")
    if args.num_samples > 0:
        out = samples_folder(args.out, stem, tag=model.output_tag)
        random_samples(model, out, args.num_samples, seed=seed, amp=args.amp)
        print(f"{args.num_samples} random samples: {out}")
