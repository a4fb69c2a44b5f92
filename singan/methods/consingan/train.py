"""ConSinGAN's concurrent multi-stage training (SPEC section 10; arXiv 2003.11512, section 3).

``ConSinGANTrainer`` plugs ConSinGAN into the shared stage driver (singan.driver: folder,
resume, save, progress, stop), which grows the generator stage by stage; ``make_stage`` sets
up one stage's adversarial game and ``train_iteration`` plays one iteration of it (what the
benchmark times); ``FineTuneTrainer`` (``fine_tune``) retrains the last stage of a
harmonization/editing model on a naive image through the same driver.
"""
import contextlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, List, Optional

import torch
import torch.nn.functional as F

from ...checkpoint import save_torch
from ...devices import adam, autocast_context, grad_scaler
from ...driver import RunOptions, scale_seed, train_stages
from ...errors import SinGANError
from ...image_io import save_image
from ...interface import (TRAINING_PARTS, TrainerDefaults, history_from_state, history_state,
                          load_parts_state, parts_state)
from ...layers import init_weights
from ...losses import (critic_loss, generator_adversarial_loss, gradient_penalty,
                       reconstruction_loss)
from ...plots import plot_losses
from ...resources import conv_macs, training_step_bytes
from ...tuning import to_layout
from .augment import augment, shuffle_tiles
from .hparams import ConSinGANConfig
from .model import ConSinGAN, checkpoint_dict, generator_from_checkpoint, plan_from_dict
from .models import (Discriminator, GrowingGenerator, build_discriminator, build_generator,
                     receptive_field)
from .pyramid import StagePlan, build_stage_reals, plan_stages


STAGE_PARTS = (*TRAINING_PARTS, "sched_g", "sched_d")   # what a stage's state() saves by name


@dataclass
class StageState:
    """Everything one training iteration of stage k touches."""
    stage: int
    G: GrowingGenerator
    D: Discriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    sched_g: torch.optim.lr_scheduler.LRScheduler
    sched_d: torch.optim.lr_scheduler.LRScheduler
    real: torch.Tensor                  # [1, 3, h_k, w_k]
    shapes: List[tuple]                 # (h, w) of stages 0..k
    fixed_noise: List[torch.Tensor]     # reconstruction input of stages 0..k
    noise_amp: List[float]              # of stages 0..k
    cfg: ConSinGANConfig
    source: torch.Tensor                # stage 0's image (harmonization/editing), [1, 3, h_0, w_0]
    noise_gen: torch.Generator          # on the training device: noise, gradient penalty
    choice_gen: torch.Generator         # on the CPU: augmentation and tile choices
    augment_source: bool = True         # harmonization: augment `source` (not when fine-tuning)
    autocast: Callable = contextlib.nullcontext   # --amp: autocast contexts for the passes
    scaler_d: Optional[torch.amp.GradScaler] = None   # --amp fp16: loss scaling of D and G
    scaler_g: Optional[torch.amp.GradScaler] = None
    history: dict = field(default_factory=lambda: {k: [] for k in
                                                   ("errD", "errG", "rec", "D_real", "D_fake")})
    fake: Optional[torch.Tensor] = None  # the latest fake sample
    layout: torch.memory_format = torch.contiguous_format   # of G, D and their images
    rec_noise: Optional[List[torch.Tensor]] = None   # fixed_noise in `layout` (make_stage)

    def step(self, it: int) -> None:
        """One iteration (the driver's interface): losses appended to `history`."""
        out = train_iteration(self)
        self.fake = out.pop("fake")
        for key, value in out.items():
            self.history[key].append(value)

    def state(self) -> dict:
        """Everything the next iterations depend on (singan.interface.StageRun.state)."""
        return {**parts_state(self, STAGE_PARTS),
                "noise": self.noise_gen.get_state(), "choice": self.choice_gen.get_state(),
                "fixed_noise": self.fixed_noise[self.stage], "noise_amp": list(self.noise_amp),
                "fake": self.fake, "history": history_state(self.history)}

    def load_state(self, state: dict) -> None:
        """Continue from state() (this stage's networks and optimisers, already built)."""
        device = self.real.device
        load_parts_state(self, state, STAGE_PARTS)
        self.noise_gen.set_state(state["noise"]), self.choice_gen.set_state(state["choice"])
        self.fixed_noise[self.stage] = state["fixed_noise"].to(device)   # the trainer's list
        self.rec_noise[self.stage] = to_layout(self.fixed_noise[self.stage], self.layout)
        self.noise_amp[:] = state["noise_amp"]
        self.fake = None if state["fake"] is None else state["fake"].to(device)
        self.history = history_from_state(state["history"], device)

    def result(self) -> "StageResult":
        with torch.no_grad():
            reconstruction = self.G(self.fixed_noise, self.shapes, self.noise_amp)
        losses = {k: torch.stack(v).float().cpu() for k, v in self.history.items()}
        return StageResult(self.fake, reconstruction, losses, self.D)


