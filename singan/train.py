"""SinGAN's coarse-to-fine training (SPEC section 5; arXiv 1905.01164, section 2.2).

``train_pyramid`` trains scale after scale, writing the model folder after each finished scale
and resuming after the last finished one; ``train_scale`` is one scale's adversarial game.
"""
import contextlib
import io
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import (CHECKPOINT_NAME, checkpoint_dict, is_reference_folder,
                         pyramid_from_checkpoint, read_checkpoint, save_checkpoint, save_torch,
                         write_json)
from .errors import SinGANError
from .hparams import SinGANConfig
from .guards import (check_free_space, check_writable, exclusive, interrupts_deferred,
                     remove_temporaries)
from .image_io import atomic_write_bytes, save_image, write_error
from .losses import (critic_loss, generator_adversarial_loss, gradient_penalty,
                     reconstruction_loss)
from .models import (Discriminator, Generator, batchnorm_stats_from, channels_at_scale,
                     init_weights)
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


def adam(params, lr: float, beta1: float, device: torch.device) -> torch.optim.Adam:
    """The reference's Adam (betas (beta1, 0.999)), with torch's fused kernel on the CPU and
    CUDA: the same update, one kernel per parameter instead of about ten (it agrees with the
    per-op loop to float32 rounding, 1e-7 after 250 steps; 4.5% of an iteration at scale 0)."""
    fused = True if torch.device(device).type in ("cpu", "cuda") else None
    return torch.optim.Adam(params, lr=lr, betas=(beta1, 0.999), fused=fused)


