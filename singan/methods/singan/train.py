"""SinGAN's coarse-to-fine training (SPEC section 5; arXiv 1905.01164, section 2.2).

``ScaleTrainer`` is one scale's adversarial game; ``SinGANTrainer`` plugs SinGAN into the
shared stage driver (singan.driver: folder, resume, save, progress, stop), which trains scale
after scale; ``ScaleRetrainer`` retrains one scale of a finished model into a new folder
through the same driver (paint-to-image's colour-quantised scale).
"""
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ...checkpoint import save_torch
from ...devices import adam, autocast_context, grad_scaler
from ...driver import run_iterations, scale_seed
from ...errors import SinGANError
from ...image_io import save_image
from ...interface import (TrainerDefaults, history_from_state, history_state, load_parts_state,
                          parts_state)
from ...losses import (critic_loss, generator_adversarial_loss, gradient_penalty,
                       reconstruction_loss)
from ...plots import plot_losses
from ...resources import (choose_low_memory, conv_macs, graphs_fit, pyramid_draw_bytes,
                          training_step_bytes)
from ...tuning import to_layout
from .graphs import StepGraph, check_graphable, make_capturable
from .hparams import SinGANConfig
from .model import TrainedPyramid, checkpoint_dict, freeze
from .models import (Discriminator, Generator, batchnorm_stats_from, channels_at_scale,
                     init_weights, pad)
from .penalty import critic_input_gradient, penalty_gradients, supports as blockwise_fits
from .pyramid import Pyramid, build_reals, plan_pyramid


@dataclass
class ScaleResult:
    """What training one scale produced."""
    generator: Generator
    discriminator: Discriminator
    z_opt: torch.Tensor            # [1, 3, h + 2p, w + 2p]
    noise_amp: float
    fake: torch.Tensor             # last fake sample, [1, 3, h, w]
    reconstruction: torch.Tensor   # G(z_opt), [1, 3, h, w]
    losses: dict = field(default_factory=dict)   # name -> [niter] float tensor (CPU)


