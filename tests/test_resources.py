"""Every request is sized before it runs (singan.resources): hostile requests are refused with
one line that gives the figures and the option to lower, before anything big is allocated;
large drawings are made in tiles that give the same pixels."""
import resource
import re
from pathlib import Path

import pytest
import torch

from conftest import ROOT, assert_one_line_error, run_here, run_script
from singan import resources
from singan.apps.sr import super_resolve
from singan.checkpoint import CHECKPOINT_NAME, save_torch
from singan.methods.consingan.hparams import ConSinGANConfig
from singan.methods.consingan.model import ConSinGAN
from singan.methods.consingan.models import build_generator
from singan.methods.consingan.train import ConSinGANTrainer
from singan.errors import SinGANError
from singan.methods.singan.hparams import SinGANConfig
from singan.methods.singan.models import Discriminator, Generator, channels_at_scale, init_weights
from singan.methods.singan.pyramid import plan_pyramid
from singan.methods.singan.model import TrainedPyramid, checkpoint_dict, run_tiled
from singan.methods.singan.train import SinGANTrainer

LIMIT = 2e9            # no hostile request may grow the process past this
FIGURES = re.compile(r"about [\d.]+ [kMGTP]?B .*; [\d.]+ [kMGTP]?B (is|are) free: lower ")


def _peak_reset():
    """Reset this process's peak resident size (VmHWM), where Linux allows it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _refused(call, *words):
    """call() raises SinGANError naming `words` and the figures, within LIMIT of memory."""
    _peak_reset()
    with pytest.raises(SinGANError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message and FIGURES.search(message), message
    for word in words:
        assert word in message, (word, message)
    assert _peak() < LIMIT, _peak()
    return message


def random_pyramid(height=188, width=250, pad_noise=True, seed=0):
    """A SinGAN pyramid of the default geometry (10 scales up to 188 x 250, 32/64/128
    channels) with random weights: drawing it costs what a trained model costs."""
    plan = plan_pyramid(height, width, 25, max(height, width), 0.75)
    gens, discs = [], []
    g = torch.Generator().manual_seed(seed)
    for n in range(plan.n_scales):
        G, D = Generator(*channels_at_scale(n)), Discriminator(*channels_at_scale(n))
        init_weights(G, g), init_weights(D, g)
        gens.append(G), discs.append(D)
    z_opt = [torch.zeros(1, 3, h + 10, w + 10) for h, w in plan.shapes]
    reals = [torch.rand(1, 3, h, w, generator=g) * 2 - 1 for h, w in plan.shapes]
    amps = [1.0] + [0.05] * (plan.n_scales - 1)
    return TrainedPyramid(gens, z_opt, amps, reals, plan.scale_factor, pad_noise=pad_noise), discs


@pytest.fixture(scope="module")
def pyramid():
    return random_pyramid()[0]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A saved model folder of the default geometry, for the scripts."""
    folder = tmp_path_factory.mktemp("model")
    pyr, discs = random_pyramid()
    save_torch(folder / CHECKPOINT_NAME, checkpoint_dict(pyr, discs, {}, {}, {"name": "x.png"}))
    return folder


@pytest.fixture(scope="module")
def animation_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("animation_model")
    pyr, discs = random_pyramid(pad_noise=False)
    save_torch(folder / CHECKPOINT_NAME, checkpoint_dict(pyr, discs, {"pad_noise": False}, {},
                                                         {"name": "x.png"}))
    return folder


# ---- the API -------------------------------------------------------------------------------------

def test_samples_at_scale_h_1000_are_refused(pyramid):
    message = _refused(lambda: pyramid.sample(50, scale_h=1000), "scale_h 1000", "--scale_h")
    assert "GB" in message or "TB" in message


def test_a_hundred_million_samples_are_refused(pyramid):
    _refused(lambda: pyramid.sample(100_000_000), "100000000 samples", "--num_samples")


