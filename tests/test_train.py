"""Training: the scripts end to end, resume, reproducibility, sanity, and bad input."""
import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from scipy.stats import wasserstein_distance

from conftest import assert_one_line_error, photo, run_here, run_script, smooth_image, write_image
from singan import load_model, train_model
from singan.checkpoint import save_checkpoint
from singan.methods.singan.hparams import SinGANConfig
from singan.image_io import read_image
from singan.methods.singan.models import Generator, init_weights
from singan.methods.singan.pyramid import plan_pyramid
from singan.methods.singan.model import TrainedPyramid

# Training tests (they train tiny models, or run scripts that do): -m "not slow" skips them.
pytestmark = pytest.mark.slow

TINY = ["--max_size", "40", "--min_size", "19", "--niter", "8", "--device", "cpu", "--quiet"]
FOLDER = "TrainedModels/tiny/scale_factor=0.750000,alpha=10"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny model trained through main_train.py (4 scales, 32 x 40, 8 iterations each) on
    a photo (a few colours, which a tiny model learns at once)."""
    work = tmp_path_factory.mktemp("train")
    write_image(work / "Input" / "tiny.png", photo("chelsea.png", 32, 40))
    proc = run_script("main_train.py", "--input_dir", "Input", "--input_name", "tiny.png",
                      *TINY, "--manualSeed", "3", "--num_samples", "6", cwd=work)
    assert proc.returncode == 0, proc.stderr
    return work, proc


def test_model_folder_has_every_file(trained):
    work, proc = trained
    folder = work / FOLDER
    assert f"model: {FOLDER}" in proc.stdout
    assert "of the work" not in proc.stderr and "it/s" not in proc.stderr   # --quiet: no bars
    for n in range(4):
        for name in ("netG.pth", "netD.pth", "z_opt.pth", "real_scale.png", "fake_sample.png",
                     "G(z_opt).png", "losses.png"):
            assert (folder / str(n) / name).is_file(), (n, name)
    config = json.loads((folder / "config.json").read_text())
    assert config["config"]["niter"] == 8 and config["seed"] == 3
    ckpt = torch.load(folder / "model.pth", weights_only=True)
    # the coarsest is 20, not 19, px high: (19/32) ** (1/3) cubed times 32 rounds up in float
    # arithmetic, as in the reference (plan_pyramid is checked against it in test_pyramid)
    assert [tuple(r.shape[2:]) for r in ckpt["reals"]] == plan_pyramid(32, 40, 19, 40).shapes
    assert ckpt["reals"][0].shape[2:] == (20, 24)
    assert [s["nfc"] for s in ckpt["scales"]] == [32, 32, 32, 32]
    assert ckpt["scales"][0]["noise_amp"] == 1.0 and 0 < ckpt["scales"][1]["noise_amp"] < 0.1


def test_samples_and_grid_are_written(trained):
    work, _ = trained
    out = work / "Output" / "RandomSamples" / "tiny" / "gen_start_scale=0"
    files = sorted(out.iterdir(), key=lambda p: int(p.stem))
    assert [p.name for p in files] == [f"{i}.png" for i in range(6)]
    images = np.stack([iio.imread(p) for p in files])
    assert images.shape == (6, 32, 40, 3) and images.dtype == np.uint8
    assert images.std(axis=0).mean() > 1          # the samples differ from one another
    grid = iio.imread(out.parent / "gen_start_scale=0_grid.png")
    # 32 px images are enlarged 8x (the smallest whole factor reaching 256 px), pixel blocks
    assert grid.shape[0] == 256 and grid.shape[1] > 6 * 8 * 40
    first = grid[:256, 8 * 40 + 4:2 * 8 * 40 + 4]            # the first sample, enlarged
    assert np.array_equal(first[::8, ::8], images[0]) and np.array_equal(first[7::8, 7::8],
                                                                        images[0])


def samples_and_image(work):
    """main_train.py's 6 samples [6, H, W, 3] and the training image the test wrote, as
    floats."""
    out = work / "Output" / "RandomSamples" / "tiny" / "gen_start_scale=0"
    samples = np.stack([iio.imread(out / f"{i}.png") for i in range(6)]).astype(float)
    return samples, iio.imread(work / "Input" / "tiny.png").astype(float)


def test_random_samples_differ_from_each_other_and_from_the_training_image(trained):
    """Fact: random samples are new images: no two alike, none a copy of the image trained
    on (the file the test wrote); on average more than 10 levels apart a pixel (measured:
    20 between samples, 26 from the image)."""
    samples, image = samples_and_image(trained[0])
    for i, sample in enumerate(samples):
        assert np.abs(sample - image).mean() > 10, i
        for j in range(i):
            assert np.abs(sample - samples[j]).mean() > 10, (i, j)


def colour_distance(pixels: np.ndarray, image: np.ndarray) -> float:
    """How far apart two pictures' colours are, whatever their layout: the largest, over the
    three channels, of the 1-D Wasserstein distance between their distributions of values."""
    return max(wasserstein_distance(pixels[..., c].ravel(), image[..., c].ravel())
               for c in range(3))


def test_random_samples_keep_the_training_images_colours(trained):
    """Fact: a sample has the training image's colours: its values are distributed as the
    image's (within 20 levels a channel; measured: at most 10), its mean within 15 levels and
    its spread within a factor of two. A picture of other colours is not: uniform noise, flat
    grey, the image darkened to 60%, another photo (each 45 to 95 levels away)."""
    samples, image = samples_and_image(trained[0])
    for sample in samples:
        assert colour_distance(sample, image) < 20
        assert np.abs(sample.mean(axis=(0, 1)) - image.mean(axis=(0, 1))).max() < 15
        ratio = sample.std(axis=(0, 1)) / image.std(axis=(0, 1))
        assert (ratio > 0.5).all() and (ratio < 2).all(), ratio
    rng = np.random.default_rng(0)
    for other in (rng.integers(0, 256, image.shape), np.full(image.shape, 128), image * 0.6,
                  photo("rocket.png", *image.shape[:2])):
        assert colour_distance(np.asarray(other, float), image) > 40


def test_rerun_skips_finished_model_and_resumes_a_partial_one(trained):
    work, _ = trained
    folder = work / FOLDER
    before = (folder / "3" / "netG.pth").stat().st_mtime_ns
    proc = run_script("main_train.py", "--input_dir", "Input", "--input_name", "tiny.png", *TINY,
                      "--num_samples", "0", cwd=work)
    assert proc.returncode == 0 and "already trained" in proc.stdout
    assert (folder / "3" / "netG.pth").stat().st_mtime_ns == before
    # drop the last scale from the checkpoint, as if training had been killed during scale 3
    ckpt = torch.load(folder / "model.pth", weights_only=True)
    ckpt_before = torch.load(folder / "model.pth", weights_only=True)
    ckpt["scales"] = ckpt["scales"][:3]
    save_checkpoint(folder / "model.pth", ckpt)          # with a fresh checksum
    first_scales = (folder / "0" / "netG.pth").stat().st_mtime_ns
    # the same seed: scale 3 is trained again exactly as before, so that the module's model
    # stays what the other tests expect whatever order they run in
    proc = run_script("main_train.py", "--input_dir", "Input", "--input_name", "tiny.png", *TINY,
                      "--manualSeed", "3", "--num_samples", "0", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "resuming" in proc.stdout and "scale 3/3" in proc.stdout
    assert "scale 0/3" not in proc.stdout
    assert (folder / "0" / "netG.pth").stat().st_mtime_ns == first_scales
    resumed = torch.load(folder / "model.pth", weights_only=True)
    assert len(resumed["scales"]) == 4
    for key, value in ckpt_before["scales"][3]["G"].items():      # the same scale 3 again
        assert torch.equal(resumed["scales"][3]["G"][key], value), key


def test_other_settings_need_force(trained, monkeypatch):
    work, _ = trained
    proc = run_here("main_train.py", "--input_dir", "Input", "--input_name", "tiny.png",
                    "--max_size", "40", "--min_size", "19", "--niter", "9", "--quiet",
                    "--num_samples", "0", cwd=work, monkeypatch=monkeypatch)
    assert_one_line_error(proc, "other settings", "niter", "--force")


def test_random_samples_script_modes(trained):
    work, _ = trained
    proc = run_script("random_samples.py", "--input_name", "tiny.png", *TINY[:4],
                      "--mode", "random_samples_arbitrary_sizes", "--scale_v", "1",
                      "--scale_h", "2", "--num_samples", "3", "--manualSeed", "1", cwd=work)
    assert proc.returncode == 0, proc.stderr
    out = work / "Output/RandomSamples_ArbitrerySizes/tiny/scale_v=1.000000_scale_h=2.000000"
    assert sorted(p.name for p in out.glob("*.png")) == ["0.png", "1.png", "2.png"]
    assert iio.imread(out / "0.png").shape == (32, 80, 3)
    proc = run_script("random_samples.py", "--model_dir", FOLDER, "--gen_start_scale", "2",
                      "--num_samples", "2", "--manualSeed", "1", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert (work / "Output/RandomSamples/tiny/gen_start_scale=2/1.png").is_file()


def test_random_samples_draws_50_by_default(trained, monkeypatch):
    """The README's default: without --num_samples, 50 samples, 0.png .. 49.png."""
    work, _ = trained
    proc = run_here("random_samples.py", "--model_dir", FOLDER, "--manualSeed", "1", "--out",
                    "fifty", cwd=work, monkeypatch=monkeypatch)
    assert proc.returncode == 0, proc.stderr
    out = work / "fifty" / "RandomSamples" / "tiny" / "gen_start_scale=0"
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{i}.png" for i in range(50))