def _set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class ScaleState:
    """One scale's state, apart from how an iteration plays: the constructor sets it up (the
    networks in their memory layout, the optimisers and loss scalers, the noise amplitude and
    the reconstruction input), state() and load_state() keep and restore everything the next
    iterations depend on, result() hands the trained scale over.

    batched (default: on CUDA and MPS, not on the CPU nor with low_memory): the reference
    passes single images through G and D one at a time; batched, the independent passes are
    made as one batch, with BatchNorm normalising each sample on its own
    (models.BatchNorm2d), the same maths: the three D steps' fakes (G is constant
    during the D steps) in one G pass, D(real) and D(fake) in one D pass, each G step's fake
    and reconstruction in one G pass. That saves kernel launches where they dominate; on a
    2-core CPU it gained nothing at the small scales and cost 2x at the finest
    (benchmarks/bench_train.py), so the CPU keeps one-image passes. --legacy_g_steps always
    does (for bit-level comparisons).

    prev_transform, when given, maps the padded inputs from the coarser scales (the random
    prevs of the D steps and the reconstruction prev of the G steps) before G sees them
    (paint-to-image's colour quantisation).
    """

    def __init__(self, n: int, pyramid: TrainedPyramid, G: Generator, D: Discriminator,
                 cfg: SinGANConfig, generator: torch.Generator,
                 prev_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                 batched: Optional[bool] = None, low_memory: bool = False,
                 cuda_graphs: bool = False, layout=torch.contiguous_format):
        self.n, self.pyramid, self.G, self.D, self.cfg = n, pyramid, G, D, cfg
        self.generator, self.prev_transform = generator, prev_transform
        self.low_memory = bool(low_memory)
        device = pyramid.device
        if batched is None:   # low_memory: one-image passes, whose critic passes are lean
            batched = device.type != "cpu" and not self.low_memory
        self.batched = batched and not cfg.legacy_g_steps
        if cuda_graphs:
            check_graphable(device, cfg.amp)
        # under capture, autocast must not keep its cast weights between regions
        self.autocast = autocast_context(device, cfg.amp, cache=not cuda_graphs)
        # the networks and every image they see in one memory layout (singan.tuning): NCHW,
        # or channels-last where bf16 runs faster so on this CPU
        self.layout = layout
        G.to(memory_format=layout), D.to(memory_format=layout)
        self.real = to_layout(pyramid.reals[n], layout)              # [1, 3, h, w]
        h, w = self.real.shape[2:]
        p = cfg.pad
        G.train(), D.train()
        self.opt_d = adam(D.parameters(), cfg.lr_d, cfg.beta1, device)
        self.opt_g = adam(G.parameters(), cfg.lr_g, cfg.beta1, device)
        self.scaler_d, self.scaler_g = grad_scaler(device, cfg.amp), grad_scaler(device, cfg.amp)
        # cuda_graphs: each iteration after the first WARMUP replayed from a CUDA graph
        # (graphs.py), the same kernels with the same noise, launched at once
        self.graphs = StepGraph([generator]) if cuda_graphs else None
        if cuda_graphs:
            make_capturable(self.opt_d, self.opt_g)
        # low_memory's critic passes in the penalty and the G steps, one layer at a time
        # (penalty.py), for the fp32 one-image critic they are written for
        self.blockwise_critic = (self.low_memory and not self.batched and cfg.amp == "none"
                                  and blockwise_fits(D))

        # Before the first iteration: the reconstruction path and the noise amplitude.
        if n == 0:
            prev_rec = torch.zeros(1, 3, h, w, device=device)
            self.noise_amp = 1.0
        else:
            prev_rec = pyramid.draw(n, "rec")                       # [1, 3, h, w]
            # sigma_n = noise_amp_init * RMSE(x_n, upsampled reconstruction)
            self.noise_amp = cfg.noise_amp * torch.sqrt(F.mse_loss(self.real, prev_rec)).item()
        self.prev_rec = to_layout(self._transformed(pad(prev_rec, p)), layout)   # padded
        self.z_opt = to_layout(torch.zeros(1, 3, h + 2 * p, w + 2 * p, device=device), layout)
        self.history = {k: [] for k in ("errD", "errG", "rec", "D_real", "D_fake")}
        self.fake = None

    def _transformed(self, prev):
        return prev if self.prev_transform is None else self.prev_transform(prev)

    def state(self) -> dict:
        """Everything the next iterations depend on (singan.interface.StageRun.state)."""
        return {**parts_state(self), "noise": self.generator.get_state(),
                "noise_amp": self.noise_amp,
                "prev_rec": self.prev_rec, "z_opt": self.z_opt, "fake": self.fake,
                "history": history_state(self.history)}

    def load_state(self, state: dict) -> None:
        """Continue from state() (the networks and optimisers of this scale, already built)."""
        device = self.real.device
        load_parts_state(self, state)
        self.generator.set_state(state["noise"])
        self.noise_amp = state["noise_amp"]
        self.prev_rec = to_layout(state["prev_rec"].to(device), self.layout)
        self.z_opt = to_layout(state["z_opt"].to(device), self.layout)
        self.fake = None if state["fake"] is None else state["fake"].to(device)
        self.history = history_from_state(state["history"], device)

    def result(self) -> ScaleResult:
        if self.graphs is not None:    # keep copies, not the graph's memory
            self.z_opt, self.fake = self.z_opt.clone(), self.fake.clone()
            self.G.zero_grad(set_to_none=True), self.D.zero_grad(set_to_none=True)
            self.graphs.release()
        with torch.no_grad():
            reconstruction = self.G(self.noise_amp * self.z_opt + self.prev_rec, self.prev_rec)
        losses = {k: torch.stack(v).cpu() for k, v in self.history.items()}
        return ScaleResult(self.G, self.D, self.z_opt.detach(), self.noise_amp, self.fake,
                           reconstruction, losses)


def _backward_into(loss: torch.Tensor, module: nn.Module, grad=None) -> list:
    """loss.backward(grad), then take the gradients it left in module's parameters (None
    where it reached none), leaving .grad empty for the next term."""
    loss.backward(grad)
    grads = []
    for q in module.parameters():
        grads.append(q.grad)
        q.grad = None
    return grads


def _set_grads(module: nn.Module, terms: list) -> None:
    """Each parameter's .grad = the sum of its gradients in `terms`, added left to right."""
    for i, q in enumerate(module.parameters()):
        total = None
        for grads in terms:
            g = grads[i]
            if g is not None:
                total = g if total is None else total + g
        q.grad = total


