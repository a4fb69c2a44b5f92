"""MATLAB-style bicubic imresize, as the reference SinGAN code resizes (SPEC section 2).

The pyramid, every up-sampling between scales and every injection use this resize. It runs on
the tensor's own device, batched over N and C: each dimension is one matrix product with a
[out_length, in_length] weight matrix computed once per (in_length, out_length, scale,
antialiasing) and cached, on the host in float64, then per device and dtype.
"""
import functools
import math

import numpy as np
import torch


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic'), support [-2, 2]."""
    ax = np.abs(x)
    ax2, ax3 = ax ** 2, ax ** 3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((1 < ax) & (ax <= 2)))


@functools.lru_cache(maxsize=512)
def _weight_matrix(in_length: int, out_length: int, scale: float, antialias: bool) -> np.ndarray:
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


_device_cache = {}


def _weights_on(in_length, out_length, scale, antialias, device, dtype) -> torch.Tensor:
    key = (in_length, out_length, scale, antialias, str(device), dtype)
    w = _device_cache.get(key)
    if w is None:
        if len(_device_cache) > 1024:
            _device_cache.clear()
        w = torch.from_numpy(_weight_matrix(in_length, out_length, scale, antialias))
        w = _device_cache[key] = w.to(device=device, dtype=dtype)
    return w


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
