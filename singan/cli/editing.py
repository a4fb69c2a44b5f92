"""Editing: make a rough cut-and-paste edit of a trained image look natural (SinGAN, SPEC 8).

    python editing.py --input_name rocket.png --ref_name rocket_edit.png --editing_start_scale 2

Needs the model that main_train.py trains for --input_name (same model options). The edited
image R is read from --ref_dir, its mask from <R>_mask.<ext> beside it (or --mask). Writes
Output/Editing/<image>/<R>_out/start_scale=<n>.png (the generated image) and
start_scale=<n>_masked.png (the training image outside the dilated mask).
"""
from .injection import injection_main


def main():
    written = injection_main(__doc__, "editing", "Input/Editing", "edited image",
                             "editing_start_scale", "edited")
    print(f"edited: {written[0]} and {written[1]}"
          + (f" (+{len(written) - 2} more)" if len(written) > 2 else ""))
