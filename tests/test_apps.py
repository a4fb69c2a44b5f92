"""The applications end to end (SPEC 8): harmonization, editing, paint-to-image (plain and
quantised), super-resolution, animation and random samples, each run as a user runs it, on
tiny seeded models trained once per module; and their bad inputs.

Each application is judged by what it makes, against a fact that does not come from the code
under test (the input files the test wrote, SPEC's formulas computed here with scipy and
skimage, a plain 2 x 2 average): what a user would check by looking at the result."""

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from scipy.ndimage import binary_dilation
from skimage.filters import gaussian
from skimage.morphology import disk

from conftest import (assert_one_line_error, photo, run_here, run_script, smooth_image,
                      write_image)
from singan import load_model

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


def training_image(work) -> np.ndarray:
    """The training image as the test wrote it (an independent fact: not read back through
    the model)."""
    return read(work / "Input" / "tiny.png")


def unchanged_but_for_truncation(result: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Where result is the image as the model holds it, a boolean map [H, W]: the finest
    training image is the written one resized twice at scale 1 (SPEC 3: by scale1 = 1, then by
    scale_factor ** 0), and each resize truncates to 8-bit levels (SPEC 2), which lowers a
    pixel, never raises it: by 0 to 2 levels."""
    step = result.astype(int) - image.astype(int)
    return ((step >= -2) & (step <= 0)).all(axis=-1)


def mean_abs(a, b) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


def read(path):
    return iio.imread(path)


def blend_weight(mask_pixels, radius):
    """The blending weight from the mask, computed here from SPEC 8: dilate with a disk,
    Gaussian blur (sigma 5), rescale to [0, 1]."""
    blurred = gaussian(binary_dilation(mask_pixels[:, :, 0] > 0, disk(radius).astype(bool))
                       .astype(float), sigma=5)
    return (blurred - blurred.min()) / (blurred.max() - blurred.min())


# ---- harmonization and editing -----------------------------------------------------------------

@pytest.fixture(scope="module")
def harmonized(work):
    """harmonization.py on the pasted red square, from scale 1, two samples: (first, second)."""
    proc = run_script("harmonization.py", *MODEL, "--ref_name", "naive.png",
                      "--harmonization_start_scale", "1", "--num_samples", "2",
                      "--manualSeed", "4", cwd=work)
    assert proc.returncode == 0, proc.stderr
    out_dir = work / "Output/Harmonization/tiny/naive_out"
    assert (out_dir / "naive_mask_dilated.png").is_file()
    assert (out_dir / "start_scale=1_grid.png").is_file()
    first, second = read(out_dir / "start_scale=1.png"), read(out_dir / "start_scale=1_1.png")
    assert first.shape == second.shape == (H, W, 3)
    return first, second


def test_harmonization_keeps_the_image_outside_the_dilated_mask(work, harmonized):
    """Fact: outside the mask dilated by 7 px and blurred (SPEC 8, computed here with scipy
    and skimage) the blend's weight is 0, so there the result is the training image the test
    wrote (to the reference's 8-bit truncation)."""
    outside = blend_weight(square_mask(), 7) == 0
    assert outside.sum() > 300                                      # the right third
    image = training_image(work)
    for result in harmonized:
        kept = unchanged_but_for_truncation(result, image)
        assert kept[outside].all(), np.argwhere(outside & ~kept)[:5]


def test_harmonization_changes_the_pasted_square(harmonized):
    """Fact: inside the mask the pasted pure red (250, 30, 30) is harmonized towards the
    image: no longer that red; and two samples differ there."""
    first, second = harmonized
    for result in harmonized:
        assert np.abs(result[PATCH].astype(int) - [250, 30, 30]).mean() > 20
    assert not np.array_equal(first[PATCH], second[PATCH])


@pytest.fixture(scope="module")
def edited(work):
    """editing.py on the copied region, from scale 2: (raw output, masked result)."""
    proc = run_script("editing.py", *MODEL, "--ref_name", "edit.png",
                      "--editing_start_scale", "2", "--manualSeed", "4", cwd=work)
    assert proc.returncode == 0, proc.stderr
    out_dir = work / "Output/Editing/tiny/edit_out"
    raw, masked = read(out_dir / "start_scale=2.png"), read(out_dir / "start_scale=2_masked.png")
    assert raw.shape == masked.shape == (H, W, 3)
    return raw, masked


def test_editing_changes_each_pixel_by_no_more_than_the_masks_weight(work, edited):
    """Fact: editing's blend (SPEC 8, disk 20, computed here) lets the image change by at most
    the blurred mask's weight times the full range: far from the mask (weight < 2%) within a
    few levels of the image the test wrote, everywhere within 255 * weight (+ rounding)."""
    _, masked = edited
    weight = blend_weight(square_mask(), 20)
    change = np.abs(masked.astype(int) - training_image(work).astype(int)).max(axis=-1)
    assert (change <= 255 * weight + 2).all(), np.argwhere(change > 255 * weight + 2)[:5]
    far = weight < 0.02
    assert far.sum() > 100
    assert change[far].max() <= 6


def test_editing_changes_what_lies_inside_the_mask(work, edited):
    """Fact: inside the mask the result is the model's, not the pasted copy: it differs from
    the edited input there; and the masked result is SPEC 8's blend of the raw output into
    the image through the weight computed here."""
    raw, masked = edited
    edit = read(work / "Input" / "Editing" / "edit.png")
    assert mean_abs(masked[PATCH], edit[PATCH]) > 3
    weight = blend_weight(square_mask(), 20)[:, :, None]
    expected = (1 - weight) * training_image(work) + weight * raw
    assert np.abs(masked - expected).max() <= 2.5     # 8-bit rounding, the image's truncation


# ---- paint to image ----------------------------------------------------------------------------

PAINT_REGIONS = {"top left": ((slice(0, H // 2), slice(0, W // 2)), (40, 90, 200)),
                 "top right": ((slice(0, H // 2), slice(W // 2, W)), (220, 200, 60)),
                 "bottom": ((slice(H // 2, H), slice(0, W)), (30, 150, 60))}


@pytest.fixture(scope="module")
def painted(work):
    """paint2image.py on the three-colour painting, from scale 2 of 0-3 (the two finest
    scales add their detail to it; a tiny model's coarser scales, barely trained, repaint
    more), two samples."""
    proc = run_script("paint2image.py", *MODEL, "--ref_name", "paint.png",
                      "--paint_start_scale", "2", "--num_samples", "2", "--manualSeed", "4",
                      cwd=work)
    assert proc.returncode == 0, proc.stderr
    out_dir = work / "Output/Paint2image/tiny/paint_out"
    first, second = read(out_dir / "start_scale=2.png"), read(out_dir / "start_scale=2_1.png")
    assert first.shape == second.shape == (H, W, 3)
    return first, second


def test_paint2image_writes_one_image_per_sample(painted):
    first, second = painted
    assert not np.array_equal(first, second)


def test_paint2image_follows_the_paintings_colours_region_by_region(work, painted):
    """Fact: the painting (written by the test) has three flat regions, blue, yellow and
    green; in each result, each region's mean colour is nearest to its own region's paint
    colour of the three, and the region's pixels are nearer the painting than the training
    image's pixels there are (by at least a third)."""
    image = training_image(work)
    paint = read(work / "Input" / "Paint" / "paint.png")
    colours = {name: np.array(colour, float) for name, (_, colour) in PAINT_REGIONS.items()}
    for result in painted:
        for name, (region, _) in PAINT_REGIONS.items():
            mean = result[region].reshape(-1, 3).mean(axis=0)
            distance = {other: np.linalg.norm(mean - c) for other, c in colours.items()}
            assert min(distance, key=distance.get) == name, (name, mean, distance)
            to_paint, to_image = mean_abs(result[region], paint[region]), mean_abs(
                result[region], image[region])
            assert to_paint < 2 / 3 * to_image, (name, to_paint, to_image)


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
    """A 24 x 28 photo: super-resolution enlarges what it learnt of a natural image (20
    iterations a scale: with fewer, the finest generator, applied three times over, still
    adds more than detail)."""
    work = tmp_path_factory.mktemp("sr")
    write_image(work / "Input" / "small.png", photo("rocket.png", 24, 28))
    return work


SR_ARGS = ["--input_dir", "Input", "--input_name", "small.png", "--sr_factor", "2",
           "--niter", "20", "--device", "cpu", "--quiet", "--manualSeed", "1"]


@pytest.fixture(scope="module")
def super_resolved(sr_work):
    """SR.py, x2, on the 24 x 28 image: the script's run."""
    proc = run_script("SR.py", *SR_ARGS, cwd=sr_work)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_sr_trains_then_writes_sr_factor_times_the_input(sr_work, super_resolved):
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


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return float(10 * np.log10(255 ** 2 / mse))


def shrink_2x(image: np.ndarray) -> np.ndarray:
    """Each 2 x 2 block's mean: the plainest way back to half the size."""
    h, w, c = image.shape
    return image.reshape(h // 2, 2, w // 2, 2, c).astype(float).mean(axis=(1, 3))


# Measured: the tiny model's x2 result, shrunk back, is 21.7 dB from its input. A bicubic
# x2 of the input itself gives 41.4 dB; a bicubic upsample of noise about 9 dB.
SR_PSNR_FLOOR = 16.0


def test_sr_shrunk_back_is_its_input(sr_work, super_resolved):
    """Fact: an enlargement of an image, shrunk back by the same factor, is that image again:
    the x2 result's 2 x 2 means are within SR_PSNR_FLOOR dB of the input the test wrote."""
    hr = read(sr_work / "Output/SR/2/small_HR.png")
    small = read(sr_work / "Input" / "small.png")
    assert shrink_2x(hr).shape == small.shape
    assert psnr(shrink_2x(hr), small) > SR_PSNR_FLOOR, psnr(shrink_2x(hr), small)


# ---- animation ---------------------------------------------------------------------------------

ANIM_ARGS = ["--input_dir", "Input", "--input_name", "anim.png", "--max_size", "32",
             "--niter", "6", "--device", "cpu", "--quiet", "--manualSeed", "1"]


@pytest.fixture(scope="module")
def animated(tmp_path_factory):
    """The default sweep on a tiny animation model of a 32 x 32 photo, with 6 frames per
    GIF."""
    work = tmp_path_factory.mktemp("anim")
    write_image(work / "Input" / "anim.png", photo("chelsea.png", 32, 32))
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


def gif_frames(animated) -> dict:
    """Every GIF of the sweep: {path: frames [T, H, W, 3] as int}."""
    return {gif: iio.imread(gif, index=None).astype(int)
            for gif in sorted((animated / "Output/Animation/anim").rglob("*.gif"))}


def test_animation_frames_move_between_neighbours_and_across_the_loop(animated):
    """Fact: an animation moves: every frame differs from the one before it, and across the
    loop (the GIF plays its last frame, then its first again) the frames have travelled
    further than any one step: a walk, not a flicker between two pictures."""
    for gif, frames in gif_frames(animated).items():
        steps = [mean_abs(frames[t + 1], frames[t]) for t in range(len(frames) - 1)]
        assert min(steps) > 1, (gif, steps)
        assert mean_abs(frames[-1], frames[0]) > max(steps), (gif, steps)


def test_animation_frames_keep_the_training_images_colours(animated):
    """Fact: each frame's mean colour is the training image's (the file the test wrote)
    within 20 levels a channel, and no frame is flat."""
    image = read(animated / "Input" / "anim.png").astype(float)
    for gif, frames in gif_frames(animated).items():
        means = frames.reshape(len(frames), -1, 3).mean(axis=1)
        assert np.abs(means - image.reshape(-1, 3).mean(axis=0)).max() < 20, (gif, means)
        assert frames.reshape(len(frames), -1, 3).std(axis=1).min() > 5, gif


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
