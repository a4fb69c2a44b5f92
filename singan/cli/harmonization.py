"""Harmonization: blend a pasted object into a trained image (SinGAN, SPEC section 8).

    python harmonization.py --input_name hubble_deep_field.png \
        --ref_name hubble_deep_field_naive.png --harmonization_start_scale 6

Needs the model that main_train.py trains for --input_name (same model options). The naive
image R is read from --ref_dir, its mask from <R>_mask.<ext> beside it (or --mask); the result
keeps the training image outside the dilated mask. Writes
Output/Harmonization/<image>/<R>_out/start_scale=<n>.png.
"""
from pathlib import Path

from ..apps.generation import open_trained_model
from ..apps.harmonize import masked_injection
from . import resolve_seed
from .options import (add_injection_arguments, check_arguments, config_from_args,
                      get_arguments, model_dir_from_args)


def main():
    parser = get_arguments(__doc__)
    add_injection_arguments(parser, "harmonization", "Input/Harmonization", "naive image",
                            "harmonization_start_scale", mask_region="pasted")
    args = parser.parse_args()
    check_arguments(parser, args)

    model = open_trained_model(model_dir_from_args(args), args.input_name,
                               config_from_args(args), args.device, args.input_dir)
    written = masked_injection(
        "harmonization", model, args.input_name, Path(args.ref_dir) / args.ref_name,
        args.harmonization_start_scale, resolve_seed(args.manualSeed), args.out, args.mask,
        args.num_samples)
    more = f" (+{len(written) - 1} more)" if len(written) > 1 else ""
    print(f"harmonized: {written[0]}{more}")