def test_same_seed_same_samples(trained):
    work, _ = trained
    runs = []
    for out in ("a", "b"):
        proc = run_script("random_samples.py", "--model_dir", FOLDER, "--num_samples", "3",
                          "--manualSeed", "5", "--out", out, cwd=work)
        assert proc.returncode == 0, proc.stderr
        runs.append([iio.imread(work / out / "RandomSamples/tiny/gen_start_scale=0" / f"{i}.png")
                     for i in range(3)])
    assert all(np.array_equal(a, b) for a, b in zip(*runs))


def test_random_samples_reports_diversity_and_sifid(trained, tmp_path):
    work, _ = trained
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    weights = tmp_path / "inception.pth"
    torch.save(torchvision.models.inception_v3(weights=None, init_weights=True).state_dict(),
               weights)
    proc = run_script("random_samples.py", "--model_dir", FOLDER, "--num_samples", "3",
                      "--manualSeed", "2", "--sifid", "--sifid_weights", weights, cwd=work)
    assert proc.returncode == 0, proc.stderr
    diversity = float(proc.stdout.split("diversity: ")[1].split()[0])
    assert 0 < diversity < 2
    assert "SIFID: mean" in proc.stdout and "over 3 samples" in proc.stdout
    proc = run_script("random_samples.py", "--model_dir", FOLDER, "--num_samples", "2",
                      "--sifid", "--sifid_weights", tmp_path / "missing.pth", cwd=work)
    assert proc.returncode == 0 and "SIFID skipped" in proc.stderr


