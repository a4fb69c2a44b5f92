"""Animation: GIFs (or MP4s) of a trained image coming to life (SinGAN, SPEC section 8).

    python animation.py --input_name rocket.png [--format mp4]

Trains the animation variant (min_size 20, noise not zero-padded) into
TrainedModels/<image>/scale_factor=<s>_noise_padding/, or reuses it, then writes
Output/Animation/<image>/start_scale=<s>/alpha=<a>_beta=<b>.gif for start scales 0, 1, 2 and
beta 0.80, 0.85, 0.90, 0.95 (alpha 0.1): 12 GIFs of 100 frames at 10 fps. --start_scale,
--alpha_animation and --beta_animation each fix that value (all three: one GIF). --format mp4
writes H.264 MP4s instead (through PyAV: pip install -r requirements-video.txt).
"""
from pathlib import Path

from ..apps.animation import DEFAULT_ALPHA, DEFAULT_BETAS, FPS, NUM_FRAMES, animation
from ..image_io import IMAGES_DIR
from ..layers import ANIMATION_MIN_SIZE
from . import find_image, resolve_seed
from .options import (add_checkpoint_argument, add_format_argument, check_arguments,
                      config_from_args, fraction, get_arguments, non_negative_int,
                      positive_float, positive_int)


def main():
    parser = get_arguments(__doc__)
    parser.set_defaults(min_size=ANIMATION_MIN_SIZE)
    parser.add_argument("--input_dir", default=IMAGES_DIR, help="folder of the image")
    parser.add_argument("--input_name", help="training image file name (required unless "
                        "--model_dir is given)")
    parser.add_argument("--start_scale", type=non_negative_int,
                        help="scales below it keep the training image's layout "
                             "(default: 0, 1 and 2)")
    parser.add_argument("--alpha_animation", type=fraction,
                        help=f"pull towards the reconstruction (default: {DEFAULT_ALPHA})")
    parser.add_argument("--beta_animation", type=fraction,
                        help="momentum of the noise walk (default: 0.80, 0.85, 0.90, 0.95)")
    parser.add_argument("--num_frames", type=positive_int, default=NUM_FRAMES,
                        help="frames per animation")
    parser.add_argument("--fps", type=positive_float, default=FPS, help="frames per second")
    parser.add_argument("--force", action="store_true",
                        help="retrain the animation model from scratch even if it exists")
    parser.add_argument("--model_dir", help="a trained animation model to use instead of "
                        "training one (SinGAN's, or ConSinGAN's --train_mode animation)")
    parser.add_argument("--mode", default="animation", choices=["animation"], help="task")
    add_checkpoint_argument(parser)
    add_format_argument(parser)
    args = parser.parse_args()
    check_arguments(parser, args)

    if not args.input_name and not args.model_dir:
        parser.error("give --input_name (the image to animate) or --model_dir")
    # with --model_dir only, the image's name (for the output folder) is the model's parent
    image = (find_image(args.input_dir, args.input_name) if args.input_name
             else Path(Path(args.model_dir).resolve().parent.name))
    written = animation(
        image, config_from_args(args),
        args.device, resolve_seed(args.manualSeed), args.out,
        start_scales=None if args.start_scale is None else [args.start_scale],
        alphas=[DEFAULT_ALPHA if args.alpha_animation is None else args.alpha_animation],
        betas=DEFAULT_BETAS if args.beta_animation is None else [args.beta_animation],
        num_frames=args.num_frames, fps=args.fps, force=args.force, quiet=args.quiet,
        model_dir=args.model_dir, checkpoint_minutes=args.checkpoint_minutes,
        format=args.format)
    print(f"{len(written)} {args.format.upper()}{'s' if len(written) > 1 else ''} of "
          f"{args.num_frames} frames: {written[0].parent.parent}")