def _set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class ScaleTrainer:
    """One scale's adversarial game (SPEC 5): set up by the constructor, one iteration per
    `step(it)`, the trained scale from `result()`. Training G_n and D_n against reals[n], with
    G_0..G_{n-1} (in `pyramid`) frozen.

    batched (default: on CUDA and MPS, not on the CPU): the reference passes single images
    through G and D one at a time; batched, the independent passes are made as one batch,
    with BatchNorm normalising each sample on its own (singan.models.BatchNorm2d), the same
    maths: the three D steps' fakes (G is constant during the D steps) in one G pass, D(real)
    and D(fake) in one D pass, each G step's fake and reconstruction in one G pass. That
    saves kernel launches where they dominate; on a 2-core CPU it gained nothing at the
    small scales and cost 2x at the finest (benchmarks/bench_train.py), so the CPU keeps
    one-image passes. --legacy_g_steps always does (for bit-level comparisons).

    prev_transform, when given, maps the padded inputs from the coarser scales (the random
    prevs of the D steps and the reconstruction prev of the G steps) before G sees them
    (paint-to-image's colour quantisation, mode "paint_train").
    """

    def __init__(self, n: int, pyramid: TrainedPyramid, G: Generator, D: Discriminator,
                 cfg: SinGANConfig, generator: torch.Generator,
                 prev_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                 batched: Optional[bool] = None):
        self.n, self.pyramid, self.G, self.D, self.cfg = n, pyramid, G, D, cfg
        self.generator, self.prev_transform = generator, prev_transform
        device = pyramid.device
        if batched is None:
            batched = device.type != "cpu"
        self.batched = batched and not cfg.legacy_g_steps
        self.autocast = autocast_context(device, cfg.amp)
        self.real = pyramid.reals[n]                                 # [1, 3, h, w]
        h, w = self.real.shape[2:]
        p = cfg.pad
        G.train(), D.train()
        self.opt_d = adam(D.parameters(), cfg.lr_d, cfg.beta1, device)
        self.opt_g = adam(G.parameters(), cfg.lr_g, cfg.beta1, device)
        self.scaler_d, self.scaler_g = grad_scaler(device, cfg.amp), grad_scaler(device, cfg.amp)

        # Before the first iteration: the reconstruction path and the noise amplitude.
        if n == 0:
            prev_rec = torch.zeros(1, 3, h, w, device=device)
            self.noise_amp = 1.0
        else:
            prev_rec = pyramid.draw(n, "rec")                       # [1, 3, h, w]
            # sigma_n = noise_amp_init * RMSE(x_n, upsampled reconstruction)
            self.noise_amp = cfg.noise_amp * torch.sqrt(F.mse_loss(self.real, prev_rec)).item()
        self.prev_rec = self._transformed(pad(prev_rec, p))          # [1, 3, h + 2p, w + 2p]
        self.z_opt = torch.zeros(1, 3, h + 2 * p, w + 2 * p, device=device)
        self.history = {k: [] for k in ("errD", "errG", "rec", "D_real", "D_fake")}
        self.fake = None

    def _transformed(self, prev):
        return prev if self.prev_transform is None else self.prev_transform(prev)

    def step(self, it: int) -> None:
        """One training iteration (0-based index `it`)."""
        cfg, G, D, n, real = self.cfg, self.G, self.D, self.n, self.real
        h, w = real.shape[2:]
        p = cfg.pad
        # Reference behaviour: MultiStepLR stepped at the start of every iteration, so the
        # iterations from milestone - 1 on (the last 401 of 2000) run at lr * gamma.
        decay = cfg.gamma if it + 1 >= cfg.lr_milestone else 1.0
        _set_lr(self.opt_d, cfg.lr_d * decay)
        _set_lr(self.opt_g, cfg.lr_g * decay)

        noise = self.pyramid._noise(1, n, h, w, self.generator)     # [1, 3, h + 2p, w + 2p]
        if n == 0:
            # Reference behaviour: at scale 0 a new z_opt is drawn at every iteration and the
            # last one is kept as the reconstruction noise.
            self.z_opt = self.pyramid._noise(1, 0, h, w, self.generator)
        # The coarser scales' random outputs for the D steps, drawn as one batch (frozen
        # generators in eval mode: each draw is independent of the others in the batch).
        with self.autocast():
            prevs = pad(self.pyramid.draw(n, "rand", cfg.Dsteps, self.generator), p) if n > 0 \
                else torch.zeros(cfg.Dsteps, 3, h + 2 * p, w + 2 * p, device=real.device)
        prevs = self._transformed(prevs)                            # [Dsteps, 3, h+2p, w+2p]
        g_inputs = self.noise_amp * noise + prevs

        # (1) Update D: maximise D(x) - D(G(z)) - gradient penalty.
        # G does not change during the D steps: their fakes need no graph (the reference's
        # gradients into G from these passes are never used), and batched they come from one
        # G pass. One-image passes keep the last fake's graph: it is the first G step's fake
        # (G is unchanged until that step), and --legacy_g_steps uses it in every G step.
        keep = cfg.Dsteps if self.batched else cfg.Dsteps - 1
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
        for j in range(cfg.Dsteps):
            fake = fakes[j:j + 1]
            D.zero_grad(set_to_none=True)
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

        # (2) Update G: minimise -D(G(z)) + alpha * ||G(z_opt, prev_rec) - x||^2.
        D.requires_grad_(False)
        g_input, prev = g_inputs[-1:], prevs[-1:]
        rec_input = self.noise_amp * self.z_opt + self.prev_rec
        for j in range(cfg.Gsteps):
            G.zero_grad(set_to_none=True)
            with self.autocast():
                if cfg.legacy_g_steps:
                    fake_g = self.fake
                    rec = G(rec_input, self.prev_rec)
                else:
                    # Fix: the reference backpropagates through the last D step's graph in
                    # all G steps (stale after the first update; modern torch rejects it). The
                    # first G step may use it (G has not changed yet); later ones recompute
                    # fake from the same input, without touching BatchNorm's running
                    # statistics, which the reference never updated here; the reconstruction
                    # pass updates them as in the reference.
                    if self.batched:
                        with batchnorm_stats_from(G, [1]):
                            fake_g, rec = G(torch.cat([g_input, rec_input]),
                                            torch.cat([prev, self.prev_rec])).split(1)
                    else:
                        if j == 0:   # the last D step's fake, made by this very G
                            fake_g = self.fake
                        else:
                            with batchnorm_stats_from(G, []):
                                fake_g = G(g_input, prev)
                        rec = G(rec_input, self.prev_rec)
                err_g = generator_adversarial_loss(D(fake_g))
                rec_loss = reconstruction_loss(rec.float(), real, cfg.alpha)
            self.scaler_g.scale(err_g + rec_loss).backward(retain_graph=cfg.legacy_g_steps)
            if cfg.legacy_g_steps:
                _step_keeping_versions(lambda: self.scaler_g.step(self.opt_g), G)
            else:
                self.scaler_g.step(self.opt_g)
            self.scaler_g.update()
        D.requires_grad_(True)
        self.fake = fake_g.detach()

        for key, value in (("errD", err_d), ("errG", err_g), ("rec", rec_loss),
                           ("D_real", d_real.mean()), ("D_fake", d_fake.mean())):
            self.history[key].append(value.detach().float())

    def check_finite(self, it: int) -> dict:
        """The latest losses as floats (a host synchronisation); SinGANError on nan/inf."""
        latest = {k: v[-1].item() for k, v in self.history.items()}
        if not all(math.isfinite(v) for v in latest.values()):
            raise SinGANError(
                f"training diverged at scale {self.n}, iteration {it + 1}: a loss became "
                f"{'nan' if any(v != v for v in latest.values()) else 'inf'} (likely cause: "
                "too high a learning rate --lr_g/--lr_d, or too low --lambda_grad); the "
                "finished scales are kept")
        return latest

    def result(self) -> ScaleResult:
        with torch.no_grad():
            reconstruction = self.G(self.noise_amp * self.z_opt + self.prev_rec, self.prev_rec)
        losses = {k: torch.stack(v).cpu() for k, v in self.history.items()}
        return ScaleResult(self.G, self.D, self.z_opt.detach(), self.noise_amp, self.fake,
                           reconstruction, losses)


