"""Evaluating trained models: the SinGAN paper's Table 2 protocol (SIFID and diversity of
samples from scales N and N-1, for either method), and ConSinGAN's own tools: fine-tuning a
harmonization/editing model on a naive image (the reference's --fine_tune), and the evaluation
that runs what the reference's evaluate_model.py runs for the model's train mode (SPEC
section 10)."""
import math
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ..checkpoint import CHECKPOINT_NAME, read_checkpoint
from ..driver import RunOptions
from ..errors import SinGANError
from ..image_io import read_image, save_image
from ..imresize import imresize_to_shape
from ..interface import TrainedModel
from ..methods.consingan.model import ConSinGAN
from ..methods.consingan.train import fine_tune
from ..metrics import SIFIDOptions, sample_quality
from .animation import check_format, write_animation
from .generation import open_model, write_images
from .harmonize import fit_to_shape, inject_with_mask, mask_path

OUTPUT_SUBFOLDER = "ConSinGAN"
RETARGET_SIZES = ((1, 2), (2, 1), (2, 2))            # (scale_h, scale_w), as the reference
GIF_BETAS = (0.80, 0.85, 0.90, 0.95)
GIF_START_SCALES = (0, 1, 2)

# The paper's Table 2 (arXiv 1905.01164, section 4): SinGAN on 50 Places images.
PAPER_TABLE_2 = {"N": {"SIFID": 0.09, "diversity": 0.5},
                 "N-1": {"SIFID": 0.05, "diversity": 0.35}}
PROTOCOL_SCALES = {"N": 0, "N-1": 1}   # label -> gen_start_scale
PROTOCOL_MEASURES = ("SIFID", "diversity")
PROTOCOL_COLUMNS = tuple(f"{measure} {label}" for measure in PROTOCOL_MEASURES
                         for label in PROTOCOL_SCALES)   # "SIFID N", "SIFID N-1", ...


# ---- the paper's Table 2 protocol ---------------------------------------------------------------

def load_sifid_extractor(sifid: Optional[SIFIDOptions], device):
    """SIFID's feature extractor for these options (None: no SIFID); never downloads."""
    if sifid is None:
        return None
    from SIFID import load_extractor   # stands apart from singan; imported on demand
    return load_extractor(sifid.dims, sifid.backbone, sifid.weights, device, download=False)


def evaluate_protocol(model: TrainedModel, num_samples: int = 50, seed: int = 0,
                      extractor=None, no_sifid: str = "not measured",
                      status: Callable[[str], None] = lambda text: None
                      ) -> Tuple[Dict[str, object], List[str]]:
    """The paper's Table 2 protocol for one model: num_samples samples from the coarsest scale
    (N) and as many from scale 1 (N-1), each batch drawn from `seed`; their mean SIFID
    against the training image (with `extractor`; without one the SIFID cells say
    `no_sifid`) and their diversity. Returns ({column of PROTOCOL_COLUMNS: value}, notes):
    a start scale the model does not sample from is "n/a", with a note saying why."""
    real = model.trained_real                                            # [1, 3, H, W]
    values: Dict[str, object] = {}
    notes: List[str] = []
    for label, start in PROTOCOL_SCALES.items():
        if start not in model.sample_start_scales:   # e.g. ConSinGAN samples from stage 0 only
            values[f"SIFID {label}"] = values[f"diversity {label}"] = "n/a"
            notes.append(f"{label}: samples start at {model.unit} "
                         f"{', '.join(map(str, model.sample_start_scales))} only")
            continue
        status(f"sampling {label}")
        generator = torch.Generator(model.device).manual_seed(seed)
        samples = model.sample(num_samples, start, generator=generator)   # [n, 3, H, W]
        status(f"SIFID {label}" if extractor is not None else f"diversity {label}")
        quality = sample_quality(samples, real, extractor=extractor)
        values[f"diversity {label}"] = round(quality.diversity, 4) \
            if quality.diversity is not None else "n/a"
        values[f"SIFID {label}"] = round(quality.sifid_mean, 4) \
            if quality.sifid_mean is not None else no_sifid
        notes += [f"{label}: {note}" for note in quality.notes]
    return values, notes


def _mean_std(values: List[float]) -> str:
    if not values:
        return "-"
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return f"{mean:.3f} +- {std:.3f}"


