"""Harmonization, editing and paint-to-image: an image injected at scale n (SPEC section 8).

All three hand a user's image R (the "naive" image: a pasted object, an edit, a painting) to
the trained pyramid at an intermediate scale n, where it replaces the coarser scales' output:

    in_s = imresize(R, s ** (N - n + 1)) cropped to reals[n-1], imresize(., 1 / s) cropped to
           reals[n]                                   (s: the pyramid's scale factor)
    out  = generate from scale n with start image in_s (scales n..N add their detail)

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
from ..hparams import SinGANConfig
from ..image_io import denorm, norm, read_image, save_grid, save_image
from ..imresize import imresize, imresize_to_shape
from ..sampling import TrainedPyramid
from .generation import IMAGES_DIR, TRAINED_ROOT, open_trained_model

DILATION_RADIUS = {"harmonization": 7, "editing": 20}   # disk radius of the mask's dilation
MASK_SIGMA = 5                                           # Gaussian blur of the dilated mask
OUTPUT_FOLDER = {"harmonization": "Harmonization", "editing": "Editing",
                 "paint2image": "Paint2image"}
ASPECT_TOLERANCE = 0.02   # relative height mismatch accepted when fitting R to the real image


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


# ---- inputs ----------------------------------------------------------------------------------

def check_start_scale(pyramid: TrainedPyramid, n: int, option: str) -> None:
    """Injection needs a coarser scale below n: n in 1..N."""
    last = pyramid.num_scales - 1
    if last < 1:
        raise SinGANError("the model has a single scale: injection needs at least two")
    if not 1 <= n <= last:
        raise SinGANError(f"{option} must be between 1 and {last} (the model's scales are "
                          f"0..{last}; injection needs a coarser scale below it), got {n}")


def fit_to_shape(image: torch.Tensor, shape, path) -> torch.Tensor:
    """An input resized to the training image's (h, w) when its size differs, with a warning.

    The reference resizes when the widths differ and fails later on other mismatches; an image
    of another aspect ratio would come out distorted, so it is refused.
    """
    h, w = shape
    ih, iw = image.shape[2:]
    if (ih, iw) == (h, w):
        return image
    if abs(ih * w / iw - h) > max(1.0, ASPECT_TOLERANCE * h):
        raise SinGANError(f"{path} is {ih} x {iw} px but the training image is {h} x {w} px: "
                          f"the aspect ratios differ ({iw / ih:.3f} vs {w / h:.3f}); crop it "
                          "to the training image's aspect ratio")
    warn(f"{path} is {ih} x {iw} px; resized to the training image's {h} x {w} px")
    return imresize_to_shape(image, (h, w))[:, :, :h, :w]


def mask_path_for(ref_path: Path, mask: Optional[str] = None) -> Path:
    """The reference's mask name: R's stem + '_mask' + R's extension, beside R; or `mask`, a
    path or a file name in R's folder."""
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


# ---- injection -------------------------------------------------------------------------------

def injection_input(pyramid: TrainedPyramid, image: torch.Tensor, n: int) -> torch.Tensor:
    """The start image of scale n made from an image at the finest size: [1, 3, h_n, w_n]."""
    last = len(pyramid.reals) - 1
    s = pyramid.scale_factor
    h, w = pyramid.shape(n - 1)
    x = imresize(image, s ** (last - n + 1))[:, :, :h, :w]
    x = imresize(x, 1 / s)
    h, w = pyramid.shape(n)
    return x[:, :, :h, :w]