def stage_zero_input(state: StageState) -> torch.Tensor:
    """Stage 0's input for one iteration, [1, 3, h_0, w_0]:
    generation/retarget/animation: N(0, 1) noise;
    harmonization: an augmented copy of the coarsest real image (the naive image itself when
    fine-tuning); editing: a tile-shuffled copy plus noise_scaling (0.1) * N(0, 1)."""
    cfg, (h, w) = state.cfg, state.shapes[0]
    device = state.real.device
    if cfg.train_mode == "harmonization":
        if not state.augment_source:
            return state.source
        return augment(state.source, state.choice_gen, state.noise_gen)
    if cfg.train_mode == "editing":
        noise = torch.randn(1, 3, h, w, device=device, generator=state.noise_gen)
        return shuffle_tiles(state.source, state.choice_gen) + cfg.noise_scaling * noise
    return torch.randn(1, 3, h, w, device=device, generator=state.noise_gen)


def draw_noise(state: StageState) -> List[torch.Tensor]:
    """One iteration's random input of every stage 0..k (the reference's sample_random_noise)."""
    noise = [stage_zero_input(state)]
    for k in range(1, state.stage + 1):
        c, h, w = state.G.noise_shape(k, *state.shapes[k])
        noise.append(torch.randn(1, c, h, w, device=state.real.device, generator=state.noise_gen))
    return [to_layout(z, state.layout) for z in noise]


def fixed_noise_for_stage(k: int, G: GrowingGenerator, reals, cfg: ConSinGANConfig,
                          generator: torch.Generator) -> torch.Tensor:
    """Stage k's reconstruction input: stage 0 the coarsest real image (noise in animation),
    later stages fixed N(0, 1) noise of the stage's noise shape."""
    device = reals[0].device
    if k == 0 and cfg.train_mode != "animation":
        return reals[0]
    c, h, w = G.noise_shape(k, *reals[k].shape[2:])
    return torch.randn(1, c, h, w, device=device, generator=generator)


def optimizer_groups(G: GrowingGenerator, k: int, cfg: ConSinGANConfig) -> List[dict]:
    """Concurrent training (arXiv 2003.11512, section 3.1): only the newest train_depth stage
    bodies train, body j at lr_g * lr_scale ** (k - j); the head trains at lr_g * lr_scale ** k
    while k < train_depth; the tail at lr_g. Everything else is frozen (requires_grad False).

    The reference leaves the head's requires_grad on once it stops training (its gradient is
    computed and never applied); we switch it off, which changes no result.
    """
    first = max(0, k + 1 - cfg.train_depth)
    for j, body in enumerate(G.body):
        body.requires_grad_(j >= first)
    groups = [{"params": list(G.body[j].parameters()), "lr": cfg.lr_g * cfg.lr_scale ** (k - j)}
              for j in range(first, k + 1)]
    G.head.requires_grad_(k < cfg.train_depth)
    if k < cfg.train_depth:
        groups.append({"params": list(G.head.parameters()), "lr": cfg.lr_g * cfg.lr_scale ** k})
    G.tail.requires_grad_(True)
    groups.append({"params": list(G.tail.parameters()), "lr": cfg.lr_g})
    return groups