class LeanStep:
    """ScaleTrainer's lean variant: its D and G steps under low_memory, on ScaleState's
    networks, optimisers and scalers.

    low_memory: the same step, bit for bit, with far fewer activations alive at once (the
    peak of a one-image step falls by about half; singan.resources.choose_low_memory picks
    it when the plain step would not fit). Each loss term is backpropagated as soon as it is
    computed (D(real), D(fake), the gradient penalty; G's adversarial term, then the
    reconstruction), so only one term's graph is alive at a time, and the last D step's fake
    keeps no graph (the first G step recomputes it, leaving BatchNorm's running statistics
    alone); the penalty's double backward and the G steps' pass through D are
    penalty.py's, one layer at a time (fp32, one-image passes). The terms' gradients are
    summed in the order one joint backward sums them (the penalty's, then D(fake)'s, then
    D(real)'s; G's two in either order, a sum of two being exact), which makes the weights
    identical to the plain step's. --legacy_g_steps needs the last D step's graph: it keeps
    the plain G steps.
    """

    def _critic_step_lean(self, real, fake):
        """One D step of low_memory: each term backpropagated as soon as it is computed."""
        cfg, D, scaler = self.cfg, self.D, self.scaler_d
        with self.autocast():
            if self.batched:
                d_real, d_fake = D(torch.cat([real, fake])).split(1)
                terms = [critic_loss(d_real, d_fake)]
            else:
                d_real = D(real)
                terms = [-d_real.mean()]
        grads = [_backward_into(scaler.scale(terms[0]), D)]
        d_real = d_real.detach()
        if not self.batched:
            with self.autocast():
                d_fake = D(fake)
                terms.append(d_fake.mean())
            grads.append(_backward_into(scaler.scale(terms[1]), D))
            d_fake = d_fake.detach()
        if self.blockwise_critic:
            gp, gp_grads = penalty_gradients(D, real, fake, cfg.lambda_grad, self.generator)
            grads.append(gp_grads)
        else:
            with self.autocast():
                gp = gradient_penalty(D, real, fake, cfg.lambda_grad, self.generator)
            grads.append(_backward_into(scaler.scale(gp), D))
        # One joint backward adds the penalty's gradient first, then D(fake)'s, then D(real)'s.
        _set_grads(D, grads[::-1])
        scaler.step(self.opt_d)
        scaler.update()
        err_d = critic_loss(d_real, d_fake) + gp.detach()
        return err_d, d_real, d_fake

    def _generator_step_lean(self, g_input, prev, rec_input):
        """One G step of low_memory: the adversarial term's graph (G's fake pass, recomputed
        in every step without touching BatchNorm's running statistics, and D's) is freed by
        its backward before the reconstruction pass is made."""
        G, D, scaler = self.G, self.D, self.scaler_g
        if self.blockwise_critic:
            # D's graph is never built (its input gradient comes layer by layer), and G's
            # graph is built after it: G's fake pass is made twice, the same pixels
            with torch.no_grad(), batchnorm_stats_from(G, []):
                fake_g = G(g_input, prev)
            err_g, grad_fake = critic_input_gradient(D, fake_g, generator_adversarial_loss)
            with batchnorm_stats_from(G, []):
                fake_g = G(g_input, prev)
            grads = [_backward_into(fake_g, G, grad_fake)]
            del grad_fake
        else:
            with self.autocast():
                with batchnorm_stats_from(G, []):
                    fake_g = G(g_input, prev)
                err_g = generator_adversarial_loss(D(fake_g))
            grads = [_backward_into(scaler.scale(err_g), G)]
        with self.autocast():
            rec = G(rec_input, self.prev_rec)
            rec_loss = reconstruction_loss(rec.float(), self.real, self.cfg.alpha)
        grads.append(_backward_into(scaler.scale(rec_loss), G))
        _set_grads(G, grads[::-1])   # a sum of two: the same in either order
        scaler.step(self.opt_g)
        scaler.update()
        return err_g.detach(), rec_loss.detach(), fake_g.detach()