@torch.no_grad()
def inject(pyramid: TrainedPyramid, start: torch.Tensor, n: int, num_samples: int = 1,
           generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Samples generated from scale n on from the start image `start` (at reals[n]'s size):
    [num_samples, 3, H, W] in [-1, 1], drawn in memory-bounded batches.

    Fix: the finest generator's output (tanh + the upsampled image) can leave [-1, 1]; the
    reference blends it unclamped with the mask, so the blend disagrees with the saved
    (clamped) output where the mask is partial. We clamp first.
    """
    batch = pyramid.default_batch_size()
    return torch.cat([pyramid.generate(min(batch, num_samples - i), start_scale=n,
                                       start_image=start, generator=generator)
                      for i in range(0, num_samples, batch)]).clamp(-1, 1)


def blend(real: torch.Tensor, out: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(1 - mask) * real + mask * out: the training image outside the mask."""
    return (1 - weight) * real + weight * out


def output_name(n: int, i: int, suffix: str = "") -> str:
    """start_scale=<n>.png for the first sample (the reference's name), start_scale=<n>_<i>.png
    for the others."""
    return f"start_scale={n}{'' if i == 0 else f'_{i}'}{suffix}.png"


def output_folder(out_root, task: str, stem: str, ref_stem: str, suffix: str = "") -> Path:
    """Output/<Task>/<image>/<ref>_out[suffix]/ (the reference's layout)."""
    return Path(out_root) / OUTPUT_FOLDER[task] / stem / f"{ref_stem}_out{suffix}"


def open_for_injection(task: str, input_name: str, cfg: SinGANConfig, device, model_dir,
                       input_dir: str, root=TRAINED_ROOT,
                       consingan_ok: bool = False) -> (TrainedPyramid, Path):
    return open_trained_model(input_name, cfg, device, model_dir, input_dir, ("train",), task,
                              root, consingan_ok)


def consingan_injection(task: str, model, input_name: str, ref_path: Path, mask: Optional[str],
                        seed: Optional[int], out_root) -> List[Path]:
    """Harmonization or editing with a ConSinGAN model (trained with --train_mode
    harmonization/editing): the naive image is stage 0's input (SPEC 10), so there is no
    injection scale. Writes consingan.png (harmonization: the blend; editing: the raw
    output, and consingan_masked.png the blend) and a grid."""
    from ..consingan import harmonize
    naive = read_image(ref_path, model.device)
    mask_file = mask_path_for(ref_path, mask)
    mask_image = read_image(mask_file, model.device) if (mask or mask_file.exists()) else None
    if mask_image is None and task == "harmonization":
        raise SinGANError(f"mask not found: {mask_file} (give --mask, or put "
                          f"{mask_file.name} beside the naive image)")
    generator = None if seed is None else torch.Generator(model.device).manual_seed(seed)
    out, blended = harmonize(model, naive, mask_image, generator, DILATION_RADIUS[task])
    folder = output_folder(out_root, task, Path(input_name).stem, ref_path.stem)
    written = [folder / "consingan.png"]
    if task == "editing":
        save_image(written[0], out)
        if blended is not None:
            written.append(folder / "consingan_masked.png")
            save_image(written[-1], blended)
    else:
        save_image(written[0], blended)
    save_grid(folder / "consingan_grid.png", [model.reals[-1], naive] + [out] +
              ([blended] if blended is not None else []))
    return written


def masked_injection(task: str, input_name: str, ref_path, start_scale: int, cfg: SinGANConfig,
                     device="auto", seed: Optional[int] = None, out_root="Output",
                     mask: Optional[str] = None, model_dir=None, input_dir: str = IMAGES_DIR,
                     num_samples: int = 1, root=TRAINED_ROOT) -> List[Path]:
    """Harmonization or editing (SPEC 8), end to end; returns the files written.

    Writes Output/<Task>/<image>/<ref>_out/start_scale=<n>.png (harmonization: the blend;
    editing: the raw output, and start_scale=<n>_masked.png the blend), the dilated mask and a
    grid (training image | naive image | results) beside them.
    """
    option = f"--{task}_start_scale"
    pyramid, _ = open_for_injection(task, input_name, cfg, device, model_dir, input_dir, root,
                                    consingan_ok=True)
    if getattr(pyramid, "method", "singan") == "consingan":
        return consingan_injection(task, pyramid, input_name, Path(ref_path), mask, seed,
                                   out_root)
    check_start_scale(pyramid, start_scale, option)
    real = pyramid.reals[-1]                                         # [1, 3, H, W]
    ref_path = Path(ref_path)
    naive = read_image(ref_path, pyramid.device)
    naive_shape = naive.shape[2:]
    naive = fit_to_shape(naive, real.shape[2:], ref_path)
    mask_image = read_mask(mask_path_for(ref_path, mask), naive_shape, real.shape[2:],
                           "--mask")
    weight = soft_mask(mask_image, DILATION_RADIUS[task])            # [1, 3, H, W] in [0, 1]

    generator = None
    if seed is not None:
        generator = torch.Generator(device=pyramid.device).manual_seed(seed)
    start = injection_input(pyramid, naive, start_scale)
    out = inject(pyramid, start, start_scale, num_samples, generator)   # [k, 3, H, W]
    blended = blend(real, out, weight)

    folder = output_folder(out_root, task, Path(input_name).stem, ref_path.stem)
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
