"""Harmonization: blend a pasted object into a trained image (SinGAN, SPEC section 8).

    python harmonization.py --input_name hubble_deep_field.png \
        --ref_name hubble_deep_field_naive.png --harmonization_start_scale 6

Needs the model that main_train.py trains for --input_name (same model options). The naive
image R is read from --ref_dir, its mask from <R>_mask.<ext> beside it (or --mask); the result
keeps the training image outside the dilated mask. Writes
Output/Harmonization/<image>/<R>_out/start_scale=<n>.png.
"""
from .injection import injection_main


def main():
    written = injection_main(__doc__, "harmonization", "Input/Harmonization", "naive image",
                             "harmonization_start_scale", "pasted")
    more = f" (+{len(written) - 1} more)" if len(written) > 1 else ""
    print(f"harmonized: {written[0]}{more}")