def train_scale(n: int, pyramid: TrainedPyramid, G: Generator, D: Discriminator,
                cfg: SinGANConfig, generator: torch.Generator,
                progress: Optional[Callable[[int, dict], None]] = None,
                prev_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
                ) -> ScaleResult:
    """Train G_n and D_n against reals[n] for cfg.niter iterations (see ScaleTrainer).

    Losses stay on the device; the host synchronises only every LOG_EVERY iterations, to
    update the progress bar and stop on a nan/inf loss.
    """
    trainer = ScaleTrainer(n, pyramid, G, D, cfg, generator, prev_transform)
    for it in range(cfg.niter):
        trainer.step(it)
        if (it + 1) % LOG_EVERY == 0 or it == cfg.niter - 1:
            latest = trainer.check_finite(it)
            if progress:
                progress(it + 1, latest)
    return trainer.result()


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_context(device: torch.device, amp: str):
    """A factory of autocast contexts for --amp none|bf16|fp16."""
    if amp == "none":
        return contextlib.nullcontext
    if amp not in AMP_DTYPES:
        raise SinGANError(f"--amp {amp} is not supported; use --amp none, bf16 or fp16")
    dtype = AMP_DTYPES[amp]
    return lambda: torch.autocast(device.type, dtype=dtype)


def amp_slowdown(device: torch.device, amp: str) -> Optional[str]:
    """Why --amp would make this device slower rather than faster (None: no known reason).
    CPUs without native bfloat16/float16 convolutions (AVX-512 BF16/FP16 or AMX) emulate
    them: on an AVX2 CPU a bf16 or fp16 training step is about 25x slower than fp32."""
    if amp == "none" or torch.device(device).type != "cpu":
        return None
    try:
        native = (torch.ops.mkldnn._is_mkldnn_bf16_supported() if amp == "bf16"
                  else torch.ops.mkldnn._is_mkldnn_fp16_supported())
    except (AttributeError, RuntimeError):   # a torch without these queries: no warning
        return None
    if native:
        return None
    return (f"this CPU has no native {amp} convolutions (AVX-512 {amp.upper()} or AMX): "
            f"--amp {amp} runs emulated, many times slower than fp32 (about 25x on an AVX2 "
            f"CPU); leave --amp out here")