class ScaleTrainer(LeanStep, ScaleState):
    """One scale's adversarial game (SPEC 5): set up by the constructor, one iteration per
    `step(it)` (losses appended to `history`, on the device), the trained scale from
    `result()`. Training G_n and D_n against reals[n], with G_0..G_{n-1} (in `pyramid`) frozen.

    The pieces: ScaleState (set-up, state, result), this class (one iteration: its inputs, the
    reference's D and G steps, one-image or batched) and LeanStep (low_memory's steps).
    """

    def step(self, it: int) -> None:
        """One training iteration (0-based index `it`)."""
        cfg = self.cfg
        # Reference behaviour: MultiStepLR stepped at the start of every iteration, so the
        # iterations from milestone - 1 on (the last 401 of 2000) run at lr * gamma.
        decay = cfg.gamma if it + 1 >= cfg.lr_milestone else 1.0
        if self.graphs is None:
            losses = self._iteration(decay)
        else:   # a replayed graph's outputs are overwritten by the next replay: one copy
            losses = self.graphs(decay, lambda: self._iteration(decay)).clone()
        for key, value in zip(self.history, losses):
            self.history[key].append(value)

    def _iteration(self, decay: float) -> torch.Tensor:
        """The iteration's work, at learning rate lr * decay: its losses as one [5] tensor in
        the order of `history`."""
        cfg = self.cfg
        _set_lr(self.opt_d, cfg.lr_d * decay)
        _set_lr(self.opt_g, cfg.lr_g * decay)
        g_inputs, prevs = self._draw_inputs()
        err_d, d_real, d_fake = self._critic_steps(g_inputs, prevs)
        err_g, rec_loss = self._generator_steps(g_inputs[-1:], prevs[-1:])
        return torch.stack([v.detach().float() for v in (err_d, err_g, rec_loss, d_real.mean(),
                                                         d_fake.mean())])

    def _draw_inputs(self):
        """This iteration's G inputs, one per D step: (noise_amp * noise + prev, prev), each
        [Dsteps, 3, h + 2p, w + 2p]: the same noise, a new random prev per D step."""
        cfg, n = self.cfg, self.n
        h, w = self.real.shape[2:]
        p = cfg.pad
        noise = self.pyramid._noise(1, n, h, w, self.generator)     # [1, 3, h + 2p, w + 2p]
        if n == 0:
            # Reference behaviour: at scale 0 a new z_opt is drawn at every iteration and the
            # last one is kept as the reconstruction noise.
            self.z_opt = to_layout(self.pyramid._noise(1, 0, h, w, self.generator), self.layout)
        # The coarser scales' random outputs, drawn as one batch (frozen generators in eval
        # mode: each draw is independent of the others in the batch).
        with self.autocast():
            prevs = pad(self.pyramid.draw(n, "rand", cfg.Dsteps, self.generator), p) if n > 0 \
                else torch.zeros(cfg.Dsteps, 3, h + 2 * p, w + 2 * p, device=self.real.device)
        prevs = to_layout(self._transformed(prevs), self.layout)
        return to_layout(self.noise_amp * noise + prevs, self.layout), prevs

    def _critic_steps(self, g_inputs, prevs):
        """(1) Update D: maximise D(x) - D(G(z)) - gradient penalty (WGAN-GP), Dsteps times.

        G does not change during the D steps: their fakes need no graph (the reference's
        gradients into G from these passes are never used), and batched they come from one
        G pass. One-image passes keep the last fake's graph (self.fake): it is the first G
        step's fake (G is unchanged until that step), and --legacy_g_steps uses it in every
        G step."""
        cfg, G, D, real = self.cfg, self.G, self.D, self.real
        lean = self.low_memory and not cfg.legacy_g_steps
        keep = cfg.Dsteps if self.batched or lean else cfg.Dsteps - 1
        with torch.no_grad(), self.autocast():
            if not keep:
                fakes = None
            elif self.batched:
                fakes = G(g_inputs[:keep], prevs[:keep])            # [keep, 3, h, w]
            else:
                fakes = torch.cat([G(g_inputs[j:j + 1], prevs[j:j + 1]) for j in range(keep)])
        if keep < cfg.Dsteps:
            with self.autocast():
                self.fake = G(g_inputs[keep:], prevs[keep:])
            fakes = self.fake.detach() if fakes is None else torch.cat([fakes, self.fake.detach()])
        elif lean and not self.batched:
            self.fake = None      # the first G step recomputes it
        for j in range(cfg.Dsteps):
            fake = fakes[j:j + 1]
            D.zero_grad(set_to_none=True)
            if self.low_memory:
                err_d, d_real, d_fake = self._critic_step_lean(real, fake)
                continue
            with self.autocast():
                if self.batched:
                    d_real, d_fake = D(torch.cat([real, fake])).split(1)
                else:
                    d_real, d_fake = D(real), D(fake)
                gp = gradient_penalty(D, real, fake, cfg.lambda_grad, self.generator)
                err_d = critic_loss(d_real, d_fake) + gp
            self.scaler_d.scale(err_d).backward()
            self.scaler_d.step(self.opt_d)
            self.scaler_d.update()
        return err_d, d_real, d_fake

    def _generator_steps(self, g_input, prev):
        """(2) Update G: minimise -D(G(z)) + alpha * ||G(z_opt, prev_rec) - x||^2, Gsteps times,
        with the last D step's input and prev."""
        cfg, G, D = self.cfg, self.G, self.D
        D.requires_grad_(False)
        rec_input = self.noise_amp * self.z_opt + self.prev_rec
        lean = self.low_memory and not cfg.legacy_g_steps and not self.batched
        for j in range(cfg.Gsteps):
            G.zero_grad(set_to_none=True)
            if lean:
                err_g, rec_loss, fake_g = self._generator_step_lean(g_input, prev, rec_input)
                continue
            with self.autocast():
                if cfg.legacy_g_steps:
                    fake_g = self.fake
                    rec = G(rec_input, self.prev_rec)
                elif self.batched:
                    # Fix: the reference backpropagates through the last D step's graph in all
                    # G steps (stale after the first update; modern torch rejects it): we
                    # recompute fake, without touching BatchNorm's running statistics (the
                    # reference never updated them here); the reconstruction pass updates them
                    # as in the reference.
                    with batchnorm_stats_from(G, [1]):
                        fake_g, rec = G(torch.cat([g_input, rec_input]),
                                        torch.cat([prev, self.prev_rec])).split(1)
                else:
                    # Fix: as above; the first G step may use the last D step's fake (G has not
                    # changed yet), later ones recompute it.
                    if j == 0:
                        fake_g = self.fake
                    else:
                        with batchnorm_stats_from(G, []):
                            fake_g = G(g_input, prev)
                    rec = G(rec_input, self.prev_rec)
                err_g = generator_adversarial_loss(D(fake_g))
                rec_loss = reconstruction_loss(rec.float(), self.real, cfg.alpha)
            self.scaler_g.scale(err_g + rec_loss).backward(retain_graph=cfg.legacy_g_steps)
            if cfg.legacy_g_steps:
                _step_keeping_versions(lambda: self.scaler_g.step(self.opt_g), G)
            else:
                self.scaler_g.step(self.opt_g)
            self.scaler_g.update()
        D.requires_grad_(True)
        self.fake = fake_g.detach()
        return err_g, rec_loss


