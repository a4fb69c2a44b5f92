"""SinGAN's coarse-to-fine training (SPEC section 5; arXiv 1905.01164, section 2.2).

``train_pyramid`` trains scale after scale, writing the model folder after each finished scale
and resuming after the last finished one; ``train_scale`` is one scale's adversarial game.
"""
import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import (CHECKPOINT_NAME, checkpoint_dict, read_checkpoint, save_torch,
                         pyramid_from_checkpoint, write_json)
from .errors import SinGANError
from .hparams import SinGANConfig
from .image_io import save_image
from .losses import (critic_loss, generator_adversarial_loss, gradient_penalty,
                     reconstruction_loss)
from .models import Discriminator, Generator, channels_at_scale, init_weights
from .pyramid import Pyramid, build_reals, plan_pyramid
from .sampling import TrainedPyramid, pad

LOG_EVERY = 25   # iterations between host synchronisations (progress bar, NaN check)


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


@contextlib.contextmanager
def frozen_batchnorm_stats(module: nn.Module):
    """BatchNorm keeps using batch statistics but does not update its running statistics."""
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum


def _set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def train_scale(n: int, pyramid: TrainedPyramid, G: Generator, D: Discriminator,
                cfg: SinGANConfig, generator: torch.Generator,
                progress: Optional[Callable[[int, dict], None]] = None,
                prev_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
                ) -> ScaleResult:
    """Train G_n and D_n against reals[n], with G_0..G_{n-1} (in `pyramid`) frozen.

    prev_transform, when given, maps the padded inputs from the coarser scales (the random
    prevs of the D steps and the reconstruction prev of the G steps) before G sees them
    (paint-to-image's colour quantisation, mode "paint_train").
    """
    device = pyramid.device
    real = pyramid.reals[n]                                    # [1, 3, h, w]
    h, w = real.shape[2:]
    p = cfg.pad
    G.train(), D.train()
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, 0.999))

    # Before the first iteration: the reconstruction path and the noise amplitude.
    if n == 0:
        prev_rec = torch.zeros(1, 3, h, w, device=device)
        noise_amp = 1.0
    else:
        prev_rec = pyramid.draw(n, "rec")                      # [1, 3, h, w]
        # sigma_n = noise_amp_init * RMSE(x_n, upsampled reconstruction)
        noise_amp = cfg.noise_amp * torch.sqrt(F.mse_loss(real, prev_rec)).item()
    prev_rec = pad(prev_rec, p)                                # [1, 3, h + 2p, w + 2p]
    if prev_transform is not None:
        prev_rec = prev_transform(prev_rec)
    z_opt = torch.zeros(1, 3, h + 2 * p, w + 2 * p, device=device)

    history = {k: [] for k in ("errD", "errG", "rec", "D_real", "D_fake")}
    for it in range(cfg.niter):
        # Reference behaviour: MultiStepLR stepped at the start of every iteration, so the
        # iterations from milestone - 1 on (the last 401 of 2000) run at lr * gamma.
        decay = cfg.gamma if it + 1 >= cfg.lr_milestone else 1.0
        _set_lr(opt_d, cfg.lr_d * decay)
        _set_lr(opt_g, cfg.lr_g * decay)

        noise = pyramid._noise(1, n, h, w, generator)          # [1, 3, h + 2p, w + 2p]
        if n == 0:
            # Reference behaviour: at scale 0 a new z_opt is drawn at every iteration and the
            # last one is kept as the reconstruction noise.
            z_opt = pyramid._noise(1, 0, h, w, generator)
        # The coarser scales' random outputs for the D steps, drawn as one batch (frozen
        # generators in eval mode: each draw is independent of the others in the batch).
        prevs = pad(pyramid.draw(n, "rand", cfg.Dsteps, generator), p) if n > 0 \
            else torch.zeros(cfg.Dsteps, 3, h + 2 * p, w + 2 * p, device=device)
        if prev_transform is not None:
            prevs = prev_transform(prevs)

        # (1) Update D: maximise D(x) - D(G(z)) - gradient penalty.
        for j in range(cfg.Dsteps):
            prev = prevs[j:j + 1]
            g_input = noise_amp * noise + prev
            D.zero_grad(set_to_none=True)
            d_real = D(real)
            with torch.no_grad() if not cfg.legacy_g_steps or j < cfg.Dsteps - 1 \
                    else contextlib.nullcontext():
                fake = G(g_input, prev)                        # [1, 3, h, w]
            d_fake = D(fake.detach())
            gp = gradient_penalty(D, real, fake, cfg.lambda_grad, generator)
            err_d = critic_loss(d_real, d_fake) + gp
            err_d.backward()
            opt_d.step()

        # (2) Update G: minimise -D(G(z)) + alpha * ||G(z_opt, prev_rec) - x||^2.
        D.requires_grad_(False)
        for j in range(cfg.Gsteps):
            G.zero_grad(set_to_none=True)
            if cfg.legacy_g_steps:
                fake_g = fake
            else:
                # Fix: the reference backpropagates through the last D step's graph in all G
                # steps (stale after the first update; modern torch rejects it). We recompute
                # fake from the same input, without touching BatchNorm's running statistics,
                # which the reference never updated here.
                with frozen_batchnorm_stats(G):
                    fake_g = G(g_input, prev)
            err_g = generator_adversarial_loss(D(fake_g))
            rec = G(noise_amp * z_opt + prev_rec, prev_rec)
            rec_loss = reconstruction_loss(rec, real, cfg.alpha)
            (err_g + rec_loss).backward(retain_graph=cfg.legacy_g_steps)
            if cfg.legacy_g_steps:
                _step_keeping_versions(opt_g, G)
            else:
                opt_g.step()
        D.requires_grad_(True)

        for key, value in (("errD", err_d), ("errG", err_g), ("rec", rec_loss),
                           ("D_real", d_real.mean()), ("D_fake", d_fake.mean())):
            history[key].append(value.detach())
        if (it + 1) % LOG_EVERY == 0 or it == cfg.niter - 1:
            latest = {k: v[-1].item() for k, v in history.items()}
            if not all(math.isfinite(v) for v in latest.values()):
                raise SinGANError(
                    f"training diverged at scale {n}, iteration {it + 1}: a loss became "
                    f"{'nan' if any(v != v for v in latest.values()) else 'inf'} (likely cause: "
                    "too high a learning rate --lr_g/--lr_d, or too low --lambda_grad); the "
                    "finished scales are kept")
            if progress:
                progress(it + 1, latest)

    with torch.no_grad():
        reconstruction = G(noise_amp * z_opt + prev_rec, prev_rec)
    losses = {k: torch.stack(v).float().cpu() for k, v in history.items()}
    return ScaleResult(G, D, z_opt.detach(), noise_amp, fake.detach(), reconstruction, losses)


