"""ConSinGAN's applications over a trained model: training an image file, fine-tuning on a
naive image, random samples, retargeting, harmonization/editing, animation, and the
evaluation that runs the right ones for the model's train mode (the reference's
evaluate_model.py; SPEC section 10).
"""
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch

from ..apps.animation import write_gif
from ..checkpoint import CHECKPOINT_NAME, load_model, read_checkpoint
from ..errors import SinGANError
from ..image_io import atomic_write_bytes, read_image, save_image, to_uint8
from ..imresize import imresize_to_shape
from ..train import resolve_device
from .hparams import ConSinGANConfig
from .model import ConSinGAN, is_consingan
from .train import fine_tune, train_consingan

TRAINED_ROOT = "TrainedModels"
OUTPUT_SUBFOLDER = "ConSinGAN"
RETARGET_SIZES = ((1, 2), (2, 1), (2, 2))            # (scale_h, scale_w), as the reference
GIF_BETAS = (0.80, 0.85, 0.90, 0.95)
GIF_START_SCALES = (0, 1, 2)


def _device(device):
    return resolve_device(device) if isinstance(device, str) else device


# ---- training ---------------------------------------------------------------------------------

def model_folder(image_name: str, cfg: ConSinGANConfig, root=TRAINED_ROOT) -> Path:
    """TrainedModels/<image stem>/consingan_<mode>,stages=<S>,depth=<D>,lr_scale=<x>[,...]."""
    return Path(root) / Path(image_name).stem / cfg.folder_name()


def train_model(image_path, cfg: ConSinGANConfig, device="auto", seed: int = 0,
                force: bool = False, root=TRAINED_ROOT, quiet: bool = False,
                folder=None) -> Tuple[ConSinGAN, Path]:
    """Train ConSinGAN on an image file (or resume, or reuse a finished model)."""
    device = _device(device)
    image = read_image(image_path, device)
    folder = Path(folder) if folder else model_folder(Path(image_path).name, cfg, root)
    info = {"name": Path(image_path).name, "path": str(image_path),
            "height": image.shape[2], "width": image.shape[3]}
    model = train_consingan(image, cfg, folder, seed=seed, image_info=info, force=force,
                            show_progress=not quiet)
    return model, folder


def finetuned_folder(model_dir, naive_img) -> Path:
    """Beside the trained model: <model folder>_finetuned_<naive image stem>."""
    model_dir = Path(model_dir)
    return model_dir.parent / f"{model_dir.name}_finetuned_{Path(naive_img).stem}"


