"""Make the example inputs of the applications from the photos in Input/Images.

    python Input/make_app_examples.py

- Harmonization/hubble_deep_field_naive.png (+ _mask.png): a disc cut from chelsea.png (the
  cat's eye), shrunk and pasted into hubble_deep_field.png, with the disc as its mask.
- Editing/rocket_edit.png (+ _mask.png): the rocket of rocket.png copied to the left, between
  two towers, with the copied rectangle as its mask.
- Paint/rocket_paint.png: a coarse colour sketch of rocket.png (a heavy median filter, then
  every pixel set to the nearest of the photo's 5 k-means colours).

Each is made at the photo's size, then scaled to the size SinGAN trains that photo at by
default (250 px on the longer side), so that no resize is needed at the paper's settings; the
scripts resize them (with a warning) for models trained at another --max_size.
"""
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from scipy.ndimage import median_filter
from skimage.transform import resize

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from singan.apps.paint import kmeans_colours, quantize  # noqa: E402  (the project's own k-means)
from singan.methods.singan.pyramid import plan_pyramid  # noqa: E402


def training_size(pixels: np.ndarray):
    """(h, w) of the finest training image at the default options (max_size 250)."""
    return plan_pyramid(*pixels.shape[:2]).real_shape


def photo(name: str) -> np.ndarray:
    return iio.imread(HERE / "Images" / f"{name}.png")[:, :, :3]


def write(path: Path, pixels: np.ndarray, mask: bool = False) -> None:
    """Save at the default training size (a mask stays black and white)."""
    small = resize(pixels.astype(float), training_size(pixels), anti_aliasing=True,
                   preserve_range=True)
    small = np.where(small >= 128, 255, 0) if mask else np.round(small)
    pixels = small.astype(np.uint8)
    path.parent.mkdir(exist_ok=True)
    iio.imwrite(path, pixels)
    print(f"{path.relative_to(HERE.parent)}: {pixels.shape[0]} x {pixels.shape[1]}")


def harmonization_example() -> None:
    """The cat's eye (a disc of radius 42 around (y 100, x 152) in chelsea.png), shrunk to
    radius 26 and pasted into the deep field at (y 190, x 250)."""
    field, cat = photo("hubble_deep_field"), photo("chelsea")
    r, cy, cx = 42, 100, 152
    patch = cat[cy - r:cy + r, cx - r:cx + r].astype(float)
    size = 2 * 26
    patch = resize(patch, (size, size), anti_aliasing=True, preserve_range=True)
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    disc = np.hypot(yy, xx) <= size / 2
    naive, mask = field.copy(), np.zeros(field.shape[:2], np.uint8)
    top, left = 190 - size // 2, 250 - size // 2
    region = naive[top:top + size, left:left + size]
    region[disc] = np.round(patch[disc])
    mask[top:top + size, left:left + size][disc] = 255
    folder = HERE / "Harmonization"
    write(folder / "hubble_deep_field_naive.png", naive)
    write(folder / "hubble_deep_field_naive_mask.png", np.repeat(mask[:, :, None], 3, 2),
          mask=True)


def editing_example() -> None:
    """The rocket (rows 72..236, columns 188..218 of rocket.png) copied to columns 64..94."""
    rocket = photo("rocket")
    top, bottom, left, right, to = 72, 236, 188, 218, 64
    edit, mask = rocket.copy(), np.zeros(rocket.shape[:2], np.uint8)
    edit[top:bottom, to:to + right - left] = rocket[top:bottom, left:right]
    mask[top:bottom, to:to + right - left] = 255
    folder = HERE / "Editing"
    write(folder / "rocket_edit.png", edit)
    write(folder / "rocket_edit_mask.png", np.repeat(mask[:, :, None], 3, 2), mask=True)


def paint_example() -> None:
    """A median filter of 15 px, then the photo's 5 k-means colours."""
    rocket = photo("rocket")
    smooth = median_filter(rocket, size=(15, 15, 1))
    x = torch.from_numpy(smooth).permute(2, 0, 1)[None].float() / 127.5 - 1   # [1, 3, H, W]
    centres = kmeans_colours(torch.from_numpy(rocket).permute(2, 0, 1)[None].float() / 127.5 - 1)
    sketch = ((quantize(x, centres)[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255)
    write(HERE / "Paint" / "rocket_paint.png", sketch.numpy())


if __name__ == "__main__":
    harmonization_example()
    editing_example()
    paint_example()
