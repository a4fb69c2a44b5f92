"""The applications end to end (SPEC 8): harmonization, editing, paint-to-image (plain and
quantised), super-resolution and animation, each run as a user runs it, on tiny models; and
their bad inputs."""

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from scipy.ndimage import binary_dilation
from skimage.filters import gaussian
from skimage.morphology import disk

from conftest import assert_one_line_error, run_here, run_script, smooth_image, write_image
from singan import load_model
from singan.image_io import to_uint8

# Training tests (they train tiny models, or run scripts that do): -m "not slow" skips them.
pytestmark = pytest.mark.slow

MODEL = ["--input_dir", "Input", "--input_name", "tiny.png", "--max_size", "48",
         "--min_size", "19", "--niter", "10", "--device", "cpu", "--quiet"]
FOLDER = "TrainedModels/tiny/scale_factor=0.750000,alpha=10"
H, W = 32, 48
PATCH = (slice(3, 9), slice(3, 9))   # the pasted / edited region, top left


def square_mask(h=H, w=W):
    mask = np.zeros((h, w, 3), np.uint8)
    mask[PATCH] = 255
    return mask


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder with a 32 x 48 training image, a naive image + mask, an edit + mask and a
    painting, and a tiny model trained by main_train.py (4 scales, 10 iterations each)."""
    work = tmp_path_factory.mktemp("apps")
    image = smooth_image(H, W)
    write_image(work / "Input" / "tiny.png", image)
    naive = image.copy()
    naive[PATCH] = [250, 30, 30]                                     # a pasted red square
    write_image(work / "Input" / "Harmonization" / "naive.png", naive)
    write_image(work / "Input" / "Harmonization" / "naive_mask.png", square_mask())
    edit = image.copy()
    edit[PATCH] = image[20:26, 30:36]                                # a copied region
    write_image(work / "Input" / "Editing" / "edit.png", edit)
    write_image(work / "Input" / "Editing" / "edit_mask.png", square_mask())
    paint = np.zeros_like(image)
    paint[:, :W // 2], paint[:, W // 2:] = [40, 90, 200], [220, 200, 60]
    paint[H // 2:, :] = [30, 150, 60]
    write_image(work / "Input" / "Paint" / "paint.png", paint)
    proc = run_script("main_train.py", *MODEL, "--manualSeed", "1", "--num_samples", "0",
                      cwd=work)
    assert proc.returncode == 0, proc.stderr
    return work


def read(path):
    return iio.imread(path)


def real_pixels(work, folder=FOLDER):
    """The model's finest training image as 8-bit pixels [H, W, 3]."""
    return to_uint8(load_model(work / folder).reals[-1])


def blend_weight(mask_pixels, radius):
    """The blending weight from the mask, computed here from SPEC 8: dilate with a disk,
    Gaussian blur (sigma 5), rescale to [0, 1]."""
    blurred = gaussian(binary_dilation(mask_pixels[:, :, 0] > 0, disk(radius).astype(bool))
                       .astype(float), sigma=5)
    return (blurred - blurred.min()) / (blurred.max() - blurred.min())


# ---- harmonization and editing -----------------------------------------------------------------

def test_harmonization_keeps_the_image_outside_the_dilated_mask(work):
    proc = run_script("harmonization.py", *MODEL, "--ref_name", "naive.png",
                      "--harmonization_start_scale", "1", "--num_samples", "2",
                      "--manualSeed", "4", cwd=work)
    assert proc.returncode == 0, proc.stderr
    out_dir = work / "Output/Harmonization/tiny/naive_out"
    first, second = read(out_dir / "start_scale=1.png"), read(out_dir / "start_scale=1_1.png")
    assert first.shape == second.shape == (H, W, 3)
    assert (out_dir / "naive_mask_dilated.png").is_file()
    assert (out_dir / "start_scale=1_grid.png").is_file()
    weight = blend_weight(square_mask(), 7)
    outside = weight == 0
    assert outside.sum() > 100                                       # the right third
    real = real_pixels(work)
    for result in (first, second):
        assert np.array_equal(result[outside], real[outside])
    # inside, the red square is gone: harmonized towards the image
    assert np.abs(first[PATCH].astype(int) - [250, 30, 30]).mean() > 20
    assert not np.array_equal(first, second)                          # two different samples


def test_editing_writes_the_raw_and_the_masked_result(work):
    proc = run_script("editing.py", *MODEL, "--ref_name", "edit.png",
                      "--editing_start_scale", "2", "--manualSeed", "4", cwd=work)
    assert proc.returncode == 0, proc.stderr
    out_dir = work / "Output/Editing/tiny/edit_out"
    raw, masked = read(out_dir / "start_scale=2.png"), read(out_dir / "start_scale=2_masked.png")
    assert raw.shape == masked.shape == (H, W, 3)
    weight = blend_weight(square_mask(), 20)[:, :, None]
    expected = (1 - weight) * real_pixels(work) + weight * raw
    assert np.abs(masked - expected).max() <= 1.5                    # 8-bit rounding only
    assert not np.array_equal(raw, masked)


