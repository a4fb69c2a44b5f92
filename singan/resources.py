"""What a request needs, against what the machine has: memory and disk, sized from the shapes
before anything big is allocated.

Every entry point that can be asked for a large result (training at --max_size, samples at
any scale_v / scale_h / num_samples, SR at any sr_factor, animation at any frame count,
injection) estimates its peak memory here from the tensors it will hold, compares it with
what the device has free (RAM on the CPU: /proc/meminfo's MemAvailable, or the cgroup's
limit when that is lower; torch.cuda.mem_get_info on a GPU) and refuses with one SinGANError
line that says what was asked, about how much it needs, how much there is, and which option
to lower. The estimates are the arithmetic of benchmarks/bench_train.py's and
bench_sample.py's measurements (the "## Large images" section of the README lists them):

- a tensor of C channels at h x w holds 4 C h w bytes (float32);
- drawing through a generator (no gradients) keeps about three activations of the scale's
  width alive per sample, plus the 3-channel input, noise and output; a draw too large for
  DRAW_TILE_BYTES is made in overlapping tiles (methods/singan/model.py's run_tiled), so it needs a
  tile's activations instead of the whole image's;
- a resize holds a dense [out, in] weight matrix per dimension (float64 on the host, then a
  float32 copy): 12 * in * out bytes;
- a training step holds TRAIN_UNITS activations of the scale's width and size (the critic's
  three passes, the gradient penalty's double backward, the generator's passes; measured),
  LEAN_TRAIN_UNITS with ScaleTrainer's low_memory.

SINGAN_MAX_MEMORY (e.g. "8GB") caps the memory the checks count as free, for a server that
shares its machine (and for tests).
"""
import math
import os
import shutil
from pathlib import Path
from typing import Optional, Sequence, Tuple

import torch

from .errors import SinGANError

FLOAT = 4                   # bytes per float32 value
PROCESS_BYTES = 0.75e9      # torch, singan and a scale's networks, before the first step
# Activations of a scale's width alive at a training step's peak, in units of one
# [nfc, h + 10, w + 10] float32 tensor (384 x 512, CPU, peak RSS: plain 5.75 GB = 47.5 units,
# lean 2164 MiB = 14.4 units; benchmarks/bench_train.py --scales last). The lean step's peak
# is the gradient penalty's hand-written double backward (methods/singan/penalty.py: one conv output and
# one gradient per critic block kept, and one layer's temporaries).
TRAIN_UNITS = 48
LEAN_TRAIN_UNITS = 15
BATCHED_TRAIN_UNITS = 60    # GPUs: the batched step (two-image passes; not measured yet)
DRAW_UNITS = 3              # forward only: input, output and a workspace of a conv
DRAW_TILE_BYTES = 0.5e9     # a generator pass needing more is drawn in tiles (exact)
PNG_BYTES_PER_PIXEL = 3.2   # an 8-bit RGB PNG of a photo-like sample, at most (noise: ~3)
HEADROOM = 0.9              # use at most this share of what is free
# Reading an image file (singan.image_io.read_image): the decoder's array, its channel-first
# copy and the float32 tensor. Measured peak RSS per pixel of a 4000 x 3000 file: 8-bit RGB
# PNG 18.7 B, 8-bit RGBA PNG 19.6 B, 16-bit gray PNG 22.6 B, 16-bit RGBA TIFF 27.0 B.
READ_BYTES_PER_PIXEL = 32
MAX_IMAGE_PIXELS = 250_000_000   # the most any image file may declare, whatever is free


# ---- what there is ------------------------------------------------------------------------------

def parse_bytes(text: str) -> int:
    """'8GB', '512 MB', '2e9' -> bytes."""
    s = str(text).strip().upper().replace(" ", "")
    for suffix, factor in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3), ("B", 1)):
        if s.endswith(suffix):
            return int(float(s[:-len(suffix)]) * factor)
    return int(float(s))


def _cgroup_free() -> Optional[int]:
    """What the cgroup (v2, else v1) still allows this process: limit - usage; None: no limit."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit == "max" or int(limit) >= 2 ** 60:
                return None
            usage = int(Path(usage_file).read_text().strip())
            return max(0, int(limit) - usage)
        except (OSError, ValueError):
            continue
    return None


def _meminfo_available() -> Optional[int]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:   # other Unix systems
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def free_memory(device="cpu") -> Optional[int]:
    """Bytes the device has free now (None: cannot tell). CPU (and MPS, which shares it): RAM
    available, or the cgroup's remaining limit when lower; CUDA: the driver's free memory plus
    what torch's cache holds unused. Capped by SINGAN_MAX_MEMORY when set."""
    device = torch.device(device)
    free = None
    if device.type == "cuda":
        try:
            free = torch.cuda.mem_get_info(device)[0] + (torch.cuda.memory_reserved(device)
                                                         - torch.cuda.memory_allocated(device))
        except (RuntimeError, AssertionError):
            free = None
    else:
        candidates = [v for v in (_meminfo_available(), _cgroup_free()) if v is not None]
        free = min(candidates) if candidates else None
    cap = os.environ.get("SINGAN_MAX_MEMORY")
    if cap:
        capped = parse_bytes(cap)
        free = capped if free is None else min(free, capped)
    return free