def _step_keeping_versions(optimizer, module: nn.Module) -> None:
    """Optimizer step that restores the parameters' autograd version counters afterwards, so
    that the next G step may backpropagate through the graph built before the update, as
    torch <= 1.4 silently did (--legacy_g_steps)."""
    params = [q for q in module.parameters() if q.requires_grad]
    versions = [q._version for q in params]
    optimizer.step()
    torch._C._autograd._unsafe_set_version_counter(tuple(params), tuple(versions))


# ---- the coarse-to-fine driver ------------------------------------------------------------------

def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda if available, else mps, else cpu; an unavailable device is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SinGANError("--device cuda was asked for but CUDA is not available here; "
                          "use --device cpu (or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None)
                              and torch.backends.mps.is_available()):
        raise SinGANError("--device mps was asked for but MPS is not available; use --device cpu")
    return torch.device(name)


def scale_seed(seed: int, scale: int, stream: int) -> int:
    """A per-scale seed, so that a resumed run draws exactly what an uninterrupted one would."""
    return (seed * 1_000_003 + scale * 101 + stream) % (2 ** 63)


def plot_losses(path: Path, losses: dict, scale: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import io
    from .image_io import atomic_write_bytes
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    for key in ("errD", "errG"):
        ax[0].plot(losses[key].numpy(), label=key, linewidth=0.8)
    ax[0].set_title(f"scale {scale}: adversarial losses")
    ax[0].legend()
    ax[1].plot(losses["rec"].numpy(), label="alpha * rec", linewidth=0.8, color="C2")
    ax[1].set_yscale("log")
    ax[1].set_title("reconstruction loss")
    for a in ax:
        a.set_xlabel("iteration")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


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


def _config_mismatch(saved: dict, cfg: SinGANConfig) -> List[str]:
    current = asdict(cfg)
    return [f"{k} {saved.get(k)!r} -> {v!r}" for k, v in current.items() if saved.get(k) != v]


def train_pyramid(image: torch.Tensor, cfg: SinGANConfig, folder, seed: int = 0,
                  image_info: Optional[dict] = None, force: bool = False,
                  plan: Optional[Pyramid] = None, log: Callable[[str], None] = print,
                  show_progress: bool = True) -> TrainedPyramid:
    """Train (or resume) SinGAN on `image` ([1, 3, H, W] in [-1, 1], on the training device).

    Writes `folder`/model.pth after every finished scale (atomically) and the per-scale
    folders; a second call with the same image and settings resumes after the last finished
    scale, and returns at once when all are done. force=True retrains from scratch.
    """
    folder = Path(folder)
    device = image.device
    if plan is None:
        try:
            plan = plan_pyramid(image.shape[2], image.shape[3], cfg.min_size, cfg.max_size,
                                cfg.scale_factor)
        except ValueError as err:
            raise SinGANError(str(err)) from None
    reals = build_reals(image, plan)
    pyramid = TrainedPyramid([], [], [], reals, plan.scale_factor, cfg.pad, cfg.pad_noise,
                             asdict(cfg))
    discriminators: List[Discriminator] = []
    ckpt_path = folder / CHECKPOINT_NAME
    if ckpt_path.exists() and not force:
        ckpt = read_checkpoint(ckpt_path)
        mismatch = _config_mismatch(ckpt["config"], cfg)
        same_image = len(ckpt["reals"]) == len(reals) and all(
            a.shape == b.shape and torch.equal(a, b.cpu()) for a, b in zip(ckpt["reals"], reals))
        if mismatch or not same_image:
            what = ", ".join(mismatch) if mismatch else "a different image"
            raise SinGANError(f"{folder} holds a model trained with other settings ({what}); "
                              "add --force to retrain it from scratch")
        pyramid = pyramid_from_checkpoint(ckpt, device)
        pyramid.reals = reals
        for s in ckpt["scales"]:
            d = Discriminator(s["nfc"], s["min_nfc"], cfg.num_layer, cfg.ker_size)
            d.load_state_dict(s["D"])
            discriminators.append(d.to(device))
        seed = ckpt.get("seed", seed)
        if pyramid.num_scales == plan.n_scales:
            log(f"{folder} is already trained ({plan.n_scales} scales); nothing to do "
                "(--force retrains it)")
            return pyramid
        log(f"resuming {folder} after scale {pyramid.num_scales - 1} "
            f"({pyramid.num_scales}/{plan.n_scales} scales done)")
    folder.mkdir(parents=True, exist_ok=True)
    info = dict(image_info or {})
    write_json(folder / "config.json", {"config": asdict(cfg), "seed": seed, "image": info,
                                        "plan": asdict(plan), "device": str(device)})

    for n in range(pyramid.num_scales, plan.n_scales):
        nfc, min_nfc = channels_at_scale(n, cfg.nfc, cfg.min_nfc)
        with torch.random.fork_rng(devices=[]):   # conv biases use torch's default init
            torch.manual_seed(scale_seed(seed, n, 0))
            G = Generator(nfc, min_nfc, cfg.num_layer, cfg.ker_size)
            D = Discriminator(nfc, min_nfc, cfg.num_layer, cfg.ker_size)
            init_weights(G), init_weights(D)
        if n > 0 and pyramid.generators[-1].nfc == nfc:   # warm start from the scale below
            G.load_state_dict(pyramid.generators[-1].state_dict())
            D.load_state_dict(discriminators[-1].state_dict())
        G.to(device), D.to(device)
        noise_gen = torch.Generator(device=device).manual_seed(scale_seed(seed, n, 1))

        h, w = plan.shapes[n]
        start = time.perf_counter()
        bar = _progress_bar(n, plan.n_scales, cfg.niter, show_progress)
        result = train_scale(n, pyramid, G, D, cfg, noise_gen, bar.update_to)
        bar.close()
        pyramid.append(result.generator, result.z_opt, result.noise_amp)
        discriminators.append(result.discriminator.requires_grad_(False).eval())
        save_scale_files(folder, n, result, reals[n])
        save_torch(ckpt_path, checkpoint_dict(pyramid, discriminators, asdict(cfg),
                                              asdict(plan), info, {"seed": seed}))
        log(f"scale {n}/{plan.stop_scale}: {h} x {w}, {nfc} channels, noise_amp "
            f"{result.noise_amp:.4f}, {time.perf_counter() - start:.1f} s")
    return pyramid


class _progress_bar:
    """A tqdm bar per scale showing the latest losses; silent when disabled."""

    def __init__(self, n, n_scales, niter, enabled):
        self.bar = None
        if enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=niter, desc=f"scale {n}/{n_scales - 1}", leave=False,
                            dynamic_ncols=True)
        self.done = 0

    def update_to(self, it: int, losses: dict) -> None:
        if self.bar is not None:
            self.bar.update(it - self.done)
            self.bar.set_postfix(D=f"{losses['errD']:.3f}", G=f"{losses['errG']:.3f}",
                                 rec=f"{losses['rec']:.4f}", refresh=False)
        self.done = it

    def close(self):
        if self.bar is not None:
            self.bar.close()