def make_stage(k: int, G: GrowingGenerator, D: Discriminator, reals: List[torch.Tensor],
               fixed_noise: List[torch.Tensor], noise_amp: List[float], cfg: ConSinGANConfig,
               noise_gen: torch.Generator, choice_gen: torch.Generator,
               source: Optional[torch.Tensor] = None, fine_tune: bool = False,
               layout=torch.contiguous_format) -> StageState:
    """Set up stage k: G has k + 1 bodies; fixed_noise and noise_amp hold stages 0..k-1 (all
    k + 1 when fine-tuning, which keeps the trained model's). Appends stage k's fixed noise and
    noise amplitude to the lists (noise_amp_k = noise_amp_init * RMSE(G(fixed noise) with
    amp_k = 0, real_k))."""
    shapes = [tuple(r.shape[2:]) for r in reals[:k + 1]]
    G.train(), D.train()
    if not fine_tune:
        fixed_noise.append(fixed_noise_for_stage(k, G, reals, cfg, noise_gen))
    device = reals[k].device
    opt_d = adam(D.parameters(), cfg.lr_d, cfg.beta1, device)
    opt_g = adam(optimizer_groups(G, k, cfg), cfg.lr_g, cfg.beta1, device)
    # Reference behaviour: MultiStepLR with the float milestone 0.8 * niter, stepped at the end
    # of each iteration: iterations from 0.8 * niter on run at lr * gamma (when 0.8 * niter is
    # not a whole number, the milestone is never met and the learning rate never decays).
    sched_d = torch.optim.lr_scheduler.MultiStepLR(opt_d, [cfg.lr_milestone], cfg.gamma)
    sched_g = torch.optim.lr_scheduler.MultiStepLR(opt_g, [cfg.lr_milestone], cfg.gamma)
    if not fine_tune:
        if k == 0:
            noise_amp.append(1.0)
        else:
            noise_amp.append(0.0)
            with torch.no_grad():
                rec = G(fixed_noise, shapes, noise_amp)
            # sigma_k = noise_amp_init * RMSE(G(fixed noise | amp_k = 0), x_k)
            noise_amp[-1] = cfg.noise_amp * torch.sqrt(F.mse_loss(rec, reals[k])).item()
    source = reals[0] if source is None else source
    # the networks and every image they see in one memory layout (singan.tuning)
    G.to(memory_format=layout), D.to(memory_format=layout)
    return StageState(k, G, D, opt_g, opt_d, sched_g, sched_d, to_layout(reals[k], layout),
                      shapes, fixed_noise, noise_amp, cfg, source, noise_gen, choice_gen,
                      augment_source=not fine_tune,
                      autocast=autocast_context(device, cfg.amp),
                      scaler_d=grad_scaler(device, cfg.amp), scaler_g=grad_scaler(device, cfg.amp),
                      layout=layout, rec_noise=[to_layout(z, layout) for z in fixed_noise])


def train_iteration(state: StageState) -> dict:
    """One iteration of stage k: Dsteps critic steps, then one generator gradient with Gsteps
    optimizer steps. Returns the losses as (device) tensors, without synchronising."""
    G, D, cfg, real = state.G, state.D, state.cfg, state.real
    noise = draw_noise(state)
    scaler_d, scaler_g = state.scaler_d, state.scaler_g

    # The reference runs G(noise) in every D step (under no_grad but for the last, whose graph
    # the G update backpropagates through). Noise and G are the same in all D steps, so every
    # step's fake is this one image: we compute it once, with its graph (the same result; only
    # G's BatchNorm running statistics, which nothing uses, see fewer updates).
    with state.autocast():
        fake = G(noise, state.shapes, state.noise_amp)               # [1, 3, h_k, w_k]

    # (1) Update D: maximise D(x) - D(G(z)) - gradient penalty (WGAN-GP).
    for _ in range(cfg.Dsteps):
        D.zero_grad(set_to_none=True)
        with state.autocast():
            d_real = D(real)
            d_fake = D(fake.detach())
            gp = gradient_penalty(D, real, fake, cfg.lambda_grad, state.noise_gen)
            err_d = critic_loss(d_real, d_fake) + gp
        scaler_d.scale(err_d).backward()
        scaler_d.step(state.opt_d)
        scaler_d.update()

    # (2) Update G: minimise -D(G(z)) + alpha * ||G(fixed noise) - x_k||^2. The reference's
    # backward also fills D's gradients, which the next D step zeroes: we skip that work.
    D.requires_grad_(False)
    with state.autocast():
        err_g = generator_adversarial_loss(D(fake))
        if cfg.alpha != 0:
            rec = G(state.rec_noise, state.shapes, state.noise_amp)
            rec_loss = reconstruction_loss(rec.float(), real, cfg.alpha)
        else:
            rec_loss = torch.zeros((), device=real.device)
    G.zero_grad(set_to_none=True)
    scaler_g.scale(err_g + rec_loss).backward()
    D.requires_grad_(True)
    # Reference behaviour: Gsteps (3) Adam steps on the one gradient computed above.
    _steps_on_one_gradient(state.opt_g, scaler_g, cfg.Gsteps)

    state.sched_d.step()
    state.sched_g.step()
    return {"errD": err_d.detach(), "errG": err_g.detach(), "rec": rec_loss.detach(),
            "D_real": d_real.detach().mean(), "D_fake": d_fake.detach().mean(),
            "fake": fake.detach()}