def free_disk(folder) -> Optional[int]:
    """Bytes free on the disk that `folder` is (or would be created) on (None: cannot tell)."""
    path = Path(folder).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def human(n: float) -> str:
    """310 GB, 2.1 GB, 450 MB, 12 kB."""
    for unit, size in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    return f"{int(n)} B"


def _device_words(device) -> str:
    device = torch.device(device)
    return "of GPU memory" if device.type == "cuda" else "of memory"


def _free_text(free: float) -> str:
    return f"{human(free)} {'is' if free < 2e9 else 'are'} free"


def require_memory(needed: float, device, what: str, lower: str, verb: str = "need") -> None:
    """SinGANError unless `needed` bytes fit in what the device has free (HEADROOM of it):
    '<what> <verb> about 310 GB of memory; 21 GB are free: lower <lower>'."""
    free = free_memory(device)
    if free is None or needed <= HEADROOM * free:
        return
    raise SinGANError(f"{what} {verb} about {human(needed)} {_device_words(device)}; "
                      f"{_free_text(free)}: lower {lower}")


def require_disk(needed: float, folder, what: str, lower: str, verb: str = "need") -> None:
    """SinGANError unless `needed` bytes fit on the disk of `folder`."""
    free = free_disk(folder)
    if free is None or needed <= free:
        return
    raise SinGANError(f"{what} {verb} about {human(needed)} of disk in {folder}; "
                      f"{_free_text(free)}: lower {lower}")


# ---- the arithmetic -----------------------------------------------------------------------------

def tensor_bytes(*shape) -> int:
    return FLOAT * math.prod(int(s) for s in shape)


def resize_bytes(in_hw: Sequence[int], out_hw: Sequence[int]) -> int:
    """The weight matrices of one resize ([out, in] per dimension, float64 + float32)."""
    return sum(12 * int(i) * int(o) for i, o in zip(in_hw, out_hw))


def draw_bytes(batch: int, channels: int, h: int, w: int, pad: int = 5,
               tiled: bool = True) -> int:
    """One forward generator pass without gradients, output h x w (input h + 2 pad): the
    3-channel inputs and output, and DRAW_UNITS activations of `channels` (those of one tile
    when the whole pass would need more than DRAW_TILE_BYTES and tiled)."""
    hp, wp = h + 2 * pad, w + 2 * pad
    images = tensor_bytes(batch, 3, hp, wp) * 4 + tensor_bytes(batch, 3, h, w)
    activations = DRAW_UNITS * tensor_bytes(batch, channels, hp, wp)
    if tiled and activations > DRAW_TILE_BYTES:
        activations = DRAW_TILE_BYTES
    return images + activations


def draw_tile(batch: int, channels: int, h: int, w: int, pad: int = 5) -> Optional[int]:
    """The tile side (output pixels) of a generator pass too large for DRAW_TILE_BYTES, or None
    when the whole pass fits: square tiles whose activations (with the 2 pad halo) fit."""
    if DRAW_UNITS * tensor_bytes(batch, channels, h + 2 * pad, w + 2 * pad) <= DRAW_TILE_BYTES:
        return None
    side = math.sqrt(DRAW_TILE_BYTES / (DRAW_UNITS * FLOAT * batch * channels)) - 2 * pad
    return max(16, int(side))


def pyramid_draw_bytes(batch: int, shapes: Sequence[Tuple[int, int]],
                       channels: Sequence[int], pad: int = 5) -> int:
    """The peak of drawing `batch` images up a pyramid of output `shapes` (coarsest first) with
    generators of `channels`: the largest scale's pass plus its resize from the scale below
    and the running image."""
    peak, prev = 0, None
    for (h, w), c in zip(shapes, channels):
        need = draw_bytes(batch, c, h, w, pad)
        if prev is not None:
            need += resize_bytes(prev, (h, w)) + tensor_bytes(batch, 3, *prev) * 2
        peak, prev = max(peak, need), (h, w)
    return peak


def training_step_bytes(h: int, w: int, nfc: int, min_nfc: Optional[int] = None,
                        batched: bool = False, low_memory: bool = False, pad: int = 5) -> int:
    """A training step's peak at a scale of h x w with nfc channels (SinGAN, fp32): the
    activations its passes keep for the backward (see TRAIN_UNITS), besides the process."""
    units = LEAN_TRAIN_UNITS if low_memory else (BATCHED_TRAIN_UNITS if batched else TRAIN_UNITS)
    return int(units * tensor_bytes(nfc, h + 2 * pad, w + 2 * pad))


