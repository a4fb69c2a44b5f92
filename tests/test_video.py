"""Animations as MP4 (issue 32): H.264 in yuv420p at even sizes, read back with PyAV (frame
count, rate, size, codec, pixels); animation.py and evaluate_model.py --format mp4; a 100-frame
MP4 against its GIF; and the one-line refusal where PyAV is missing."""
import sys
from fractions import Fraction

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from conftest import assert_one_line_error, run_here, smooth_image, write_image
from singan import ConSinGANConfig, SinGANConfig, load_model, train_model
from singan.apps.animation import write_animations, write_gif, write_mp4
from singan.image_io import to_uint8

av = pytest.importorskip("av")

# Training tests (they train tiny models): -m "not slow" skips them.
pytestmark = pytest.mark.slow


def read_mp4(path):
    """(stream facts, decoded RGB frames [T, H, W, 3]) of an MP4, through PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        facts = {"codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt,
                 "rate": stream.average_rate, "width": stream.width, "height": stream.height,
                 "format": container.format.name}
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
    return facts, frames


def drifting_frames(num_frames, h, w):
    """Smooth colours sliding one pixel a frame: [T, 3, h, w] in [-1, 1]."""
    y, x = np.mgrid[0:h, 0:w + num_frames] / 40
    waves = np.stack([np.sin(7 * x + 3 * y), np.cos(5 * y - 2 * x), np.sin(11 * x * y)], -1)
    image = ((0.5 + 0.35 * waves) * 255).astype(np.uint8)
    frames = np.stack([image[:, t:t + w] for t in range(num_frames)])
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A 32 x 32 image and its SinGAN animation model (noise not padded; 2 scales, 4
    iterations each), in TrainedModels/anim/, where animation.py looks for it."""
    work = tmp_path_factory.mktemp("video")
    write_image(work / "Input" / "anim.png", smooth_image(32, 32, seed=3))
    cfg = SinGANConfig(max_size=32, min_size=20, niter=4, pad_noise=False)
    train_model(work / "Input" / "anim.png", cfg, work / "model", show_progress=False,
                log=lambda text: None)
    return work


def test_mp4_frames_rate_size_codec(tmp_path):
    """Odd sizes gain a row and a column (H.264 in yuv420p needs even ones); the frames come
    back in order, close to the originals, at the rate asked (a fraction: 12.5 fps)."""
    frames = drifting_frames(12, 21, 31)
    write_mp4(tmp_path / "walk.mp4", frames, fps=12.5)
    facts, decoded = read_mp4(tmp_path / "walk.mp4")
    assert facts == {"codec": "h264", "pix_fmt": "yuv420p", "rate": Fraction(25, 2),
                     "width": 32, "height": 22, "format": facts["format"]}
    assert "mp4" in facts["format"]
    assert decoded.shape == (12, 22, 32, 3)
    original = to_uint8(frames).astype(float)                           # [12, 21, 31, 3]
    error = np.abs(decoded[:, :21, :31].astype(float) - original)
    assert error.mean() < 6, error.mean()                               # the same pictures
    # the added row and column copy their neighbours (up to the compression's error)
    assert np.abs(decoded[:, 21].astype(float) - decoded[:, 20]).mean() < 3
    assert np.abs(decoded[:, :, 31].astype(float) - decoded[:, :, 30]).mean() < 3
    # frame t is the picture shifted by t pixels: the order is kept
    shifted = np.abs(decoded[1:, :21, :30].astype(float) - decoded[:-1, :21, 1:31]).mean()
    assert shifted < np.abs(decoded[1:].astype(float) - decoded[:-1]).mean()


def test_write_animations_in_both_formats(work):
    """The library function the scripts and the studio call: the same walk as a GIF and as an
    MP4, beside each other, with the same frames."""
    model = load_model(work / "model")
    out = work / "lib"
    gifs = write_animations(model, "anim", 0, out, [1], [0.1], [0.9], 6, 10)
    mp4s = write_animations(model, "anim", 0, out, [1], [0.1], [0.9], 6, 10, format="mp4")
    assert [p.name for p in gifs] == ["alpha=0.100000_beta=0.900000.gif"]
    assert mp4s == [gifs[0].with_suffix(".mp4")]
    facts, decoded = read_mp4(mp4s[0])
    assert decoded.shape == (6, 32, 32, 3) and facts["rate"] == 10
    gif = iio.imread(gifs[0], index=None)
    assert np.abs(decoded.astype(float) - gif).mean() < 12              # the same walk