def _step_keeping_versions(step: Callable[[], None], module: nn.Module) -> None:
    """An optimizer step that restores the parameters' autograd version counters afterwards,
    so that the next G step may backpropagate through the graph built before the update, as
    torch <= 1.4 silently did (--legacy_g_steps)."""
    params = [q for q in module.parameters() if q.requires_grad]
    versions = [q._version for q in params]
    step()
    torch._C._autograd._unsafe_set_version_counter(tuple(params), tuple(versions))


def new_scale_networks(n: int, cfg: SinGANConfig, seed: int, warm_from=None):
    """G_n and D_n initialised as the reference does (SPEC 4), seeded per scale: N(0, 0.02)
    convs, or, when `warm_from` = (G_{n-1}, D_{n-1}) has the same width, their weights."""
    nfc, min_nfc = channels_at_scale(n, cfg.nfc, cfg.min_nfc)
    with torch.random.fork_rng(devices=[]):   # conv biases use torch's default init
        torch.manual_seed(scale_seed(seed, n, 0))
        G = Generator(nfc, min_nfc, cfg.num_layer, cfg.ker_size)
        D = Discriminator(nfc, min_nfc, cfg.num_layer, cfg.ker_size)
        init_weights(G), init_weights(D)
    if warm_from is not None and warm_from[0].nfc == nfc:   # warm start from the scale below
        G.load_state_dict(warm_from[0].state_dict())
        D.load_state_dict(warm_from[1].state_dict())
    return G, D


def train_scale(n: int, pyramid: TrainedPyramid, G: Generator, D: Discriminator,
                cfg: SinGANConfig, generator: torch.Generator,
                progress: Optional[Callable[[int, dict], None]] = None,
                prev_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                should_stop: Optional[Callable[[], bool]] = None) -> ScaleResult:
    """Train G_n and D_n against reals[n] for cfg.niter iterations (see ScaleTrainer), with
    the driver's loss checks every LOG_EVERY iterations (progress(iteration, losses))."""
    trainer = ScaleTrainer(n, pyramid, G, D, cfg, generator, prev_transform)
    return run_iterations(trainer, cfg.niter, ("scale", n), progress, should_stop)


# ---- the per-scale files ------------------------------------------------------------------------

