"""The training step (batched or not) against a plain one-image-at-a-time transcription of
SPEC 5, written here from the spec and the papers, taking nothing from the trainer but its
result: its own noise, drawn from a generator seeded as the trainer's is, in the order SPEC 5
and 6 give; its own drawing through the frozen coarser scale; its own noise amplitude; its own
gradient penalty from WGAN-GP's formula (Gulrajani et al. 2017, eq. 3)."""
import copy

import pytest

import torch
import torch.nn.functional as F

from singan.methods.singan.hparams import SinGANConfig
from singan.imresize import imresize
from singan.methods.singan.models import Discriminator, Generator, init_weights
from singan.methods.singan.model import TrainedPyramid
from singan.methods.singan.train import ScaleTrainer

P = 5   # SPEC 5: every generator input is zero-padded by num_layer * (ker - 1) / 2 = 5 px


def zero_pad(x):
    return F.pad(x, [P, P, P, P])


def noise(generator, num, scale, h, w):
    """SPEC 5: N(0, 1) noise of a scale's size, padded; at scale 0 one channel broadcast to
    three."""
    if scale == 0:
        return zero_pad(torch.randn(num, 1, h, w, generator=generator).expand(num, 3, h, w))
    return zero_pad(torch.randn(num, 3, h, w, generator=generator))


def through_coarser_scales(generators, z, amps, reals, scale_factor, num):
    """SPEC 6: the input of the scale after `generators`, made by them from `z` (one tensor or
    function of (scale, h, w) per scale): start from zeros of the coarsest size; at each scale
    crop, pad, G(amp * z + padded, padded), imresize by 1 / scale_factor, crop to the next."""
    x = torch.zeros(num, 3, *reals[0].shape[2:])
    for i, g in enumerate(generators):
        h, w = reals[i].shape[2:]
        x = zero_pad(x[:, :, :h, :w])
        with torch.no_grad():
            x = g(amps[i] * z(i, h, w) + x, x)
        x = imresize(x, 1 / scale_factor)
        x = x[:, :, :reals[i + 1].shape[2], :reals[i + 1].shape[3]]
    return x


