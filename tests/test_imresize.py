"""imresize against the reference's outputs (SPEC 2) and its own invariants."""
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


def test_batched_equals_one_by_one():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 23, 31) * 2 - 1
    batched = imresize(x, 1 / 0.77)
    single = torch.cat([imresize(x[i:i + 1], 1 / 0.77) for i in range(4)])
    assert torch.equal(batched, single)


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
