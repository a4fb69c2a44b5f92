"""singan.tuning (issue #39): the training layout chosen per machine and cached, fp32 always in
NCHW, the chosen layout's bf16 step agreeing with the other's, and the hint an fp32 training
prints on a CPU with native bf16."""
import copy
import json
import os
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import singan
from singan import tuning
from singan.methods.consingan import train as ctrain
from singan.methods.consingan.hparams import ConSinGANConfig
from singan.methods.consingan.models import build_discriminator, build_generator
from singan.errors import SinGANError
from singan.methods.singan.hparams import SinGANConfig
from singan.layers import init_weights
from singan.methods.singan.model import TrainedPyramid
from singan.methods.singan.models import Discriminator, Generator
from singan.methods.singan.train import ScaleTrainer
import singan.methods.singan.train as strain
from conftest import smooth_image, write_image

CL, NCHW = torch.channels_last, torch.contiguous_format
FIGURES = {"fp32": 1.0, "bf16_nchw": 0.6, "bf16_channels_last": 0.65}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache folder of the test's own, no layout forced, nothing remembered in-process."""
    monkeypatch.setenv("SINGAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SINGAN_LAYOUT", raising=False)
    monkeypatch.setattr(tuning, "_MEASURED", {})
    return tmp_path / "cache" / tuning.CACHE_NAME


@pytest.fixture
def fake_probe(cache, monkeypatch):
    """A CPU with native bf16 whose probe returns FIGURES (or what the test sets), counted."""
    fake = SimpleNamespace(calls=0, figures=dict(FIGURES))

    def probe():
        fake.calls += 1
        return dict(fake.figures)
    monkeypatch.setattr(tuning, "native_bf16", lambda device: True)
    monkeypatch.setattr(tuning, "probe", probe)
    return fake


def test_fp32_and_small_trainings_take_nchw_without_a_probe(fake_probe):
    # fp32: the reference's numbers, bit for bit, whatever a probe would say
    fake_probe.figures["bf16_channels_last"] = 0.01
    assert tuning.training_layout("cpu", "none") == NCHW
    assert tuning.training_layout("cpu", "bf16", work=tuning.PROBE_WORK / 2) == NCHW
    assert fake_probe.calls == 0
    # with NCHW nothing is copied: the very same tensors
    t = torch.randn(1, 3, 5, 6)
    assert tuning.to_layout(t, NCHW) is t
    assert tuning.to_layout(t, CL).is_contiguous(memory_format=CL)


def test_channels_last_only_where_clearly_faster(fake_probe):
    assert tuning.training_layout("cpu", "bf16") == NCHW            # 0.65 s against 0.6 s
    tuning._MEASURED.clear()
    fake_probe.figures = {**FIGURES, "bf16_channels_last": 0.55}     # 8% faster: not enough
    tuning.cache_file().unlink()
    assert tuning.training_layout("cpu", "bf16") == NCHW
    tuning._MEASURED.clear()
    tuning.cache_file().unlink()
    fake_probe.figures = {**FIGURES, "bf16_channels_last": 0.3}      # AMX-like: 2x
    assert tuning.training_layout("cpu", "bf16") == CL
    assert tuning.training_layout("cuda", "bf16") == NCHW or not torch.cuda.is_available()


def test_probe_runs_once_per_machine_and_is_cached(fake_probe, cache):
    logged = []
    assert tuning.training_layout("cpu", "bf16", log=logged.append) == NCHW
    assert fake_probe.calls == 1 and logged == [
        "measuring how this CPU trains fastest (once, a few seconds)"]
    saved = json.loads(cache.read_text())
    assert saved == {tuning.machine_key(): FIGURES}
    tuning._MEASURED.clear()                     # a new process: read from the file
    assert tuning.training_layout("cpu", "bf16") == NCHW and fake_probe.calls == 1
    # a damaged or foreign cache file is measured again and rewritten
    for damaged in ("{not json", json.dumps([1, 2]),
                    json.dumps({tuning.machine_key(): {"fp32": "fast"}})):
        cache.write_text(damaged)
        tuning._MEASURED.clear()
        assert tuning.training_layout("cpu", "bf16") == NCHW
        assert json.loads(cache.read_text())[tuning.machine_key()] == FIGURES
    assert fake_probe.calls == 4