def grad_scaler(device: torch.device, amp: str) -> torch.amp.GradScaler:
    """Loss scaling for --amp fp16 (float16 gradients underflow without it); a pass-through
    scaler otherwise. Each overflow skips one update and halves the scale, and every scale
    starts a new scaler: starting at 2**10 rather than torch's 2**16 skips fewer of a
    scale's first updates (the critic's weight gradients are sums over every pixel). With
    the fused Adam the scaler needs no host synchronisation."""
    return torch.amp.GradScaler(torch.device(device).type, init_scale=2.0 ** 10,
                                enabled=amp == "fp16")


def _step_keeping_versions(step: Callable[[], None], module: nn.Module) -> None:
    """An optimizer step that restores the parameters' autograd version counters afterwards,
    so that the next G step may backpropagate through the graph built before the update, as
    torch <= 1.4 silently did (--legacy_g_steps)."""
    params = [q for q in module.parameters() if q.requires_grad]
    versions = [q._version for q in params]
    step()
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
    """losses.png: the adversarial losses and the reconstruction loss over the iterations."""
    from matplotlib.figure import Figure   # no pyplot: no global state, no GUI backend
    fig = Figure(figsize=(9, 3.2))
    ax = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.16, top=0.9, wspace=0.22)
    for key in ("errD", "errG"):
        ax[0].plot(losses[key].numpy(), label=key, linewidth=0.8)
    ax[0].set_title(f"scale {scale}: adversarial losses")
    ax[0].legend()
    ax[1].plot(losses["rec"].numpy(), label="alpha * rec", linewidth=0.8, color="C2")
    ax[1].set_yscale("log")
    ax[1].set_title("reconstruction loss")
    for a in ax:
        a.set_xlabel("iteration")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    atomic_write_bytes(path, buffer.getvalue())


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


def remove_scale_files(folder: Path, first: int, names=SCALE_FILES) -> None:
    """Delete the per-scale files (`names`) of scales >= first (a scale that never finished,
    or an old model's with --force); folders holding anything else are left alone."""
    if not folder.is_dir():
        return
    for scale_dir in folder.iterdir():
        if scale_dir.is_dir() and scale_dir.name.isdigit() and int(scale_dir.name) >= first:
            for name in names:
                (scale_dir / name).unlink(missing_ok=True)
            if not any(scale_dir.iterdir()):
                scale_dir.rmdir()


def check_resumable(ckpt: dict, cfg, reals, folder) -> None:
    """Refuse to continue a saved model trained with other settings or another image."""
    mismatch = config_mismatch(ckpt["config"], cfg)
    same_image = len(ckpt["reals"]) == len(reals) and all(
        a.shape == b.shape and torch.equal(a, b.cpu()) for a, b in zip(ckpt["reals"], reals))
    if mismatch or not same_image:
        what = ", ".join(mismatch) if mismatch else "a different image"
        raise SinGANError(f"{folder} holds a model trained with other settings ({what}); "
                          "add --force to retrain it from scratch")


def config_mismatch(saved: dict, cfg) -> List[str]:
    """The settings of a dataclass config that differ from a saved one, as 'name old -> new'."""
    current = asdict(cfg)
    return [f"{k} {saved.get(k)!r} -> {v!r}" for k, v in current.items() if saved.get(k) != v]


LARGE_IMAGE = 3 * 8_000_000   # values (3 x 8 megapixels)


def _build_reals(image: torch.Tensor, plan: Pyramid) -> List[torch.Tensor]:
    """build_reals, one colour channel at a time for a large photo: the resize's temporaries
    then take a third of the memory (the channels are resized independently, and the result
    is bit-identical)."""
    if image.numel() <= LARGE_IMAGE:
        return build_reals(image, plan)
    per_channel = [build_reals(image[:, c:c + 1], plan) for c in range(image.shape[1])]
    return [torch.cat(levels, dim=1) for levels in zip(*per_channel)]


