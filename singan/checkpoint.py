"""Checkpoints as data (STYLE habit 4): save, load, and import a reference TrainedModels folder.

Our model folder holds ``model.pth``: {format_version, method, config, plan, scales: [{G, D, nfc,
min_nfc, z_opt, noise_amp}], reals, ...}, written atomically after every finished scale and
loadable with ``torch.load(weights_only=True)``; plus a folder per scale with the reference's
files (netG.pth, netD.pth, z_opt.pth and PNGs).
"""
import hashlib
import io
import json
import math
from pathlib import Path
from typing import Optional

import torch

from .errors import SinGANError
from .image_io import atomic_write_bytes
from .models import Generator, generator_from_state_dict
from .sampling import TrainedPyramid

FORMAT_VERSION = 1
CHECKPOINT_NAME = "model.pth"


def save_torch(path, obj) -> None:
    """torch.save through a temporary file and a rename (synced to the disk): a kill or a
    power cut never leaves half a file."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue(), durable=True)


def load_torch(path):
    """torch.load(weights_only=True) with one clear error for a missing, truncated, empty or
    foreign file (never a raw unpickling traceback, never code execution)."""
    path = Path(path)
    if path.is_dir():
        raise SinGANError(f"{path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise SinGANError(f"missing file: {path}")
    if path.stat().st_size == 0:
        raise SinGANError(f"{path} is empty (0 bytes): the model is incomplete; retrain it")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unpickling failure means the same to the user
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SinGANError(f"{path} is not a readable SinGAN checkpoint ({first[:120]}); "
                          "it is truncated, corrupted or not ours: retrain, or use --force") from None


def checkpoint_dict(pyramid: TrainedPyramid, discriminators, config: dict, plan: dict,
                    image: dict, extra: Optional[dict] = None) -> dict:
    scales = []
    for g, d, z, amp in zip(pyramid.generators, discriminators, pyramid.z_opt, pyramid.noise_amp):
        scales.append({"G": {k: v.detach().cpu() for k, v in g.state_dict().items()},
                       "D": {k: v.detach().cpu() for k, v in d.state_dict().items()},
                       "nfc": g.nfc, "min_nfc": g.min_nfc,
                       "z_opt": z.detach().cpu(), "noise_amp": float(amp)})
    return {"format_version": FORMAT_VERSION, "method": "singan", "config": dict(config),
            "plan": dict(plan), "image": dict(image), "scale_factor": pyramid.scale_factor,
            "pad": pyramid.pad, "pad_noise": pyramid.pad_noise, "scales": scales,
            "reals": [r.detach().cpu() for r in pyramid.reals], **(extra or {})}


CHECKSUM_KEY = "sha256"


def content_digest(obj) -> str:
    """sha256 over a checkpoint's contents (every tensor's dtype, shape and bytes, and every
    other value's repr, in order): the same before saving and after loading."""
    digest = hashlib.sha256()

    def feed(x):
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous().reshape(-1)
            digest.update(f"T{t.dtype}{tuple(x.shape)}".encode())
            digest.update(t.view(torch.uint8).numpy().data)
        elif isinstance(x, dict):
            digest.update(b"{")
            for key, value in x.items():
                feed(key)
                feed(value)
            digest.update(b"}")
        elif isinstance(x, (list, tuple)):
            digest.update(b"[")
            for value in x:
                feed(value)
            digest.update(b"]")
        else:
            digest.update(repr(x).encode() + b";")

    feed(obj)
    return digest.hexdigest()


def save_checkpoint(path, ckpt: dict) -> None:
    """Save a checkpoint dict (model.pth) atomically, with a checksum of its contents that
    read_checkpoint verifies: a file damaged after it was written never loads as a model."""
    body = {k: v for k, v in ckpt.items() if k != CHECKSUM_KEY}   # e.g. a loaded checkpoint
    save_torch(path, {**body, CHECKSUM_KEY: content_digest(body)})


def pyramid_from_checkpoint(ckpt: dict, device="cpu") -> TrainedPyramid:
    """Rebuild the trained pyramid from a checkpoint dict (see checkpoint_dict)."""
    cfg = ckpt["config"]
    generators = []
    for s in ckpt["scales"]:
        g = Generator(s["nfc"], s["min_nfc"], cfg.get("num_layer", 5), cfg.get("ker_size", 3))
        g.load_state_dict(s["G"])
        generators.append(g)
    pyramid = TrainedPyramid(generators, [s["z_opt"] for s in ckpt["scales"]],
                             [s["noise_amp"] for s in ckpt["scales"]], ckpt["reals"],
                             ckpt["scale_factor"], ckpt.get("pad", 5),
                             ckpt.get("pad_noise", True), cfg)
    return pyramid.to(device)


def read_checkpoint(path) -> dict:
    ckpt = load_torch(path)
    if not isinstance(ckpt, dict) or "format_version" not in ckpt or "scales" not in ckpt:
        raise SinGANError(f"{path} is not a singan checkpoint (no format_version); "
                          "retrain, or use --force")
    if ckpt["format_version"] > FORMAT_VERSION:
        raise SinGANError(f"{path} was written by a newer singan (format "
                          f"{ckpt['format_version']} > {FORMAT_VERSION}); update singan")
    if CHECKSUM_KEY in ckpt:   # checkpoints saved by save_checkpoint
        expected = ckpt.pop(CHECKSUM_KEY)
        if content_digest(ckpt) != expected:
            raise SinGANError(f"{path} is corrupted: its contents do not match the checksum "
                              "saved with it (damaged on disk or in a copy); retrain with "
                              "--force, or restore a backup")
    return ckpt


