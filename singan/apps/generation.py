"""Training a model for an image, and random samples (SPEC section 7)."""
import shlex
from dataclasses import fields
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..checkpoint import is_reference_folder, load_model
from ..errors import SinGANError
from ..hparams import SinGANConfig
from ..image_io import read_image, save_grid, save_image
from ..pyramid import plan_pyramid
from ..sampling import TrainedPyramid
from ..train import autocast_context, resolve_device, train_pyramid

TRAINED_ROOT = "TrainedModels"
IMAGES_DIR = "Input/Images"
# The script that trains each training variant (SinGANConfig.mode), for messages.
MODE_SCRIPTS = {"train": "main_train.py", "animation_train": "animation.py",
                "paint_train": "paint2image.py --quantization_flag"}


def model_folder(image_name: str, cfg: SinGANConfig, root=TRAINED_ROOT) -> Path:
    """TrainedModels/<image stem>/scale_factor=0.750000,alpha=10 (the reference's layout)."""
    return Path(root) / Path(image_name).stem / cfg.model_folder_name()


def plan_for_image(image: torch.Tensor, cfg: SinGANConfig, sr: bool = False):
    try:
        return plan_pyramid(image.shape[2], image.shape[3], cfg.min_size, cfg.max_size,
                            cfg.scale_factor, sr=sr)
    except ValueError as err:
        raise SinGANError(str(err)) from None


def train_model(image_path, cfg: SinGANConfig, device="auto", seed: int = 0,
                force: bool = False, root=TRAINED_ROOT, quiet: bool = False,
                folder=None, sr: bool = False) -> (TrainedPyramid, Path):
    """Train SinGAN on an image file (or resume, or reuse a finished model).

    sr=True plans the pyramid with the SR schedule (SPEC 3); the reference trains SR models
    with mode "train", so the schedule is a separate switch, not a mode.
    """
    device = resolve_device(device) if isinstance(device, str) else device
    image = read_image(image_path, device)
    plan = plan_for_image(image, cfg, sr=sr)
    folder = Path(folder) if folder else model_folder(Path(image_path).name, cfg, root)
    info = {"name": Path(image_path).name, "path": str(image_path),
            "height": image.shape[2], "width": image.shape[3]}
    pyramid = train_pyramid(image, cfg, folder, seed=seed, image_info=info, force=force,
                            plan=plan, show_progress=not quiet)
    return pyramid, folder


def open_model(folder, device="auto", scale_factor: Optional[float] = None,
               train_hint: str = "") -> TrainedPyramid:
    """load_model with a message that says how to make the model when it is missing."""
    device = resolve_device(device) if isinstance(device, str) else device
    folder = Path(folder)
    if not folder.exists():
        hint = f"; train it first: {train_hint}" if train_hint else ""
        raise SinGANError(f"no trained model at {folder}{hint}")
    return load_model(folder, scale_factor=scale_factor, device=device)


def train_command(input_name: str, cfg: SinGANConfig, input_dir: str = IMAGES_DIR,
                  script: str = "main_train.py") -> str:
    """The command line that trains the model `cfg` selects for `input_name`: every option
    that differs from its default, so that the model lands in the folder the caller looks in."""
    parts = ["python", script]
    if input_dir != IMAGES_DIR:
        parts += ["--input_dir", input_dir]
    parts += ["--input_name", input_name]
    defaults = SinGANConfig()
    for f in fields(SinGANConfig):
        value = getattr(cfg, f.name)
        if f.name == "mode" or value == getattr(defaults, f.name):
            continue
        if isinstance(value, bool):
            parts.append(f"--{f.name}")
        else:
            parts += [f"--{f.name}", _exact_text(value)]
    return " ".join(shlex.quote(p) for p in parts)


