"""ConSinGAN's own tools over a trained model: fine-tuning a harmonization/editing model on a
naive image (the reference's --fine_tune), and the evaluation that runs what the reference's
evaluate_model.py runs for the model's train mode (SPEC section 10)."""
from pathlib import Path
from typing import List, Optional, Tuple

import torch

from ..api import load_model
from ..checkpoint import CHECKPOINT_NAME, read_checkpoint
from ..consingan.model import ConSinGAN
from ..consingan.train import fine_tune
from ..devices import resolve_device
from ..errors import SinGANError
from ..image_io import read_image, save_image
from ..imresize import imresize_to_shape
from .animation import write_gif
from .generation import model_tag, write_images
from .harmonize import fit_to_shape, inject_with_mask, mask_path

OUTPUT_SUBFOLDER = "ConSinGAN"
RETARGET_SIZES = ((1, 2), (2, 1), (2, 2))            # (scale_h, scale_w), as the reference
GIF_BETAS = (0.80, 0.85, 0.90, 0.95)
GIF_START_SCALES = (0, 1, 2)


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
    device = resolve_device(device)
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
    model.folder = folder
    return model, folder


def output_folder(model: ConSinGAN, out_root="Output") -> Path:
    """Output/ConSinGAN/<image stem>/<model folder name>."""
    if not isinstance(model, ConSinGAN):
        raise SinGANError(f"{model.folder} holds a {model.method} model; the reference "
                          "ConSinGAN's evaluation needs a ConSinGAN model (use random_samples.py "
                          "or the application scripts)")
    stem = Path(model.info.get("name") or model.folder.resolve().parent.name).stem
    return Path(out_root) / OUTPUT_SUBFOLDER / stem / model_tag(model)


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
    generator = None if seed is None else torch.Generator(model.device).manual_seed(seed)
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
                write_gif(path, model.animate(0.1, beta, start_scale, num_frames, generator))
                written.append(path)
    else:
        if naive_img is None:
            raise SinGANError(f"this is a {mode} model: give --naive_img <image> (its mask, if "
                              "any, is <image>_mask<ext> beside it)")
        real = model.reals[-1]
        naive = fit_to_shape(read_image(naive_img, model.device), real.shape[2:], naive_img)
        mask_file = mask_path(naive_img)
        blend = None
        if mask_file.is_file():
            mask = fit_to_shape(read_image(mask_file, model.device), real.shape[2:], mask_file)
            out, blend, _ = inject_with_mask(model, naive, mask, 0, mode, 1, generator)
        else:
            log(f"no mask {mask_file}: writing the result without the masked blend")
            out = model.generate(naive, 0, 1, generator)
        name = "harmonized" if mode == "harmonization" else "edited"
        folder = out_folder / Path(naive_img).stem
        save_image(folder / f"{name}_wo_mask.png", out)
        written.append(folder / f"{name}_wo_mask.png")
        if blend is not None:
            save_image(folder / f"{name}_w_mask.png", blend)
            written.append(folder / f"{name}_w_mask.png")
    return written