def _steps_on_one_gradient(optimizer, scaler: torch.amp.GradScaler, steps: int) -> None:
    """`steps` optimizer steps on the gradient already computed. Under fp16 loss scaling the
    gradient is unscaled once and all the steps are skipped when it overflowed (a GradScaler
    steps an optimizer once per update); this check costs a host synchronisation, fp16 only."""
    if not scaler.is_enabled():
        for _ in range(steps):
            optimizer.step()
        return
    scaler.unscale_(optimizer)
    grads = [p.grad for group in optimizer.param_groups for p in group["params"]
             if p.grad is not None]
    if bool(torch.stack([g.isfinite().all() for g in grads]).all()):
        for _ in range(steps):
            optimizer.step()
    scaler.update()


@dataclass
class StageResult:
    """What training one stage produced (for the stage folder)."""
    fake: torch.Tensor                 # last fake sample, [1, 3, h, w]
    reconstruction: torch.Tensor       # G(fixed noise), [1, 3, h, w]
    losses: dict                       # name -> [niter] float tensor (CPU)
    discriminator: Discriminator       # the stage's critic


# ---- ConSinGAN in the stage driver --------------------------------------------------------------

def save_stage_files(folder: Path, k: int, G: GrowingGenerator, D: Discriminator,
                     fixed_noise: torch.Tensor, real: torch.Tensor, result: StageResult) -> None:
    """The reference's per-stage files (netG.pth, netD.pth, the stage's fixed noise) as state
    dicts and tensors, the real image, a fake sample, the reconstruction and the losses."""
    stage_dir = folder / str(k)
    save_torch(stage_dir / "netG.pth", {n: v.detach().cpu() for n, v in G.state_dict().items()})
    save_torch(stage_dir / "netD.pth", {n: v.detach().cpu() for n, v in D.state_dict().items()})
    save_torch(stage_dir / "fixed_noise.pth", fixed_noise.detach().cpu())
    save_image(stage_dir / "real_scale.png", real)
    save_image(stage_dir / "fake_sample.png", result.fake)
    save_image(stage_dir / "reconstruction.png", result.reconstruction)
    save_torch(stage_dir / "losses.pth", result.losses)
    plot_losses(stage_dir / "losses.png", result.losses, k)


STAGE_FILES = ("netG.pth", "netD.pth", "fixed_noise.pth", "real_scale.png", "fake_sample.png",
               "reconstruction.png", "losses.pth", "losses.png")


def plan_for(height: int, width: int, cfg: ConSinGANConfig) -> StagePlan:
    """The stage schedule of a height x width image (as methods/singan/train.py's plan_for)."""
    return plan_stages(height, width, cfg.train_stages, cfg.min_size,
                       cfg.max_size, harmonization=cfg.train_mode == "harmonization",
                       min_input=receptive_field(cfg.num_layer, cfg.ker_size))


def estimated_model_bytes(plan: StagePlan, cfg: ConSinGANConfig) -> int:
    """About how much disk a model folder needs while it is trained: the per-stage files
    (netG.pth holds the generator as grown so far) plus model.pth, rewritten beside its
    previous copy."""
    with torch.device("meta"):   # counts parameters without allocating them
        g_body = sum(t.numel() for t in build_generator(cfg, 2).state_dict().values()) - \
            sum(t.numel() for t in build_generator(cfg, 1).state_dict().values())
        g_rest = sum(t.numel() for t in build_generator(cfg, 1).state_dict().values()) - g_body
        d = sum(t.numel() for t in build_discriminator(cfg).state_dict().values())
    total = 0
    for k, (h, w) in enumerate(plan.shapes):
        values = g_rest + (k + 1) * g_body + 2 * d + cfg.nfc * (h + 8) * (w + 8) + 6 * h * w
        total += 4 * (values + 5 * cfg.niter) + 3 * 3 * h * w + 100_000  # PNGs and the plot
    return 3 * total