def read_finished_checkpoint(folder) -> dict:
    """model.pth of a complete ConSinGAN folder, or one clear error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SinGANError(f"model folder not found: {folder} (train one with main_train.py "
                          "--model consingan)")
    ckpt = read_checkpoint(folder / CHECKPOINT_NAME)
    if ckpt.get("method") != "consingan":
        raise SinGANError(f"{folder} holds a {ckpt.get('method', 'singan')} model, not ConSinGAN")
    stages = ckpt["config"].get("train_stages")
    if len(ckpt["scales"]) != stages:
        raise SinGANError(f"{folder} is not fully trained ({len(ckpt['scales'])} of {stages} "
                          "stages); run its training command again to resume")
    return ckpt


def fine_tune_model(model_dir, naive_img, niter: Optional[int] = None, device="auto",
                    seed: int = 0, force: bool = False, quiet: bool = False,
                    folder=None) -> Tuple[ConSinGAN, Path]:
    """Fine-tune a harmonization/editing model on a naive image (the reference's --fine_tune):
    writes a new model to <model_dir>_finetuned_<naive stem> (or `folder`); model_dir is only
    read. A finished fine-tuned folder is reused unless force."""
    device = _device(device)
    ckpt = read_finished_checkpoint(model_dir)
    mode = ckpt["config"]["train_mode"]
    if mode not in ("harmonization", "editing"):
        raise SinGANError(f"{model_dir} is a {mode} model; --fine_tune works on models trained "
                          "with --train_mode harmonization or editing")
    naive = read_image(naive_img, device)
    folder = Path(folder) if folder else finetuned_folder(model_dir, naive_img)
    if folder.resolve() == Path(model_dir).resolve():
        raise SinGANError("the fine-tuned model must go to another folder than the trained one")
    if (folder / CHECKPOINT_NAME).exists() and not force:
        print(f"{folder} is already fine-tuned; nothing to do (--force fine-tunes it again)")
        return load_model(folder, device=device), folder
    h0, w0 = ckpt["reals"][0].shape[2:]
    naive = imresize_to_shape(naive, (h0, w0))                     # [1, 3, h_0, w_0]
    model = fine_tune(ckpt, naive, folder, niter, seed, source_folder=model_dir,
                      naive_name=str(naive_img), show_progress=not quiet)
    return model, folder


# ---- opening a model --------------------------------------------------------------------------

def open_consingan(folder, device="auto") -> ConSinGAN:
    """A finished ConSinGAN from its folder, or one clear error (a SinGAN folder included)."""
    folder = Path(folder)
    if not folder.exists():
        raise SinGANError(f"no trained model at {folder}; train one with python main_train.py "
                          "--model consingan --input_name <image>")
    model = load_model(folder, device=_device(device))
    if not is_consingan(model):
        raise SinGANError(f"{folder} holds a SinGAN model; use random_samples.py (or the "
                          "application scripts) for it")
    if model.num_scales < model.hparams.train_stages:
        raise SinGANError(f"{folder} is not fully trained ({model.num_scales} of "
                          f"{model.hparams.train_stages} stages); run its training command "
                          "again to resume")
    return model


def output_folder(model: ConSinGAN, model_dir, out_root="Output") -> Path:
    """Output/ConSinGAN/<image stem>/<model folder name>."""
    stem = Path(model.info.get("name") or Path(model_dir).resolve().parent.name).stem
    return Path(out_root) / OUTPUT_SUBFOLDER / stem / Path(model_dir).resolve().name


def write_images(folder: Path, images: torch.Tensor) -> List[Path]:
    """images [N, 3, H, W] -> folder/0.png .. (N-1).png."""
    paths = []
    for i, image in enumerate(images):
        paths.append(Path(folder) / f"{i}.png")
        save_image(paths[-1], image[None])
    return paths


def _generator(model: ConSinGAN, seed: Optional[int]):
    return None if seed is None else torch.Generator(device=model.device).manual_seed(seed)


def random_samples(model: ConSinGAN, folder, num_samples: int = 50, scale_v: float = 1.0,
                   scale_h: float = 1.0, seed: Optional[int] = None) -> torch.Tensor:
    """num_samples samples (stage shapes scaled by scale_v, scale_h) as folder/0.png .."""
    samples = model.sample(num_samples, scale_v=scale_v, scale_h=scale_h,
                           generator=_generator(model, seed))
    write_images(folder, samples)
    return samples


# ---- harmonization and editing ----------------------------------------------------------------

def dilate_mask(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """The reference's mask processing (SPEC 8): binarise (8-bit level of the first channel
    above 0), dilate with a disk of `radius`, Gaussian blur (sigma 5), rescale to [0, 1].
    [1, 3, H, W] in [-1, 1] -> [1, 3, H, W] in [0, 1]."""
    from scipy.ndimage import binary_dilation
    from skimage.filters import gaussian
    from skimage.morphology import disk
    levels = torch.floor(255 * ((mask[0, 0] + 1) / 2).clamp(0, 1))   # Reference: uint8 truncation
    binary = binary_dilation(levels.cpu().numpy() > 0, structure=disk(radius))
    blurred = gaussian(binary.astype(np.float64), sigma=5)
    span = blurred.max() - blurred.min()
    blurred = (blurred - blurred.min()) / span if span > 0 else blurred
    out = torch.from_numpy(blurred).float().to(mask.device)
    return out[None, None].expand(1, 3, *out.shape)


@torch.no_grad()
def harmonize(model: ConSinGAN, naive: torch.Tensor, mask: Optional[torch.Tensor] = None,
              generator: Optional[torch.Generator] = None, radius: Optional[int] = None
              ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Harmonize (or, for an editing model, edit) a naive image with a trained model.

    naive: [1, 3, h, w] in [-1, 1], any size; mask: [1, 3, h', w'] or None. The naive image,
    resized to stage 0's shape, is stage 0's input (editing adds 0.1 * N(0, 1)); the later
    stages use the fixed noise, as the reference's evaluation. Returns (out [1, 3, H, W] at the
    training size, blend or None) where blend = (1 - m) * naive + m * out with the mask m
    dilated and blurred (disk `radius`: by default 7 for a harmonization model, 20 for an
    editing one, as the reference).
    """
    if not model.hparams.image_input:
        raise SinGANError(f"this is a {model.train_mode} model; harmonization and editing need "
                          "one trained with --train_mode harmonization or editing")
    naive = naive.to(model.device)
    stage_zero = imresize_to_shape(naive, model.shape(0))            # [1, 3, h_0, w_0]
    if model.train_mode == "editing":
        stage_zero = stage_zero + model.hparams.noise_scaling * torch.randn(
            stage_zero.shape, device=model.device, generator=generator)
    out = model.generate([stage_zero] + model.fixed_noise[1:])      # [1, 3, H, W]
    if mask is None:
        return out, None
    size = tuple(out.shape[2:])
    naive_full = naive if tuple(naive.shape[2:]) == size else imresize_to_shape(naive, size)
    mask = mask.to(model.device)
    if tuple(mask.shape[2:]) != size:
        mask = imresize_to_shape(mask, size)
    if radius is None:
        radius = 7 if model.train_mode == "harmonization" else 20
    m = dilate_mask(mask, radius)
    return out, (1 - m) * naive_full + m * out


def mask_path(naive_img) -> Path:
    """<naive>_mask<ext> beside the naive image (the reference's naming)."""
    naive_img = Path(naive_img)
    return naive_img.with_name(f"{naive_img.stem}_mask{naive_img.suffix}")


# ---- animation --------------------------------------------------------------------------------

