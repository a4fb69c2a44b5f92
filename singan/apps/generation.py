"""Training a model for an image, and random samples (SPEC section 7)."""
from pathlib import Path
from typing import Optional

import torch

from ..checkpoint import load_model
from ..errors import SinGANError
from ..hparams import SinGANConfig
from ..image_io import read_image, save_grid, save_image
from ..pyramid import plan_pyramid
from ..sampling import TrainedPyramid
from ..train import resolve_device, train_pyramid

TRAINED_ROOT = "TrainedModels"


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
                folder=None) -> (TrainedPyramid, Path):
    """Train SinGAN on an image file (or resume, or reuse a finished model)."""
    device = resolve_device(device) if isinstance(device, str) else device
    image = read_image(image_path, device)
    plan = plan_for_image(image, cfg, sr=cfg.mode == "SR_train")
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
                   seed: Optional[int] = None, grid: bool = True) -> torch.Tensor:
    """Draw samples in batches, write them as 0.png .. and a grid (training image beside the
    first samples) next to the folder; return them as [num_samples, 3, H, W]."""
    generator = None
    if seed is not None:
        generator = torch.Generator(device=pyramid.device).manual_seed(seed)
    samples = pyramid.sample(num_samples, gen_start_scale, scale_v, scale_h, generator=generator)
    folder = Path(folder)
    write_images(folder, samples)
    if grid:
        save_grid(grid_path(folder), [pyramid.reals[-1]] + [s[None] for s in samples[:5]])
    return samples


def grid_path(samples_dir: Path) -> Path:
    """Beside the samples folder, so that the folder holds samples only (for SIFID)."""
    return samples_dir.parent / f"{samples_dir.name}_grid.png"
