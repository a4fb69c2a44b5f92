"""Editing: make a rough cut-and-paste edit of a trained image look natural (SinGAN, SPEC 8).

    python editing.py --input_name rocket.png --ref_name rocket_edit.png --editing_start_scale 2

Needs the model that main_train.py trains for --input_name (same model options). The edited
image R is read from --ref_dir, its mask from <R>_mask.<ext> beside it (or --mask). Writes
Output/Editing/<image>/<R>_out/start_scale=<n>.png (the generated image) and
start_scale=<n>_masked.png (the training image outside the dilated mask).
"""
from pathlib import Path

from ..apps.generation import open_trained_model
from ..apps.harmonize import masked_injection
from . import resolve_seed
from .options import (add_injection_arguments, check_arguments, config_from_args,
                      get_arguments, model_dir_from_args)


def main():
    parser = get_arguments(__doc__)
    add_injection_arguments(parser, "editing", "Input/Editing", "edited image",
                            "editing_start_scale", mask_region="edited")
    args = parser.parse_args()
    check_arguments(parser, args)

    model = open_trained_model(model_dir_from_args(args), args.input_name,
                               config_from_args(args), args.device, args.input_dir)
    written = masked_injection(
        "editing", model, args.input_name, Path(args.ref_dir) / args.ref_name,
        args.editing_start_scale, resolve_seed(args.manualSeed), args.out, args.mask,
        args.num_samples)
    print(f"edited: {written[0]} and {written[1]}"
          + (f" (+{len(written) - 2} more)" if len(written) > 2 else ""))