@torch.no_grad()
def animate(model: ConSinGAN, alpha: float = 0.1, beta: float = 0.9, start_scale: int = 0,
            num_frames: int = 100, generator: Optional[torch.Generator] = None,
            batch_size: Optional[int] = None) -> torch.Tensor:
    """Frames of a random walk in noise space around the fixed noise (SPEC 8, on every stage's
    noise): z_t = alpha * z_fixed + (1 - alpha) * (z_{t-1} + beta * (z_{t-1} - z_{t-2})
    + (1 - beta) * fresh noise), starting from z_{-1} = 0.99 z_fixed + 0.01 noise, z_{-2} =
    z_fixed; stages below start_scale keep the fixed noise. Returns [num_frames, 3, H, W].
    Frames are generated in batches (the walk itself is cheap and sequential)."""
    if not 0 <= start_scale < model.num_scales:
        raise SinGANError(f"start_scale must be between 0 and {model.num_scales - 1}, "
                          f"got {start_scale}")
    shapes = model.stage_shapes()
    fixed = model.fixed_noise
    prev1 = [0.99 * f + 0.01 * z for f, z in zip(fixed, model.noise(1, shapes, generator))]
    prev2 = list(fixed)
    batch_size = batch_size or model.default_batch_size()
    frames, pending = [], []
    for _ in range(num_frames):
        fresh = model.noise(1, shapes, generator)
        z = [alpha * f + (1 - alpha) * (p1 + beta * (p1 - p2) + (1 - beta) * r)
             for f, p1, p2, r in zip(fixed, prev1, prev2, fresh)]
        z[:start_scale] = fixed[:start_scale]
        prev2, prev1 = prev1, z
        pending.append(z)
        if len(pending) == batch_size:
            frames.append(model.generate([torch.cat(s) for s in zip(*pending)]))
            pending = []
    if pending:
        frames.append(model.generate([torch.cat(s) for s in zip(*pending)]))
    return torch.cat(frames)


# ---- evaluation (the reference's evaluate_model.py) ------------------------------------------

def evaluate(model: ConSinGAN, out_folder, num_samples: int = 50, naive_img=None,
             seed: Optional[int] = None, num_frames: int = 100,
             log=print) -> List[Path]:
    """What the reference's evaluation does for the model's train mode; returns what it wrote.

    generation, retarget: reconstruction.png, real_image.png, random_samples/0..N-1.png, and
      in retarget mode random_samples_scale_h_<h>_scale_w_<w>/ for (1, 2), (2, 1), (2, 2);
    animation: start_scale=<s>_alpha=0.1_beta=<b>.gif for s in 0, 1, 2 and b in 0.80..0.95;
    harmonization, editing (naive_img required): <naive stem>/harmonized_wo_mask.png (or
      edited_...), and harmonized_w_mask.png when <naive>_mask<ext> exists.
    """
    out_folder = Path(out_folder)
    mode = model.train_mode
    generator = _generator(model, seed)
    if naive_img is not None and not model.hparams.image_input:
        raise SinGANError(f"--naive_img is for harmonization/editing models; this is a {mode} "
                          "model")
    written = []
    if mode in ("generation", "retarget"):
        save_image(out_folder / "reconstruction.png", model.reconstruct())
        save_image(out_folder / "real_image.png", model.reals[-1])
        written += [out_folder / "reconstruction.png", out_folder / "real_image.png"]
        sizes = [(1, 1)] + (list(RETARGET_SIZES) if mode == "retarget" else [])
        for scale_h, scale_w in sizes:
            name = "random_samples" if (scale_h, scale_w) == (1, 1) else \
                f"random_samples_scale_h_{scale_h}_scale_w_{scale_w}"
            samples = model.sample(num_samples, scale_v=scale_h, scale_h=scale_w,
                                   generator=generator)
            write_images(out_folder / name, samples)
            written.append(out_folder / name)
    elif mode == "animation":
        for start_scale in GIF_START_SCALES[:model.num_scales]:
            for beta in GIF_BETAS:
                path = out_folder / f"start_scale={start_scale}_alpha=0.1_beta={beta:.2f}.gif"
                write_gif(path, animate(model, 0.1, beta, start_scale, num_frames, generator))
                written.append(path)
    else:
        if naive_img is None:
            raise SinGANError(f"this is a {mode} model: give --naive_img <image> (its mask, if "
                              "any, is <image>_mask<ext> beside it)")
        naive = read_image(naive_img, model.device)
        mask_file = mask_path(naive_img)
        mask = read_image(mask_file, model.device) if mask_file.is_file() else None
        if mask is None:
            log(f"no mask {mask_file}: writing the result without the masked blend")
        out, blend = harmonize(model, naive, mask, generator)
        name = "harmonized" if mode == "harmonization" else "edited"
        folder = out_folder / Path(naive_img).stem
        save_image(folder / f"{name}_wo_mask.png", out)
        written.append(folder / f"{name}_wo_mask.png")
        if blend is not None:
            save_image(folder / f"{name}_w_mask.png", blend)
            written.append(folder / f"{name}_w_mask.png")
    return written