# ---- requests: training -------------------------------------------------------------------------

def training_peak(trainer, low_memory: bool) -> Tuple[int, Tuple[int, int]]:
    """(peak bytes of the worst level, that level's shape) of a training (a StageTrainer,
    singan.interface: each method sizes its own step with trainer.step_bytes(k, low_memory),
    from the arithmetic above), the process and the reals included."""
    worst, worst_shape = 0, tuple(trainer.reals[-1].shape[2:])
    for k in trainer.stages_to_train():
        need = trainer.step_bytes(k, low_memory)
        if need > worst:
            worst, worst_shape = need, tuple(trainer.reals[k].shape[2:])
    reals = sum(tensor_bytes(*r.shape) for r in trainer.reals)
    return PROCESS_BYTES + worst + 2 * reals, worst_shape


def choose_low_memory(trainer) -> bool:
    """Whether training should take the lean step (ScaleTrainer(low_memory=True): the same
    numbers, fewer activations alive, about as fast): when the plain step's estimate would not
    fit in the memory the device has free."""
    free = free_memory(trainer.device)
    if free is None:
        return False
    plain, _ = training_peak(trainer, low_memory=False)
    return plain > HEADROOM * free


def conv_macs(h: int, w: int, channels: int, layers: int = 5, ker: int = 3,
              image_channels: int = 3) -> int:
    """Multiply-adds of one pass of a SinGAN-style network over h x w pixels: a head from the
    image's channels, layers - 2 body convolutions of `channels`, a tail back to the image's
    (the measure of a stage's work per iteration that the progress weights stages by)."""
    per_pixel = ker * ker * channels * (2 * image_channels + (layers - 2) * channels)
    return h * w * per_pixel


def graphs_fit(trainer) -> bool:
    """Whether a training replayed from CUDA graphs fits: a graph keeps its own memory pool
    beside the blocks its eager warm-up left cached, so twice the plain step's estimate must
    fit in what the device has free (a margin, not a measured peak)."""
    free = free_memory(trainer.device)
    if free is None:
        return True
    plain, _ = training_peak(trainer, low_memory=False)
    return 2 * plain <= HEADROOM * free


def check_training(trainer, low_memory: Optional[bool] = None) -> None:
    """Refuse a training whose worst step cannot fit (SinGANError, before the first step): the
    lean step is counted when low_memory is True or None (automatic: it is taken when needed)."""
    lean = low_memory is None or bool(low_memory)
    needed, (h, w) = training_peak(trainer, low_memory=lean)
    max_size = getattr(trainer.cfg, "max_size", None)
    asked = f"training at {w} x {h} px" + (f" (--max_size {max_size})" if max_size else "")
    require_memory(needed, trainer.device, asked,
                   "--max_size (the memory grows with the square of the size)", "needs")


# ---- requests: drawing --------------------------------------------------------------------------

def scaled_shapes(model, scale_v: float = 1.0, scale_h: float = 1.0) -> list:
    """(h, w) of each trained level of a model at scale_v x scale_h, coarsest first."""
    return [(max(1, round(scale_v * h)), max(1, round(scale_h * w)))
            for h, w in (tuple(r.shape[2:]) for r in model.reals[:model.num_scales])]


def sample_shape(model, scale_v: float = 1.0, scale_h: float = 1.0) -> Tuple[int, int]:
    """(height, width) of a model's sample at scale_v x scale_h (about: ConSinGAN truncates)."""
    return scaled_shapes(model, scale_v, scale_h)[-1]


def with_outputs(work: int, num: int, shape: Tuple[int, int]) -> int:
    """A drawing's peak: its working memory plus the `num` outputs of `shape` it keeps (twice:
    the batches, then their concatenation)."""
    return int(work + 2 * tensor_bytes(num, 3, *shape))


def _size_text(model, scale_v, scale_h) -> str:
    h, w = scaled_shapes(model, scale_v, scale_h)[-1]
    return f"{w} x {h} px"


def check_samples(model, num_samples: int, scale_v: float = 1.0, scale_h: float = 1.0,
                  batch: Optional[int] = None) -> None:
    """Refuse samples that cannot fit in memory (model.sample calls it)."""
    needed = model.drawing_bytes(num_samples, scale_v, scale_h, batch)
    if (scale_v, scale_h) != (1, 1):
        asked = (f"{num_samples} samples at scale_v {scale_v:g}, scale_h {scale_h:g} "
                 f"({_size_text(model, scale_v, scale_h)} each)")
        lower = "--scale_h / --scale_v (or --num_samples)"
    else:
        asked = f"{num_samples} samples of {_size_text(model, 1, 1)}"
        lower = "--num_samples"
    require_memory(needed, model.device, asked, lower)


