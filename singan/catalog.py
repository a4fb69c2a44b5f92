"""The trained models in a models root: TrainedModels/<image>/<model folder>/ of either method
(ours: model.pth; the reference's: Zs.pth, NoiseAmp.pth, reals.pth), named as the command line
names them ('<image>/<model folder>'). Programs that list models (the web studio) ask here,
and never walk the folders themselves. Recognising a reference code's folder needs only file
names, so those tests live here too, below both methods (the driver never trains over one)."""
from pathlib import Path
from typing import List

from .checkpoint import CHECKPOINT_NAME

SINGAN_TOP_FILES = ("Zs.pth", "NoiseAmp.pth", "reals.pth")
CONSINGAN_MARKERS = ("fixed_noise.pth", "noise_amp.pth")   # at the top: only ConSinGAN's there


def is_reference_singan_folder(folder) -> bool:
    """A folder written by the reference SinGAN code (Zs.pth, NoiseAmp.pth and reals.pth)."""
    folder = Path(folder)
    return all((folder / name).is_file() for name in SINGAN_TOP_FILES)


def is_reference_consingan_folder(folder) -> bool:
    """A folder written by the reference ConSinGAN code: fixed_noise.pth or noise_amp.pth at
    the top (our ConSinGAN folders keep fixed_noise.pth inside the stage folders). An
    incomplete one counts too, so that importing it names the missing file."""
    folder = Path(folder)
    return any((folder / name).is_file() for name in CONSINGAN_MARKERS)


def is_reference_folder(folder) -> bool:
    """A folder written by either reference code (never to be trained over)."""
    return is_reference_singan_folder(folder) or is_reference_consingan_folder(folder)


def is_model_folder(folder: Path) -> bool:
    """Whether `folder` holds a trained model (ours or the reference's)."""
    folder = Path(folder)
    return (folder / CHECKPOINT_NAME).is_file() or is_reference_folder(folder)


def find_model_folders(root) -> List[Path]:
    """Every model folder <root>/<image>/<model>/, sorted by name (none when root is absent)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [folder for folder in sorted(p for p in root.glob("*/*") if p.is_dir())
            if is_model_folder(folder)]


def model_name(folder: Path) -> str:
    """'<image>/<model folder>', the name the scripts give a model folder."""
    folder = Path(folder)
    return f"{folder.parent.name}/{folder.name}"


def model_stamp(folder: Path) -> int:
    """A number that changes whenever the model in `folder` is saved again (a resumed
    training): model.pth's modification time in ns (0 for a reference folder)."""
    checkpoint = Path(folder) / CHECKPOINT_NAME
    return checkpoint.stat().st_mtime_ns if checkpoint.is_file() else 0