def is_reference_folder(folder: Path) -> bool:
    return all((folder / name).is_file() for name in ("Zs.pth", "NoiseAmp.pth", "reals.pth"))


def recover_scale_factor(shapes) -> float:
    """The reference pyramid's scale factor, recovered from its reals' shapes.

    The reference computes factor = (min_size / min(real)) ** (1 / stop_scale) for an integer
    min_size, so the coarsest scale's shorter side is min_size (or one more, by float rounding).
    Every candidate is checked by rebuilding all shapes from the finest; exactly one must fit.
    """
    stop = len(shapes) - 1
    if stop < 1:
        raise SinGANError("a one-scale model has no scale factor to recover; pass scale_factor")
    fh, fw = shapes[-1]
    fitting = []
    for min_size in {min(shapes[0]), min(shapes[0]) - 1}:
        factor = math.pow(min_size / min(fh, fw), 1 / stop)
        rebuilt = [(math.ceil(fh * math.pow(factor, stop - i)),
                    math.ceil(fw * math.pow(factor, stop - i))) for i in range(stop + 1)]
        if rebuilt == [tuple(s) for s in shapes]:
            fitting.append(factor)
    if len(set(fitting)) != 1:
        raise SinGANError("cannot recover the pyramid's scale factor from reals.pth; pass it "
                          "(scale_factor=..., or --input_name/--min_size/--max_size in the scripts)")
    return fitting[0]


def import_reference_folder(folder, scale_factor: Optional[float] = None,
                            device="cpu") -> TrainedPyramid:
    """Load a TrainedModels folder written by the reference SinGAN code.

    Reads n/netG.pth (state dicts), Zs.pth, NoiseAmp.pth and reals.pth, all with
    weights_only=True; Gs.pth (pickled modules) is never loaded.
    """
    folder = Path(folder)
    zs = load_torch(folder / "Zs.pth")
    amps = load_torch(folder / "NoiseAmp.pth")
    reals = load_torch(folder / "reals.pth")
    if not (isinstance(zs, list) and isinstance(amps, list) and isinstance(reals, list)
            and len(zs) == len(amps) and len(reals) >= len(zs) and zs):
        raise SinGANError(f"{folder}: Zs.pth, NoiseAmp.pth and reals.pth do not describe one "
                          "pyramid (different lengths); the folder is incomplete")
    generators = [generator_from_state_dict(load_torch(folder / str(n) / "netG.pth"))
                  for n in range(len(zs))]
    if scale_factor is None:
        scale_factor = recover_scale_factor([tuple(r.shape[2:]) for r in reals])
    pad = (zs[0].shape[2] - reals[0].shape[2]) // 2
    config = {"num_layer": generators[0].num_layer, "ker_size": generators[0].ker_size,
              "imported_from": str(folder)}
    pyramid = TrainedPyramid(generators, [z.float() for z in zs], [float(a) for a in amps],
                             [r.float() for r in reals], scale_factor, pad, True, config)
    return pyramid.to(device)


def load_model(folder, scale_factor: Optional[float] = None, device="cpu") -> TrainedPyramid:
    """A trained pyramid from our model folder (model.pth) or a reference TrainedModels folder.

    A reference folder's name says 0.75, but its pyramid used the factor recomputed from the
    image and min/max size (SPEC 3): pass it as scale_factor, or it is recovered from reals.pth's
    shapes when that is unambiguous.
    """
    folder = Path(folder)
    if not folder.exists():
        raise SinGANError(f"model folder not found: {folder} (train one with main_train.py)")
    if not folder.is_dir():
        raise SinGANError(f"{folder} is not a folder; pass the model folder, e.g. "
                          "TrainedModels/<image>/scale_factor=0.750000,alpha=10")
    if (folder / CHECKPOINT_NAME).exists():   # a damaged one is an error, not "no model"
        ckpt = read_checkpoint(folder / CHECKPOINT_NAME)
        if ckpt.get("method", "singan") not in ("singan", "consingan"):
            raise SinGANError(f"{folder} holds a {ckpt.get('method')} model, not SinGAN")
        if not ckpt["scales"]:
            raise SinGANError(f"{folder}: no scale has finished training yet; run main_train.py "
                              "again to resume")
        if ckpt.get("method") == "consingan":   # its trained-model object (singan.consingan)
            from .consingan.model import model_from_checkpoint
            return model_from_checkpoint(ckpt, device, folder)
        pyramid = pyramid_from_checkpoint(ckpt, device)
        if scale_factor is not None:
            pyramid.scale_factor = float(scale_factor)
        return pyramid
    if is_reference_folder(folder):
        return import_reference_folder(folder, scale_factor, device)
    raise SinGANError(f"{folder} holds no trained model ({CHECKPOINT_NAME}, or the reference's "
                      "Zs.pth/NoiseAmp.pth/reals.pth): train it with main_train.py, or resume")


def write_json(path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1) + "\n").encode())
