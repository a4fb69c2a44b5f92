"""imresize against the reference's outputs (SPEC 2), against a plain transcription of SPEC 2
written here (one output pixel at a time, in float64), and its own invariants."""
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from singan.imresize import imresize, imresize_to_shape


def _cases(reference):
    cases = json.loads((reference / "imresize" / "cases.json").read_text())
    arrays = np.load(reference / "imresize" / "cases.npz")
    return cases, arrays


def test_matches_reference_for_every_scale_and_shape(reference):
    cases, arrays = _cases(reference)
    checked = 0
    for case in cases:
        x = torch.from_numpy(arrays[case["input"]])
        for s in case["scales"]:
            ours, theirs = imresize(x, s["scale"]).numpy(), arrays[s["output"]]
            assert ours.shape == theirs.shape, (case["name"], s["label"])
            assert np.abs(ours - theirs).max() <= 1e-4, (case["name"], s["label"])
            checked += 1
        for s in case["shapes"]:
            ours, theirs = imresize_to_shape(x, s["shape"]).numpy(), arrays[s["output"]]
            assert ours.shape == theirs.shape, (case["name"], s["shape"])
            assert np.abs(ours - theirs).max() <= 1e-4, (case["name"], s["shape"])
            checked += 1
    assert checked >= 40


def test_gray_stays_gray(reference):
    cases, arrays = _cases(reference)
    gray = [c for c in cases if arrays[c["input"]].shape[1] == 1]
    assert gray, "the reference data has gray cases"
    x = torch.from_numpy(arrays[gray[0]["input"]])
    assert imresize(x, 0.75).shape[1] == 1


# ---- SPEC 2, transcribed one output pixel at a time -------------------------------------------

def keys_cubic(t: float) -> float:
    """SPEC 2's kernel, a = -0.5."""
    t = abs(t)
    if t <= 1:
        return 1.5 * t ** 3 - 2.5 * t ** 2 + 1
    if t <= 2:
        return -0.5 * t ** 3 + 2.5 * t ** 2 - 4 * t + 2
    return 0.0


def resize_line(line: np.ndarray, out_length: int, scale: float, antialias: bool) -> np.ndarray:
    """One row or column, as SPEC 2 says: output pixel i (1-based) sits at input coordinate
    u = i / scale + (1 - 1 / scale) / 2; its taps j = floor(u - width / 2) - 1 + k, k = 0 ..
    ceil(width) + 1, weigh kernel(u - (j + 1)); a tap before the start weighs nothing; one past
    the end reads the mirrored pixel, the edge repeated; the weights are divided by their sum."""
    length = len(line)
    width = 4 / scale if antialias else 4.0
    out = np.zeros(out_length)
    for i in range(1, out_length + 1):
        u = i / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps, weights = [], []
        for k in range(math.ceil(width) + 2):
            j = left - 1 + k
            weight = scale * keys_cubic(scale * (u - (j + 1))) if antialias \
                else keys_cubic(u - (j + 1))
            if j < 0:
                weight, j = 0.0, 0
            while j >= length:                 # L -> L-1, L+1 -> L-2, ..., and on, mirrored
                j = 2 * length - 1 - j         # back and forth between the ends
                j = -1 - j if j < 0 else j
            taps.append(j)
            weights.append(weight)
        total = sum(weights)
        out[i - 1] = sum(w * line[j] for w, j in zip(weights, taps)) / (total if total else 1)
    return out


def spec_imresize(x: torch.Tensor, out_hw, scales=None) -> np.ndarray:
    """SPEC 2 end to end for [N, C, H, W] in [-1, 1], to out_hw, with the given scales (or
    out / in): truncated to 8-bit levels (in float32, as the tensor holds them), each
    dimension resized (the smaller scale first, height first on a tie; antialiasing for both
    when the height shrinks), back to [-1, 1], clamped."""
    levels = np.floor(np.float32(255) * np.clip((x.numpy() + np.float32(1)) / np.float32(2),
                                                0, 1)).astype(np.float64)
    h, w = x.shape[2:]
    scales = scales or (out_hw[0] / h, out_hw[1] / w)
    antialias = scales[0] < 1
    for d in sorted(range(2), key=lambda d: scales[d]):
        levels = np.apply_along_axis(resize_line, 2 + d, levels, out_hw[d], scales[d],
                                     antialias)
    return np.clip(levels / 255 * 2 - 1, -1, 1)


def test_a_batch_is_resized_as_spec_2_resizes_each_image():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 23, 31) * 2 - 1
    out = imresize(x, 1 / 0.77)
    assert out.shape == (4, 3, 30, 41)
    expected = spec_imresize(x, (30, 41), (1 / 0.77, 1 / 0.77))
    assert np.abs(out.numpy() - expected).max() <= 1e-5


@pytest.mark.parametrize("shape, out_hw", [((9, 40), (20, 50)), ((30, 12), (20, 25)),
                                           ((17, 17), (40, 9))])
