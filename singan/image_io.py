"""Reading and writing images as [1, 3, H, W] tensors in [-1, 1] (SPEC section 1), and
the atomic file write every saved file goes through."""
import errno
import io
import os
import struct
import tempfile
import warnings
from pathlib import Path
from typing import BinaryIO, Optional, Tuple, Union

import imageio.v3 as iio
import numpy as np
import torch

from .errors import SinGANError
from .resources import MAX_IMAGE_PIXELS, image_pixel_limit

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


# ---- the size an image file declares, read before any decoder sees it ---------------------------
#
# A few tens of bytes of header can declare 40000 x 40000 pixels; a decoder allocates what the
# header says before it reads a pixel (tifffile has no limit at all, Pillow's admits 178
# megapixels). declared_size reads the header of the six formats the library takes, itself,
# and refuses a file that declares more than fits, so that no decoder ever starts on it.

HEADER_FORMATS = "PNG, JPEG, BMP, GIF, WebP or TIFF"
MAX_HEADER_STEPS = 4096      # segments, blocks or directory entries read to find the size


class _Damaged(Exception):
    """The header ends early or contradicts itself."""


class _Header:
    """Bounded reads of a file's first bytes: exact lengths or _Damaged."""

    def __init__(self, file: BinaryIO):
        self.file = file

    def read(self, n: int) -> bytes:
        data = self.file.read(n)
        if len(data) != n:
            raise _Damaged("the file ends inside its header")
        return data

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))

    def seek(self, offset: int) -> None:
        if not 0 <= offset < 2 ** 40:
            raise _Damaged(f"an offset ({offset}) outside any file")
        self.file.seek(offset)

    def skip(self, n: int) -> None:
        self.seek(self.file.tell() + n)


# Each reader returns (width, height, channels, bytes per sample) of the first frame.

def _png(h: _Header):
    length, kind = h.unpack(">I4s")
    if kind != b"IHDR" or length != 13:
        raise _Damaged("its first chunk is not IHDR")
    width, height, depth, colour = h.unpack(">IIBB")
    channels = {0: 1, 2: 3, 3: 4, 4: 2, 6: 4}.get(colour)
    if channels is None:
        raise _Damaged(f"colour type {colour}")
    return width, height, channels, 2 if depth == 16 else 1


_JPEG_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(h: _Header):
    for _ in range(MAX_HEADER_STEPS):
        if h.read(1) != b"\xff":
            raise _Damaged("a segment does not start with 0xFF")
        marker = h.read(1)[0]
        while marker == 0xFF:                          # fill bytes
            marker = h.read(1)[0]
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            continue                                   # markers without a length
        if marker in (0xD9, 0xDA):
            raise _Damaged("no frame header before the image data")
        (length,) = h.unpack(">H")
        if length < 2:
            raise _Damaged("a segment shorter than its length field")
        if marker in _JPEG_FRAMES:
            precision, height, width, components = h.unpack(">BHHB")
            return width, height, components, 2 if precision > 8 else 1
        h.skip(length - 2)
    raise _Damaged("too many segments before the frame header")


def _bmp(h: _Header):
    h.skip(14)                                         # 'BM', size, reserved, pixel offset
    (size,) = h.unpack("<I")
    if size == 12:                                     # OS/2 1.x core header
        width, height, _, bits = h.unpack("<HHHH")
    elif size >= 16:
        width, height, _, bits = h.unpack("<iiHH")
    else:
        raise _Damaged(f"an information header of {size} bytes")
    return abs(width), abs(height), 4, 1               # decoded as RGB(A)


def _gif(h: _Header):
    width, height, flags = h.unpack("<HHB")
    h.skip(2)
    if flags & 0x80:
        h.skip(3 << ((flags & 7) + 1))                 # the global colour table
    for _ in range(MAX_HEADER_STEPS):
        block = h.read(1)
        if block == b",":                              # the first frame's descriptor
            left, top, frame_w, frame_h = h.unpack("<HHHH")
            return max(width, left + frame_w), max(height, top + frame_h), 4, 1
        if block != b"!":
            raise _Damaged("no frame before the end")
        h.skip(1)                                      # the extension's label
        for _ in range(MAX_HEADER_STEPS):              # its sub-blocks
            (n,) = h.unpack("B")
            if n == 0:
                break
            h.skip(n)
        else:
            raise _Damaged("an extension too long")
    raise _Damaged("too many extensions before the first frame")


