"""Generation against the tiny reference model (SPEC 6-7), batching and reproducibility."""
import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from singan import load_model
from singan.errors import SinGANError
from singan.image_io import GRID_MIN_HEIGHT, grid_zoom, save_grid, to_uint8
from singan.methods.singan.models import Generator, init_weights
from singan.methods.singan.model import TrainedPyramid, fold_batchnorm

TINY = ("tiny_model", "TrainedModels", "colusseum", "scale_factor=0.750000,alpha=10")


@pytest.fixture(scope="module")
def tiny(reference):
    return load_model(reference.joinpath(*TINY))


def _noise(reference, sample, scales=3):
    folder = reference / "tiny_model"
    return [torch.from_numpy(np.load(folder / f"noise_sample{sample}_scale{n}.npy"))
            for n in range(scales)]


def test_reference_folder_imports_with_recovered_scale_factor(tiny, reference):
    index = json.loads((reference / "tiny_model" / "generation_index.json").read_text())
    assert tiny.num_scales == 3
    assert tiny.scale_factor == pytest.approx(index["scale_factor"], rel=0, abs=1e-15)
    assert tiny.noise_amp == pytest.approx(index["noise_amp"])


def test_same_noise_reproduces_reference_samples(tiny, reference):
    for i in range(3):
        ours = tiny.sample(1, noise=_noise(reference, i)).numpy()
        theirs = np.load(reference / "tiny_model" / f"sample_{i}.npy")
        diff = np.abs(ours - theirs)
        assert ours.shape == theirs.shape == (1, 3, 31, 40)
        assert diff.mean() <= 1e-3 and (diff > 1e-3).mean() < 0.01, (i, diff.mean())


def test_batch_of_samples_equals_samples_one_by_one(tiny, reference):
    noises = [_noise(reference, i) for i in range(3)]
    batch = tiny.sample(3, noise=[torch.cat([n[s] for n in noises]) for s in range(3)])
    singles = torch.cat([tiny.sample(1, noise=n) for n in noises])
    assert torch.allclose(batch, singles, atol=1e-5)


def test_same_seed_gives_identical_samples(tiny):
    a = tiny.sample(4, generator=torch.Generator().manual_seed(7))
    b = tiny.sample(4, generator=torch.Generator().manual_seed(7))
    c = tiny.sample(4, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= -1 and a.max() <= 1


def test_chunked_sampling_has_the_requested_count(tiny):
    out = tiny.sample(5, batch_size=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == (5, 3, 31, 40)


def test_arbitrary_sizes(tiny):
    out = tiny.sample(2, scale_v=1.0, scale_h=2.0, generator=torch.Generator().manual_seed(0))
    # coarsest 19 x 25 -> 19 x 50; each finer scale: round(scale * reals[n]) -> 31 x 80
    assert out.shape == (2, 3, 31, 80)


def test_gen_start_scale_follows_the_reconstruction(tiny):
    g = torch.Generator().manual_seed(0)
    free = tiny.sample(6, gen_start_scale=0, generator=g)
    fixed = tiny.sample(6, gen_start_scale=2, generator=g)
    # with z_opt at scales 0 and 1 only the finest scale's small noise differs between samples
    assert fixed.std(dim=0).mean() < 0.5 * free.std(dim=0).mean()


@pytest.mark.parametrize("kwargs, words", [
    ({"gen_start_scale": 3}, "between 0 and 2"),
    ({"scale_h": 0.0}, "positive"),
    ({"num_samples": 0}, "at least 1"),
])
def test_bad_sample_arguments(tiny, kwargs, words):
    with pytest.raises(SinGANError, match=words):
        tiny.sample(**kwargs)


def test_bf16_autocast_samples_stay_close_to_fp32(tiny, reference):
    from singan.methods.singan.train import autocast_context
    noise = _noise(reference, 0)
    fp32 = tiny.sample(1, noise=noise)
    with autocast_context(torch.device("cpu"), "bf16")():
        bf16 = tiny.sample(1, noise=noise).float()
    assert bf16.shape == fp32.shape
    # bfloat16 keeps 8 bits of mantissa: close, not equal
    assert 0 < (bf16 - fp32).abs().mean() < 0.05


def _generator_with_running_stats(seed):
    torch.manual_seed(seed)
    g = Generator(16, 16)
    init_weights(g)
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):       # statistics far from (0, 1)
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.2, 3.0)
            m.bias.data.uniform_(-0.3, 0.3)
    return g.eval()


def test_drawing_generator_folds_batchnorm_into_the_convolutions():
    g = _generator_with_running_stats(0)
    z, prev = torch.randn(2, 3, 30, 34), torch.randn(2, 3, 30, 34)
    fused = fold_batchnorm(g)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in g.modules())   # original kept
    with torch.no_grad():
        assert torch.allclose(fused(z, prev), g(z, prev), atol=1e-5)


def test_drawing_follows_changes_to_the_generators():
    g0, g1 = _generator_with_running_stats(1), _generator_with_running_stats(2)
    reals = [torch.rand(1, 3, 20, 24), torch.rand(1, 3, 26, 31)]
    pyramid = TrainedPyramid([g0], [torch.zeros(1, 3, 30, 34)], [1.0], reals, 0.78)
    before = pyramid.draw(1, "rec")
    with torch.no_grad():
        g0.tail[0].weight.mul_(0.5)              # in place: the fused copy must be remade
    changed = pyramid.draw(1, "rec")
    g0.load_state_dict(g1.state_dict())
    replaced = pyramid.draw(1, "rec")
    with torch.no_grad():
        expected = g1(torch.zeros(1, 3, 30, 34), torch.zeros(1, 3, 30, 34))
    assert not torch.allclose(before, changed, atol=1e-4)
    assert torch.allclose(pyramid._run(0, torch.zeros(1, 3, 30, 34), torch.zeros(1, 3, 30, 34)),
                          expected, atol=1e-5)
    assert not torch.allclose(changed, replaced, atol=1e-4)


def test_grid_enlarges_small_rows_by_a_whole_factor_that_every_kth_pixel_undoes(tmp_path):
    # docs/make_pictures.sh takes every grid_zoom(h)-th pixel of a grid to show its images
    # at their real size: that holds only if save_grid enlarges by exactly that factor
    assert [grid_zoom(h) for h in (43, 129, 256, 300)] == [6, 2, 1, 1]
    images = [torch.rand(1, 3, 43, 50) * 2 - 1 for _ in range(2)]
    save_grid(tmp_path / "g.png", images, gap=0)
    grid = iio.imread(tmp_path / "g.png")
    assert grid.shape == (43 * 6, 100 * 6, 3) and 43 * 6 >= GRID_MIN_HEIGHT
    k = grid_zoom(43)
    real_size = np.concatenate([to_uint8(im) for im in images], axis=1)
    np.testing.assert_array_equal(grid[::k, ::k], real_size)