def test_sr_factor_1000_is_refused(pyramid):
    _refused(lambda: super_resolve(pyramid, 1000), "--sr_factor 1000", "--sr_factor")


def test_ten_million_frames_are_refused():
    model = random_pyramid(pad_noise=False)[0]
    _refused(lambda: model.animate(num_frames=10_000_000), "10000000 frames", "--num_frames")


def test_injection_of_many_outputs_is_refused(pyramid):
    image = pyramid.reals[-1]
    _refused(lambda: pyramid.generate(image, 3, num_samples=10_000_000), "injected",
             "number of outputs")


def test_consingan_requests_are_refused():
    cfg = ConSinGANConfig(train_stages=3, nfc=16)
    reals = [torch.zeros(1, 3, h, w) for h, w in ((25, 33), (40, 53), (60, 80))]
    model = ConSinGAN(build_generator(cfg, 3), [torch.zeros(1, 3, 25, 33)] * 3, [1.0] * 3,
                      reals, cfg)
    _refused(lambda: model.sample(2, scale_h=1000), "scale_h 1000", "--scale_h")
    _refused(lambda: model.sample(100_000_000), "--num_samples")


def _trainer(height, width, max_size, **cfg):
    """A real SinGANTrainer whose reals are on the meta device (shapes without memory), sized
    as if it trained on the CPU."""
    image = torch.empty(1, 3, height, width, device="meta")
    trainer = SinGANTrainer(image, SinGANConfig(max_size=max_size, **cfg), low_memory=False)
    trainer.device = torch.device("cpu")
    return trainer


def test_training_a_photo_at_max_size_20000_is_refused():
    message = _refused(lambda: resources.check_training(_trainer(3000, 4000, 20000)),
                       "4000 x 3000 px", "--max_size")
    assert "training" in message


def test_training_at_the_default_size_passes_and_picks_the_plain_step(monkeypatch):
    trainer = _trainer(188, 250, 250)
    resources.check_training(trainer)
    assert resources.choose_low_memory(trainer) is False
    # a machine with less free than the plain step needs but more than the lean one's
    big = _trainer(384, 512, 512)
    lean, plain = (resources.training_peak(big, low_memory)[0] for low_memory in (True, False))
    assert lean < plain
    monkeypatch.setenv("SINGAN_MAX_MEMORY", str((lean + plain) / 2 / resources.HEADROOM))
    resources.check_training(big)
    assert resources.choose_low_memory(big) is True
    with pytest.raises(SinGANError, match="--max_size"):
        resources.check_training(big, low_memory=False)


def test_too_many_files_for_the_disk_are_refused(tmp_path):
    _refused(lambda: resources.check_output_files(tmp_path, 100_000_000, 200_000),
             "100000000 files", "disk", "--num_samples")
    resources.check_output_files(tmp_path, 3, 1000)


def test_free_memory_follows_the_cap(monkeypatch):
    monkeypatch.setenv("SINGAN_MAX_MEMORY", "1.5GB")
    assert resources.free_memory("cpu") <= 1.5e9
    assert resources.parse_bytes("512 MB") == 512_000_000
    assert resources.human(310e9) == "310 GB" and resources.human(2.1e9) == "2.1 GB"


def test_ordinary_requests_pass(pyramid):
    resources.check_samples(pyramid, 50)
    resources.check_samples(pyramid, 50, 1.0, 8.0, batch=1)
    resources.check_frames(random_pyramid(pad_noise=False)[0], 100)


# ---- tiles ---------------------------------------------------------------------------------------

def _eval_generator(channels, seed):
    torch.manual_seed(seed)
    g = Generator(channels, channels)
    init_weights(g)
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.2, 3.0)
    return g.eval()


