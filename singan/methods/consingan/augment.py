"""Stage-0 inputs of harmonization and editing training (SPEC section 10; arXiv 2003.11512,
section 4.3).

Harmonization trains on randomly augmented copies of the coarsest real image, editing on
copies whose random rectangles were moved elsewhere (plus noise), so that at test time the
generator turns a naive composite or a crude edit into a consistent image.

Every random choice comes from a CPU torch.Generator (seeded per stage); the image operations
run on the image's own device with torchvision.transforms.v2.functional.
"""
import math

import torch
import torch.nn.functional as F

from ...image_io import denorm, norm


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def _chance(generator: torch.Generator, p: float) -> bool:
    return torch.rand((), generator=generator).item() < p


def augment(image: torch.Tensor, generator: torch.Generator,
            noise_generator: torch.Generator = None) -> torch.Tensor:
    """A randomly augmented copy of `image` ([1, 3, h, w] in [-1, 1]), same shape.

    `generator` (CPU) draws the choices and parameters, `noise_generator` (on the image's
    device) the additive noise.

    The changes: horizontal flip (p 0.5); shift <= 6.25 %, scale +-5 %, rotation <= 15 deg
    with reflected borders (p 0.5); Gaussian noise (p 0.2); Gaussian blur (p 0.2);
    brightness/contrast or sharpness (p 0.3); hue/saturation/value (p 0.3).
    """
    # torchvision only here: importing it costs every other run of the scripts seconds
    from torchvision.transforms.v2 import functional as TF

    # Fix: the reference composes albumentations transforms (flip, shift-scale-rotate, noise,
    # blur, distortions, CLAHE/sharpen/emboss/brightness-contrast, hue-saturation-value), some
    # of which current albumentations no longer has (and it is no dependency here): we make
    # the same kinds of change with torchvision, drawn from our own seeded generator.
    x = denorm(image)                                               # [1, 3, h, w] in [0, 1]
    h, w = x.shape[2:]
    if _chance(generator, 0.5):
        x = TF.horizontal_flip(x)
    if _chance(generator, 0.5):
        angle = _uniform(generator, -15, 15)
        shift = [_uniform(generator, -0.0625, 0.0625) * w,
                 _uniform(generator, -0.0625, 0.0625) * h]
        scale = _uniform(generator, 0.95, 1.05)
        p = min(math.ceil(0.3 * max(h, w)), min(h, w) - 1)         # reflected border
        wide = F.pad(x, [p, p, p, p], mode="reflect")
        wide = TF.affine(wide, angle=angle, translate=shift, scale=scale, shear=[0.0, 0.0],
                         interpolation=TF.InterpolationMode.BILINEAR)
        x = wide[:, :, p:p + h, p:p + w]
    if _chance(generator, 0.2):
        std = math.sqrt(_uniform(generator, 10, 50)) / 255             # variance 10-50 of 255^2
        x = x + std * torch.randn(x.shape, device=x.device, generator=noise_generator)
    if _chance(generator, 0.2):
        x = TF.gaussian_blur(x, [3, 3], [_uniform(generator, 0.3, 1.0)] * 2)
    if _chance(generator, 0.3):
        if _chance(generator, 0.5):
            x = TF.adjust_brightness(x, _uniform(generator, 0.8, 1.2))
            x = TF.adjust_contrast(x, _uniform(generator, 0.8, 1.2))
        else:
            x = TF.adjust_sharpness(x, _uniform(generator, 1.0, 2.0))
    if _chance(generator, 0.3):
        x = TF.adjust_hue(x.clamp(0, 1), _uniform(generator, -20 / 360, 20 / 360))
        x = TF.adjust_saturation(x, _uniform(generator, 0.88, 1.12))
        x = x + _uniform(generator, -20 / 255, 20 / 255)
    return norm(x.clamp(0, 1))


# The reference's shuffle_grid: with n = 1..5 rectangles, their height and width are drawn
# between these fractions of the image's (fewer rectangles, larger ones).
_TILE_FRACTIONS = {1: (0.2, 0.5), 2: (0.15, 0.45), 3: (0.1, 0.4), 4: (0.05, 0.3), 5: (0.01, 0.2)}


def _randint(generator: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in [low, high] (both included, as Python's random.randint)."""
    return int(torch.randint(low, high + 1, (), generator=generator).item())


def shuffle_tiles(image: torch.Tensor, generator: torch.Generator, max_tiles: int = 5):
    """A copy of `image` ([1, 3, h, w]) in which 1..max_tiles random rectangles of the
    original are pasted at random other places (the reference's shuffle_grid)."""
    h, w = image.shape[2:]
    n = _randint(generator, 1, max_tiles)
    low, high = _TILE_FRACTIONS[min(n, 5)]
    out = image.clone()
    for _ in range(n):
        th = _randint(generator, int(h * low), int(h * high))
        tw = _randint(generator, int(w * low), int(w * high))
        if th == 0 or tw == 0:
            continue
        y, x = _randint(generator, 0, h - th), _randint(generator, 0, w - tw)
        ny, nx = _randint(generator, 0, h - th), _randint(generator, 0, w - tw)
        out[:, :, ny:ny + th, nx:nx + tw] = image[:, :, y:y + th, x:x + tw]
    return out
