"""Checkpoints as data (STYLE habit 4): save and read them, for both methods.

Our model folder holds ``model.pth``, one format for both methods (`envelope`):
{format_version, method, config, plan, image, scales: [per stage, the method's entries], reals,
...}, written atomically after every finished stage and loadable with
``torch.load(weights_only=True)``; plus a folder per stage with the reference's files (netG.pth,
netD.pth, z_opt.pth or fixed_noise.pth, and PNGs). Which class a checkpoint becomes is decided
by its "method" field, in singan.api.load_model. Folders written by the reference codes are
imported by singan.methods.singan.reference and singan.methods.consingan.reference.
"""
import hashlib
import io
import json
from pathlib import Path
from typing import Optional

import torch

from .errors import SinGANError
from .image_io import atomic_write_bytes

# 2: SinGAN's training variant is explicit settings (pad_noise, sr_schedule, paint_colours)
# instead of a mode string; version 1 files of both methods still load.
FORMAT_VERSION = 2
CHECKPOINT_NAME = "model.pth"
# The running stage's whole state (singan.driver), saved every few minutes and on Ctrl-C or
# SIGTERM, removed once the stage is listed in model.pth.
RUNNING_NAME = "running_stage.pth"


def save_torch(path, obj) -> None:
    """torch.save through a temporary file and a rename (synced to the disk): a kill or a
    power cut never leaves half a file."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue(), durable=True)


def load_torch(path, data: Optional[bytes] = None):
    """torch.load(weights_only=True) with one clear error for a missing, truncated, empty or
    foreign file (never a raw unpickling traceback, never code execution). data: the file's
    bytes, received rather than read (a folder run's node sent them; `path` names them)."""
    path = Path(path)
    if data is None:
        if path.is_dir():
            raise SinGANError(f"{path} is a folder, not a checkpoint file")
        if not path.is_file():
            raise SinGANError(f"missing file: {path}")
    if (len(data) if data is not None else path.stat().st_size) == 0:
        raise SinGANError(f"{path} is empty (0 bytes): the model is incomplete; retrain it")
    try:
        return torch.load(path if data is None else io.BytesIO(data), map_location="cpu",
                          weights_only=True)
    except Exception as err:  # any unpickling failure means the same to the user
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SinGANError(f"{path} is not a readable SinGAN checkpoint ({first[:120]}); "
                          "it is truncated, corrupted or not ours: retrain, or use --force") from None


def envelope(method: str, config: dict, plan: dict, image: dict, scales: list, reals,
             extra: Optional[dict] = None) -> dict:
    """The one checkpoint format: what both methods' model.pth hold around their own per-stage
    entries (`scales`), all tensors on the CPU."""
    return {"format_version": FORMAT_VERSION, "method": method, "config": dict(config),
            "plan": dict(plan), "image": dict(image), "scales": scales,
            "reals": [r.detach().cpu() for r in reals], **(extra or {})}


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


def read_checkpoint(path, data: Optional[bytes] = None) -> dict:
    ckpt = load_torch(path, data)
    if not isinstance(ckpt, dict) or "format_version" not in ckpt or "scales" not in ckpt:
        raise SinGANError(f"{path} is not a singan checkpoint (no format_version); "
                          "retrain, or use --force")
    return _verified(path, ckpt)


def read_running(path, data: Optional[bytes] = None) -> dict:
    """A running stage's checkpoint (RUNNING_NAME), verified like model.pth."""
    ckpt = load_torch(path, data)
    if not isinstance(ckpt, dict) or ckpt.get("kind") != "running stage" \
            or CHECKSUM_KEY not in ckpt:
        raise SinGANError(f"{path} is not a running stage's checkpoint")
    return _verified(path, ckpt)


def _verified(path, ckpt: dict) -> dict:
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise SinGANError(f"{path} was written by a newer singan (format "
                          f"{ckpt['format_version']} > {FORMAT_VERSION}); update singan")
    if CHECKSUM_KEY in ckpt:   # checkpoints saved by save_checkpoint
        expected = ckpt.pop(CHECKSUM_KEY)
        if content_digest(ckpt) != expected:
            raise SinGANError(f"{path} is corrupted: its contents do not match the checksum "
                              "saved with it (damaged on disk or in a copy); retrain with "
                              "--force, or restore a backup")
    return ckpt


def write_json(path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1) + "\n").encode())
