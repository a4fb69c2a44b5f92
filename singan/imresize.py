"""MATLAB-style bicubic imresize, as the reference SinGAN code resizes (SPEC section 2).

The pyramid, every up-sampling between scales and every injection use this resize. It runs on
the tensor's own device, batched over N and C: each dimension is one matrix product with a
[out_length, in_length] weight matrix computed once per (in_length, out_length, scale,
antialiasing) and cached, on the host in float64, then per device and dtype, within
CACHE_BYTES (a matrix of a huge request, e.g. 4.8 GB for a 20000 px side, is used once and
never kept: a server that answered one such request must not hold it forever).
"""
import math
from collections import OrderedDict

import numpy as np
import torch


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic'), support [-2, 2]."""
    ax = np.abs(x)
    ax2, ax3 = ax ** 2, ax ** 3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((1 < ax) & (ax <= 2)))


CACHE_BYTES = 256_000_000        # all cached matrices, host and devices together
LARGEST_CACHED = CACHE_BYTES // 8


class _BoundedCache:
    """Least recently used entries go first once the tensors or arrays exceed max_bytes;
    one larger than LARGEST_CACHED is never kept."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.bytes, self.entries = max_bytes, 0, OrderedDict()

    def get(self, key, make):
        value = self.entries.get(key)
        if value is not None:
            self.entries.move_to_end(key)
            return value
        value = make()
        size = value.nbytes if isinstance(value, np.ndarray) else \
            value.element_size() * value.nelement()
        if size <= LARGEST_CACHED:
            self.entries[key], self.bytes = value, self.bytes + size
            while self.bytes > self.max_bytes:
                _, old = self.entries.popitem(last=False)
                self.bytes -= old.nbytes if isinstance(old, np.ndarray) else \
                    old.element_size() * old.nelement()
        return value


_host_cache = _BoundedCache(CACHE_BYTES // 2)
_device_cache = _BoundedCache(CACHE_BYTES // 2)


def _weight_matrix(in_length: int, out_length: int, scale: float, antialias: bool) -> np.ndarray:
    """_make_weight_matrix, cached."""
    return _host_cache.get((in_length, out_length, scale, antialias),
                           lambda: _make_weight_matrix(in_length, out_length, scale, antialias))


def _make_weight_matrix(in_length: int, out_length: int, scale: float, antialias: bool) -> np.ndarray:
    """The [out_length, in_length] float64 matrix that resizes one dimension.

    Output pixel i (1-based) maps to input coordinate u = i / scale + (1 - 1 / scale) / 2; its
    taps are the input pixels j = left - 1 + k (0-based), k = 0 .. ceil(width) + 1, with
    left = floor(u - width / 2); tap j weighs kernel(u - (j + 1)).
    """
    if antialias:   # down-scaling: stretch the kernel so it also low-passes
        kernel, width = (lambda d: scale * cubic(scale * d)), 4.0 / scale
    else:
        kernel, width = cubic, 4.0
    u = np.arange(1, out_length + 1) / scale + 0.5 * (1 - 1 / scale)          # [out]
    left = np.floor(u - width / 2)
    taps = left[:, None] + np.arange(math.ceil(width) + 2)[None, :] - 1        # [out, taps]
    weights = kernel(u[:, None] - taps - 1)
    # Reference behaviour: negative tap indices wrap to huge unsigned integers in the reference,
    # so their distance, hence their weight, vanishes: the top/left edge uses a truncated kernel.
    weights[taps < 0] = 0
    total = weights.sum(axis=1, keepdims=True)
    total[total == 0] = 1                                                     # a zero sum stays
    weights = weights / total
    # Reference behaviour: taps past the end are mirrored with the edge pixel repeated
    # (L -> L-1, L+1 -> L-2, ...), so the bottom/right edge uses a mirrored kernel.
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    index = mirror[np.mod(np.maximum(taps, 0).astype(np.int64), 2 * in_length)]
    matrix = np.zeros((out_length, in_length))
    rows = np.repeat(np.arange(out_length), taps.shape[1])
    np.add.at(matrix, (rows, index.ravel()), weights.ravel())
    return matrix


def _weights_on(in_length, out_length, scale, antialias, device, dtype) -> torch.Tensor:
    key = (in_length, out_length, scale, antialias, str(device), dtype)
    return _device_cache.get(key, lambda: torch.from_numpy(
        _weight_matrix(in_length, out_length, scale, antialias)).to(device=device, dtype=dtype))


def resize_float(x: torch.Tensor, scale_hw, out_hw) -> torch.Tensor:
    """Resize [N, C, H, W] (any values) to `out_hw`, without quantisation.

    scale_hw holds each dimension's scale factor. Reference behaviour: antialiasing is switched
    on for both dimensions by the height scale alone; dimensions are resized in order of
    increasing scale factor (height first on a tie); a dimension whose factor is exactly 1 is
    left alone.
    """
    if x.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(x.device.type):
        with torch.autocast(x.device.type, enabled=False):   # the resize stays in float32
            return resize_float(x, scale_hw, out_hw)
    antialias = scale_hw[0] < 1
    order = sorted(range(2), key=lambda d: scale_hw[d])    # stable: height first on a tie
    compute_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    out = x.to(compute_dtype)
    for d in order:
        if scale_hw[d] == 1.0:
            continue
        in_length = out.shape[2 + d]
        w = _weights_on(in_length, out_hw[d], scale_hw[d], antialias, out.device, compute_dtype)
        if d == 0:
            out = torch.matmul(w, out)                   # [N, C, H_out, W]
        else:
            out = torch.matmul(out, w.t())               # [N, C, H, W_out]
    return out.to(x.dtype)


def _quantised(x: torch.Tensor) -> torch.Tensor:
    """Reference behaviour: [-1, 1] -> uint8 levels by truncation (not rounding), as floats."""
    return torch.floor(255 * ((x + 1) / 2).clamp(0, 1))


def _from_levels(levels: torch.Tensor) -> torch.Tensor:
    return (levels / 255 * 2 - 1).clamp(-1, 1)


def imresize(x: torch.Tensor, scale: float, quantize: bool = True) -> torch.Tensor:
    """Resize [N, C, H, W] in [-1, 1] by `scale`: output size ceil(H * scale) x ceil(W * scale).

    With quantize (the default, SPEC 2) the input is truncated to 8-bit levels first and the
    result is clamped back to [-1, 1], as every resize in the reference code does.
    """
    out_hw = (math.ceil(x.shape[2] * scale), math.ceil(x.shape[3] * scale))
    return _resize(x, (scale, scale), out_hw, quantize)


def imresize_to_shape(x: torch.Tensor, shape, quantize: bool = True) -> torch.Tensor:
    """Resize [N, C, H, W] in [-1, 1] to shape (h, w); each dimension's scale is out / in."""
    h, w = int(shape[0]), int(shape[1])
    return _resize(x, (h / x.shape[2], w / x.shape[3]), (h, w), quantize)


def _resize(x, scale_hw, out_hw, quantize):
    if not quantize:
        return resize_float(x, scale_hw, out_hw)
    levels = resize_float(_quantised(x), scale_hw, out_hw)
    return _from_levels(levels)