# The files save_scale_files writes into each scale's folder.
SCALE_FILES = ("netG.pth", "netD.pth", "z_opt.pth", "real_scale.png", "fake_sample.png",
               "G(z_opt).png", "losses.pth", "losses.png")


def save_scale_files(folder: Path, n: int, result: ScaleResult, real: torch.Tensor) -> None:
    """The reference's per-scale files: netG.pth, netD.pth, z_opt.pth, PNGs; plus losses."""
    scale_dir = folder / str(n)
    save_torch(scale_dir / "netG.pth", result.generator.state_dict())
    save_torch(scale_dir / "netD.pth", result.discriminator.state_dict())
    save_torch(scale_dir / "z_opt.pth", result.z_opt.cpu())
    save_image(scale_dir / "real_scale.png", real)
    save_image(scale_dir / "fake_sample.png", result.fake)
    save_image(scale_dir / "G(z_opt).png", result.reconstruction)
    save_torch(scale_dir / "losses.pth", result.losses)
    plot_losses(scale_dir / "losses.png", result.losses, n)


def plan_for(height: int, width: int, cfg: SinGANConfig) -> Pyramid:
    """The scale schedule of a height x width image (SR's when cfg.sr_schedule)."""
    try:
        return plan_pyramid(height, width, cfg.min_size, cfg.max_size, cfg.scale_factor,
                            sr=cfg.sr_schedule)
    except ValueError as err:
        raise SinGANError(str(err)) from None


def plan_from_checkpoint(ckpt: dict, cfg: SinGANConfig) -> Pyramid:
    """The schedule a model.pth was trained with: its saved plan, or (a model saved without
    one) the plan its reals' shapes and scale factor describe."""
    saved = ckpt.get("plan") or {}
    if set(saved) == {f.name for f in fields(Pyramid)}:
        return Pyramid(**{**saved, "real_shape": tuple(saved["real_shape"]),
                          "shapes": [tuple(s) for s in saved["shapes"]]})
    shapes = [tuple(r.shape[2:]) for r in ckpt["reals"]]
    return Pyramid(len(shapes), len(shapes) - 1, 1.0, float(ckpt["scale_factor"]), shapes[-1],
                   shapes, cfg.min_size)


LARGE_IMAGE = 3 * 8_000_000   # values (3 x 8 megapixels)


def _build_reals(image: torch.Tensor, plan: Pyramid) -> List[torch.Tensor]:
    """build_reals, one colour channel at a time for a large photo: the resize's temporaries
    then take a third of the memory (the channels are resized independently, and the result
    is bit-identical)."""
    if image.numel() <= LARGE_IMAGE:
        return build_reals(image, plan)
    per_channel = [build_reals(image[:, c:c + 1], plan) for c in range(image.shape[1])]
    return [torch.cat(levels, dim=1) for levels in zip(*per_channel)]


# ---- SinGAN in the stage driver -----------------------------------------------------------------

