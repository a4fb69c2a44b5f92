"""Harmonization, editing and paint-to-image: an image injected into a trained model (SPEC 8).

All three hand a user's image R (the "naive" image: a pasted object, an edit, a painting) to
the model (TrainedModel.generate): SinGAN at an intermediate scale n, where it replaces the
coarser scales' output (scales n..N add their detail); ConSinGAN (harmonization and editing
models) as its stage 0 input.

Harmonization keeps the training image outside the (dilated, blurred) mask,
result = (1 - mask) * real + mask * out; editing writes both out and that blend; paint-to-image
writes out (see paint.py for its colour-quantised variant).
"""
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from ..errors import SinGANError
from ..image_io import denorm, norm, read_image, save_grid, save_image
from ..imresize import imresize_to_shape
from ..interface import TrainedModel

DILATION_RADIUS = {"harmonization": 7, "editing": 20}   # disk radius of the mask's dilation
MASK_SIGMA = 5                                           # Gaussian blur of the dilated mask
OUTPUT_FOLDER = {"harmonization": "Harmonization", "editing": "Editing",
                 "paint2image": "Paint2image"}
ASPECT_TOLERANCE = 0.02   # relative height mismatch accepted when fitting R to the real image


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


# ---- inputs ----------------------------------------------------------------------------------

def resolve_start_scale(model: TrainedModel, n: Optional[int], option: str) -> int:
    """The injection scale: `n`, which must be one of the model's injection scales; or, when
    not given, the model's only one (ConSinGAN: stage 0)."""
    model.require("injection")
    scales = model.injection_scales
    if n is None:
        if len(scales) == 1:
            return scales[0]
        raise SinGANError(f"give {option}: the injection scale, {scales[0]}..{scales[-1]} for "
                          "this model")
    if n not in scales:
        last = model.num_scales - 1
        if len(scales) == 1:
            raise SinGANError(f"{option} must be {scales[0]} for this {model.display_name} "
                              f"model (it takes the image at {model.unit} {scales[0]} only), "
                              f"got {n}")
        raise SinGANError(f"{option} must be between {scales[0]} and {scales[-1]} (the model's "
                          f"scales are 0..{last}; injection needs a coarser scale below it), "
                          f"got {n}")
    return n


def fit_to_shape(image: torch.Tensor, shape, path) -> torch.Tensor:
    """An input resized to the training image's (h, w) when its size differs, with a warning.

    The reference resizes when the widths differ and fails later on other mismatches; an image
    of another aspect ratio would come out distorted, so it is refused.
    """
    h, w = shape
    ih, iw = image.shape[2:]
    if (ih, iw) == (h, w):
        return image
    check_aspect(image, shape, path, "the training image")
    warn(f"{path} is {ih} x {iw} px; resized to the training image's {h} x {w} px")
    return imresize_to_shape(image, (h, w))[:, :, :h, :w]


def check_aspect(image: torch.Tensor, shape, path, other: str) -> None:
    """Refuse an input whose aspect ratio differs from `other`'s (h, w) `shape`: resized, it
    would come out distorted."""
    (h, w), (ih, iw) = shape, image.shape[2:]
    if abs(ih * w / iw - h) > max(1.0, ASPECT_TOLERANCE * h):
        raise SinGANError(f"{path} is {ih} x {iw} px but {other} is {h} x {w} px: the aspect "
                          f"ratios differ ({iw / ih:.3f} vs {w / h:.3f}); crop it to {other}'s "
                          "aspect ratio")


def mask_path(ref_path, mask: Optional[str] = None) -> Path:
    """The reference's mask name: R's stem + '_mask' + R's extension, beside R; or `mask`, a
    path or a file name in R's folder."""
    ref_path = Path(ref_path)
    if mask:
        beside = ref_path.parent / mask
        return beside if not Path(mask).exists() and beside.exists() else Path(mask)
    return ref_path.with_name(f"{ref_path.stem}_mask{ref_path.suffix}")


def read_mask(path: Path, ref_shape, real_shape, option_hint: str) -> torch.Tensor:
    """The user's mask [1, 3, h, w] in [-1, 1] at the training image's size."""
    if not path.exists():
        raise SinGANError(f"mask not found: {path} (put it beside the naive image as "
                          f"<name>_mask.<ext>, or name it with {option_hint})")
    mask = read_image(path)
    if tuple(mask.shape[2:]) != tuple(ref_shape):
        check_aspect(mask, ref_shape, path, "the naive image")
        warn(f"the mask {path} is {mask.shape[2]} x {mask.shape[3]} px, the naive image "
             f"{ref_shape[0]} x {ref_shape[1]} px: the mask is resized")
    return fit_to_shape(mask, real_shape, path)


