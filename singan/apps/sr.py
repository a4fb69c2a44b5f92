"""Super-resolution (SPEC section 8): the finest generator, applied again and again.

SinGAN is trained on the low-resolution image with the SR schedule (SPEC 3) and a scale
factor r = 1 / in_scale chosen so that sr_factor = in_scale ** iter_num; then the finest real
image is upsampled iter_num times by in_scale, each time refined by the finest generator
G_N with its noise amplitude (its reconstruction noise z_opt is zero): the same pyramid
machinery as generation, with G_N at every level.
"""
import math
from dataclasses import replace
from pathlib import Path
from typing import Optional, Tuple

import torch

from ..api import TRAINED_ROOT, model_folder, train_model
from ..devices import resolve_device
from ..driver import CHECKPOINT_MINUTES
from ..errors import SinGANError
from ..image_io import save_grid, save_image
from ..imresize import imresize, imresize_to_shape
from ..methods.singan.hparams import SinGANConfig
from ..methods.singan.model import TrainedPyramid
from ..methods.singan.models import channels_at_scale, pad
from ..methods.singan.train import plan_for
from ..resources import check_sr, image_shape

SR_ALPHA = 100.0                     # the reference's reconstruction weight for SR
BASE_STEP = math.pow(0.5, 1 / 3)     # the reference's first guess of the per-step scale
MIN_SR_FACTOR = math.pow(2, 1 / 6)   # below this, the schedule has no upsampling step


def sr_schedule(sr_factor: float) -> Tuple[float, int]:
    """(in_scale, iter_num): iter_num steps of in_scale = sr_factor ** (1 / iter_num) each.

        iter_num = round(log(1 / sr_factor) / log(2 ** (-1/3)))
    """
    if not sr_factor > MIN_SR_FACTOR:
        raise SinGANError(f"--sr_factor must be greater than 2 ** (1/6) = {MIN_SR_FACTOR:.4f} "
                          f"(at least one upsampling step), got {sr_factor:g}")
    iter_num = round(math.log(1 / sr_factor, BASE_STEP))
    return math.pow(sr_factor, 1 / iter_num), iter_num


def sr_config(cfg: SinGANConfig, sr_factor: float) -> SinGANConfig:
    """The training configuration of an SR model: the SR scale schedule (SPEC 3) with
    scale_factor 1 / in_scale."""
    in_scale, _ = sr_schedule(sr_factor)
    return replace(cfg, scale_factor=1 / in_scale, sr_schedule=True)


@torch.no_grad()
def super_resolve(pyramid: TrainedPyramid, sr_factor: float,
                  generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The finest real image [1, 3, H, W] super-resolved: [1, 3, int(f H), int(f W)]. The
    finest generator's large passes run in tiles (TrainedPyramid._run); a result that cannot
    fit in memory is refused before any work (singan.resources.check_sr)."""
    in_scale, iter_num = sr_schedule(sr_factor)
    h, w = pyramid.shape(pyramid.num_scales - 1)
    check_sr(h, w, pyramid.generators[-1].nfc, sr_factor, iter_num, pyramid.device,
             pyramid.pad)
    factor = 1 / in_scale
    # Reference behaviour: each level is the previous one imresized by 1 / (1 / in_scale).
    levels, x = [], pyramid.reals[-1]
    for _ in range(iter_num):
        x = imresize(x, 1 / factor)
        levels.append(x)
    g, amp = pyramid.generators[-1], pyramid.noise_amp[-1]
    zeros = [pad(torch.zeros_like(r), pyramid.pad) for r in levels]  # z_opt = 0 at every level
    chain = TrainedPyramid([g] * iter_num, zeros, [amp] * iter_num, levels, factor,
                           pyramid.pad, pyramid.pad_noise)
    # Reference behaviour: the first step starts from the once-upsampled image and draws its
    # noise as at a coarsest scale (one channel broadcast to three).
    out = chain.synthesize(1, start_image=levels[0], generator=generator)
    return out[:, :, :int(sr_factor * h), :int(sr_factor * w)]


def sr_output_folder(out_root, sr_factor: float) -> Path:
    """Output/SR/<factor>, the factor written as '4' or '2.5'."""
    return Path(out_root) / "SR" / f"{sr_factor:g}"


def super_resolution(image_path, sr_factor: float, cfg: SinGANConfig, device="auto",
                     seed: int = 0, out_root="Output", force: bool = False,
                     quiet: bool = False, root=TRAINED_ROOT,
                     checkpoint_minutes: float = CHECKPOINT_MINUTES) -> Tuple[Path, Path, Path]:
    """Train (or reuse) the SR model of an image, super-resolve it, and write
    Output/SR/<factor>/<image>_HR.png and <image>_compare.png (bicubic | SinGAN).

    Returns (model folder, HR image, comparison image).
    """
    cfg = sr_config(cfg, sr_factor)
    shape = image_shape(image_path)
    if shape is not None:   # refuse an impossible result before training the model
        plan = plan_for(*shape, cfg)
        check_sr(*plan.shapes[-1], channels_at_scale(plan.stop_scale, cfg.nfc, cfg.min_nfc)[0],
                 sr_factor, sr_schedule(sr_factor)[1], resolve_device(device), cfg.pad)
    stem = Path(image_path).stem
    folder = model_folder(Path(image_path).name, cfg, root)
    pyramid = train_model(image_path, cfg, folder, device=device, seed=seed, force=force,
                          show_progress=not quiet, checkpoint_minutes=checkpoint_minutes)
    generator = torch.Generator(device=pyramid.device).manual_seed(seed)
    hr = super_resolve(pyramid, sr_factor, generator)                 # [1, 3, fH, fW]
    bicubic = imresize_to_shape(pyramid.reals[-1], hr.shape[2:])
    out = sr_output_folder(out_root, sr_factor)
    save_image(out / f"{stem}_HR.png", hr)
    save_grid(out / f"{stem}_compare.png", [bicubic, hr])
    return folder, out / f"{stem}_HR.png", out / f"{stem}_compare.png"