def estimated_model_bytes(plan: Pyramid, cfg: SinGANConfig) -> int:
    """About how much disk a model folder needs while it is trained: the per-scale files plus
    model.pth, which holds everything again and is rewritten beside its previous copy."""
    total = 0
    for n, (h, w) in enumerate(plan.shapes):
        nfc, min_nfc = channels_at_scale(n, cfg.nfc, cfg.min_nfc)
        with torch.device("meta"):   # counts parameters without allocating them
            nets = (Generator(nfc, min_nfc, cfg.num_layer, cfg.ker_size),
                    Discriminator(nfc, min_nfc, cfg.num_layer, cfg.ker_size))
        values = sum(t.numel() for net in nets for t in net.state_dict().values())
        values += 3 * (h + 2 * cfg.pad) * (w + 2 * cfg.pad) + 3 * h * w + 5 * cfg.niter
        total += 4 * values + 3 * 3 * h * w + 100_000    # + three PNGs and the loss plot
    return 3 * total


def _check_finite(n: int, result: ScaleResult, folder: Path) -> None:
    """Never save a diverged scale: every loss of every iteration, and G's weights, must be
    finite (train_scale checks the latest losses every LOG_EVERY iterations; this catches a
    blow-up between its checks and names the first bad iteration)."""
    kept = f"scales 0-{n - 1} are kept in {folder}" if n else "no scale was saved"
    cause = "likely cause: too high a learning rate --lr_g/--lr_d, or too low --lambda_grad"
    for key, values in result.losses.items():
        bad = torch.nonzero(~torch.isfinite(values.float()))
        if len(bad):
            it = int(bad[0, 0])
            raise SinGANError(f"training diverged at scale {n}, iteration {it + 1}: the loss "
                              f"{key} became {float(values[it])} ({cause}); {kept}")
    if not all(torch.isfinite(q).all() for q in result.generator.parameters()):
        raise SinGANError(f"training diverged at scale {n}: the generator's weights became "
                          f"nan/inf ({cause}); {kept}")


def prepare_model_folder(folder: Path, needed: int) -> None:
    """Create the model folder, but only once training can start: a folder that does not
    exist yet is first checked for writability and `needed` bytes of free space."""
    if not folder.exists():
        check_writable(folder, "model folder")
        check_free_space(folder, needed)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(folder, err) from None


def clear_for_training(folder: Path, needed: int, force: bool, first: int,
                       names=SCALE_FILES) -> None:
    """Ready a model folder for (re)training from scale `first` on: it must be writable with
    `needed` bytes free; temporaries left by a kill, the per-scale files `names` of scales >=
    first (an unfinished run's) and, with force, the old model.pth are removed."""
    check_writable(folder, "model folder")
    check_free_space(folder, needed)
    try:
        remove_temporaries(folder)
        if force:   # the old model goes first, so that a kill cannot leave it mixed with the new
            (folder / CHECKPOINT_NAME).unlink(missing_ok=True)
        remove_scale_files(folder, first, names)
    except OSError as err:
        raise write_error(folder, err) from None


def train_pyramid(image: torch.Tensor, cfg: SinGANConfig, folder, seed: int = 0,
                  image_info: Optional[dict] = None, force: bool = False,
                  plan: Optional[Pyramid] = None, log: Callable[[str], None] = print,
                  show_progress: bool = True) -> TrainedPyramid:
    """Train (or resume) SinGAN on `image` ([1, 3, H, W] in [-1, 1], on the training device).

    Writes `folder`/model.pth after every finished scale and the per-scale folders; a second
    call with the same image and settings resumes after the last finished scale, and returns
    at once when all are done. force=True retrains from scratch.

    What survives what: every file is written atomically (a temporary, then a rename), and
    model.pth, the list of finished scales, is replaced only after all of a scale's files are
    in place, so a kill at any moment leaves the previous model.pth, which lists only
    complete scales; model.pth carries a checksum, verified whenever it is read. Ctrl-C stops
    training at once (KeyboardInterrupt, with a message saying what is saved), but never in
    the middle of saving a finished scale. Writability and free disk space are checked before
    anything is written; a failed write is one clear SinGANError, and leaves model.pth as it
    was. A nan/inf loss stops with a SinGANError naming the scale and the iteration.
    """
    folder = Path(folder)
    if plan is None:
        try:
            plan = plan_pyramid(image.shape[2], image.shape[3], cfg.min_size, cfg.max_size,
                                cfg.scale_factor)
        except ValueError as err:
            raise SinGANError(str(err)) from None
    if is_reference_folder(folder):
        raise SinGANError(f"{folder} holds a model trained by the reference SinGAN code; "
                          "training here would overwrite its files: move it away first")
    needed = estimated_model_bytes(plan, cfg)
    reals = _build_reals(image, plan)
    prepare_model_folder(folder, needed)
    with exclusive(folder):
        return _train_locked(reals, cfg, folder, seed, image_info, force, plan, log,
                             show_progress, needed)