def soft_mask(mask: torch.Tensor, radius: int, sigma: float = MASK_SIGMA) -> torch.Tensor:
    """The blending weight [1, 3, h, w] in [0, 1] from a mask image [1, 3, h, w] in [-1, 1].

    Reference behaviour: a pixel is in the mask when channel 0's 8-bit level, truncated as the
    reference converts it, is nonzero; the mask is dilated with a disk of `radius`, blurred with
    a Gaussian (sigma 5) and rescaled by (m - min) / (max - min).
    """
    from scipy.ndimage import binary_dilation
    from skimage.filters import gaussian
    from skimage.morphology import disk

    levels = torch.floor(255 * denorm(mask[0, 0].float()))          # [h, w]
    inside = levels.cpu().numpy() > 0
    if not inside.any():
        raise SinGANError("the mask is empty (all black): paint the region to change white")
    dilated = binary_dilation(inside, structure=disk(radius).astype(bool))
    blurred = gaussian(dilated.astype(np.float64), sigma=sigma)
    low, high = blurred.min(), blurred.max()
    weight = (blurred - low) / (high - low) if high > low else np.ones_like(blurred)
    weight = torch.from_numpy(weight).float().to(mask.device)
    return weight[None, None].expand(1, 3, *weight.shape)


# ---- injection with a mask ---------------------------------------------------------------------

def blend(real: torch.Tensor, out: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(1 - mask) * real + mask * out: the training image outside the mask."""
    return (1 - weight) * real + weight * out


def inject_with_mask(model: TrainedModel, naive: torch.Tensor, mask_image: torch.Tensor,
                     start_scale: int, task: str, num_samples: int = 1,
                     generator: Optional[torch.Generator] = None):
    """The core of harmonization and editing: the naive image ([1, 3, H, W] at the training
    size) injected at start_scale, and each result blended into the training image through
    the softened mask. Returns (out [k, 3, H, W], blended [k, 3, H, W], weight [1, 3, H, W])."""
    weight = soft_mask(mask_image, DILATION_RADIUS[task])            # [1, 3, H, W] in [0, 1]
    out = model.generate(naive, start_scale, num_samples, generator)  # [k, 3, H, W]
    return out, blend(model.trained_real, out, weight), weight


def output_name(n: int, i: int, suffix: str = "") -> str:
    """start_scale=<n>.png for the first sample (the reference's name), start_scale=<n>_<i>.png
    for the others."""
    return f"start_scale={n}{'' if i == 0 else f'_{i}'}{suffix}.png"


def output_folder(out_root, task: str, stem: str, ref_stem: str, suffix: str = "",
                  tag: str = "") -> Path:
    """Output/<Task>/<image>/<ref>_out[suffix]/ (the reference's layout), with a level for
    the model's output_tag below it for models other than SinGAN's."""
    folder = Path(out_root) / OUTPUT_FOLDER[task] / stem / f"{ref_stem}_out{suffix}"
    return folder / tag if tag else folder


def masked_injection(task: str, model: TrainedModel, image_name: str, ref_path,
                     start_scale: Optional[int] = None, seed: Optional[int] = None,
                     out_root="Output", mask: Optional[str] = None,
                     num_samples: int = 1) -> List[Path]:
    """Harmonization or editing (SPEC 8), end to end; returns the files written.

    Writes Output/<Task>/<image>/<ref>_out/start_scale=<n>.png (harmonization: the blend;
    editing: the raw output, and start_scale=<n>_masked.png the blend), the dilated mask and a
    grid (training image | naive image | results) beside them.
    """
    option = f"--{task}_start_scale"
    start_scale = resolve_start_scale(model, start_scale, option)
    real = model.trained_real                                        # [1, 3, H, W]
    ref_path = Path(ref_path)
    naive = read_image(ref_path, model.device)
    naive_shape = naive.shape[2:]
    naive = fit_to_shape(naive, real.shape[2:], ref_path)
    mask_image = read_mask(mask_path(ref_path, mask), naive_shape, real.shape[2:], "--mask")
    generator = None
    if seed is not None:
        generator = torch.Generator(device=model.device).manual_seed(seed)
    out, blended, weight = inject_with_mask(model, naive, mask_image, start_scale, task,
                                            num_samples, generator)

    folder = output_folder(out_root, task, Path(image_name).stem, ref_path.stem,
                           tag=model.output_tag)
    written = []
    for i in range(num_samples):
        if task == "editing":
            written.append(folder / output_name(start_scale, i))
            save_image(written[-1], out[i:i + 1])
            written.append(folder / output_name(start_scale, i, "_masked"))
        else:
            written.append(folder / output_name(start_scale, i))
        save_image(written[-1], blended[i:i + 1])
    # Fix: the reference writes the dilated mask into the input folder; we keep inputs as
    # they are and write it beside the results.
    save_image(folder / f"{ref_path.stem}_mask_dilated.png", norm(weight))
    shown = [out[:1], blended[:1]] if task == "editing" else [b[None] for b in blended[:4]]
    save_grid(folder / f"start_scale={start_scale}_grid.png", [real, naive] + shown)
    return written
