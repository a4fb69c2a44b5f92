"""Animation (SPEC section 8): GIFs or MP4s of a random walk in noise space around the
reconstruction.

The model is the animation variant (SinGAN: min_size 20, noise maps drawn 10 px larger instead
of zero-padded; ConSinGAN: --train_mode animation); its TrainedModel.animate makes the frames
of one walk (start scale, alpha, beta); this module trains or opens the model and writes the
animations: GIFs (imageio), or H.264 MP4s through PyAV, whose wheels carry FFmpeg
(requirements-video.txt).
"""
import tempfile
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import List, Optional, Sequence

import imageio.v3 as iio
import numpy as np
import torch

from ..api import TRAINED_ROOT, model_folder, train_model
from ..devices import resolve_device
from ..driver import CHECKPOINT_MINUTES
from ..errors import SinGANError
from ..image_io import atomic_write_bytes, to_uint8
from ..interface import TrainedModel
from ..methods.singan.hparams import SinGANConfig
from ..methods.singan.train import plan_for
from ..resources import check_frame_count, check_frames, check_output_files, image_shape
from .generation import open_model

DEFAULT_ALPHA = 0.1
DEFAULT_BETAS = (0.80, 0.85, 0.90, 0.95)
DEFAULT_START_SCALES = (0, 1, 2)
NUM_FRAMES = 100
FPS = 10
FORMATS = ("gif", "mp4")
MP4_CRF = 18   # x264's constant quality: 18 is close to lossless to the eye (its default: 23)


def animation_path(out_root, stem: str, start_scale: int, alpha: float, beta: float,
                   format: str = "gif") -> Path:
    """Output/Animation/<image>/start_scale=<s>/alpha=<a>_beta=<b>.<format> (the reference's
    names)."""
    return (Path(out_root) / "Animation" / stem / f"start_scale={start_scale}"
            / ("alpha=%f_beta=%f.%s" % (alpha, beta, format)))


def gif_path(out_root, stem: str, start_scale: int, alpha: float, beta: float) -> Path:
    """animation_path of a GIF."""
    return animation_path(out_root, stem, start_scale, alpha, beta, "gif")


def pyav():
    """The av module (PyAV), or SinGANError saying how to install it."""
    try:
        import av
    except ImportError:
        raise SinGANError("MP4 needs PyAV, which is not installed: pip install -r "
                          "requirements-video.txt (or pip install 'singan[video]')") from None
    return av


def check_format(format: str) -> None:
    """Refuse an unknown format, or MP4 without PyAV, before anything is trained or drawn."""
    if format not in FORMATS:
        raise SinGANError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    if format == "mp4":
        pyav()


def frames_uint8(frames: torch.Tensor) -> np.ndarray:
    """frames [T, 3, H, W] (or one [3, H, W]) in [-1, 1] -> uint8 [T, H, W, 3]."""
    pixels = to_uint8(frames)
    return pixels[None] if pixels.ndim == 3 else pixels


def write_gif(path: Path, frames: torch.Tensor, fps: float = FPS) -> None:
    """frames [T, 3, H, W] in [-1, 1] -> an endlessly looping GIF, written atomically."""
    data = iio.imwrite("<bytes>", frames_uint8(frames), extension=".gif", duration=1000 / fps,
                       loop=0)
    atomic_write_bytes(path, data)


def write_mp4(path: Path, frames: torch.Tensor, fps: float = FPS) -> None:
    """frames [T, 3, H, W] in [-1, 1] -> an MP4 that browsers and phones play (H.264, yuv420p,
    the index first for streaming), written atomically. yuv420p keeps colour at half the
    resolution, so H.264 needs even sizes: an odd height or width gains a copy of its last row
    or column."""
    av = pyav()
    pixels = frames_uint8(frames)                                        # [T, H, W, 3]
    _, h, w, _ = pixels.shape
    pixels = np.pad(pixels, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    # the muxer reopens its file to put the index first: a real file, then its bytes
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "animation.mp4"
        with av.open(str(video), "w", format="mp4",
                     container_options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.height, stream.width = pixels.shape[1:3]
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(MP4_CRF)}
            for frame in pixels:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())                               # flush the encoder
        atomic_write_bytes(path, video.read_bytes())


WRITERS = {"gif": write_gif, "mp4": write_mp4}


def write_animation(path: Path, frames: torch.Tensor, fps: float = FPS,
                    format: str = "gif") -> None:
    """frames [T, 3, H, W] in [-1, 1] -> a GIF or an MP4 (FORMATS) at `path`."""
    check_format(format)
    WRITERS[format](path, frames, fps)


def write_animations(model: TrainedModel, stem: str, seed: int = 0, out_root="Output",
                     start_scales: Optional[Sequence[int]] = None,
                     alphas: Sequence[float] = (DEFAULT_ALPHA,),
                     betas: Sequence[float] = DEFAULT_BETAS, num_frames: int = NUM_FRAMES,
                     fps: float = FPS, format: str = "gif") -> List[Path]:
    """One animation per (start scale, alpha, beta) of a trained animation model, a GIF or an
    MP4 (format, FORMATS); start_scales None means the reference's 0, 1, 2 (those the model
    has). Returns the paths written."""
    check_format(format)
    last = model.num_scales - 1
    if start_scales is None:
        start_scales = [s for s in DEFAULT_START_SCALES if s <= last]
    for s in start_scales:
        if not 0 <= s <= last:
            raise SinGANError(f"--start_scale must be between 0 and {last} (the model's "
                              f"scales), got {s}")
    check_frames(model, num_frames)
    h, w = model.trained_real.shape[2:]
    check_output_files(animation_path(out_root, stem, 0, DEFAULT_ALPHA, DEFAULT_BETAS[0]).parent,
                       len(start_scales) * len(alphas) * len(betas), num_frames * h * w + 1000)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    written = []
    for s in start_scales:
        for alpha in alphas:
            for beta in betas:
                frames = model.animate(alpha, beta, s, num_frames, generator)
                written.append(animation_path(out_root, stem, s, alpha, beta, format))
                write_animation(written[-1], frames, fps, format)
    return written


def animation(image_path, cfg: SinGANConfig, device="auto", seed: int = 0, out_root="Output",
              start_scales: Optional[Sequence[int]] = None,
              alphas: Sequence[float] = (DEFAULT_ALPHA,),
              betas: Sequence[float] = DEFAULT_BETAS, num_frames: int = NUM_FRAMES,
              fps: float = FPS, force: bool = False, quiet: bool = False,
              root=TRAINED_ROOT, model_dir=None,
              checkpoint_minutes: float = CHECKPOINT_MINUTES,
              format: str = "gif") -> List[Path]:
    """Train (or reuse) the SinGAN animation model of an image, or open the animation model in
    model_dir (SinGAN's or ConSinGAN's), and write its GIFs or MP4s (format); returns their
    paths."""
    check_format(format)   # before training: MP4 without PyAV is refused at once
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
                            betas, num_frames, fps, format)