def _train_locked(reals, cfg, folder: Path, seed, image_info, force, plan, log, show_progress,
                  needed) -> TrainedPyramid:
    """train_pyramid's work, while this process holds `folder`."""
    device = reals[0].device
    pyramid = TrainedPyramid([], [], [], reals, plan.scale_factor, cfg.pad, cfg.pad_noise,
                             asdict(cfg))
    discriminators: List[Discriminator] = []
    ckpt_path = folder / CHECKPOINT_NAME
    if ckpt_path.exists() and not force:
        ckpt = read_checkpoint(ckpt_path)
        check_resumable(ckpt, cfg, reals, folder)
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
    clear_for_training(folder, needed, force, pyramid.num_scales)
    info = dict(image_info or {})
    write_json(folder / "config.json", {"config": asdict(cfg), "seed": seed, "image": info,
                                        "plan": asdict(plan), "device": str(device)})

    try:
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
            bar = ProgressBar(f"scale {n}/{plan.stop_scale}", cfg.niter, show_progress)
            try:
                result = train_scale(n, pyramid, G, D, cfg, noise_gen, bar.update_to)
            finally:
                bar.close()
            _check_finite(n, result, folder)
            # Scale n is finished: write all its files, then list it in model.pth; Ctrl-C waits.
            with interrupts_deferred():
                _save_finished_scale(folder, n, result, pyramid, discriminators, cfg, plan,
                                     info, seed)
            log(f"scale {n}/{plan.stop_scale}: {h} x {w}, {nfc} channels, noise_amp "
                f"{result.noise_amp:.4f}, {time.perf_counter() - start:.1f} s")
    except KeyboardInterrupt:
        done = pyramid.num_scales
        saved = f"scales 0-{done - 1} of 0-{plan.stop_scale} are saved in {folder}" if done \
            else f"no scale had finished yet ({folder})"
        raise KeyboardInterrupt(f"{saved}; run the same command again to resume") from None
    return pyramid


def _save_finished_scale(folder: Path, n: int, result: ScaleResult, pyramid: TrainedPyramid,
                         discriminators: List[Discriminator], cfg: SinGANConfig, plan: Pyramid,
                         info: dict, seed: int) -> None:
    """Add scale n to the pyramid and save it: its files, then model.pth listing scales
    0..n. If a write fails (disk full...), model.pth still lists 0..n-1, scale n's files are
    removed and scale n leaves the pyramid again."""
    pyramid.append(result.generator, result.z_opt, result.noise_amp)
    discriminators.append(result.discriminator.requires_grad_(False).eval())
    try:
        save_scale_files(folder, n, result, pyramid.reals[n])
        save_checkpoint(folder / CHECKPOINT_NAME, checkpoint_dict(
            pyramid, discriminators, asdict(cfg), asdict(plan), info, {"seed": seed}))
    except BaseException:
        for entries in (pyramid.generators, pyramid.z_opt, pyramid.noise_amp, discriminators):
            del entries[n:]
        with contextlib.suppress(OSError):
            remove_scale_files(folder, n)      # never listed in model.pth: nothing refers to them
        raise


class ProgressBar:
    """A tqdm bar for one scale or stage, showing the latest losses; silent when disabled."""

    def __init__(self, desc: str, niter: int, enabled: bool = True):
        self.bar = None
        if enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=niter, desc=desc, leave=False, dynamic_ncols=True)
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