def test_explicit_shapes_of_mixed_scales_follow_spec_2(shape, out_hw):
    """Shrinking one side and growing the other: the height's scale alone decides the
    antialiasing of both (SPEC 2's quirk), and the smaller scale goes first."""
    x = torch.rand(1, 3, *shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    out = imresize_to_shape(x, out_hw)
    assert out.shape == (1, 3, *out_hw)
    assert np.abs(out.numpy() - spec_imresize(x, out_hw)).max() <= 1e-5


@settings(max_examples=25, deadline=None)
@given(h=st.integers(3, 24), w=st.integers(3, 24), scale=st.floats(0.3, 2.5),
       seed=st.integers(0, 1000))
def test_property_every_size_and_scale_follows_spec_2(h, w, scale, seed):
    x = torch.rand(2, 1, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    out = imresize(x, scale)
    expected = spec_imresize(x, (math.ceil(h * scale), math.ceil(w * scale)), (scale, scale))
    assert out.shape == expected.shape
    assert np.abs(out.numpy() - expected).max() <= 1e-5


def test_quantisation_truncates_to_8_bit_levels():
    # Scale 1 resizes nothing, so only the reference's uint8 truncation is left: a value just
    # below a level boundary drops to the level below (truncation, not rounding).
    level = 100
    x = torch.full((1, 1, 4, 4), (level + 0.99) / 255 * 2 - 1)
    out = imresize(x, 1.0)
    assert torch.allclose(out, torch.full_like(out, level / 255 * 2 - 1), atol=1e-6)


def test_mixed_scale_shape_and_quantize_off():
    x = torch.linspace(-1, 1, 30 * 40).reshape(1, 1, 30, 40)
    out = imresize_to_shape(x, (20, 50), quantize=False)
    assert out.shape == (1, 1, 20, 50)
    # a linear ramp stays (nearly) linear inside the image, far from the edges
    row = out[0, 0, 10, 10:40]
    assert torch.allclose(row[1:] - row[:-1], (row[1:] - row[:-1]).mean().expand(29), atol=1e-3)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(4, 60), w=st.integers(4, 60), scale=st.floats(0.2, 3.0),
       value=st.floats(-1, 1), seed=st.integers(0, 1000))
def test_property_shape_range_and_constants(h, w, scale, value, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h, w, generator=g) * 2 - 1
    out = imresize(x, scale)
    assert out.shape == (1, 3, math.ceil(h * scale), math.ceil(w * scale))
    assert out.min() >= -1 and out.max() <= 1
    const = imresize(torch.full((1, 3, h, w), value), scale)
    # the 8-bit level of the constant, computed in float32 as the resize's input is
    level = torch.floor(255 * ((torch.tensor(value, dtype=torch.float32) + 1) / 2).clamp(0, 1))
    expected = float(level) / 255 * 2 - 1
    assert torch.allclose(const, torch.full_like(const, expected), atol=1e-5)


def test_weight_matrices_of_a_huge_request_are_not_kept():
    """A request of a huge size (the studio's scale_h 1000) computes its [out, in] matrices
    once and drops them: the caches stay within imresize.CACHE_BYTES, so a server that answered
    it holds no gigabytes afterwards."""
    from singan import imresize as module
    x = torch.rand(1, 3, 4, 2000)
    out = module.imresize_to_shape(x, (4, 6000))                 # a 6000 x 2000 matrix
    assert out.shape == (1, 3, 4, 6000)
    for cache in (module._host_cache, module._device_cache):
        assert all(tuple(v.shape) != (6000, 2000) for v in cache.entries.values())
        assert cache.bytes <= cache.max_bytes
    small = module.imresize_to_shape(x[:, :, :, :20], (4, 30))
    assert small.shape == (1, 3, 4, 30)
    assert any(tuple(v.shape) == (30, 20) for v in module._host_cache.entries.values())


# ---- the weight caches and the dtypes, each from a fact stated here ----------------------------

def test_the_cache_drops_the_least_recently_used_first(monkeypatch):
    import numpy as np_
    from singan import imresize as module
    cache = module._BoundedCache(100)
    made = []

    def maker(key, n):
        def make():
            made.append(key)
            return np_.zeros(n)                       # n float64: 8 n bytes
        return make
    a = cache.get("a", maker("a", 5))                 # 40 bytes
    cache.get("b", maker("b", 5))                     # 80
    assert cache.get("a", maker("a", 5)) is a         # a hit: made once, now the newest
    cache.get("c", maker("c", 5))                     # 120 > 100: b (the oldest use) goes
    assert list(cache.entries) == ["a", "c"] and cache.bytes == 80
    assert made == ["a", "b", "c"]
    cache.get("b", maker("b", 5))                     # b again: made anew; a goes
    assert list(cache.entries) == ["c", "b"] and cache.bytes == 80
    cache.get("d", maker("d", 12))                    # 96: everything else goes
    assert list(cache.entries) == ["d"] and cache.bytes == 96
    cache.get("e", maker("e", 13))                    # 104 alone: over max_bytes, not kept
    assert cache.bytes <= 100


def test_the_cache_counts_tensors_by_their_bytes(monkeypatch):
    from singan import imresize as module
    cache = module._BoundedCache(100)
    cache.get("t", lambda: torch.zeros(10, dtype=torch.float32))          # 40 bytes
    cache.get("u", lambda: torch.zeros(5, dtype=torch.float64))           # 40 bytes
    assert cache.bytes == 80
    cache.get("v", lambda: torch.zeros(10, dtype=torch.float16))          # 20 bytes: 100 fits
    assert list(cache.entries) == ["t", "u", "v"] and cache.bytes == 100
    cache.get("w", lambda: torch.zeros(1, dtype=torch.float32))           # 104: t goes
    assert list(cache.entries) == ["u", "v", "w"] and cache.bytes == 64


def test_a_value_larger_than_the_largest_cached_is_never_kept(monkeypatch):
    import numpy as np_
    from singan import imresize as module
    monkeypatch.setattr(module, "LARGEST_CACHED", 64)
    cache = module._BoundedCache(1000)
    cache.get("big", lambda: np_.zeros(9))            # 72 bytes
    cache.get("fits", lambda: np_.zeros(8))           # 64 bytes: kept
    assert list(cache.entries) == ["fits"] and cache.bytes == 64


def test_half_precision_is_resized_in_float32_and_returned_as_it_came():
    x = torch.rand(1, 3, 10, 14, generator=torch.Generator().manual_seed(2)) * 2 - 1
    for dtype in (torch.float16, torch.bfloat16):
        low = x.to(dtype)
        out = imresize(low, 0.7, quantize=False)
        assert out.dtype == dtype
        # the float32 resize of the same (rounded) values, rounded once at the end
        expected = imresize(low.float(), 0.7, quantize=False).to(dtype)
        assert torch.equal(out, expected)


def test_autocast_leaves_the_resize_in_float32():
    x = torch.rand(1, 3, 12, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    plain = imresize(x, 0.75)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = imresize(x, 0.75)
    assert inside.dtype == torch.float32 and torch.equal(inside, plain)


def test_a_factor_of_one_leaves_that_dimension_untouched():
    """imresize_to_shape to (h, 2 w): the height's factor is exactly 1, so every column
    position keeps its rows' values (only widths change), here on integer levels that no
    resize along the height could keep everywhere."""
    x = torch.rand(1, 1, 9, 1, generator=torch.Generator().manual_seed(4)) * 2 - 1
    wide = imresize_to_shape(x.expand(1, 1, 9, 5), (9, 10), quantize=False)
    assert torch.allclose(wide, x.expand(1, 1, 9, 10), atol=1e-6)
    tall = imresize_to_shape(x.transpose(2, 3).expand(1, 1, 5, 9), (10, 9), quantize=False)
    assert torch.allclose(tall, x.transpose(2, 3).expand(1, 1, 10, 9), atol=1e-6)


def test_values_beyond_the_range_saturate_before_the_resize():
    """SPEC 2 first truncates to 8-bit levels, so a value past +-1 counts as +-1 for its
    neighbours too: the resize of an image equals the resize of its clamped copy."""
    x = torch.rand(1, 3, 13, 17, generator=torch.Generator().manual_seed(5)) * 4 - 2
    for scale in (0.6, 1.4):
        assert torch.equal(imresize(x, scale), imresize(x.clamp(-1, 1), scale))


def test_each_device_gets_its_own_weights():
    """The device cache is keyed by device: a resize on another device ('meta', which every
    machine has) right after the same resize on the CPU must not get the CPU's matrices."""
    x = torch.rand(1, 3, 11, 15) * 2 - 1
    assert imresize(x, 0.75).device.type == "cpu"
    out = imresize(torch.zeros(1, 3, 11, 15, device="meta"), 0.75)
    assert out.device.type == "meta" and out.shape == (1, 3, 9, 12)
    # torch's matmul lets CPU weights pass on 'meta' tensors, so look at the weights used:
    # the module's docstring says they are kept per device, on that device
    from singan import imresize as module
    on_meta = [key for key, value in module._device_cache.entries.items()
               if key[:2] in ((11, 9), (15, 12)) and value.device.type == "meta"]
    assert sorted(key[:2] for key in on_meta) == [(11, 9), (15, 12)]
    assert all(key[4] == "meta" for key in on_meta)


def test_double_precision_is_resized_in_double():
    """float64 in, float64 arithmetic: the resize agrees with the float64 transcription of
    SPEC 2 far below float32's resolution."""
    x = torch.rand(1, 2, 9, 13, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    out = imresize_to_shape(x, (7, 17), quantize=False)
    assert out.dtype == torch.float64
    expected = np.stack([np.stack([np.apply_along_axis(
        resize_line, 1, np.apply_along_axis(resize_line, 0, x[0, c].numpy(), 7, 7 / 9, True),
        17, 17 / 13, True)]) for c in range(2)], 1)
    assert np.abs(out.numpy() - expected).max() < 1e-12


@pytest.mark.gpu
def test_autocast_on_cuda_leaves_the_resize_in_float32():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    x = torch.rand(1, 3, 12, 16, generator=torch.Generator().manual_seed(3)).cuda() * 2 - 1
    plain = imresize(x, 0.75)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        inside = imresize(x, 0.75)
    assert inside.dtype == torch.float32 and torch.equal(inside, plain)