def protocol_table(rows: Sequence[dict]) -> str:
    """Mean +- standard deviation over the images (rows holding PROTOCOL_COLUMNS) of each
    measure, beside the paper's Table 2 (SinGAN on 50 Places images; its SIFID uses
    torchvision's Inception, 64 dims)."""
    lines = [f"{'':<8}{'SIFID':>18}{'paper':>8}{'diversity':>18}{'paper':>8}"]
    for label in PROTOCOL_SCALES:
        cells = []
        for measure in PROTOCOL_MEASURES:
            values = [row[f"{measure} {label}"] for row in rows]
            numbers = [float(v) for v in values if isinstance(v, (int, float))]
            text = _mean_std(numbers) if numbers else next((v for v in values if v), "-")
            cells.append(f"{text:>18}{PAPER_TABLE_2[label][measure]:>8}")
        lines.append(f"{label:<8}" + "".join(cells))
    measured = sum(isinstance(row["diversity N"], float) for row in rows)
    lines.append(f"over {measured} of {len(rows)} images; paper: 50 Places images, 50 samples "
                 "each (arXiv 1905.01164, Table 2)")
    return "\n".join(lines)


# ---- ConSinGAN's tools --------------------------------------------------------------------------


def finetuned_folder(model_dir, naive_img) -> Path:
    """Beside the trained model: <model folder>_finetuned_<naive image stem>."""
    model_dir = Path(model_dir)
    return model_dir.parent / f"{model_dir.name}_finetuned_{Path(naive_img).stem}"


def fine_tune_model(model_dir, naive_img, niter: Optional[int] = None,
                    run: RunOptions = RunOptions(), folder=None) -> Tuple[ConSinGAN, Path]:
    """Fine-tune a harmonization/editing model on a naive image (the reference's --fine_tune)
    through the stage driver (`run`: device, seed, force, progress events, should_stop...):
    writes a new model to <model_dir>_finetuned_<naive stem> (or `folder`); model_dir is only
    read. A folder that already holds this very fine-tuning is returned as it is unless
    run.force."""
    source = open_model(model_dir, run.device, train_hint="python main_train.py --model consingan "
                        "--train_mode harmonization --input_name <image>")   # or one line
    source.require("fine_tune")
    if not (Path(model_dir) / CHECKPOINT_NAME).is_file():
        raise SinGANError(f"{model_dir}: --fine_tune retrains a model trained by this singan "
                          f"(its {CHECKPOINT_NAME}); train it with main_train.py first")
    ckpt = read_checkpoint(Path(model_dir) / CHECKPOINT_NAME)
    folder = Path(folder) if folder else finetuned_folder(model_dir, naive_img)
    if folder.resolve() == Path(model_dir).resolve():
        raise SinGANError("the fine-tuned model must go to another folder than the trained one")
    naive = read_image(naive_img, source.device)
    naive = imresize_to_shape(naive, tuple(source.reals[0].shape[2:]))   # [1, 3, h_0, w_0]
    model = fine_tune(ckpt, naive, folder, niter, source_folder=model_dir,
                      naive_name=str(naive_img), run=run)
    model.folder = folder
    return model, folder


def output_folder(model: TrainedModel, out_root="Output") -> Path:
    """Output/ConSinGAN/<image stem>/<model folder name>, for a model that the reference
    ConSinGAN's evaluation serves (others raise SinGANError saying why)."""
    model.require("evaluate")
    stem = Path(model.info.get("name") or model.folder.resolve().parent.name).stem
    return Path(out_root) / OUTPUT_SUBFOLDER / stem / model.output_tag


def evaluate(model: ConSinGAN, out_folder, num_samples: int = 50, naive_img=None,
             seed: Optional[int] = None, num_frames: int = 100,
             log=print, format: str = "gif") -> List[Path]:
    """What the reference's evaluation does for the model's train mode; returns what it wrote.

    generation, retarget: reconstruction.png, real_image.png, random_samples/0..N-1.png, and
      in retarget mode random_samples_scale_h_<h>_scale_w_<w>/ for (1, 2), (2, 1), (2, 2);
    animation: start_scale=<s>_alpha=0.1_beta=<b>.gif for s in 0, 1, 2 and b in 0.80..0.95
      (format "mp4": .mp4, H.264);
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
        save_image(out_folder / "real_image.png", model.trained_real)
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
        check_format(format)
        for start_scale in GIF_START_SCALES[:model.num_scales]:
            for beta in GIF_BETAS:
                path = out_folder / f"start_scale={start_scale}_alpha=0.1_beta={beta:.2f}.{format}"
                write_animation(path, model.animate(0.1, beta, start_scale, num_frames,
                                                    generator), format=format)
                written.append(path)
    else:
        if naive_img is None:
            raise SinGANError(f"this is a {mode} model: give --naive_img <image> (its mask, if "
                              "any, is <image>_mask<ext> beside it)")
        real = model.trained_real
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
