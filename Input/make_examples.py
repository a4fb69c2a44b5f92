"""Make the example photos in Input/Images from the images that scikit-image ships.

    python Input/make_examples.py

Each photo is scaled to at most 400 px on its longer side (SinGAN trains at 250 px by default)
and saved as PNG. Sources and licences are listed in Input/README.md.
"""
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import skimage.data
from skimage.transform import resize

LONGEST = 400
PHOTOS = ["coffee", "chelsea", "rocket", "astronaut", "hubble_deep_field"]


def main():
    out = Path(__file__).resolve().parent / "Images"
    out.mkdir(exist_ok=True)
    for name in PHOTOS:
        image = getattr(skimage.data, name)()
        h, w = image.shape[:2]
        scale = min(1.0, LONGEST / max(h, w))
        size = (round(h * scale), round(w * scale))
        small = resize(image, size, anti_aliasing=True, preserve_range=True)
        iio.imwrite(out / f"{name}.png", np.round(small).astype(np.uint8))
        print(f"{out / name}.png: {size[0]} x {size[1]}")


if __name__ == "__main__":
    main()