class SinGANTrainer(TrainerDefaults):
    """SinGAN's part of the stage driver (singan.driver.train_stages): the pyramid trained so
    far, one ScaleTrainer per scale, and what a finished scale adds and saves."""
    method, unit, stage_files = "singan", "scale", SCALE_FILES
    cuda_graphs = False     # ScaleTrainer's replayed CUDA-graph iterations (graphs.py)

    def __init__(self, image: torch.Tensor, cfg: SinGANConfig, plan: Optional[Pyramid] = None,
                 low_memory: Optional[bool] = None, cuda_graphs: Optional[bool] = None):
        if cuda_graphs:
            check_graphable(image.device, cfg.amp)
        self.cfg = cfg
        self.plan = plan or plan_for(image.shape[2], image.shape[3], cfg)
        self.reals = _build_reals(image, self.plan)
        self.device = image.device
        self.pyramid = TrainedPyramid([], [], [], self.reals, self.plan.scale_factor, cfg.pad,
                                      cfg.pad_noise, asdict(cfg))
        self.discriminators: List[Discriminator] = []
        self.low_memory = self.lean_step(low_memory)
        self.cuda_graphs = self.graphed_step(cuda_graphs)

    def graphed_step(self, cuda_graphs: Optional[bool]) -> bool:
        """Whether ScaleTrainer replays its iterations from CUDA graphs: as asked, or (None)
        for the step they were proven on, the plain fp32 step on CUDA (on an H200 bit for bit
        the eager step's weights at every scale, and 1.05-8.8x faster per scale), when twice
        its estimate fits in the free memory (singan.resources.graphs_fit)."""
        if cuda_graphs is not None:
            return bool(cuda_graphs)
        return (self.device.type == "cuda" and self.cfg.amp == "none" and not self.low_memory
                and not self.cfg.legacy_g_steps and graphs_fit(self))

    def lean_step(self, low_memory: Optional[bool]) -> bool:
        """Whether to take ScaleTrainer's lean step: as asked, or (None) when the plain step's
        estimate would not fit in the memory the device has free."""
        return choose_low_memory(self) if low_memory is None else bool(low_memory)

    def step_bytes(self, n: int, low_memory: bool) -> int:
        """Scale n's training step at its peak (singan.resources' arithmetic): its passes'
        activations, or drawing the D steps' three inputs up the coarser scales if more."""
        cfg, shapes = self.cfg, self.plan.shapes
        nfc, min_nfc = channels_at_scale(n, cfg.nfc, cfg.min_nfc)
        batched = self.device.type != "cpu" and not cfg.legacy_g_steps
        need = training_step_bytes(*shapes[n], nfc, min_nfc, batched, low_memory, cfg.pad)
        if n > 0:
            widths = [channels_at_scale(k, cfg.nfc, cfg.min_nfc)[0] for k in range(n)]
            need = max(need, pyramid_draw_bytes(3, shapes[:n], widths, cfg.pad))
        return need

    @property
    def num_done(self) -> int:
        return self.pyramid.num_scales

    def stage_cost(self, n: int) -> float:
        """One iteration's work at scale n: its networks' multiply-adds (both networks make
        the same passes at every scale, so one network's count weighs the scales)."""
        cfg, (h, w) = self.cfg, self.plan.shapes[n]
        nfc, _ = channels_at_scale(n, cfg.nfc, cfg.min_nfc)
        return conv_macs(h + 2 * cfg.pad, w + 2 * cfg.pad, nfc, cfg.num_layer, cfg.ker_size)

    def estimated_bytes(self) -> int:
        """About how much disk the model folder needs while it is trained: the per-scale files
        plus model.pth, which holds everything again and is rewritten beside its previous copy."""
        cfg, total = self.cfg, 0
        for n, (h, w) in enumerate(self.plan.shapes):
            nfc, min_nfc = channels_at_scale(n, cfg.nfc, cfg.min_nfc)
            with torch.device("meta"):   # counts parameters without allocating them
                nets = (Generator(nfc, min_nfc, cfg.num_layer, cfg.ker_size),
                        Discriminator(nfc, min_nfc, cfg.num_layer, cfg.ker_size))
            values = sum(t.numel() for net in nets for t in net.state_dict().values())
            values += 3 * (h + 2 * cfg.pad) * (w + 2 * cfg.pad) + 3 * h * w + 5 * cfg.niter
            total += 4 * values + 3 * 3 * h * w + 100_000    # + three PNGs and the loss plot
        return 3 * total

    def saved_config(self, ckpt: dict) -> dict:
        return asdict(SinGANConfig.from_dict(ckpt["config"], ckpt.get("plan")))

    def load(self, ckpt: dict) -> None:
        self.pyramid = TrainedPyramid.from_checkpoint(ckpt, self.device)
        self.pyramid.reals = self.reals
        self.discriminators = []
        for s in ckpt["scales"]:
            d = Discriminator(s["nfc"], s["min_nfc"], self.cfg.num_layer, self.cfg.ker_size)
            d.load_state_dict(s["D"])
            self.discriminators.append(d.to(self.device))

    def begin_stage(self, n: int, seed: int) -> ScaleTrainer:
        warm = (self.pyramid.generators[-1], self.discriminators[-1]) if n > 0 else None
        G, D = new_scale_networks(n, self.cfg, seed, warm)
        noise_gen = torch.Generator(device=self.device).manual_seed(scale_seed(seed, n, 1))
        return ScaleTrainer(n, self.pyramid, G.to(self.device), D.to(self.device), self.cfg,
                            noise_gen, low_memory=self.low_memory, cuda_graphs=self.cuda_graphs,
                            layout=self.run_layout())

    def stage_label(self, n: int) -> str:
        return f"scale {n}/{self.plan.stop_scale}"

    def stage_parameters(self, result: ScaleResult):
        return result.generator.parameters()

    def stage_noise_amp(self, n: int, result: ScaleResult) -> float:
        return result.noise_amp

    def stage_summary(self, n: int, result: ScaleResult, seconds: float) -> str:
        h, w = self.plan.shapes[n]
        return (f"scale {n}/{self.plan.stop_scale}: {h} x {w}, {result.generator.nfc} channels, "
                f"noise_amp {result.noise_amp:.4f}, {seconds:.1f} s")

    def add(self, n: int, result: ScaleResult) -> None:
        self.pyramid.append(result.generator, result.z_opt, result.noise_amp)
        self.discriminators.append(result.discriminator.requires_grad_(False).eval())

    def drop(self, n: int) -> None:
        for entries in (self.pyramid.generators, self.pyramid.z_opt, self.pyramid.noise_amp,
                        self.discriminators):
            del entries[n:]

    def save_stage_files(self, folder: Path, n: int, result: ScaleResult) -> None:
        save_scale_files(folder, n, result, self.reals[n])

    def checkpoint(self, info: dict, extra: Optional[dict] = None) -> dict:
        return checkpoint_dict(self.pyramid, self.discriminators, asdict(self.cfg),
                               asdict(self.plan), info, extra)

    def model(self, info: dict) -> TrainedPyramid:
        return self.pyramid