def _exact_text(value) -> str:
    """4.0 -> '4', 0.0005 -> '0.0005', and every float exactly (repr) where %g would round."""
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def check_mode(pyramid: TrainedPyramid, folder, modes: Sequence[str], task: str,
               consingan_ok: bool = False) -> None:
    """Refuse a model trained for another application (its checkpoint records the training
    variant as config["mode"]; models imported from the reference code record none).
    consingan_ok lets a ConSinGAN model through (the caller checks its train mode)."""
    if consingan_ok and getattr(pyramid, "method", "singan") == "consingan":
        return
    if not isinstance(pyramid, TrainedPyramid):
        raise SinGANError(f"{folder} holds a ConSinGAN model; {task} here needs a SinGAN model "
                          f"trained by {MODE_SCRIPTS[modes[0]]}")
    mode = pyramid.config.get("mode")
    if mode is not None and mode not in modes:
        made_by = MODE_SCRIPTS.get(mode, "another tool")
        raise SinGANError(f"{folder} holds a model trained by {made_by} (mode {mode}); {task} "
                          f"needs one trained by {MODE_SCRIPTS[modes[0]]} (mode {modes[0]})")
    if pyramid.num_scales < len(pyramid.reals):
        raise SinGANError(f"{folder} is not fully trained ({pyramid.num_scales} of "
                          f"{len(pyramid.reals)} scales); run its training command again to "
                          "resume")


def open_trained_model(input_name: str, cfg: SinGANConfig, device="auto",
                       model_dir=None, input_dir: str = IMAGES_DIR,
                       modes: Sequence[str] = ("train",), task: str = "this application",
                       root=TRAINED_ROOT, consingan_ok: bool = False) -> (TrainedPyramid, Path):
    """The finished model for `input_name` (or `model_dir`), trained for one of `modes`.

    A missing model is an error that prints the main_train.py command that makes it.
    """
    folder = Path(model_dir) if model_dir else model_folder(input_name, cfg, root)
    scale_factor = None
    image = Path(input_dir) / input_name
    if model_dir and is_reference_folder(folder) and image.is_file():
        # The reference's folders do not store the factor: recompute it from the image.
        scale_factor = plan_for_image(read_image(image), cfg).scale_factor
    pyramid = open_model(folder, device, scale_factor,
                         train_hint=train_command(input_name, cfg, input_dir))
    check_mode(pyramid, folder, modes, task, consingan_ok)
    return pyramid, folder


def samples_folder(out_root, stem: str, gen_start_scale: int = 0, scale_v: float = 1.0,
                   scale_h: float = 1.0, arbitrary: bool = False) -> Path:
    """The reference's output folders (its spelling of 'Arbitrery' included)."""
    if arbitrary:
        return (Path(out_root) / "RandomSamples_ArbitrerySizes" / stem
                / ("scale_v=%f_scale_h=%f" % (scale_v, scale_h)))
    return Path(out_root) / "RandomSamples" / stem / f"gen_start_scale={gen_start_scale}"


def write_images(folder: Path, images: torch.Tensor, start: int = 0) -> None:
    """images [N, 3, H, W] -> folder/0.png .. (N-1).png."""
    for i, image in enumerate(images):
        save_image(folder / f"{start + i}.png", image[None])


def random_samples(pyramid: TrainedPyramid, folder, num_samples: int = 50,
                   gen_start_scale: int = 0, scale_v: float = 1.0, scale_h: float = 1.0,
                   seed: Optional[int] = None, grid: bool = True,
                   amp: str = "none") -> torch.Tensor:
    """Draw samples in batches, write them as 0.png .. and a grid (training image beside the
    first samples) next to the folder; return them as [num_samples, 3, H, W].
    amp "bf16" / "fp16" draws them under bfloat16 / float16 autocast."""
    generator = None
    if seed is not None:
        generator = torch.Generator(device=pyramid.device).manual_seed(seed)
    with autocast_context(pyramid.device, amp)():
        samples = pyramid.sample(num_samples, gen_start_scale, scale_v, scale_h,
                                 generator=generator).float()
    folder = Path(folder)
    write_images(folder, samples)
    if grid:
        save_grid(grid_path(folder), [pyramid.reals[-1]] + [s[None] for s in samples[:5]])
    return samples


def grid_path(samples_dir: Path) -> Path:
    """Beside the samples folder, so that the folder holds samples only (for SIFID)."""
    return samples_dir.parent / f"{samples_dir.name}_grid.png"
