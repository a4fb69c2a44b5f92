"""Paint to image (SPEC section 8): a painting injected at scale n, and its colour-quantised
variant, which first retrains scale n's generator on inputs reduced to the image's 5 colours.

Quantised variant:
  1. centres = k-means (5 colours) of the training image at scale n;
  2. the painting, each pixel replaced by its nearest centre, imresized to scale n, is the
     start image;
  3. G_n is retrained from scratch with its inputs from the coarser scales quantised to the
     same centres (a paint model: paint_colours = 5), once, into its own model folder
     TrainedModels/<image>/scale_factor=<s>_paint/start_scale=<n>/; later runs reuse it.
"""
import hashlib
from dataclasses import replace
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from ..api import TRAINED_ROOT
from ..catalog import is_reference_folder
from ..checkpoint import CHECKPOINT_NAME, read_checkpoint
from ..driver import RunOptions, train_stages
from ..errors import SinGANError
from ..image_io import read_image, save_grid, save_image
from ..imresize import imresize
from ..interface import TrainedModel
from ..methods.singan.hparams import PAINT_COLOURS, SinGANConfig
from ..methods.singan.train import ScaleRetrainer
from .harmonize import fit_to_shape, output_folder, output_name, resolve_start_scale

NUM_COLOURS = PAINT_COLOURS   # the reference's k-means cluster count
KMEANS_SEED = 0      # fixed, as the reference's random_state=0: the same image, the same colours


# ---- colour quantisation ---------------------------------------------------------------------

def kmeans_colours(image: torch.Tensor, k: int = NUM_COLOURS, seed: int = KMEANS_SEED,
                   restarts: int = 10, max_iter: int = 300) -> torch.Tensor:
    """k colour centres [k, 3] of the pixels of `image` [1, 3, h, w]: Lloyd's algorithm from
    k-means++ seeds, the best of `restarts` runs (as the reference's scikit-learn KMeans with
    random_state 0), computed once on the host with scipy's vq.

    Fix: the reference clusters image.reshape(-1, 3) of the N x C x H x W tensor, i.e. triples
    of neighbouring values of one channel rather than RGB colours; we cluster RGB pixels.
    """
    from scipy.cluster.vq import vq

    points = image[0].reshape(3, -1).t().double().cpu().numpy()      # [P, 3]
    rng = np.random.default_rng(seed)
    best, best_err = None, np.inf
    for _ in range(restarts):
        # k-means++: each next seed drawn with probability proportional to its squared distance
        centres = points[rng.integers(len(points))][None]
        while len(centres) < k:
            d2 = vq(points, centres)[1] ** 2
            if d2.sum() == 0:            # fewer distinct colours than k
                break
            pick = rng.choice(len(points), p=d2 / d2.sum())
            centres = np.concatenate([centres, points[pick][None]])
        labels = None
        for _ in range(max_iter):        # Lloyd: assign, move each centre to its pixels' mean
            new_labels = vq(points, centres)[0]
            if labels is not None and np.array_equal(new_labels, labels):
                break
            labels = new_labels
            counts = np.bincount(labels, minlength=len(centres))[:, None]
            sums = np.stack([np.bincount(labels, points[:, c], len(centres)) for c in range(3)], 1)
            centres = np.where(counts > 0, sums / np.maximum(counts, 1), centres)
        err = (vq(points, centres)[1] ** 2).sum()
        if err < best_err:
            best, best_err = centres, err
    return torch.from_numpy(best).to(image.device, image.dtype)


