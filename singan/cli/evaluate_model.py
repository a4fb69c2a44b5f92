"""Evaluate a trained ConSinGAN model as the reference's evaluate_model.py does for its mode.

    python evaluate_model.py --model_dir TrainedModels/<image>/consingan_generation,... \
        [--num_samples 50]
    python evaluate_model.py --model_dir <harmonization/editing model> --naive_img <image>

generation/retarget: samples (retarget: also at 1x2, 2x1, 2x2 sizes); animation: GIFs (--format
mp4: MP4s);
harmonization/editing: the naive image harmonized/edited (and blended with <image>_mask<ext>).
Results go to Output/ConSinGAN/<image>/<model folder>/.
"""
from ..apps.evaluate import evaluate, output_folder
from ..apps.generation import open_model
from . import resolve_seed
from .options import (add_format_argument, add_gpu_argument, apply_gpu_argument,
                      check_arguments, get_arguments, positive_int)


def main():
    parser = get_arguments(__doc__)
    parser.add_argument("--model_dir", required=True, help="the trained ConSinGAN model folder")
    parser.add_argument("--num_samples", type=positive_int, default=50,
                        help="random samples per size (generation, retarget)")
    parser.add_argument("--naive_img", default=None,
                        help="naive image to harmonize or edit (harmonization/editing models)")
    parser.add_argument("--num_frames", type=positive_int, default=100,
                        help="frames per animation (animation models)")
    add_format_argument(parser)
    add_gpu_argument(parser)
    args = parser.parse_args()
    check_arguments(parser, args)
    apply_gpu_argument(args)

    seed = resolve_seed(args.manualSeed)
    model = open_model(args.model_dir, args.device)
    out = output_folder(model, args.out)
    written = evaluate(model, out, args.num_samples, args.naive_img, seed, args.num_frames,
                       format=args.format)
    print(f"{model.train_mode} model: {len(written)} results in {out}")
    for path in written:
        print(f"  {path}")