class ConSinGANTrainer(TrainerDefaults):
    """ConSinGAN's part of the stage driver (singan.driver.train_stages): the generator grown
    so far, its fixed noise and noise amplitudes, the critics, and one stage's game at a time."""
    method, unit, stage_files = "consingan", "stage", STAGE_FILES

    def __init__(self, image: torch.Tensor, cfg: ConSinGANConfig,
                 plan: Optional[StagePlan] = None, low_memory: Optional[bool] = None,
                 cuda_graphs: Optional[bool] = None):
        if cuda_graphs:
            raise SinGANError("--cuda_graphs is SinGAN's replayed training step; ConSinGAN has "
                              "none yet (leave it out)")
        if low_memory:
            raise SinGANError("--low_memory is SinGAN's lean step; ConSinGAN has none yet (lower "
                              "--max_size instead)")
        self.low_memory = False
        self.cfg = cfg
        self.plan = plan or plan_for(image.shape[2], image.shape[3], cfg)
        self.reals = build_stage_reals(image, self.plan)
        self.device = image.device
        self.G: Optional[GrowingGenerator] = None
        self.discriminators: List[dict] = []      # state dicts (CPU) of the finished stages
        self.fixed_noise: List[torch.Tensor] = []
        self.noise_amp: List[float] = []

    @property
    def num_done(self) -> int:
        return len(self.discriminators)

    def stage_cost(self, k: int) -> float:
        """One iteration's work at stage k: the generator's passes run every body up to k,
        each at its stage's size, and the critic's run at stage k's (multiply-adds)."""
        cfg, shapes = self.cfg, self.plan.shapes
        body = [conv_macs(h, w, cfg.nfc, cfg.num_layer + 2, cfg.ker_size) for h, w in shapes]
        return sum(body[:k + 1]) + body[k]

    def estimated_bytes(self) -> int:
        return estimated_model_bytes(self.plan, self.cfg)

    def step_bytes(self, k: int, low_memory: bool = False) -> int:
        """Stage k's training step at its peak (singan.resources' arithmetic, from SinGAN's
        measured step: ConSinGAN's trains train_depth bodies of one width at once)."""
        batched = self.device.type != "cpu"
        need = training_step_bytes(*self.plan.shapes[k], self.cfg.nfc, self.cfg.nfc, batched)
        return int(need * (1 + self.cfg.train_depth) / 2)

    def saved_config(self, ckpt: dict) -> dict:
        return asdict(ConSinGANConfig.from_dict(ckpt["config"]))

    def load(self, ckpt: dict) -> None:
        if ckpt["scales"]:
            self.G = generator_from_checkpoint(ckpt).to(self.device)
            self.discriminators = [s["D"] for s in ckpt["scales"]]
            self.fixed_noise = [s["fixed_noise"].to(self.device) for s in ckpt["scales"]]
            self.noise_amp = [s["noise_amp"] for s in ckpt["scales"]]

    def begin_stage(self, k: int, seed: int) -> StageState:
        cfg = self.cfg
        with torch.random.fork_rng(devices=[]):   # conv biases use torch's default init
            torch.manual_seed(scale_seed(seed, k, 0))
            if self.G is None:
                self.G = build_generator(cfg)
                init_weights(self.G)
                self.G.to(self.device)
            else:
                self.G.grow()               # the new body starts as a copy of the newest one
            D = build_discriminator(cfg)
            init_weights(D)
        if self.discriminators:             # warm start from the previous stage's critic
            D.load_state_dict(self.discriminators[-1])
        D.to(self.device)
        noise_gen = torch.Generator(device=self.device).manual_seed(scale_seed(seed, k, 1))
        choice_gen = torch.Generator().manual_seed(scale_seed(seed, k, 2))
        return make_stage(k, self.G, D, self.reals, self.fixed_noise, self.noise_amp, cfg,
                          noise_gen, choice_gen, layout=self.run_layout())

    def stage_label(self, k: int) -> str:
        return f"stage [{k}/{self.plan.stop_scale}]"

    def stage_parameters(self, result: StageResult):
        return self.G.parameters()

    def stage_noise_amp(self, k: int, result: StageResult) -> float:
        return self.noise_amp[k]

    def stage_summary(self, k: int, result: StageResult, seconds: float) -> str:
        h, w = self.plan.shapes[k]
        return (f"stage {k}/{self.plan.stop_scale}: {h} x {w}, noise_amp "
                f"{self.noise_amp[k]:.4f}, {seconds:.1f} s")

    def add(self, k: int, result: StageResult) -> None:
        self.discriminators.append({n: v.detach().cpu()
                                    for n, v in result.discriminator.state_dict().items()})

    def drop(self, k: int) -> None:
        del self.discriminators[k:]

    def save_stage_files(self, folder: Path, k: int, result: StageResult) -> None:
        save_stage_files(folder, k, self.G, result.discriminator, self.fixed_noise[k],
                         self.reals[k], result)

    def checkpoint(self, info: dict, extra: Optional[dict] = None) -> dict:
        done = self.num_done
        return checkpoint_dict(self.G, self.discriminators, self.fixed_noise[:done],
                               self.noise_amp[:done], self.reals, self.cfg, self.plan, info,
                               extra)

    def model(self, info: dict) -> ConSinGAN:
        done = self.num_done
        return ConSinGAN(self.G, self.fixed_noise[:done], self.noise_amp[:done], self.reals,
                         self.cfg, self.plan, info)