def quantize(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Every pixel of x [N, 3, h, w] replaced by its nearest colour centre ([k, 3])."""
    d2 = ((x[:, None] - centres[None, :, :, None, None]) ** 2).sum(2)   # [N, k, h, w]
    return centres[d2.argmin(1)].permute(0, 3, 1, 2).contiguous()     # [N, 3, h, w]


# ---- the quantised model ---------------------------------------------------------------------

def paint_model_folder(input_name: str, cfg: SinGANConfig, n: int, model_dir=None,
                       root=TRAINED_ROOT) -> Path:
    """TrainedModels/<image>/scale_factor=<s>_paint/start_scale=<n> (the reference's layout);
    with --model_dir, <model_dir>_paint/start_scale=<n> beside it."""
    if model_dir:
        base = Path(model_dir)
        return base.parent / f"{base.name}_paint" / f"start_scale={n}"
    return (Path(root) / Path(input_name).stem / ("scale_factor=%f_paint" % cfg.scale_factor)
            / f"start_scale={n}")


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def quantised_model(pyramid: TrainedModel, base_folder: Path, folder: Path, n: int,
                    centres: torch.Tensor, cfg: SinGANConfig,
                    run: RunOptions = RunOptions()) -> TrainedModel:
    """The base model with G_n retrained on quantised inputs: loaded from `folder` when it was
    made from this very base model, else trained by the stage driver (about one scale's
    training time; lock, checks, checksummed atomic save, progress and should_stop as any
    training, as `run` says) and saved there."""
    pyramid.require("quantised_paint")
    base_ckpt_path = Path(base_folder) / CHECKPOINT_NAME
    if not base_ckpt_path.is_file():
        reason = "a model imported from the reference code" if is_reference_folder(
            Path(base_folder)) else "no model.pth"
        raise SinGANError(f"--quantization_flag retrains a scale of {base_folder}, which is "
                          f"{reason}; train the image with main_train.py first")
    digest = _file_digest(base_ckpt_path)
    base = read_checkpoint(base_ckpt_path)
    record = {"paint": {"start_scale": n, "centres": centres.cpu(),
                        "base_model": str(base_folder), "base_sha256": digest}}

    def matches(ckpt: dict) -> bool:
        made = ckpt.get("paint", {})
        return made.get("base_sha256") == digest and made.get("start_scale") == n

    trainer = ScaleRetrainer(base, n, replace(cfg, paint_colours=len(centres)),
                             lambda prev: quantize(prev, centres), record, matches,
                             pyramid.device, name="quantised paint model")
    return train_stages(trainer, folder, run, base.get("image", {}))


# ---- the application -------------------------------------------------------------------------

def paint2image(model: TrainedModel, image_name: str, ref_path, start_scale: Optional[int],
                cfg: Optional[SinGANConfig] = None, seed: int = 0, out_root="Output",
                num_samples: int = 1, quantization: bool = False, force: bool = False,
                quiet: bool = False, root=TRAINED_ROOT, log=print, model_dir=None,
                progress=None, should_stop=None) -> List[Path]:
    """Paint-to-image (SPEC 8), end to end; returns the files written, the results last.

    Writes Output/Paint2image/<image>/<paint>_out[_quantized]/start_scale=<n>.png (and
    start_scale=<n>_<i>.png for more samples), a grid (training image | painting | results);
    with quantization also real_quant.png, in_paint.png and in_paint_quant.png. cfg: the
    settings of the quantised scale's retraining (default: the model's own).
    """
    n = resolve_start_scale(model, start_scale, "--paint_start_scale")
    real = model.trained_real                                         # [1, 3, H, W]
    ref_path = Path(ref_path)
    paint = fit_to_shape(read_image(ref_path, model.device), real.shape[2:], ref_path)
    folder = output_folder(out_root, "paint2image", Path(image_name).stem, ref_path.stem,
                           "_quantized" if quantization else "", model.output_tag)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    written = []
    if not quantization:
        out = model.generate(paint, n, num_samples, generator)        # [k, 3, H, W]
    else:
        model.require("quantised_paint")
        cfg = cfg if cfg is not None else SinGANConfig.from_dict(model.config)
        pyramid, last = model, model.planned_stages - 1
        start = pyramid.injection_input(paint, n)                     # [1, 3, h_n, w_n]
        h, w = pyramid.shape(n)
        real_s = imresize(real, pyramid.scale_factor ** (last - n))[:, :, :h, :w]
        centres = kmeans_colours(real_s)                              # [5, 3]
        save_image(folder / "real_quant.png", quantize(real_s, centres))
        save_image(folder / "in_paint.png", start)
        start = imresize(quantize(paint, centres), pyramid.scale_factor ** (last - n))
        start = start[:, :, :h, :w]
        save_image(folder / "in_paint_quant.png", start)
        written += [folder / "real_quant.png", folder / "in_paint.png",
                    folder / "in_paint_quant.png"]
        paint_folder = paint_model_folder(image_name, cfg, n, model_dir, root)
        run = RunOptions(seed=seed, force=force, show_progress=not quiet, progress=progress,
                         should_stop=should_stop, log=log)
        pyramid = quantised_model(pyramid, model.folder, paint_folder, n, centres, cfg, run)
        out = pyramid.generate(start, n, num_samples, generator, start_is_scaled=True)
    grid = folder / f"start_scale={n}_grid.png"
    save_grid(grid, [real, paint] + [o[None] for o in out[:4]])
    written.append(grid)
    for i in range(num_samples):
        written.append(folder / output_name(n, i))
        save_image(written[-1], out[i:i + 1])
    return written
