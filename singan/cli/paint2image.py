"""Paint to image: turn a rough colour painting into an image like the trained one (SPEC 8).

    python paint2image.py --input_name rocket.png --ref_name rocket_paint.png --paint_start_scale 2
    python paint2image.py ... --quantization_flag   # retrain scale n on the image's 5 colours

Needs the model that main_train.py trains for --input_name (same model options). The painting
is read from --ref_dir. Writes Output/Paint2image/<image>/<paint>_out/start_scale=<n>.png; with
--quantization_flag, <paint>_out_quantized/ with real_quant.png, in_paint.png and
in_paint_quant.png too, after retraining scale n once into
TrainedModels/<image>/scale_factor=<s>_paint/start_scale=<n>/ (later runs reuse it).
"""
import argparse
from pathlib import Path

from ..apps.generation import open_trained_model
from ..apps.paint import paint2image
from . import resolve_seed
from .options import (add_injection_arguments, check_arguments, config_from_args,
                      get_arguments, model_dir_from_args)


def flag(text: str) -> bool:
    """'--quantization_flag' alone, or the reference's '--quantization_flag True'."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def main():
    parser = get_arguments(__doc__)
    add_injection_arguments(parser, "paint2image", "Input/Paint", "painting", "paint_start_scale")
    parser.add_argument("--quantization_flag", type=flag, nargs="?", const=True, default=False,
                        help="quantise to the image's 5 colours and retrain scale n for them")
    parser.add_argument("--force", action="store_true",
                        help="retrain the quantised scale even if its model exists")
    args = parser.parse_args()
    check_arguments(parser, args)

    cfg = config_from_args(args)
    model = open_trained_model(model_dir_from_args(args), args.input_name, cfg, args.device,
                               args.input_dir)
    written = paint2image(
        model, args.input_name, Path(args.ref_dir) / args.ref_name, args.paint_start_scale, cfg,
        resolve_seed(args.manualSeed), args.out, args.num_samples, args.quantization_flag,
        args.force, args.quiet, model_dir=args.model_dir)
    print(f"painted: {written[-args.num_samples]}"
          + (f" (+{args.num_samples - 1} more)" if args.num_samples > 1 else ""))