def frames_bytes(h: int, w: int, num_frames: int, noise_values: Optional[int] = None) -> int:
    """An animation of num_frames frames of h x w: the frames (float, then uint8 for the GIF
    and its encoder), and the noise walks of every level (noise_values per frame; default
    that of a SinGAN pyramid, about 3 channels x 2.3 times the finest size)."""
    if noise_values is None:
        noise_values = int(3 * 2.3 * (h + 10) * (w + 10))
    frames = tensor_bytes(num_frames, 3, h, w)
    return int(2 * frames + 2 * FLOAT * (num_frames + 1) * noise_values + frames // 2)


def _frames_request(num_frames, h, w) -> str:
    return f"an animation of {num_frames} frames of {w} x {h} px"


def check_frame_count(h: int, w: int, num_frames: int, device) -> None:
    """Refuse an animation of num_frames frames of h x w before its model exists."""
    require_memory(frames_bytes(h, w, num_frames), device, _frames_request(num_frames, h, w),
                   "--num_frames", "needs")


def check_frames(model, num_frames: int, batch: Optional[int] = None) -> None:
    """Refuse an animation whose frames (kept for the GIF) and noise walks cannot fit."""
    h, w = sample_shape(model)
    needed = (frames_bytes(h, w, num_frames, model.noise_values())
              + model.drawing_bytes(min(num_frames, batch or 8), batch=batch or 8))
    require_memory(needed, model.device, _frames_request(num_frames, h, w), "--num_frames",
                   "needs")


def check_injection(model, num_samples: int = 1) -> None:
    """Refuse an injection (harmonization, editing, paint) that cannot fit."""
    needed = model.drawing_bytes(num_samples, batch=8)
    require_memory(needed, model.device, f"{num_samples} injected image"
                   f"{'s' if num_samples != 1 else ''} of {_size_text(model, 1, 1)}",
                   "the number of outputs (or use a smaller model)",
                   "need" if num_samples != 1 else "needs")


def sr_bytes(h: int, w: int, nfc: int, sr_factor: float, iter_num: int, pad: int = 5) -> int:
    """Super-resolving an h x w image by sr_factor in iter_num steps of the finest generator:
    the last (largest) step's pass, in tiles, and its resize, plus the output and the bicubic
    comparison image."""
    out_h, out_w = int(math.ceil(sr_factor * h)) + 1, int(math.ceil(sr_factor * w)) + 1
    step = sr_factor ** (1 / iter_num)
    prev = (int(out_h / step) + 1, int(out_w / step) + 1)
    return int(draw_bytes(1, nfc, out_h, out_w, pad) + resize_bytes(prev, (out_h, out_w)) * 2
               + 8 * tensor_bytes(3, out_h, out_w) + iter_num * tensor_bytes(3, out_h, out_w))


def check_sr(h: int, w: int, nfc: int, sr_factor: float, iter_num: int, device,
             pad: int = 5) -> None:
    """Refuse a super-resolution whose result cannot fit (before the model is trained)."""
    needed = sr_bytes(h, w, nfc, sr_factor, iter_num, pad)
    out = f"{int(sr_factor * w)} x {int(sr_factor * h)} px"
    require_memory(needed, device, f"super-resolution by --sr_factor {sr_factor:g} ({out})",
                   "--sr_factor (or the input's size, --max_size)", "needs")


def image_pixel_limit(most: int = MAX_IMAGE_PIXELS) -> int:
    """The most pixels an image file may declare to be read (singan.image_io.declared_size):
    `most`, or fewer where the memory free now could not hold its decoding
    (READ_BYTES_PER_PIXEL each, with HEADROOM)."""
    free = free_memory("cpu")
    if free is None:
        return most
    return max(1, min(most, int(free * HEADROOM / READ_BYTES_PER_PIXEL)))


def image_shape(path) -> Optional[Tuple[int, int]]:
    """(height, width) of an image file from its header, without decoding it (None: unknown)."""
    try:
        import imageio.v3 as iio
        shape = iio.improps(path).shape
        return int(shape[0]), int(shape[1])
    except Exception:   # unreadable here: reading it for real reports the problem clearly
        return None


# ---- requests: files ----------------------------------------------------------------------------

def image_file_bytes(h: int, w: int) -> int:
    """About the size of one 8-bit RGB PNG of h x w (at most; smooth images take less)."""
    return int(PNG_BYTES_PER_PIXEL * h * w + 1000)


def check_output_files(folder, count: int, bytes_each: int) -> None:
    """Refuse writing `count` files of about `bytes_each` into `folder` when the disk cannot
    hold them (random_samples calls it before drawing)."""
    needed = count * bytes_each
    require_disk(needed, folder, f"{count} files of about {human(bytes_each)}",
                 "--num_samples (or free some disk)")
