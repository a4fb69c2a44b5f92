"""Animation (SPEC section 8): GIFs of a random walk in noise space around the reconstruction.

The model is the animation variant (SinGAN: min_size 20, noise maps drawn 10 px larger instead
of zero-padded; ConSinGAN: --train_mode animation); its TrainedModel.animate makes the frames
of one walk (start scale, alpha, beta); this module trains or opens the model and writes the
GIFs.
"""
from dataclasses import replace
from pathlib import Path
from typing import List, Optional, Sequence

import imageio.v3 as iio
import torch

from ..api import TRAINED_ROOT, model_folder, train_model
from ..devices import resolve_device
from ..driver import CHECKPOINT_MINUTES
from ..errors import SinGANError
from ..hparams import SinGANConfig
from ..image_io import atomic_write_bytes, to_uint8
from ..interface import TrainedModel
from ..resources import check_frame_count, check_frames, check_output_files, image_shape
from ..train import plan_for
from .generation import open_model

DEFAULT_ALPHA = 0.1
DEFAULT_BETAS = (0.80, 0.85, 0.90, 0.95)
DEFAULT_START_SCALES = (0, 1, 2)
NUM_FRAMES = 100
FPS = 10


def gif_path(out_root, stem: str, start_scale: int, alpha: float, beta: float) -> Path:
    """Output/Animation/<image>/start_scale=<s>/alpha=<a>_beta=<b>.gif (the reference's names)."""
    return (Path(out_root) / "Animation" / stem / f"start_scale={start_scale}"
            / ("alpha=%f_beta=%f.gif" % (alpha, beta)))


def write_gif(path: Path, frames: torch.Tensor, fps: float = FPS) -> None:
    """frames [T, 3, H, W] in [-1, 1] -> an endlessly looping GIF, written atomically."""
    pixels = to_uint8(frames)
    if pixels.ndim == 3:
        pixels = pixels[None]
    data = iio.imwrite("<bytes>", pixels, extension=".gif", duration=1000 / fps, loop=0)
    atomic_write_bytes(path, data)


def write_animations(model: TrainedModel, stem: str, seed: int = 0, out_root="Output",
                     start_scales: Optional[Sequence[int]] = None,
                     alphas: Sequence[float] = (DEFAULT_ALPHA,),
                     betas: Sequence[float] = DEFAULT_BETAS, num_frames: int = NUM_FRAMES,
                     fps: float = FPS) -> List[Path]:
    """One GIF per (start scale, alpha, beta) of a trained animation model; start_scales None
    means the reference's 0, 1, 2 (those the model has)."""
    last = model.num_scales - 1
    if start_scales is None:
        start_scales = [s for s in DEFAULT_START_SCALES if s <= last]
    for s in start_scales:
        if not 0 <= s <= last:
            raise SinGANError(f"--start_scale must be between 0 and {last} (the model's "
                              f"scales), got {s}")
    check_frames(model, num_frames)
    h, w = model.trained_real.shape[2:]
    check_output_files(gif_path(out_root, stem, 0, DEFAULT_ALPHA, DEFAULT_BETAS[0]).parent,
                       len(start_scales) * len(alphas) * len(betas), num_frames * h * w + 1000)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    written = []
    for s in start_scales:
        for alpha in alphas:
            for beta in betas:
                frames = model.animate(alpha, beta, s, num_frames, generator)
                written.append(gif_path(out_root, stem, s, alpha, beta))
                write_gif(written[-1], frames, fps)
    return written


def animation(image_path, cfg: SinGANConfig, device="auto", seed: int = 0, out_root="Output",
              start_scales: Optional[Sequence[int]] = None,
              alphas: Sequence[float] = (DEFAULT_ALPHA,),
              betas: Sequence[float] = DEFAULT_BETAS, num_frames: int = NUM_FRAMES,
              fps: float = FPS, force: bool = False, quiet: bool = False,
              root=TRAINED_ROOT, model_dir=None,
              checkpoint_minutes: float = CHECKPOINT_MINUTES) -> List[Path]:
    """Train (or reuse) the SinGAN animation model of an image, or open the animation model in
    model_dir (SinGAN's or ConSinGAN's), and write its GIFs; returns their paths."""
    if model_dir:
        model = open_model(model_dir, device)
    else:
        cfg = replace(cfg, pad_noise=False)
        shape = image_shape(image_path)
        if shape is not None:   # refuse an impossible frame count before training the model
            check_frame_count(*plan_for(*shape, cfg).shapes[-1], num_frames,
                              resolve_device(device))
        model = train_model(image_path, cfg, model_folder(Path(image_path).name, cfg, root),
                            device=device, seed=seed, force=force, show_progress=not quiet,
                            checkpoint_minutes=checkpoint_minutes)
    return write_animations(model, Path(image_path).stem, seed, out_root, start_scales, alphas,
                            betas, num_frames, fps)