class ScaleRetrainer(SinGANTrainer):
    """Scale n of a finished SinGAN model retrained into a new model folder, with the inputs
    from the coarser scales mapped by `prev_transform` before G_n sees them (paint-to-image's
    colour quantisation, SPEC 8): G_n and D_n start afresh (not warm-started, as the
    reference's train_paint), every other scale stays the source model's.

    source: the source's model.pth dict; record: what the new model.pth and config.json say
    about the retraining; matches(ckpt): whether a model.pth found in the target folder
    already is this retraining's result (the driver then returns it)."""
    retrains, retrain_name = True, "retrained model"

    def __init__(self, source: dict, n: int, cfg: SinGANConfig,
                 prev_transform: Callable[[torch.Tensor], torch.Tensor], record: dict,
                 matches: Callable[[dict], bool], device, low_memory: Optional[bool] = None,
                 name: str = "retrained model"):
        self.cfg, self.n, self.prev_transform = cfg, n, prev_transform
        self.record, self.matches, self.device = dict(record), matches, torch.device(device)
        self.retrain_name = name
        self.source_plan, self.source_image = source.get("plan", {}), source.get("image", {})
        self.reals = [r.to(self.device) for r in source["reals"]]
        self.plan = plan_from_checkpoint(source, cfg)
        self.load(source)
        self.pyramid.config = asdict(cfg)
        self._replaced = None
        self.low_memory = self.lean_step(low_memory)

    def stages_to_train(self) -> List[int]:
        return [self.n]

    def reusable(self, ckpt: dict) -> bool:
        return self.matches(ckpt)

    def run_record(self) -> dict:
        """The record without its tensors (config.json is text)."""
        return {key: {k: v for k, v in value.items() if not torch.is_tensor(v)}
                if isinstance(value, dict) else value
                for key, value in self.record.items() if not torch.is_tensor(value)}

    def begin_stage(self, n: int, seed: int) -> ScaleTrainer:
        G, D = new_scale_networks(n, self.cfg, seed)   # fresh, not warm-started
        noise_gen = torch.Generator(device=self.device).manual_seed(scale_seed(seed, n, 1))
        return ScaleTrainer(n, self.pyramid, G.to(self.device), D.to(self.device), self.cfg,
                            noise_gen, self.prev_transform, low_memory=self.low_memory,
                            layout=self.run_layout())

    def stage_label(self, n: int) -> str:
        return f"scale {n} (retrained)"

    def add(self, n: int, result: ScaleResult) -> None:
        p = self.pyramid
        self._replaced = (p.generators[n], p.z_opt[n], p.noise_amp[n], self.discriminators[n])
        p.generators[n] = freeze(result.generator)
        p.z_opt[n], p.noise_amp[n] = result.z_opt.detach(), float(result.noise_amp)
        self.discriminators[n] = result.discriminator

    def drop(self, n: int) -> None:
        p = self.pyramid
        p.generators[n], p.z_opt[n], p.noise_amp[n], self.discriminators[n] = self._replaced

    def checkpoint(self, info: dict, extra: Optional[dict] = None) -> dict:
        return checkpoint_dict(self.pyramid, self.discriminators, asdict(self.cfg),
                               self.source_plan, self.source_image,
                               {**(extra or {}), **self.record})