def test_unwritable_cache_still_chooses(fake_probe, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("SINGAN_CACHE_DIR", str(blocker / "sub"))    # cannot be a folder
    assert tuning.training_layout("cpu", "bf16") == NCHW
    assert fake_probe.calls == 1


def test_forced_layout(cache, monkeypatch):
    monkeypatch.setenv("SINGAN_LAYOUT", "channels_last")
    assert tuning.training_layout("cpu", "none") == CL
    monkeypatch.setenv("SINGAN_LAYOUT", "sideways")
    with pytest.raises(SinGANError, match="SINGAN_LAYOUT=sideways is not a layout"):
        tuning.training_layout("cpu", "bf16")


def test_real_probe_figures(cache):
    """The probe itself, on this CPU: three positive times, the fp32 step the slowest of the
    three wherever bf16 is native (it is computed at half the width there)."""
    figures = tuning.probe(24, 32, reps=1)
    assert set(figures) == {"fp32", "bf16_nchw", "bf16_channels_last"}
    assert all(v > 0 for v in figures.values())


# ---- the chosen layout's numbers against the other's --------------------------------------------

def _sgd(monkeypatch, module):
    """Plain SGD, so that each update is lr times the gradient (Adam's first steps are about
    lr * sign(gradient): tiny gradients flip and hide agreement)."""
    monkeypatch.setattr(module, "adam", lambda params, lr, beta1, device: torch.optim.SGD(
        params, lr))


def _agree(runs):
    """Two runs' losses (dicts) and weight updates (flat tensors) agree within bf16's
    rounding: the losses to 2% (or 0.003), the updates in direction and size."""
    (loss_a, step_a), (loss_b, step_b) = runs
    for key in loss_a:
        assert loss_b[key] == pytest.approx(loss_a[key], rel=0.02, abs=3e-3), key
    assert step_a.norm() > 0
    assert 0.97 < step_b.norm() / step_a.norm() < 1.03
    assert F.cosine_similarity(step_a, step_b, dim=0) > 0.99


@pytest.fixture(scope="module")
def chosen(tmp_path_factory):
    """The layout this CPU trains bf16 in (probed here, into a cache of the module's own,
    when the CPU has native bf16), and the other one."""
    saved = {k: os.environ.pop(k, None) for k in ("SINGAN_CACHE_DIR", "SINGAN_LAYOUT")}
    os.environ["SINGAN_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    try:
        layout = tuning.training_layout("cpu", "bf16")
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value
    return layout, (NCHW if layout == CL else CL)


def test_singan_step_in_the_chosen_layout_agrees_with_the_other(chosen, monkeypatch):
    _sgd(monkeypatch, strain)
    torch.manual_seed(0)
    reals = [torch.rand(1, 3, 14, 18) * 2 - 1, torch.rand(1, 3, 18, 23) * 2 - 1]
    g0 = Generator(16, 16)
    init_weights(g0)
    pyramid = TrainedPyramid([g0], [torch.randn(1, 3, 24, 28)], [1.0], reals, 0.78)
    G, D = Generator(16, 16), Discriminator(16, 16)
    init_weights(G), init_weights(D)
    before = torch.cat([q.detach().flatten() for q in [*G.parameters(), *D.parameters()]])
    runs = []
    for layout in chosen:
        g, d = copy.deepcopy(G), copy.deepcopy(D)
        cfg = SinGANConfig(nfc=16, min_nfc=16, niter=2, amp="bf16")
        trainer = ScaleTrainer(1, pyramid, g, d, cfg, torch.Generator().manual_seed(1),
                               layout=layout)
        assert g.head.conv.weight.is_contiguous(memory_format=layout)
        assert trainer.real.is_contiguous(memory_format=layout)
        trainer.step(0)
        after = torch.cat([q.detach().flatten() for q in [*g.parameters(), *d.parameters()]])
        runs.append(({k: float(v[-1]) for k, v in trainer.history.items()}, after - before))
    _agree(runs)


def test_consingan_step_in_the_chosen_layout_agrees_with_the_other(chosen, monkeypatch):
    _sgd(monkeypatch, ctrain)
    cfg = ConSinGANConfig(nfc=16, niter=2, amp="bf16", train_stages=2, min_size=14,
                          max_size=24)
    torch.manual_seed(0)
    reals = [torch.rand(1, 3, 14, 18) * 2 - 1, torch.rand(1, 3, 18, 24) * 2 - 1]
    G, D = build_generator(cfg, 2), build_discriminator(cfg)
    init_weights(G), init_weights(D)
    before = torch.cat([q.detach().flatten() for q in [*G.parameters(), *D.parameters()]])
    runs = []
    for layout in chosen:
        g, d = copy.deepcopy(G), copy.deepcopy(D)
        gen = torch.Generator().manual_seed(3)
        fixed = [ctrain.fixed_noise_for_stage(0, g, reals, cfg, gen)]
        state = ctrain.make_stage(1, g, d, reals, fixed, [1.0], cfg, gen,
                                  torch.Generator().manual_seed(4), layout=layout)
        assert d.head.conv.weight.is_contiguous(memory_format=layout)
        assert all(z.is_contiguous(memory_format=layout) for z in state.rec_noise)
        out = ctrain.train_iteration(state)
        after = torch.cat([q.detach().flatten() for q in [*g.parameters(), *d.parameters()]])
        runs.append(({k: float(v) for k, v in out.items() if k != "fake"}, after - before))
    _agree(runs)


# ---- what an fp32 training says on a CPU with native bf16 --------------------------------------

def test_fp32_training_on_a_native_bf16_cpu_says_how_much_faster_bf16_is(
        fake_probe, monkeypatch, tmp_path):
    monkeypatch.setattr(tuning, "PROBE_WORK", 0)     # a tiny training counts as a long one
    tiny_image = write_image(tmp_path / "tiny.png", smooth_image(24, 24))
    lines = []
    cfg = SinGANConfig(max_size=24, min_size=16, niter=2)
    singan.train_model(tiny_image, cfg, tmp_path / "fp32", log=lines.append,
                       show_progress=False)
    assert lines[0] == "measuring how this CPU trains fastest (once, a few seconds)"
    assert lines[1] == ("tip: --amp bf16 trains about 1.7x faster on this CPU, with samples as "
                        "good (README: 'bf16 on a CPU'); this training runs in fp32, the "
                        "default")
    lines.clear()
    singan.train_model(tiny_image, SinGANConfig(max_size=24, min_size=16, niter=2, amp="bf16"),
                       tmp_path / "bf16", log=lines.append, show_progress=False)
    assert not any(line.startswith("tip:") for line in lines)
    lines.clear()
    fake_probe.figures = {**FIGURES, "bf16_nchw": 0.9, "bf16_channels_last": 0.95}
    tuning._MEASURED.clear()
    tuning.cache_file().unlink()
    singan.train_model(tiny_image, cfg, tmp_path / "fp32b", log=lines.append,
                       show_progress=False)
    assert not any(line.startswith("tip:") for line in lines)      # 1.1x: not worth saying


def test_no_hint_without_native_bf16_or_below_the_work(cache, monkeypatch):
    monkeypatch.setattr(tuning, "native_bf16", lambda device: False)
    assert tuning.bf16_hint("cpu", "none", float("inf")) is None
    monkeypatch.setattr(tuning, "native_bf16", lambda device: True)
    monkeypatch.setattr(tuning, "probe", lambda: pytest.fail("probed a small training"))
    assert tuning.bf16_hint("cpu", "none", tuning.PROBE_WORK / 2) is None