# ---- paint to image ----------------------------------------------------------------------------

def test_paint2image_writes_one_image_per_sample(work):
    proc = run_script("paint2image.py", *MODEL, "--ref_name", "paint.png",
                      "--paint_start_scale", "1", "--num_samples", "2", "--manualSeed", "4",
                      cwd=work)
    assert proc.returncode == 0, proc.stderr
    out_dir = work / "Output/Paint2image/tiny/paint_out"
    first, second = read(out_dir / "start_scale=1.png"), read(out_dir / "start_scale=1_1.png")
    assert first.shape == second.shape == (H, W, 3)
    assert not np.array_equal(first, second)


def test_paint2image_quantized_retrains_the_scale_once(work):
    args = [*MODEL, "--ref_name", "paint.png", "--paint_start_scale", "1",
            "--quantization_flag", "--manualSeed", "4"]
    proc = run_script("paint2image.py", *args, cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "retraining scale 1" in proc.stdout
    out_dir = work / "Output/Paint2image/tiny/paint_out_quantized"
    assert read(out_dir / "start_scale=1.png").shape == (H, W, 3)
    for name in ("in_paint.png", "in_paint_quant.png"):
        assert read(out_dir / name).shape[2] == 3
    real_quant = read(out_dir / "real_quant.png")
    assert len(np.unique(real_quant.reshape(-1, 3), axis=0)) <= 5

    folder = work / "TrainedModels/tiny/scale_factor=0.750000_paint/start_scale=1"
    painted, base = load_model(folder), load_model(work / FOLDER)
    assert painted.config["paint_colours"] == 5
    for n, (g, g0) in enumerate(zip(painted.generators, base.generators)):
        same = all(torch.equal(a, b) for a, b in zip(g.state_dict().values(),
                                                     g0.state_dict().values()))
        assert same == (n != 1), n                                    # only scale 1 retrained
    stamp = (folder / "model.pth").stat().st_mtime_ns

    again = run_script("paint2image.py", *args, cwd=work)
    assert again.returncode == 0, again.stderr
    assert "reusing" in again.stdout and "retraining" not in again.stdout
    assert (folder / "model.pth").stat().st_mtime_ns == stamp


# ---- super-resolution --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sr_work(tmp_path_factory):
    work = tmp_path_factory.mktemp("sr")
    write_image(work / "Input" / "small.png", smooth_image(24, 28, seed=2))
    return work


SR_ARGS = ["--input_dir", "Input", "--input_name", "small.png", "--sr_factor", "2",
           "--niter", "6", "--device", "cpu", "--quiet", "--manualSeed", "1"]


def test_sr_trains_then_writes_sr_factor_times_the_input(sr_work):
    proc = run_script("SR.py", *SR_ARGS, cwd=sr_work)
    assert proc.returncode == 0, proc.stderr
    folder = sr_work / "TrainedModels/small/scale_factor=0.793701,alpha=100"
    model = load_model(folder)
    assert model.config["alpha"] == 100 and model.config["sr_schedule"] is True
    assert model.shape(0)[0] == 18                                   # the SR schedule's min_size
    hr = read(sr_work / "Output/SR/2/small_HR.png")
    assert hr.shape == (48, 56, 3)
    compare = read(sr_work / "Output/SR/2/small_compare.png")
    assert compare.shape[0] == 6 * 48 and compare.shape[1] > 2 * 6 * 56   # enlarged to >= 256

    again = run_script("SR.py", *SR_ARGS, cwd=sr_work)                # reuses the model
    assert again.returncode == 0, again.stderr
    assert "already trained" in again.stdout
    assert np.array_equal(read(sr_work / "Output/SR/2/small_HR.png"), hr)   # same seed


# ---- animation ---------------------------------------------------------------------------------

ANIM_ARGS = ["--input_dir", "Input", "--input_name", "anim.png", "--max_size", "32",
             "--niter", "6", "--device", "cpu", "--quiet", "--manualSeed", "1"]


@pytest.fixture(scope="module")
def animated(tmp_path_factory):
    """The default sweep on a tiny animation model, with 6 frames per GIF."""
    work = tmp_path_factory.mktemp("anim")
    write_image(work / "Input" / "anim.png", smooth_image(32, 32, seed=3))
    proc = run_script("animation.py", *ANIM_ARGS, "--num_frames", "6", cwd=work)
    assert proc.returncode == 0, proc.stderr
    return work


def test_animation_writes_every_gif_of_the_sweep(animated):
    model = load_model(animated / "TrainedModels/anim/scale_factor=0.750000_noise_padding")
    assert model.config["pad_noise"] is False and not model.pad_noise
    assert model.shape(0) == (21, 21)                                 # min_size 20
    gifs = sorted((animated / "Output/Animation/anim").rglob("*.gif"))
    expected = sorted(animated / "Output/Animation/anim" / f"start_scale={s}"
                      / ("alpha=0.100000_beta=%f.gif" % b)
                      for s in (0, 1, 2) for b in (0.80, 0.85, 0.90, 0.95))
    assert gifs == expected
    for gif in gifs:
        frames = iio.imread(gif, index=None)
        assert frames.shape == (6, 32, 32, 3), gif
    assert iio.immeta(gifs[0])["duration"] == 100                     # 10 fps


def test_animation_options_narrow_it_to_one_gif(animated):
    proc = run_script("animation.py", *ANIM_ARGS, "--start_scale", "1", "--beta_animation",
                      "0.9", "--alpha_animation", "0.2", "--fps", "20", cwd=animated)
    assert proc.returncode == 0, proc.stderr
    gif = animated / "Output/Animation/anim/start_scale=1/alpha=0.200000_beta=0.900000.gif"
    frames = iio.imread(gif, index=None)
    assert frames.shape == (100, 32, 32, 3)
    assert iio.immeta(gif)["duration"] == 50
    assert len(list((animated / "Output/Animation/anim").rglob("alpha=0.2*.gif"))) == 1


# ---- bad input ---------------------------------------------------------------------------------

def test_missing_mask_is_an_error(work, monkeypatch):
    write_image(work / "Input" / "Harmonization" / "lonely.png", smooth_image(H, W))
    proc = run_here("harmonization.py", *MODEL, "--ref_name", "lonely.png",
                    "--harmonization_start_scale", "1", cwd=work, monkeypatch=monkeypatch)
    assert_one_line_error(proc, "mask not found", "lonely_mask.png", "--mask")


def test_mask_of_another_size_is_resized_with_a_warning(work):
    write_image(work / "Input" / "big_mask.png",
                np.kron(square_mask(), np.ones((2, 2, 1), np.uint8)))      # 64 x 96
    proc = run_script("harmonization.py", *MODEL, "--ref_name", "naive.png",
                      "--mask", "Input/big_mask.png", "--harmonization_start_scale", "2",
                      "--manualSeed", "4", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "warning" in proc.stderr and "resized" in proc.stderr
    result = read(work / "Output/Harmonization/tiny/naive_out/start_scale=2.png")
    assert result.shape == (H, W, 3)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # imageio trying its plugins
def test_unreadable_mask_is_an_error(work, monkeypatch):
    (work / "Input" / "broken_mask.png").write_bytes(b"not an image at all")
    proc = run_here("editing.py", *MODEL, "--ref_name", "edit.png",
                    "--mask", "Input/broken_mask.png", "--editing_start_scale", "1",
                    cwd=work, monkeypatch=monkeypatch)
    assert_one_line_error(proc, "cannot read", "broken_mask.png")


@pytest.mark.parametrize("script, option, scale", [
    ("harmonization.py", "--harmonization_start_scale", 0),
    ("editing.py", "--editing_start_scale", 4),
    ("paint2image.py", "--paint_start_scale", 7),
])
def test_start_scale_outside_1_to_N_names_the_range(work, monkeypatch, script, option, scale):
    ref = {"harmonization.py": "naive.png", "editing.py": "edit.png",
           "paint2image.py": "paint.png"}[script]
    proc = run_here(script, *MODEL, "--ref_name", ref, option, scale, cwd=work,
                    monkeypatch=monkeypatch)
    assert_one_line_error(proc, option, "between 1 and 3", f"got {scale}")


def test_naive_image_of_another_aspect_ratio_is_refused(work, monkeypatch):
    folder = work / "Input" / "Harmonization"
    write_image(folder / "square.png", smooth_image(H, H))
    write_image(folder / "square_mask.png", square_mask(H, H))
    proc = run_here("harmonization.py", *MODEL, "--ref_name", "square.png",
                    "--harmonization_start_scale", "1", cwd=work, monkeypatch=monkeypatch)
    assert_one_line_error(proc, "aspect ratio", "square.png")


@pytest.mark.parametrize("factor", ["1", "0.5"])
def test_sr_factor_must_exceed_one(sr_work, monkeypatch, factor):
    args = [a if a != "2" else factor for a in SR_ARGS]
    proc = run_here("SR.py", *args, cwd=sr_work, monkeypatch=monkeypatch)
    assert_one_line_error(proc, "--sr_factor", "greater than 1")


def test_model_of_another_application_is_refused(work, animated, monkeypatch):
    anim_model = animated / "TrainedModels/anim/scale_factor=0.750000_noise_padding"
    proc = run_here("harmonization.py", *MODEL, "--model_dir", anim_model, "--ref_name",
                    "naive.png", "--harmonization_start_scale", "1", cwd=work,
                    monkeypatch=monkeypatch)
    assert_one_line_error(proc, "trained for animation (animation.py)", "main_train.py")


def test_missing_model_prints_the_training_command(work, monkeypatch):
    proc = run_here("paint2image.py", *MODEL, "--alpha", "20", "--ref_name", "paint.png",
                    "--paint_start_scale", "1", cwd=work, monkeypatch=monkeypatch)
    assert_one_line_error(proc, "no trained model at TrainedModels/tiny/scale_factor=0.750000,"
                          "alpha=20", "python main_train.py --input_dir Input --input_name "
                          "tiny.png --min_size 19 --max_size 48 --niter 10 --alpha 20")