@pytest.mark.parametrize("tile", [7, 16, 33])
def test_tiled_pass_equals_the_whole_pass(tile):
    g = _eval_generator(16, 0)
    z, prev = torch.randn(2, 3, 50, 61), torch.randn(2, 3, 50, 61)
    with torch.no_grad():
        whole = g(z, prev)
        tiled = run_tiled(g, z, prev, tile, 5)
    assert tiled.shape == whole.shape == (2, 3, 40, 51)
    assert (tiled - whole).abs().max() <= 1e-6


def test_tiled_drawing_equals_untiled_drawing(monkeypatch):
    """Samples and super-resolution of a small model drawn whole and in small tiles."""
    gens = [_eval_generator(8, s) for s in range(3)]
    shapes = [(19, 25), (25, 33), (31, 40)]
    pyr = TrainedPyramid(gens, [torch.zeros(1, 3, h + 10, w + 10) for h, w in shapes],
                         [1.0, 0.1, 0.1], [torch.rand(1, 3, h, w) * 2 - 1 for h, w in shapes],
                         0.78)
    draws = {}
    for budget in (1e12, 2e5):     # everything whole; then tiles of about 20 px
        monkeypatch.setattr(resources, "DRAW_TILE_BYTES", budget)
        draws[budget] = (pyr.sample(3, scale_h=2.0, generator=torch.Generator().manual_seed(1)),
                         super_resolve(pyr, 4, torch.Generator().manual_seed(2)))
    assert resources.draw_tile(3, 8, 31, 80) is not None    # the second drawing was tiled
    for whole, tiled in zip(draws[1e12], draws[2e5]):
        assert whole.shape == tiled.shape
        assert (whole - tiled).abs().max() <= 1e-6


# ---- the scripts ---------------------------------------------------------------------------------

def _script(script, *args, cwd, monkeypatch):
    proc = run_here(script, *args, cwd=cwd, monkeypatch=monkeypatch)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    return proc


def test_random_samples_script_refuses_scale_h_1000_in_a_fresh_process(model_dir, tmp_path):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = run_script("random_samples.py", "--model_dir", model_dir, "--mode",
                      "random_samples_arbitrary_sizes", "--scale_h", 1000, cwd=tmp_path)
    assert proc.returncode == 2
    assert_one_line_error(proc, "scale_h", "free", "--scale_h")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    assert before * 1024 >= LIMIT or peak < LIMIT, peak


@pytest.mark.parametrize("script, args, words", [
    ("random_samples.py", ["--num_samples", 100_000_000], ["100000000", "--num_samples"]),
    ("animation.py", ["--num_frames", 10_000_000], ["10000000 frames", "--num_frames"]),
])
def test_scripts_refuse_hostile_requests(script, args, words, model_dir, animation_dir,
                                         tmp_path, monkeypatch):
    folder = animation_dir if script == "animation.py" else model_dir
    _peak_reset()
    proc = _script(script, "--model_dir", folder, *args, "--out", tmp_path / "Output",
                   cwd=tmp_path, monkeypatch=monkeypatch)
    assert_one_line_error(proc, *words)
    assert _peak() < LIMIT


def test_sr_script_refuses_sr_factor_1000_before_training(tmp_path, monkeypatch):
    _peak_reset()
    proc = _script("SR.py", "--input_dir", ROOT / "Input" / "Images", "--input_name",
                   "rocket.png", "--sr_factor", 1000, "--out", tmp_path / "Output",
                   cwd=tmp_path, monkeypatch=monkeypatch)
    assert_one_line_error(proc, "--sr_factor 1000", "free")
    assert not (tmp_path / "TrainedModels").exists()      # nothing was trained
    assert _peak() < LIMIT


def test_consingan_training_is_sized_too():
    def trainer(height, width, cfg):
        made = ConSinGANTrainer(torch.empty(1, 3, height, width, device="meta"), cfg)
        made.device = torch.device("cpu")
        return made
    _refused(lambda: resources.check_training(trainer(3000, 4000, ConSinGANConfig(
        max_size=20000))), "training at 4000 x 3000 px", "--max_size")
    resources.check_training(trainer(188, 250, ConSinGANConfig()))
