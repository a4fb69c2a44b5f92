"""Reading and writing images as [1, 3, H, W] tensors in [-1, 1] (SPEC section 1), and
the atomic file write every saved file goes through."""
import errno
import os
import tempfile
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from .errors import SinGANError

IMAGES_DIR = "Input/Images"   # where the scripts look for --input_name by default
# The files taken as images wherever a folder is listed (the folder runner, the studio):
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")


def norm(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]: 2x - 1, clamped."""
    return (x * 2 - 1).clamp(-1, 1)


def denorm(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]: (x + 1) / 2, clamped."""
    return ((x + 1) / 2).clamp(0, 1)


def _to_tensor(pixels: np.ndarray, path: Path) -> torch.Tensor:
    """Any image array -> float32 [1, 3, H, W] in [-1, 1].

    8-bit stays as it is; 16-bit is mapped to 0..255 first (SPEC 1); floats are taken as [0, 1].
    Grayscale is replicated to 3 channels (a view, no copy), alpha is dropped. Integer levels
    are divided in float32, in place: a large photo costs one float32 copy, and the values are
    bit-identical to dividing in float64 and rounding (checked for every 8- and 16-bit level).
    """
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4) or 0 in pixels.shape:
        raise SinGANError(f"{path}: not a single still image (array shape {pixels.shape}); "
                          "save it as an RGB PNG or JPEG")
    channels = 1 if pixels.shape[2] < 3 else 3                # gray (+ alpha) or colour (+ alpha)
    chw = np.ascontiguousarray(pixels[:, :, :channels].transpose(2, 0, 1))   # [C, H, W]
    if chw.dtype == bool:
        chw = chw.astype(np.uint8)
    if np.issubdtype(chw.dtype, np.integer):
        maximum = 1 if pixels.dtype == bool else np.iinfo(chw.dtype).max
        x = torch.from_numpy(chw).to(torch.float32).div_(maximum)
    elif np.issubdtype(chw.dtype, np.floating):
        x = torch.from_numpy(np.clip(chw, 0, 1)).to(torch.float32)
    else:
        raise SinGANError(f"{path}: unsupported pixel type {pixels.dtype}; save it as an 8-bit PNG")
    x = x.mul_(2).sub_(1).clamp_(-1, 1)                       # norm, in place
    return x.expand(3, -1, -1)[None]                          # [1, 3, H, W]


def _decode(path: Path) -> np.ndarray:
    """The first frame of an image file as an array, upright.

    Fix: the reference ignores the EXIF orientation, so a phone photo stored sideways trains
    sideways; we apply it (Pillow's rotate=True), as image viewers do. CMYK and other
    non-RGB colour spaces are converted to RGB; other TIFFs go through tifffile (16-bit colour
    kept); formats Pillow cannot open fall back to imageio's other plugins.
    """
    try:
        mode = iio.immeta(path, index=0, plugin="pillow").get("mode")
    except Exception:   # not a Pillow format (or damaged): imageio's plugins decide below
        mode = None
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return iio.imread(path, index=0, plugin="pillow", rotate=True, mode="RGB")
    if path.suffix.lower() in (".tif", ".tiff"):
        return _imread_any_plugin(path)
    try:
        return iio.imread(path, index=0, plugin="pillow", rotate=True)
    except Exception:   # not a Pillow format: let imageio pick a plugin
        return _imread_any_plugin(path)


def _imread_any_plugin(path: Path) -> np.ndarray:
    """The first frame, read by the plugin imageio picks. Its search may load the legacy DICOM
    plugin, which warns of its own removal: a DeprecationWarning that says nothing about the
    user's file, so it is not shown."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return iio.imread(path, index=0)


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
        pixels = np.asarray(_decode(path))
    except Exception as err:  # every decoder failure means the same thing to the user
        if type(err).__name__ == "DecompressionBombError":
            raise SinGANError(f"{path} has too many pixels to decode safely ({err}); "
                              "downscale it first") from None
        raise SinGANError(f"cannot read {path} as an image ({type(err).__name__}: it is "
                          "damaged or not an image); use a PNG, JPEG, BMP, TIFF or WebP file") \
            from None
    return _to_tensor(pixels, path).contiguous().to(device)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] or [3, H, W] in [-1, 1] -> uint8 array(s) H x W x 3 (rounded)."""
    if x.dim() == 3:
        x = x[None]
    pixels = (denorm(x.detach().float()) * 255).round().to(torch.uint8)
    out = pixels.permute(0, 2, 3, 1).cpu().numpy()
    return out[0] if len(out) == 1 else out


def _default_file_mode() -> int:
    """0o666 minus the umask: what open() would give a new file (mkstemp gives 0o600)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_file_mode()
TEMP_SUFFIX = ".tmp"   # temporaries are ".<name>.<random>.tmp" beside their target


def write_error(path, err: OSError) -> SinGANError:
    """One clear line for a failed write: disk full, read-only or forbidden folder, other."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = ("the disk is full (or over quota); free some space and run the command "
                  "again: what was saved before is intact")
    elif err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        reason = ("the folder is not writable (read-only or no permission); choose another "
                  "folder or fix its permissions")
    else:
        reason = err.strerror or type(err).__name__
    return SinGANError(f"cannot write {path}: {reason}")


def atomic_write_bytes(path, data: bytes, durable: bool = False) -> None:
    """Write bytes to `path` through a temporary file in the same folder, then rename.

    A kill at any moment leaves either the old file or the new one, never half a file (at
    worst a stray temporary ".<name>.*.tmp", which nothing reads). durable=True also syncs
    the file and its folder to the disk before returning (for checkpoints: a power cut then
    cannot undo the rename or leave an empty file). A failed write (disk full, read-only
    folder, ...) raises SinGANError and removes the temporary.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), _FILE_MODE)
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        if durable:
            _sync_folder(path.parent)
    except OSError as err:
        raise write_error(path, err) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _sync_folder(folder: Path) -> None:
    """fsync a folder so that a rename in it survives a power cut (where the OS allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:   # some systems cannot sync a folder; the rename itself is still atomic
        pass
    finally:
        os.close(fd)


def save_image(path, x: torch.Tensor) -> None:
    """Save a [1, 3, H, W] (or [3, H, W]) tensor in [-1, 1] as an 8-bit PNG, atomically."""
    atomic_write_bytes(path, iio.imwrite("<bytes>", to_uint8(x), extension=".png"))


GRID_MIN_HEIGHT = 256   # px: smaller images are enlarged (nearest neighbour) to be seen


def grid_zoom(height: int, min_height: int = GRID_MIN_HEIGHT) -> int:
    """The whole factor save_grid enlarges a row of images `height` px tall by: the smallest
    that makes it at least `min_height` px (1 for images that tall already). Every
    grid_zoom(h)-th pixel of a grid undoes it exactly."""
    return max(1, -(-min_height // height))   # ceil division


def save_grid(path, images, columns: int = None, gap: int = 4,
              min_height: int = GRID_MIN_HEIGHT) -> None:
    """Save a list of [1, 3, H, W] tensors (sizes may differ) side by side as one PNG. Rows of
    small images are enlarged by a whole factor, each pixel a block (nearest neighbour), so
    that a row is at least `min_height` px tall: a 43 px sample is a grid a person can see."""
    arrays = [to_uint8(im) for im in images]
    zoom = grid_zoom(max(a.shape[0] for a in arrays), min_height)
    if zoom > 1:
        arrays = [a.repeat(zoom, axis=0).repeat(zoom, axis=1) for a in arrays]
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