def gradient_penalty(D, real, fake, weight, generator):
    """WGAN-GP (Gulrajani et al. 2017, eq. 3): weight * E[(||grad_x D(x)||_2 - 1)^2] at
    x = a * real + (1 - a) * fake, a ~ U(0, 1); as SinGAN's reference takes it (SPEC 5): one a
    for the image, the norm over channels at each pixel, the mean over pixels."""
    a = torch.rand(1, 1, 1, 1, generator=generator)
    x = (a * real + (1 - a) * fake.detach()).requires_grad_(True)
    out = D(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return weight * ((grad.pow(2).sum(dim=1).sqrt() - 1) ** 2).mean()


class PlainScale:
    """SPEC 5's training of scale n, one image per pass, against the frozen coarser scales of
    a pyramid (their generators, z_opt, noise amplitudes, the reals): set up as 'before the
    first iteration' says, one iteration per step()."""

    def __init__(self, n, coarser, cfg, G, D, generator):
        self.n, self.cfg, self.G, self.D, self.generator = n, cfg, G, D, generator
        self.coarser = coarser                                 # (generators, z_opt, amps, reals, sf)
        gens, z_opt, amps, reals, sf = coarser
        self.real = reals[n]
        h, w = self.real.shape[2:]
        if n == 0:
            prev_rec, self.noise_amp = torch.zeros(1, 3, h, w), 1.0
        else:   # the reconstruction path: every coarser scale from its own z_opt
            prev_rec = through_coarser_scales(gens[:n], lambda i, hh, ww: z_opt[i], amps, reals,
                                              sf, 1)
            # noise_amp_n = noise_amp_init * RMSE(x_n, the upsampled reconstruction)
            self.noise_amp = cfg.noise_amp * ((self.real - prev_rec) ** 2).mean().sqrt().item()
        self.prev_rec = zero_pad(prev_rec)
        self.z_opt = torch.zeros(1, 3, h + 2 * P, w + 2 * P)
        G.train(), D.train()
        self.opt_d = torch.optim.SGD(D.parameters(), lr=cfg.lr_d)
        self.opt_g = torch.optim.SGD(G.parameters(), lr=cfg.lr_g)

    def step(self):
        cfg, n, G, D, real, gen = self.cfg, self.n, self.G, self.D, self.real, self.generator
        h, w = real.shape[2:]
        z = noise(gen, 1, n, h, w)
        if n == 0:   # the reference's quirk: a new z_opt every iteration, the last one kept
            self.z_opt = noise(gen, 1, 0, h, w)
        if n == 0:
            prevs = torch.zeros(cfg.Dsteps, 3, h + 2 * P, w + 2 * P)
        else:        # a new random prev for each D step, the Dsteps drawn as one batch
            gens, _, amps, reals, sf = self.coarser
            prevs = zero_pad(through_coarser_scales(
                gens[:n], lambda i, hh, ww: noise(gen, cfg.Dsteps, i, hh, ww), amps, reals, sf,
                cfg.Dsteps))
        # (1) D: maximise D(x) - D(G(z)) - penalty, Dsteps times
        for j in range(cfg.Dsteps):
            prev = prevs[j:j + 1]
            D.zero_grad()
            with torch.no_grad():
                fake = G(self.noise_amp * z + prev, prev)
            loss = -D(real).mean() + D(fake).mean() + gradient_penalty(D, real, fake,
                                                                       cfg.lambda_grad, gen)
            loss.backward()
            self.opt_d.step()
        # (2) G: minimise -D(G(z)) + alpha * MSE(G(z_opt, prev_rec), x), Gsteps times, with the
        # last D step's input; fake recomputed in each (the spec's Fix) without moving
        # BatchNorm's running statistics, which the reconstruction pass moves
        for j in range(cfg.Gsteps):
            G.zero_grad()
            throwaway = {name: b.clone() for name, b in G.named_buffers()}   # stats land here
            fake = torch.func.functional_call(G, (dict(G.named_parameters()), throwaway),
                                              (self.noise_amp * z + prev, prev))
            rec = G(self.noise_amp * self.z_opt + self.prev_rec, self.prev_rec)
            (-D(fake).mean() + cfg.alpha * ((rec - real) ** 2).mean()).backward()
            self.opt_g.step()


def _sgd_instead_of_adam(monkeypatch):
    """singan.methods.singan.train.adam builds plain SGD with the same learning rate."""
    monkeypatch.setattr(torch.optim, "Adam",
                        lambda params, lr, betas, **kw: torch.optim.SGD(params, lr))


@pytest.mark.parametrize("n", [0, 1])
@pytest.mark.parametrize("batched", [True, False])
def test_training_step_equals_the_plain_transcription(monkeypatch, batched, n):
    # Plain SGD instead of Adam on both sides: Adam's first steps have size lr whatever the
    # gradient, so float noise in a near-zero gradient would flip whole steps. A small lr:
    # with large ones the GAN's dynamics amplify float rounding within two iterations.
    _sgd_instead_of_adam(monkeypatch)
    torch.manual_seed(0)
    reals = [torch.rand(1, 3, 14, 18) * 2 - 1, torch.rand(1, 3, 18, 23) * 2 - 1]
    g0 = Generator(8, 8)
    init_weights(g0)
    g0.eval()                                   # a finished scale: frozen, in eval mode
    z_opt0 = torch.randn(1, 3, 24, 28)
    pyramid = TrainedPyramid([g0], [z_opt0], [1.0], reals, 0.78)
    G, D = Generator(8, 8), Discriminator(8, 8)
    init_weights(G), init_weights(D)
    G2, D2, G_init, D_init = (copy.deepcopy(m) for m in (G, D, G, D))
    cfg = SinGANConfig(nfc=8, min_nfc=8, niter=3, lr_g=1e-3, lr_d=1e-3)

    coarse = TrainedPyramid(pyramid.generators[:n], pyramid.z_opt[:n], pyramid.noise_amp[:n],
                            reals, 0.78)
    trainer = ScaleTrainer(n, coarse, G, D, cfg, torch.Generator().manual_seed(5),
                           batched=batched)
    plain = PlainScale(n, ([copy.deepcopy(g0)], [z_opt0], [1.0], reals, 0.78), cfg, G2, D2,
                       torch.Generator().manual_seed(5))
    assert trainer.noise_amp == pytest.approx(plain.noise_amp, rel=1e-6)
    for it in range(2):
        trainer.step(it)
        plain.step()

    for a, b in ((G, G2), (D, D2)):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.allclose(x.float(), y.float(), atol=2e-5, rtol=1e-4), name
    assert torch.allclose(trainer.z_opt, plain.z_opt)
    # both networks' weights did move, by far more than the tolerance: the comparison is
    # not between two untouched copies
    for moved, start in ((G, G_init), (D, D_init)):
        change = max(float((x - y).detach().abs().max())
                     for x, y in zip(moved.parameters(), start.parameters()))
        assert change > 25 * 2e-5, change


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
