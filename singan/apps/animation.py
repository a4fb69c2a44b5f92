"""Animation (SPEC section 8): GIFs of a random walk in noise space around z_opt.

The model is the "animation_train" variant (min_size 20, noise maps drawn 10 px larger instead
of zero-padded). At every scale from start_scale on, frame t uses the noise

    z_t = alpha * z_opt + (1 - alpha) * (z_{t-1} + beta * (z_{t-1} - z_{t-2}) + (1 - beta) * w_t)

with fresh N(0, 1) noise w_t, z_{-1} = 0.95 z_opt + 0.05 w and z_{-2} = z_opt: a walk with
momentum beta, pulled towards the reconstruction by alpha. Scales below start_scale use z_opt,
so the coarse layout stays that of the training image. Given the noise, frames are
independent: each scale runs on all frames as one batch (chunked when large).
"""
from dataclasses import replace
from pathlib import Path
from typing import List, Optional, Sequence

import imageio.v3 as iio
import torch

from ..errors import SinGANError
from ..hparams import SinGANConfig
from ..image_io import atomic_write_bytes, to_uint8
from ..sampling import TrainedPyramid, spatial_noise
from .generation import TRAINED_ROOT, check_mode, open_model, train_model

ANIMATION_MIN_SIZE = 20                  # the reference trains animation models with min_size 20
DEFAULT_ALPHA = 0.1
DEFAULT_BETAS = (0.80, 0.85, 0.90, 0.95)
DEFAULT_START_SCALES = (0, 1, 2)
NUM_FRAMES = 100
FPS = 10


def animation_folder(image_name: str, cfg: SinGANConfig, root=TRAINED_ROOT) -> Path:
    """TrainedModels/<image>/scale_factor=<s>_noise_padding (the reference's layout)."""
    return Path(root) / Path(image_name).stem / ("scale_factor=%f_noise_padding" % cfg.scale_factor)


def gif_path(out_root, stem: str, start_scale: int, alpha: float, beta: float) -> Path:
    """Output/Animation/<image>/start_scale=<s>/alpha=<a>_beta=<b>.gif (the reference's names)."""
    return (Path(out_root) / "Animation" / stem / f"start_scale={start_scale}"
            / ("alpha=%f_beta=%f.gif" % (alpha, beta)))


def noise_walk(z_opt: torch.Tensor, num_frames: int, alpha: float, beta: float,
               one_channel: bool, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The walk z_0 .. z_{T-1} around z_opt ([1, 3, h, w], the full noise size): [T, 3, h, w].

    The fresh noise has one channel broadcast to three at scale 0 (one_channel), three after.
    """
    h, w = z_opt.shape[2:]
    fresh = spatial_noise(num_frames + 1, 1 if one_channel else 3, h, w, z_opt.device,
                          generator)                                   # [T + 1, 3, h, w]
    z_prev1 = 0.95 * z_opt + 0.05 * fresh[:1]
    z_prev2 = z_opt
    frames = []
    for t in range(num_frames):
        diff = beta * (z_prev1 - z_prev2) + (1 - beta) * fresh[t + 1:t + 2]
        z = alpha * z_opt + (1 - alpha) * (z_prev1 + diff)
        z_prev2, z_prev1 = z_prev1, z
        frames.append(z)
    return torch.cat(frames)


@torch.no_grad()
def animate(pyramid: TrainedPyramid, alpha: float = DEFAULT_ALPHA, beta: float = 0.9,
            start_scale: int = 0, num_frames: int = NUM_FRAMES,
            generator: Optional[torch.Generator] = None,
            batch_size: Optional[int] = None) -> torch.Tensor:
    """The frames of one animation: [num_frames, 3, H, W] in [-1, 1]."""
    last = pyramid.num_scales - 1
    if not 0 <= start_scale <= last:
        raise SinGANError(f"--start_scale must be between 0 and {last} (the model's scales), "
                          f"got {start_scale}")
    if pyramid.pad_noise:
        raise SinGANError("animation needs a model trained with mode animation_train "
                          "(noise not zero-padded): train it with animation.py")
    noise = []                                                         # per scale [T, 3, h, w]
    for n, z_opt in enumerate(pyramid.z_opt[:pyramid.num_scales]):
        if n < start_scale:
            noise.append(z_opt.expand(num_frames, -1, -1, -1))
        else:
            noise.append(noise_walk(z_opt, num_frames, alpha, beta, n == 0, generator))
    batch = batch_size or pyramid.default_batch_size()
    chunks = [pyramid.generate(min(batch, num_frames - i), noise=[z[i:i + batch] for z in noise],
                               gen_start_scale=start_scale)
              for i in range(0, num_frames, batch)]
    return torch.cat(chunks).clamp(-1, 1)


def write_gif(path: Path, frames: torch.Tensor, fps: float = FPS) -> None:
    """frames [T, 3, H, W] in [-1, 1] -> an endlessly looping GIF, written atomically."""
    pixels = to_uint8(frames)
    if pixels.ndim == 3:
        pixels = pixels[None]
    data = iio.imwrite("<bytes>", pixels, extension=".gif", duration=1000 / fps, loop=0)
    atomic_write_bytes(path, data)


def animation(image_path, cfg: SinGANConfig, device="auto", seed: int = 0, out_root="Output",
              start_scales: Optional[Sequence[int]] = None,
              alphas: Sequence[float] = (DEFAULT_ALPHA,),
              betas: Sequence[float] = DEFAULT_BETAS, num_frames: int = NUM_FRAMES,
              fps: float = FPS, force: bool = False, quiet: bool = False,
              root=TRAINED_ROOT, model_dir=None) -> List[Path]:
    """Train (or reuse) the animation model of an image and write one GIF per
    (start scale, alpha, beta); returns the GIFs' paths.

    start_scales None means the reference's 0, 1, 2 (those the model has). model_dir names a
    trained animation model instead, SinGAN's or ConSinGAN's (--train_mode animation).
    """
    if model_dir:
        folder = Path(model_dir)
        pyramid = open_model(folder, device)
        check_mode(pyramid, folder, ("animation_train",), "animation", consingan_ok=True)
        if getattr(pyramid, "train_mode", "animation") != "animation":
            raise SinGANError(f"{folder} holds a ConSinGAN {pyramid.train_mode} model; "
                              "animation needs one trained with --train_mode animation")
    else:
        cfg = replace(cfg, mode="animation_train")
        folder = animation_folder(Path(image_path).name, cfg, root)
        pyramid, folder = train_model(image_path, cfg, device, seed, force, root, quiet, folder)
        check_mode(pyramid, folder, ("animation_train",), "animation")
    walk = animate
    if getattr(pyramid, "method", "singan") == "consingan":
        from ..consingan import animate as walk
    last = pyramid.num_scales - 1
    if start_scales is None:
        start_scales = [s for s in DEFAULT_START_SCALES if s <= last]
    for s in start_scales:
        if not 0 <= s <= last:
            raise SinGANError(f"--start_scale must be between 0 and {last} (the model's "
                              f"scales), got {s}")
    generator = torch.Generator(device=pyramid.device).manual_seed(seed)
    stem = Path(image_path).stem
    written = []
    for s in start_scales:
        for alpha in alphas:
            for beta in betas:
                frames = walk(pyramid, alpha, beta, s, num_frames, generator)
                written.append(gif_path(out_root, stem, s, alpha, beta))
                write_gif(written[-1], frames, fps)
    return written