@pytest.mark.parametrize("args, words", [
    (["--model_dir", "TrainedModels/nothing"], ["no trained model", "TrainedModels/nothing"]),
    (["--model_dir", FOLDER, "--gen_start_scale", "4"], ["gen_start_scale", "between 0 and 3"]),
    (["--model_dir", FOLDER, "--gen_start_scale", "-1"], ["gen_start_scale", "between 0 and 3"]),
    (["--model_dir", FOLDER, "--scale_h", "0"], ["--scale_h", "positive"]),
    (["--model_dir", FOLDER, "--scale_v", "-2"], ["--scale_v", "positive"]),
    (["--input_name", "unknown.png"], ["no trained model", "main_train.py --input_name unknown.png"]),
])
def test_random_samples_bad_input(trained, args, words, monkeypatch):
    work, _ = trained
    assert_one_line_error(run_here("random_samples.py", *args, cwd=work, monkeypatch=monkeypatch),
                          *words)


def test_incomplete_model_folder(trained, tmp_path, monkeypatch):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "0").mkdir()
    assert_one_line_error(run_here("random_samples.py", "--model_dir", "model", cwd=tmp_path,
                                   monkeypatch=monkeypatch), "holds no trained model")


@pytest.mark.parametrize("make, words", [
    (lambda d: None, ["image not found"]),
    (lambda d: (d / "Input" / "x.png").write_bytes(b"definitely not a png"), ["cannot read"]),
    (lambda d: (d / "Input" / "x.png").mkdir(parents=True), ["is a folder"]),
    (lambda d: write_image(d / "Input" / "x.png", smooth_image(12, 40)), ["at least", "min_size"]),
    (lambda d: write_image(d / "Input" / "x.png", smooth_image(30, 600)), ["aspect ratio"]),
])
def test_main_train_bad_image(tmp_path, make, words, monkeypatch):
    (tmp_path / "Input").mkdir(exist_ok=True)
    make(tmp_path)
    proc = run_here("main_train.py", "--input_dir", "Input", "--input_name", "x.png",
                    "--niter", "1", "--quiet", cwd=tmp_path, monkeypatch=monkeypatch)
    assert_one_line_error(proc, *words)
    assert not (tmp_path / "TrainedModels").exists()