def _webp(h: _Header):
    kind, _ = h.unpack("<4sI")
    if kind == b"VP8X":                                # extended: the canvas, frames or not
        h.skip(4)
        w0, w1, w2, h0, h1, h2 = h.unpack("6B")
        return 1 + (w0 | w1 << 8 | w2 << 16), 1 + (h0 | h1 << 8 | h2 << 16), 4, 1
    if kind == b"VP8L":                                # lossless
        signature, bits = h.unpack("<BI")
        if signature != 0x2F:
            raise _Damaged("a lossless stream without its signature")
        return 1 + (bits & 0x3FFF), 1 + (bits >> 14 & 0x3FFF), 4, 1
    if kind == b"VP8 ":                                # lossy
        h.skip(3)
        if h.read(3) != b"\x9d\x01\x2a":
            raise _Damaged("a lossy frame without its start code")
        width, height = h.unpack("<HH")
        return width & 0x3FFF, height & 0x3FFF, 4, 1
    raise _Damaged(f"a first chunk {kind!r}")


_TIFF_TYPES = {3: "H", 4: "I", 16: "Q"}                # SHORT, LONG, LONG8: the size tags' types


def _tiff(h: _Header, order: str, big: bool):
    if big:
        offset_size, zero = h.unpack(order + "HH")
        if offset_size != 8 or zero:
            raise _Damaged("a BigTIFF header with offsets of another size")
        (first,) = h.unpack(order + "Q")
    else:
        (first,) = h.unpack(order + "I")
    h.seek(first)                                      # the first page's directory
    (count,) = h.unpack(order + ("Q" if big else "H"))
    if count > MAX_HEADER_STEPS:
        raise _Damaged(f"a directory of {count} entries")
    tags = {}
    entry = order + ("HHQ8s" if big else "HHI4s")
    for _ in range(count):
        tag, kind, n, value = h.unpack(entry)
        if tag in (256, 257, 258, 277, 32997) and kind in _TIFF_TYPES and n >= 1:
            size = struct.calcsize(_TIFF_TYPES[kind])
            if n * size <= len(value):
                tags[tag] = struct.unpack_from(order + _TIFF_TYPES[kind], value)[0]
            elif tag == 258:                           # several samples: their first size
                here = h.file.tell()
                h.seek(struct.unpack(order + ("Q" if big else "I"), value)[0])
                tags[tag] = h.unpack(order + _TIFF_TYPES[kind])[0]
                h.seek(here)
    if 256 not in tags or 257 not in tags:
        raise _Damaged("its first page has no width or height")
    if tags.get(32997, 1) != 1:
        raise _Damaged(f"a volume {tags[32997]} images deep")
    return tags[256], tags[257], tags.get(277, 1), max(1, -(-tags.get(258, 1) // 8))


def _read_header(file: BinaryIO):
    """(format, width, height, channels, bytes per sample) of the first frame."""
    h = _Header(file)
    start = file.read(16)
    file.seek(0)
    if start.startswith(b"\x89PNG\r\n\x1a\n"):
        h.skip(8)
        return ("PNG",) + _png(h)
    if start.startswith(b"\xff\xd8"):
        return ("JPEG",) + _jpeg(h)
    if start.startswith(b"BM"):
        return ("BMP",) + _bmp(h)
    if start[:6] in (b"GIF87a", b"GIF89a"):
        h.skip(6)
        return ("GIF",) + _gif(h)
    if start[:4] == b"RIFF" and start[8:12] == b"WEBP":
        h.skip(12)
        return ("WebP",) + _webp(h)
    for order, mark in (("<", b"II"), (">", b"MM")):
        if start[:2] == mark and start[2:4] in (struct.pack(order + "H", 42),
                                                 struct.pack(order + "H", 43)):
            h.skip(4)
            return ("TIFF",) + _tiff(h, order, start[2:4] == struct.pack(order + "H", 43))
    return None


def declared_size(source: Union[str, os.PathLike, bytes], max_pixels: Optional[int] = None,
                  name: Optional[str] = None) -> Tuple[int, int]:
    """(height, width) that an image file (a path, or its bytes) declares in its header, read
    without decoding anything: PNG, JPEG, BMP, GIF, WebP or TIFF; of an animation or a
    multi-page file, its first frame (the one read_image reads). A SinGANError in one line
    when it is none of those, its header is damaged, it is empty, it has more than four
    channels, or it declares more than `max_pixels` (default resources.MAX_IMAGE_PIXELS;
    fewer where the memory free now could not hold its decoding: resources.image_pixel_limit).
    Samples wider than 8 bytes a pixel count as that many more pixels."""
    name = name or (str(source) if not isinstance(source, bytes) else "the image")
    limit = image_pixel_limit(MAX_IMAGE_PIXELS if max_pixels is None else max_pixels)
    try:
        with (io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")) as file:
            found = _read_header(file)
    except FileNotFoundError:
        raise SinGANError(f"image not found: {name}") from None
    except IsADirectoryError:
        raise SinGANError(f"{name} is a folder, not an image file") from None
    except OSError as err:
        raise SinGANError(f"cannot read {name}: {err.strerror or err}") from None
    except (_Damaged, struct.error, OverflowError) as err:
        raise SinGANError(f"cannot read {name} as an image: its header is damaged ({err}); "
                          f"use an undamaged {HEADER_FORMATS} file") from None
    if found is None:
        raise SinGANError(f"cannot read {name} as an image: it is not a {HEADER_FORMATS} "
                          "file (or it is damaged or empty)")
    kind, width, height, channels, sample_bytes = found
    if width == 0 or height == 0:
        raise SinGANError(f"{name}: its {kind} header declares an empty image ({width} x "
                          f"{height} px); use another file")
    if not 1 <= channels <= 4:
        raise SinGANError(f"{name}: not a single still image ({channels} channels); save it "
                          "as an RGB PNG or JPEG")
    weight = max(1, -(-channels * sample_bytes // 8))
    if width * height * weight > limit:
        wide = "" if weight == 1 else f" of {channels * sample_bytes} bytes"
        raise SinGANError(f"{name} declares {width} x {height} px ({width * height / 1e6:.0f} "
                          f"megapixels{wide}), more than the {limit / 1e6:.0f} megapixels an "
                          "image may have here; downscale it first")
    return height, width


def _decode(path: Path) -> np.ndarray:
    """The first frame of an image file as an array, upright.

    Fix: the reference ignores the EXIF orientation, so a phone photo stored sideways trains
    sideways; we apply it (Pillow's rotate=True), as image viewers do. CMYK and other
    non-RGB colour spaces are converted to RGB; other TIFFs go through tifffile (16-bit colour
    kept), turned as their Orientation tag says; formats Pillow cannot open fall back to
    imageio's other plugins.
    """
    try:
        mode = iio.immeta(path, index=0, plugin="pillow").get("mode")
    except Exception:   # not a Pillow format (or damaged): imageio's plugins decide below
        mode = None
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return iio.imread(path, index=0, plugin="pillow", rotate=True, mode="RGB")
    if path.suffix.lower() in (".tif", ".tiff"):
        try:    # the first page (declared_size bounded it), not the whole first series
            pixels = iio.imread(path, plugin="tifffile", index=0, page=0)
        except Exception:   # not a TIFF after all: let imageio pick a plugin
            return _imread_any_plugin(path)
        return _upright(pixels, _tiff_orientation(path))
    try:
        return iio.imread(path, index=0, plugin="pillow", rotate=True)
    except Exception:   # not a Pillow format: let imageio pick a plugin
        return _imread_any_plugin(path)


def _tiff_orientation(path: Path) -> int:
    """The first page's Orientation tag (274; 1 to 8, as EXIF's), 1 where it has none."""
    import tifffile     # scikit-image's dependency, as imageio's tifffile plugin is
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags.get(274)
    return tag.value if tag is not None and tag.value in range(1, 9) else 1


def _upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """pixels (H x W or H x W x C) as a viewer shows them for a TIFF/EXIF orientation: 2 and
    4 mirrored left-right and top-bottom, 3 turned half round, 6 and 8 stored turned a quarter
    anticlockwise and clockwise, 5 and 7 mirrored across either diagonal."""
    turned = {1: pixels, 2: pixels[:, ::-1], 3: pixels[::-1, ::-1], 4: pixels[::-1],
              5: np.swapaxes(pixels, 0, 1), 6: np.rot90(pixels, -1),
              7: np.swapaxes(pixels[::-1, ::-1], 0, 1), 8: np.rot90(pixels, 1)}
    return turned[orientation]


def _imread_any_plugin(path: Path) -> np.ndarray:
    """The first frame, read by the plugin imageio picks. Its search may load the legacy DICOM
    plugin, which warns of its own removal: a DeprecationWarning that says nothing about the
    user's file, so it is not shown."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return iio.imread(path, index=0)


def read_image(path, device="cpu", max_pixels: Optional[int] = None) -> torch.Tensor:
    """Read an image file as a [1, 3, H, W] float32 tensor in [-1, 1].

    Raises SinGANError with a clear message when the file is missing, is a folder, or cannot be
    decoded as an image, and before any decoding when its header declares more pixels than
    max_pixels or than fit (declared_size).
    """
    path = Path(path)
    declared_size(path, max_pixels)
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
