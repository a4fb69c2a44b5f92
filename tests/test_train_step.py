"""The training step (batched or not) against a plain one-image-at-a-time transcription
of SPEC 5."""
import copy

import pytest

import torch
import torch.nn.functional as F

from singan.hparams import SinGANConfig
from singan.losses import gradient_penalty
from singan.models import Discriminator, Generator, init_weights
from singan.model import TrainedPyramid, pad
from singan.train import ScaleTrainer


def _plain_step(trainer: ScaleTrainer, G, D, opt_g, opt_d, generator):
    """SPEC 5's iteration as written there, one image per pass, with the G-step recompute
    whose forward leaves BatchNorm's running statistics alone."""
    cfg, n, real, p = trainer.cfg, trainer.n, trainer.real, trainer.cfg.pad
    h, w = real.shape[2:]
    noise = trainer.pyramid._noise(1, n, h, w, generator)
    prevs = pad(trainer.pyramid.draw(n, "rand", cfg.Dsteps, generator), p)
    for j in range(cfg.Dsteps):
        prev = prevs[j:j + 1]
        D.zero_grad()
        err_real = -D(real).mean()
        with torch.no_grad():
            fake = G(trainer.noise_amp * noise + prev, prev)
        err_fake = D(fake).mean()
        gp = gradient_penalty(D, real, fake, cfg.lambda_grad, generator)
        (err_real + err_fake + gp).backward()
        opt_d.step()
    for j in range(cfg.Gsteps):
        G.zero_grad()
        norms = [m for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        for m in norms:                  # the recompute must leave the running stats alone
            m.momentum = 0.0
        fake = G(trainer.noise_amp * noise + prev, prev)
        for m in norms:
            m.momentum = 0.1
            m.num_batches_tracked -= 1
        err_g = -D(fake).mean()
        rec = G(trainer.noise_amp * trainer.z_opt + trainer.prev_rec, trainer.prev_rec)
        (err_g + cfg.alpha * F.mse_loss(rec, real)).backward()
        opt_g.step()


def _sgd_instead_of_adam(monkeypatch):
    """singan.train.adam builds plain SGD with the same learning rate."""
    monkeypatch.setattr(torch.optim, "Adam",
                        lambda params, lr, betas, **kw: torch.optim.SGD(params, lr))


@pytest.mark.parametrize("batched", [True, False])
def test_batched_step_equals_plain_step(monkeypatch, batched):
    # Plain SGD instead of Adam on both sides: Adam's first steps have size lr whatever the
    # gradient, so float noise in a near-zero gradient would flip whole steps. A small lr:
    # with large ones the GAN's dynamics amplify float rounding within two iterations.
    _sgd_instead_of_adam(monkeypatch)
    torch.manual_seed(0)
    reals = [torch.rand(1, 3, 14, 18) * 2 - 1, torch.rand(1, 3, 18, 23) * 2 - 1]
    g0 = Generator(8, 8)
    init_weights(g0)
    pyramid = TrainedPyramid([g0], [torch.randn(1, 3, 24, 28)], [1.0], reals, 0.78)
    G, D = Generator(8, 8), Discriminator(8, 8)
    init_weights(G), init_weights(D)
    G2, D2, G_init = copy.deepcopy(G), copy.deepcopy(D), copy.deepcopy(G)
    cfg = SinGANConfig(nfc=8, min_nfc=8, niter=3, lr_g=1e-3, lr_d=1e-3)

    trainer = ScaleTrainer(1, pyramid, G, D, cfg, torch.Generator().manual_seed(5),
                           batched=batched)
    for it in range(2):
        trainer.step(it)

    G2.train(), D2.train()
    opt_d = torch.optim.SGD(D2.parameters(), lr=cfg.lr_d)
    opt_g = torch.optim.SGD(G2.parameters(), lr=cfg.lr_g)
    generator = torch.Generator().manual_seed(5)
    for it in range(2):
        _plain_step(trainer, G2, D2, opt_g, opt_d, generator)

    for a, b in ((G, G2), (D, D2)):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.allclose(x.float(), y.float(), atol=2e-5, rtol=1e-4), name
    # the weights did move: the comparison is not between two untouched copies
    moved = (G.tail[0].weight - G_init.tail[0].weight).abs().max()
    assert moved > 100 * 2e-5


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_step_stays_close_to_fp32(amp, monkeypatch):
    # Plain SGD, so that each update is lr times the gradient: a loss scale left in the fp16
    # gradients (2**10) would show in the updates, which Adam's first steps would hide.
    _sgd_instead_of_adam(monkeypatch)
    torch.manual_seed(0)
    reals = [torch.rand(1, 3, 14, 18) * 2 - 1]
    pyramid = TrainedPyramid([], [], [], reals, 0.78)
    G, D = Generator(8, 8), Discriminator(8, 8)
    init_weights(G), init_weights(D)
    results, updates = [], []
    for mode in ("none", amp):
        g, d = copy.deepcopy(G), copy.deepcopy(D)
        cfg = SinGANConfig(nfc=8, min_nfc=8, niter=2, amp=mode, Dsteps=1, Gsteps=1)
        trainer = ScaleTrainer(0, pyramid, g, d, cfg, torch.Generator().manual_seed(1))
        trainer.step(0)
        results.append({k: float(v[-1]) for k, v in trainer.history.items()})
        updates.append([(g.tail[0].weight - G.tail[0].weight).flatten(),
                        (d.head.conv.weight - D.head.conv.weight).flatten()])
        assert all(v.dtype == torch.float32 for v in g.state_dict().values()
                   if v.is_floating_point())
        scaled = mode == "fp16"
        assert trainer.scaler_d.is_enabled() == trainer.scaler_g.is_enabled() == scaled
    if amp == "fp16":   # no update was skipped for an overflow: both were made
        assert trainer.scaler_d.get_scale() == trainer.scaler_g.get_scale() == 2.0 ** 10
    assert results[1]["rec"] == pytest.approx(results[0]["rec"], rel=0.05)
    for fp32, mixed in zip(*updates):
        assert 0.8 < mixed.norm() / fp32.norm() < 1.25          # the loss scale was removed
        assert F.cosine_similarity(mixed, fp32, dim=0) > 0.9   # and the direction agrees


def _tiny_scale(n_channels=8):
    torch.manual_seed(0)
    reals = [torch.rand(1, 3, 14, 18) * 2 - 1, torch.rand(1, 3, 18, 23) * 2 - 1]
    g0 = Generator(n_channels, n_channels)
    init_weights(g0)
    pyramid = TrainedPyramid([g0], [torch.randn(1, 3, 24, 28)], [1.0], reals, 0.78)
    G, D = Generator(n_channels, n_channels), Discriminator(n_channels, n_channels)
    init_weights(G), init_weights(D)
    return pyramid, G, D


@pytest.mark.parametrize("n, batched", [(0, False), (1, False), (1, True)])
def test_low_memory_step_is_bit_identical(n, batched):
    """The lean step (each term backpropagated at once, the last fake recomputed) leaves the
    same weights, BatchNorm statistics, Adam state and losses as the plain step, exactly."""
    pyramid, G, D = _tiny_scale()
    cfg = SinGANConfig(nfc=8, min_nfc=8, niter=3)
    states = []
    for low_memory in (False, True):
        g, d = copy.deepcopy(G), copy.deepcopy(D)
        trainer = ScaleTrainer(n, pyramid, g, d, cfg, torch.Generator().manual_seed(5),
                               batched=batched, low_memory=low_memory)
        # one-image fp32 lean steps take the critic's passes one layer at a time
        assert trainer.blockwise_critic == (low_memory and not batched)
        for it in range(3):
            trainer.step(it)
        result = trainer.result()
        states.append((g.state_dict(), d.state_dict(), trainer.opt_g.state_dict()["state"],
                       {k: torch.stack(v) for k, v in trainer.history.items()},
                       result.fake, result.reconstruction, result.z_opt))
    plain, lean = states
    for name, x in plain[0].items():
        assert torch.equal(x, lean[0][name]), ("G", name)
    for name, x in plain[1].items():
        assert torch.equal(x, lean[1][name]), ("D", name)
    for i, s in plain[2].items():
        assert all(torch.equal(s[k], lean[2][i][k]) for k in s), ("Adam", i)
    for key, x in plain[3].items():
        assert torch.equal(x, lean[3][key]), key
    for a, b in zip(plain[4:], lean[4:]):
        assert torch.equal(a, b)