@pytest.mark.parametrize("args, words", [
    (["--niter", "0"], ["--niter", "positive"]),
    (["--niter", "-5"], ["--niter", "positive"]),
    (["--scale_factor", "1.2"], ["--scale_factor", "between 0 and 1"]),
    (["--min_size", "300", "--max_size", "250"], ["--min_size", "must not exceed"]),
    (["--model", "consingan", "--ker_size", "5"], ["ConSinGAN", "--ker_size 3"]),
])
def test_main_train_bad_options(tmp_path, args, words, monkeypatch):
    proc = run_here("main_train.py", "--input_name", "x.png", *args, cwd=tmp_path,
                    monkeypatch=monkeypatch)
    assert_one_line_error(proc, *words)


@pytest.mark.parametrize("pixels", [
    smooth_image(32, 40)[:, :, 0],                                         # grayscale
    np.dstack([smooth_image(32, 40), np.full((32, 40), 200, np.uint8)]),    # RGBA
    smooth_image(32, 40)[:, :, 1].astype(np.uint16) * 257,                  # 16-bit gray
])
def test_unusual_pixel_formats_are_read_as_rgb(tmp_path, pixels):
    image = read_image(write_image(tmp_path / "x.png", pixels))
    expected = smooth_image(32, 40)
    if pixels.ndim == 2:   # gray, 8 or 16 bit: replicated, 16-bit mapped to 0..255
        expected = np.repeat(pixels[:, :, None], 3, axis=2) / (257 if pixels.itemsize == 2 else 1)
    assert image.shape == (1, 3, 32, 40)
    back = ((image[0].permute(1, 2, 0).numpy() + 1) / 2 * 255).round()
    assert np.abs(back - expected).max() <= 1


def test_training_improves_the_reconstruction(tmp_path):
    """After a short training, G(z_opt) at the finest scale is much closer to the image than
    the same pyramid's reconstruction at initialisation."""
    torch.manual_seed(0)
    image = torch.from_numpy(smooth_image(24, 30)).permute(2, 0, 1)[None].float() / 127.5 - 1
    cfg = SinGANConfig(max_size=30, min_size=20, niter=40)
    trained = train_model(image, cfg, tmp_path / "m", seed=0, show_progress=False,
                            log=lambda s: None)
    real = trained.reals[-1]
    fresh = []
    for g in trained.generators:
        f = Generator(g.nfc, g.min_nfc)
        init_weights(f, torch.Generator().manual_seed(0))
        fresh.append(f)
    untrained = TrainedPyramid(fresh, trained.z_opt, trained.noise_amp, trained.reals,
                               trained.scale_factor)
    rmse_before = (untrained.reconstruct() - real).pow(2).mean().sqrt()
    rmse_after = (trained.reconstruct() - real).pow(2).mean().sqrt()
    assert rmse_after < 0.5 * rmse_before, (float(rmse_before), float(rmse_after))


def test_training_is_reproducible_with_the_same_seed(tmp_path):
    image = torch.from_numpy(smooth_image(26, 30)).permute(2, 0, 1)[None].float() / 127.5 - 1
    cfg = SinGANConfig(max_size=30, min_size=22, niter=3)
    runs = [train_model(image, cfg, tmp_path / name, seed=11, show_progress=False,
                          log=lambda s: None) for name in ("a", "b")]
    for ga, gb in zip(runs[0].generators, runs[1].generators):
        for va, vb in zip(ga.state_dict().values(), gb.state_dict().values()):
            assert torch.equal(va, vb)
    assert runs[0].noise_amp == runs[1].noise_amp


@pytest.mark.parametrize("amp, query", [("bf16", "_is_mkldnn_bf16_supported"),
                                        ("fp16", "_is_mkldnn_fp16_supported")])
def test_amp_on_a_cpu_without_native_support_is_called_slow(amp, query, monkeypatch):
    from singan.devices import amp_slowdown
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.ops.mkldnn, query, lambda: False)
    reason = amp_slowdown(cpu, amp)
    assert f"no native {amp}" in reason and "leave --amp out" in reason
    monkeypatch.setattr(torch.ops.mkldnn, query, lambda: True)
    assert amp_slowdown(cpu, amp) is None
    assert amp_slowdown(cpu, "none") is None
    assert amp_slowdown(torch.device("cuda"), amp) is None   # GPUs: no CPU emulation