def test_animation_script_writes_mp4s(work, monkeypatch):
    proc = run_here("animation.py", "--model_dir", work / "model", "--input_name", "anim.png",
                    "--input_dir", "Input", "--format", "mp4", "--num_frames", "5",
                    "--beta_animation", "0.85", "--device", "cpu", "--manualSeed", "2",
                    cwd=work, monkeypatch=monkeypatch)
    assert proc.returncode == 0, proc.stderr
    scales = range(min(3, load_model(work / "model").num_scales))     # start scales 0, 1, 2
    assert f"{len(scales)} MP4s of 5 frames" in proc.stdout
    folder = work / "Output" / "Animation" / "anim"
    mp4s = sorted(folder.rglob("*.mp4"))
    assert [p.relative_to(folder).as_posix() for p in mp4s] == [
        f"start_scale={s}/alpha=0.100000_beta=0.850000.mp4" for s in scales]
    for path in mp4s:
        facts, decoded = read_mp4(path)
        assert decoded.shape == (5, 32, 32, 3) and facts["codec"] == "h264"
    assert not list(folder.rglob("*.gif"))


def test_a_100_frame_mp4_is_smaller_than_its_gif(work, capsys):
    """The same 100 frames of a walk: the README quotes the ratio (measured on a real model
    with benchmarks/bench_video.py); here the MP4 must simply be the smaller file."""
    model = load_model(work / "model")
    frames = model.animate(0.1, 0.9, 1, 100, torch.Generator().manual_seed(0))
    write_gif(work / "walk.gif", frames, 10)
    write_mp4(work / "walk.mp4", frames, 10)
    gif, mp4 = (work / "walk.gif").stat().st_size, (work / "walk.mp4").stat().st_size
    facts, decoded = read_mp4(work / "walk.mp4")
    assert len(decoded) == 100 and len(iio.imread(work / "walk.gif", index=None)) == 100
    with capsys.disabled():
        print(f"\n100 frames of 32x32: GIF {gif} B, MP4 {mp4} B ({gif / mp4:.1f}x)")
    assert mp4 < gif


def test_consingan_evaluation_writes_mp4s(tmp_path, monkeypatch):
    write_image(tmp_path / "walk.png", smooth_image(32, 40, seed=4))
    cfg = ConSinGANConfig(train_mode="animation", train_stages=3, min_size=16, max_size=40,
                          nfc=16, niter=2)
    train_model(tmp_path / "walk.png", cfg, tmp_path / "model", show_progress=False,
                log=lambda text: None)
    proc = run_here("evaluate_model.py", "--model_dir", tmp_path / "model", "--format", "mp4",
                    "--num_frames", "4", "--device", "cpu", "--manualSeed", "0",
                    cwd=tmp_path, monkeypatch=monkeypatch)
    assert proc.returncode == 0, proc.stderr
    mp4s = sorted((tmp_path / "Output").rglob("*.mp4"))
    assert len(mp4s) == 12, proc.stdout                 # start stages 0-2, betas 0.80-0.95
    assert mp4s[0].name == "start_scale=0_alpha=0.1_beta=0.80.mp4"
    facts, decoded = read_mp4(mp4s[0])
    assert len(decoded) == 4 and facts["rate"] == 10 and facts["codec"] == "h264"


@pytest.mark.parametrize("script", ["animation.py", "evaluate_model.py"])
def test_mp4_without_pyav_is_one_line(script, work, monkeypatch):
    """Where av is not installed (None in sys.modules makes its import fail), --format mp4 is
    refused before anything is trained or drawn, with the install command; exit 2."""
    monkeypatch.setitem(sys.modules, "av", None)
    proc = run_here(script, "--model_dir", work / "model", "--format", "mp4", "--device", "cpu",
                    cwd=work, monkeypatch=monkeypatch)
    assert_one_line_error(proc, "pip install -r requirements-video.txt")
    assert proc.returncode == 2
    assert not (work / "Output" / "ConSinGAN").exists()
