"""Reading and writing images as [1, 3, H, W] tensors in [-1, 1] (SPEC section 1)."""
import os
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from .errors import SinGANError


def norm(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]: 2x - 1, clamped."""
    return (x * 2 - 1).clamp(-1, 1)


def denorm(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]: (x + 1) / 2, clamped."""
    return ((x + 1) / 2).clamp(0, 1)


def _to_rgb_float(pixels: np.ndarray, path: Path) -> np.ndarray:
    """Any image array -> float64 H x W x 3 in [0, 1].

    8-bit stays as it is; 16-bit is mapped to 0..255 first (SPEC 1); floats are taken as [0, 1].
    Grayscale is replicated to 3 channels, alpha is dropped.
    """
    if pixels.dtype == np.uint8:
        x = pixels.astype(np.float64) / 255
    elif pixels.dtype == np.uint16:
        x = pixels.astype(np.float64) / 65535
    elif pixels.dtype == bool:
        x = pixels.astype(np.float64)
    elif np.issubdtype(pixels.dtype, np.floating):
        x = np.clip(pixels.astype(np.float64), 0, 1)
    elif np.issubdtype(pixels.dtype, np.integer):
        x = pixels.astype(np.float64) / np.iinfo(pixels.dtype).max
    else:
        raise SinGANError(f"{path}: unsupported pixel type {pixels.dtype}; save it as an 8-bit PNG")
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or x.shape[2] not in (1, 2, 3, 4):
        raise SinGANError(f"{path}: not a single still image (array shape {pixels.shape}); "
                          "save it as an RGB PNG or JPEG")
    if x.shape[2] in (1, 2):          # gray, or gray + alpha
        x = np.repeat(x[:, :, :1], 3, axis=2)
    return x[:, :, :3]


def read_image(path, device="cpu") -> torch.Tensor:
    """Read an image file as a [1, 3, H, W] float32 tensor in [-1, 1].

    Raises SinGANError with a clear message when the file is missing, is a folder, or cannot be
    decoded as an image.
    """
    path = Path(path)
    if not path.exists():
        raise SinGANError(f"image not found: {path}")
    if path.is_dir():
        raise SinGANError(f"{path} is a folder, not an image file")
    try:
        pixels = iio.imread(path, index=0) if path.suffix.lower() in (".gif", ".tif", ".tiff") \
            else iio.imread(path)
    except Exception as err:  # every decoder failure means the same thing to the user
        raise SinGANError(f"cannot read {path} as an image ({type(err).__name__}); "
                          "use a PNG, JPEG, BMP or TIFF file") from None
    x = _to_rgb_float(np.asarray(pixels), path)
    tensor = torch.from_numpy(x).permute(2, 0, 1)[None].float()  # [1, 3, H, W] in [0, 1]
    return norm(tensor).to(device)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] or [3, H, W] in [-1, 1] -> uint8 array(s) H x W x 3 (rounded)."""
    if x.dim() == 3:
        x = x[None]
    pixels = (denorm(x.detach().float()) * 255).round().to(torch.uint8)
    out = pixels.permute(0, 2, 3, 1).cpu().numpy()
    return out[0] if len(out) == 1 else out


def atomic_write_bytes(path, data: bytes) -> None:
    """Write bytes to `path` through a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_image(path, x: torch.Tensor) -> None:
    """Save a [1, 3, H, W] (or [3, H, W]) tensor in [-1, 1] as an 8-bit PNG, atomically."""
    atomic_write_bytes(path, iio.imwrite("<bytes>", to_uint8(x), extension=".png"))


def save_grid(path, images, columns: int = None, gap: int = 4) -> None:
    """Save a list of [1, 3, H, W] tensors (sizes may differ) side by side as one PNG."""
    arrays = [to_uint8(im) for im in images]
    columns = columns or len(arrays)
    rows = [arrays[i:i + columns] for i in range(0, len(arrays), columns)]
    cell_h = max(a.shape[0] for a in arrays)
    cell_w = max(a.shape[1] for a in arrays)
    grid = np.full((len(rows) * (cell_h + gap) - gap, columns * (cell_w + gap) - gap, 3), 255,
                   dtype=np.uint8)
    for r, row in enumerate(rows):
        for c, a in enumerate(row):
            top, left = r * (cell_h + gap), c * (cell_w + gap)
            grid[top:top + a.shape[0], left:left + a.shape[1]] = a
    atomic_write_bytes(path, iio.imwrite("<bytes>", grid, extension=".png"))