# ---- fine-tuning (harmonization, editing) -------------------------------------------------------

class FineTuneTrainer(ConSinGANTrainer):
    """The last stage of a trained harmonization/editing model retrained with the naive image
    (`naive`, [1, 3, h_0, w_0] at stage 0's size, on the training device) as stage 0's input,
    as the reference's --fine_tune: the model's fixed noise and noise amplitudes are kept, the
    last train_depth bodies (and the head, while stages < train_depth) train again, the last
    stage's critic continues. The stage driver writes it as a complete model into another
    folder; the source is never touched."""
    retrains, retrain_name = True, "fine-tuned model"

    def __init__(self, source: dict, naive: torch.Tensor, niter: Optional[int] = None,
                 seed: int = 0, source_folder=None, naive_name: str = ""):
        cfg = ConSinGANConfig.from_dict(source["config"])
        self.cfg = replace(cfg, niter=niter) if niter is not None else cfg
        self.plan = plan_from_dict(source["plan"])
        self.device = naive.device
        self.reals = [r.to(self.device) for r in source["reals"]]
        self.naive = naive
        self.source_seed = source.get("seed", seed)
        self.tuned = {"from": str(source_folder or ""), "naive_img": naive_name,
                      "niter": self.cfg.niter, "seed": seed}
        self.G = None
        self.low_memory = False
        self.load(source)
        self._replaced = None

    def stages_to_train(self) -> List[int]:
        return [self.plan.stop_scale]

    def reusable(self, ckpt: dict) -> bool:
        return ckpt.get("fine_tuned") == self.tuned

    def run_record(self) -> dict:
        return {"fine_tuned": self.tuned}

    def begin_stage(self, k: int, seed: int) -> StageState:
        D = build_discriminator(self.cfg)
        D.load_state_dict(self.discriminators[k])
        D.to(self.device)
        noise_gen = torch.Generator(device=self.device).manual_seed(scale_seed(seed, k, 11))
        choice_gen = torch.Generator().manual_seed(scale_seed(seed, k, 12))
        return make_stage(k, self.G, D, self.reals, self.fixed_noise, self.noise_amp, self.cfg,
                          noise_gen, choice_gen, source=self.naive, fine_tune=True,
                          layout=self.run_layout())

    def stage_summary(self, k: int, result: StageResult, seconds: float) -> str:
        return (f"fine-tuned stage {k}/{self.plan.stop_scale} on "
                f"{self.tuned['naive_img'] or 'the naive image'}: {seconds:.1f} s")

    def add(self, k: int, result: StageResult) -> None:
        self._replaced = self.discriminators[k]
        self.discriminators[k] = {n: v.detach().cpu()
                                  for n, v in result.discriminator.state_dict().items()}

    def drop(self, k: int) -> None:
        self.discriminators[k] = self._replaced

    def save_stage_files(self, folder: Path, k: int, result: StageResult) -> None:
        super().save_stage_files(folder, k, result)
        save_image(folder / "naive_input.png", self.naive)

    def checkpoint(self, info: dict, extra: Optional[dict] = None) -> dict:
        return super().checkpoint(info, {**(extra or {}), "seed": self.source_seed,
                                         "fine_tuned": self.tuned})

    def model(self, info: dict) -> ConSinGAN:
        model = super().model(info)
        model.fine_tuned = self.tuned
        return model


def fine_tune(ckpt: dict, naive: torch.Tensor, folder, niter: Optional[int] = None,
              source_folder=None, naive_name: str = "",
              run: RunOptions = RunOptions()) -> ConSinGAN:
    """Fine-tune a trained harmonization/editing model (model.pth dict `ckpt`) on a naive
    image into `folder` (see FineTuneTrainer), through the stage driver: lock, checks,
    checksummed atomic save, progress events and should_stop as any training (`run`: its
    seed, force, log and callbacks)."""
    trainer = FineTuneTrainer(ckpt, naive, niter, run.seed, source_folder, naive_name)
    return train_stages(trainer, folder, run, ckpt.get("image", {}))
