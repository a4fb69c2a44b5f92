#!/bin/bash
# The README's pictures, from the README's recommended CPU recipe (SinGAN, --niter 250, seed
# 0). Rocket's model (--max_size 192) is the one benchmarks/quality_vs_time.py trains into
# its ladder's folder (the same training as `python main_train.py --input_name rocket.png
# --max_size 192 --niter 250 --manualSeed 0`): run this from the project root after that
# benchmark. The near-square hubble photo takes the recipe at --max_size 150 (131 x 150, the
# same 8 scales): main_train.py and animation.py below train its two models when they are
# missing (about 40 minutes each here) and reuse them after that. The script writes the
# applications' results to Output/ as the README's commands do, then copies the grid each
# command writes into docs/ at the images' real size (the grids enlarge images under 256 px
# tall by a whole factor, each pixel a block: every k-th pixel undoes it exactly).
set -euo pipefail
HUBBLE="--input_name hubble_deep_field.png --max_size 150 --niter 250 --manualSeed 0"
python main_train.py $HUBBLE --quiet
python harmonization.py $HUBBLE --ref_name hubble_deep_field_naive.png \
    --harmonization_start_scale 5
python animation.py $HUBBLE --start_scale 1 --beta_animation 0.9 --num_frames 40 --quiet
MD=TrainedModels/quality_vs_time/rocket/singan_192_250_seed0
python random_samples.py --model_dir $MD --input_name rocket.png --mode random_samples \
    --manualSeed 0 --quiet
python random_samples.py --model_dir $MD --input_name rocket.png \
    --mode random_samples_arbitrary_sizes --scale_v 1 --scale_h 2 --num_samples 4 \
    --manualSeed 0 --quiet
python editing.py --model_dir $MD --input_name rocket.png --ref_name rocket_edit.png \
    --editing_start_scale 5 --manualSeed 0
python paint2image.py --model_dir $MD --input_name rocket.png --ref_name rocket_paint.png \
    --paint_start_scale 3 --manualSeed 0
python SR.py --input_name rocket.png --sr_factor 4 --max_size 64 --niter 250 --manualSeed 0 \
    --quiet
python - <<'PY'
import imageio.v3 as iio

from singan.image_io import grid_zoom, read_image, save_grid

HARMONIZED = "Output/Harmonization/hubble_deep_field/hubble_deep_field_naive_out"
PICTURES = {   # docs picture: (the grid a command above wrote, one of the images in it)
    "rocket_grid": ("Output/RandomSamples/rocket/gen_start_scale=0_grid.png",
                    "Output/RandomSamples/rocket/gen_start_scale=0/0.png"),
    "editing": ("Output/Editing/rocket/rocket_edit_out/start_scale=5_grid.png",
                "Output/Editing/rocket/rocket_edit_out/start_scale=5.png"),
    "paint2image": ("Output/Paint2image/rocket/rocket_paint_out/start_scale=3_grid.png",
                    "Output/Paint2image/rocket/rocket_paint_out/start_scale=3.png"),
    "sr": ("Output/SR/4/rocket_compare.png", "Output/SR/4/rocket_HR.png"),
    "harmonization": (f"{HARMONIZED}/start_scale=5_grid.png", f"{HARMONIZED}/start_scale=5.png"),
}
for name, (grid, member) in PICTURES.items():
    zoom = grid_zoom(iio.imread(member).shape[0])
    iio.imwrite(f"docs/{name}.png", iio.imread(grid)[::zoom, ::zoom])
    print(f"wrote docs/{name}.png")
wide = "Output/RandomSamples_ArbitrerySizes/rocket/scale_v=1.000000_scale_h=2.000000"
save_grid("docs/rocket_wide.png", [read_image(f"{wide}/{i}.png") for i in (0, 1)],
          min_height=0)                   # two of the 2x wider samples, side by side
print("wrote docs/rocket_wide.png")
gif = "Output/Animation/hubble_deep_field/start_scale=1/alpha=0.100000_beta=0.900000.gif"
frames = iio.imread(gif)[::3]             # every 3rd frame of the 40, 3x as long each: the
iio.imwrite("docs/animation.gif", frames, duration=300, loop=0)   # whole walk in 370 kB
print("wrote docs/animation.gif")
PY
