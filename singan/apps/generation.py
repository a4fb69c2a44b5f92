"""Opening a trained model for an application, and random samples (SPEC section 7)."""
import shlex
from dataclasses import fields
from pathlib import Path
from typing import List, Optional

import torch

from ..api import load_model
from ..catalog import is_reference_singan_folder
from ..devices import autocast_context
from ..errors import SinGANError
from ..image_io import IMAGES_DIR, read_image, save_grid, save_image
from ..interface import TrainedModel
from ..layers import number_text
from ..methods.singan.hparams import VARIANT_SETTINGS, SinGANConfig
from ..methods.singan.train import plan_for
from ..resources import check_output_files, image_file_bytes, sample_shape

def train_command(input_name: str, cfg: SinGANConfig, input_dir: str = IMAGES_DIR) -> str:
    """The command line that trains the SinGAN model `cfg` selects for `input_name`: every
    option that differs from its default, so that the model lands in the folder the caller
    looks in."""
    parts = ["python", *cfg.variant_script().split()]
    if input_dir != IMAGES_DIR:
        parts += ["--input_dir", input_dir]
    parts += ["--input_name", input_name]
    defaults = SinGANConfig()
    for f in fields(SinGANConfig):
        value = getattr(cfg, f.name)
        if f.name in VARIANT_SETTINGS or value == getattr(defaults, f.name):
            continue
        if isinstance(value, bool):
            parts.append(f"--{f.name}")
        else:
            parts += [f"--{f.name}", number_text(value)]
    return " ".join(shlex.quote(p) for p in parts)


def open_model(folder, device="auto", scale_factor: Optional[float] = None,
               train_hint: str = "", complete: bool = True) -> TrainedModel:
    """load_model with a message that says how to make the model when it is missing, and
    (complete=True) refusing a model whose training has not finished."""
    folder = Path(folder)
    if not folder.exists():
        hint = f"; train it first: {train_hint}" if train_hint else ""
        raise SinGANError(f"no trained model at {folder}{hint}")
    model = load_model(folder, scale_factor=scale_factor, device=device)
    if complete and not model.complete:
        raise SinGANError(f"{folder} is not fully trained ({model.progress_text()}); run its "
                          "training command again to resume")
    return model


def open_trained_model(folder, input_name: Optional[str] = None,
                       cfg: Optional[SinGANConfig] = None, device="auto",
                       input_dir: str = IMAGES_DIR) -> TrainedModel:
    """The finished model in `folder` (a missing one is an error that prints the command
    that trains it, when cfg says how). A reference SinGAN folder does not store its scale
    factor: it is recomputed from the training image when that is at hand."""
    folder = Path(folder)
    scale_factor = None
    image = Path(input_dir) / input_name if input_name else None
    if cfg is not None and image is not None and is_reference_singan_folder(folder) \
            and image.is_file():
        shape = read_image(image).shape
        scale_factor = plan_for(shape[2], shape[3], cfg).scale_factor
    hint = train_command(input_name, cfg, input_dir) if cfg is not None and input_name else ""
    return open_model(folder, device, scale_factor, hint)


# the reference's folders of random samples, plain and at arbitrary sizes ('Arbitrery' sic)
SAMPLES_TOPS = ("RandomSamples", "RandomSamples_ArbitrerySizes")


def samples_folder(out_root, stem: str, gen_start_scale: int = 0, scale_v: float = 1.0,
                   scale_h: float = 1.0, arbitrary: bool = False, tag: str = "") -> Path:
    """The reference's output folders (its spelling of 'Arbitrery' included); a tag (the
    model's output_tag) adds a level, so that a ConSinGAN model's samples never mix with SinGAN's."""
    root = Path(out_root) / SAMPLES_TOPS[bool(arbitrary)]
    base = root / stem / tag if tag else root / stem
    if arbitrary:
        return base / ("scale_v=%f_scale_h=%f" % (scale_v, scale_h))
    return base / f"gen_start_scale={gen_start_scale}"


def samples_roots(out_root, stem: str) -> List[Path]:
    """Every folder under which samples_folder puts an image's samples (and their grids)."""
    return [Path(out_root) / top / stem for top in SAMPLES_TOPS]


def write_images(folder: Path, images: torch.Tensor, start: int = 0) -> list:
    """images [N, 3, H, W] -> folder/0.png .. (N-1).png; returns the paths."""
    paths = []
    for i, image in enumerate(images):
        paths.append(Path(folder) / f"{start + i}.png")
        save_image(paths[-1], image[None])
    return paths


def random_samples(model: TrainedModel, folder, num_samples: int = 50,
                   gen_start_scale: int = 0, scale_v: float = 1.0, scale_h: float = 1.0,
                   seed: Optional[int] = None, grid: bool = True,
                   amp: str = "none") -> torch.Tensor:
    """Draw samples in batches, write them as 0.png .. and a grid (training image beside the
    first samples) next to the folder; return them as [num_samples, 3, H, W]. A request whose
    samples the memory or the disk cannot hold is refused first (singan.resources).
    amp "bf16" / "fp16" draws them under bfloat16 / float16 autocast."""
    h, w = sample_shape(model, scale_v, scale_h)      # the disk first (the grid is small)
    check_output_files(folder, num_samples, image_file_bytes(h, w))
    generator = None
    if seed is not None:
        generator = torch.Generator(device=model.device).manual_seed(seed)
    with autocast_context(model.device, amp)():
        samples = model.sample(num_samples, gen_start_scale, scale_v, scale_h,
                               generator=generator).float()
    folder = Path(folder)
    write_images(folder, samples)
    if grid:
        save_grid(grid_path(folder), [model.trained_real] + [s[None] for s in samples[:5]])
    return samples


def grid_path(samples_dir: Path) -> Path:
    """Beside the samples folder, so that the folder holds samples only (for SIFID)."""
    return samples_dir.parent / f"{samples_dir.name}_grid.png"
