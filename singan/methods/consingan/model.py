"""A trained ConSinGAN and every way of drawing from it (SPEC sections 7, 8 and 10).

:class:`ConSinGAN` holds the growing generator, the fixed reconstruction noise, the noise
amplitudes and the real images per stage. It implements the TrainedModel interface
(singan.interface) as SinGAN's TrainedPyramid does: ``sample`` (random samples, arbitrary
sizes), ``generate`` (an image injected at stage 0: harmonization and editing models),
``reconstruct`` and ``animate``; ``run_generator`` runs the generator on a given noise list.
"""
from dataclasses import asdict
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from ...checkpoint import envelope
from ...errors import SinGANError
from ...imresize import imresize_to_shape
from ...interface import ModelAnswers
from ...layers import noise_walk
from ...resources import (check_frames, check_injection, check_samples, draw_bytes, resize_bytes,
                          scaled_shapes, with_outputs)
from .hparams import ConSinGANConfig
from .models import GrowingGenerator, build_generator
from .pyramid import StagePlan


class ConSinGAN(ModelAnswers, nn.Module):
    """A (partly) trained ConSinGAN: its generator has one body per trained stage.

    fixed_noise[k] is stage k's reconstruction input (stage 0: the coarsest real image in
    generation/retarget/harmonization/editing, noise in animation); noise_amp[k] the std of the
    noise added at stage k; reals[k] the training image of stage k, [1, 3, h_k, w_k].
    """
    method, display_name, unit = "consingan", "ConSinGAN", "stage"
    ANIMATION_START_MIX = 0.01   # the walk starts at z_{-1} = 0.99 z_fixed + 0.01 w (reference)

    def __init__(self, generator: GrowingGenerator, fixed_noise: Sequence[torch.Tensor],
                 noise_amp: Sequence[float], reals: Sequence[torch.Tensor],
                 hparams: ConSinGANConfig, plan: Optional[StagePlan] = None,
                 info: Optional[dict] = None):
        super().__init__()
        self.generator = generator.requires_grad_(False).eval()
        self.fixed_noise = [z.detach() for z in fixed_noise]
        self.noise_amp = [float(a) for a in noise_amp]
        self.reals = [r.detach() for r in reals]   # every planned stage's
        self.hparams = hparams
        self.config = asdict(hparams)       # a plain dict, as TrainedPyramid.config
        self.plan = plan
        self.scale_factor = plan.scale_factor if plan is not None else None
        self.info = dict(info or {})
        self.folder = None        # the model folder it was loaded from or trained into
        self.fine_tuned = None    # what it was fine-tuned on (fine_tune), if it was

    # ---- bookkeeping -------------------------------------------------------------------------
    @property
    def num_scales(self) -> int:
        """Number of trained stages (the name generic SinGAN code uses)."""
        return len(self.noise_amp)

    @property
    def train_mode(self) -> str:
        return self.hparams.train_mode

    @property
    def injection_scales(self) -> range:
        """The stages an image can be injected at (generate): stage 0, in harmonization and
        editing models; none in the others, whose stage 0 takes noise."""
        return range(0, 1) if self.hparams.image_input else range(0)

    @property
    def sample_start_scales(self) -> range:
        """Stage 0 only: one generator runs all stages."""
        return range(1)

    @property
    def output_tag(self) -> str:
        """The model folder's name: ConSinGAN's outputs never mix with SinGAN's, nor one
        train mode's with another's."""
        return self.folder.resolve().name if self.folder is not None else self.method

    def mode_text(self) -> str:
        return f" ({self.train_mode})"

    def unsupported(self, application: str) -> Optional[str]:
        mode = self.train_mode
        if application in ("injection", "fine_tune") and not self.hparams.image_input:
            return (f"this is a ConSinGAN {mode} model, whose first stage takes noise: "
                    "injecting an image needs one trained with --train_mode harmonization or "
                    "editing")
        if application == "animation" and mode != "animation":
            return (f"this is a ConSinGAN {mode} model; animation needs one trained with "
                    "--train_mode animation")
        if application == "quantised_paint":
            return ("--quantization_flag retrains a scale of a SinGAN model; this is a "
                    "ConSinGAN model (paint without it, or use a SinGAN model)")
        if application == "sr":
            return ("super-resolution applies a SinGAN model's finest generator; this is a "
                    "ConSinGAN model (train one with SR.py)")
        return None

    @property
    def device(self) -> torch.device:
        return self.reals[0].device

    def to(self, device):  # keeps the plain-tensor lists in step with the module
        super().to(device)
        self.fixed_noise = [z.to(device) for z in self.fixed_noise]
        self.reals = [r.to(device) for r in self.reals]
        return self

    def train(self, mode: bool = True):
        """The generator stays frozen in eval mode whatever is asked (it is trained)."""
        return super().train(False)

    def shape(self, k: int) -> Tuple[int, int]:
        return tuple(self.reals[k].shape[2:])

    def stage_shapes(self, scale_v: float = 1.0, scale_h: float = 1.0) -> List[Tuple[int, int]]:
        """Each stage's (h, w), scaled for arbitrary sizes.

        Reference behaviour: ConSinGAN's evaluation scales the shapes with int() (truncation).
        """
        return [(int(h * scale_v), int(w * scale_h)) for h, w in map(self.shape,
                                                                       range(self.num_scales))]

    # ---- noise -------------------------------------------------------------------------------
    def noise(self, num: int, shapes: Sequence[Tuple[int, int]], generator=None,
              stage_zero: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
        """Fresh N(0, 1) noise for every stage: [num, 3, h_0, w_0], then [num, nfc, h_k + 2e,
        w_k + 2e] (e = num_layer with edge upsampling, else 0). `stage_zero` replaces stage 0's
        noise (harmonization and editing feed an image there)."""
        out = []
        for k, (h, w) in enumerate(shapes):
            if k == 0 and stage_zero is not None:
                out.append(stage_zero.expand(num, -1, -1, -1))
                continue
            c, nh, nw = self.generator.noise_shape(k, h, w)
            out.append(torch.randn(num, c, nh, nw, device=self.device, generator=generator))
        return out

    def default_stage_zero(self, num: int, shape: Tuple[int, int], generator=None):
        """Stage 0's input for random samples: noise in generation/retarget/animation; in
        harmonization/editing, which always start from an image, the coarsest real image
        (resized to `shape`; editing adds noise_scaling * N(0, 1) as in its training)."""
        if not self.hparams.image_input:
            return None
        image = self.reals[0]
        if tuple(shape) != self.shape(0):
            image = imresize_to_shape(image, shape)
        image = image.expand(num, -1, -1, -1)
        if self.train_mode == "editing":
            image = image + self.hparams.noise_scaling * torch.randn(
                image.shape, device=self.device, generator=generator)
        return image

    # ---- generation --------------------------------------------------------------------------
    @torch.no_grad()
    def run_generator(self, noise: List[torch.Tensor], shapes: Optional[Sequence] = None,
                      noise_amp: Optional[Sequence[float]] = None) -> torch.Tensor:
        """G(noise, shapes, noise_amp): [N, 3, h, w] at the last stage's (scaled) size."""
        shapes = list(shapes) if shapes is not None else self.stage_shapes()
        if len(noise) != self.num_scales or len(shapes) != self.num_scales:
            raise SinGANError(f"the model has {self.num_scales} stages; got {len(noise)} noise "
                              f"maps and {len(shapes)} shapes")
        return self.generator(noise, shapes, self.noise_amp if noise_amp is None else noise_amp)

    def reconstruct(self) -> torch.Tensor:
        """G(fixed noise): the model's reconstruction of the training image, [1, 3, H, W]."""
        return self.run_generator(self.fixed_noise)

    def sample(self, num_samples: int = 1, gen_start_scale: int = 0, scale_v: float = 1.0,
               scale_h: float = 1.0, noise: Optional[List[torch.Tensor]] = None,
               generator: Optional[torch.Generator] = None, batch_size: Optional[int] = None,
               clamp: Optional[bool] = None, exact: Optional[bool] = None) -> torch.Tensor:
        """Random samples, [num_samples, 3, H, W] in [-1, 1], as TrainedPyramid.sample.

        scale_v / scale_h give arbitrary sizes (each stage's shape and noise scaled). `noise`,
        when given, is the full noise list (one tensor per stage, [num_samples, C, h, w]).
        gen_start_scale is SinGAN's: ConSinGAN has no per-scale generators to start from, so
        only 0 is accepted. The output is the generator's tanh, inside [-1, 1] already:
        clamp=True changes nothing. exact is always true (nothing is folded).
        """
        if gen_start_scale != 0:
            raise SinGANError(f"gen_start_scale {gen_start_scale}: a ConSinGAN model has one "
                              "generator for all stages and samples from stage 0 only; use 0")
        self.check_sample_args(num_samples, scale_v, scale_h)
        shapes = self.stage_shapes(scale_v, scale_h)
        if noise is None:
            batch_size = batch_size or self.default_batch_size(scale_v * scale_h)
        check_samples(self, num_samples, scale_v, scale_h, batch_size)
        if noise is not None:
            return self.run_generator([z.to(self.device) for z in noise], shapes)
        chunks = []
        for start in range(0, num_samples, batch_size):
            num = min(batch_size, num_samples - start)
            zero = self.default_stage_zero(num, shapes[0], generator)
            chunks.append(self.run_generator(self.noise(num, shapes, generator, zero), shapes))
        return torch.cat(chunks)

    @torch.no_grad()
    def generate(self, start_image: torch.Tensor, start_scale: int = 0, num_samples: int = 1,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """An image injected at stage 0 (harmonization and editing models, SPEC 10):
        [num_samples, 3, H, W] at the training size. `start_image` ([1, 3, h, w], any size,
        usually the training image's) is resized to stage 0's shape (editing adds
        noise_scaling * N(0, 1)); the later stages use the fixed noise, as the reference's
        evaluation."""
        self.require("injection")
        if start_scale != 0:
            raise SinGANError(f"start scale {start_scale}: a ConSinGAN model takes the image at "
                              "stage 0 only; use 0")
        check_injection(self, num_samples)
        stage_zero = imresize_to_shape(start_image.to(self.device), self.shape(0))
        stage_zero = stage_zero.expand(num_samples, -1, -1, -1)      # [N, 3, h_0, w_0]
        if self.train_mode == "editing":
            stage_zero = stage_zero + self.hparams.noise_scaling * torch.randn(
                stage_zero.shape, device=self.device, generator=generator)
        rest = [z.expand(num_samples, *z.shape[1:]) for z in self.fixed_noise[1:]]
        return self.run_generator([stage_zero] + rest)

    @torch.no_grad()
    def animate(self, alpha: float = 0.1, beta: float = 0.9, start_scale: int = 0,
                num_frames: int = 100, generator: Optional[torch.Generator] = None,
                batch_size: Optional[int] = None) -> torch.Tensor:
        """Frames of a noise_walk around every stage's fixed noise (SPEC 8); stages below
        start_scale keep the fixed noise. Returns [num_frames, 3, H, W]."""
        if not 0 <= start_scale < self.num_scales:
            raise SinGANError(f"start_scale must be between 0 and {self.num_scales - 1}, "
                              f"got {start_scale}")
        self.require("animation")
        check_frames(self, num_frames, batch_size)
        shapes = self.stage_shapes()
        walks = []                                                   # per stage [T, C, h, w]
        for k, fixed in enumerate(self.fixed_noise):
            if k < start_scale:
                walks.append(fixed.expand(num_frames, *fixed.shape[1:]))
                continue
            c, h, w = self.generator.noise_shape(k, *shapes[k])
            fresh = torch.randn(num_frames + 1, c, h, w, device=self.device, generator=generator)
            walks.append(noise_walk(fixed, fresh, alpha, beta, self.ANIMATION_START_MIX))
        batch = batch_size or self.default_batch_size()
        return torch.cat([self.run_generator([z[i:i + batch] for z in walks])
                          for i in range(0, num_frames, batch)])

    def drawing_bytes(self, num: int, scale_v: float = 1.0, scale_h: float = 1.0,
                      batch: Optional[int] = None) -> int:
        """Peak bytes of drawing `num` outputs at scale_v x scale_h in batches of `batch`: the
        last two stages' features at once (untiled) and the resize between them, plus the
        outputs kept (singan.resources' arithmetic)."""
        shapes = scaled_shapes(self, scale_v, scale_h)
        batch = min(num, batch or num)
        edge = self.generator.num_layer + 1
        work = sum(draw_bytes(batch, self.generator.nfc, h, w, edge, tiled=False)
                   for h, w in shapes[-2:])
        if len(shapes) > 1:
            work += 2 * resize_bytes(shapes[-2], shapes[-1])
        return with_outputs(work, num, shapes[-1])

    def noise_values(self) -> int:
        """Noise values of one animation frame, over every trained stage (stage 0: 3 channels,
        later stages nfc)."""
        return sum((self.generator.nfc if k else 3) * (h + 12) * (w + 12)
                   for k, (h, w) in enumerate(scaled_shapes(self)))

    def default_batch_size(self, area_factor: float = 1.0, budget_bytes: float = 1.0e9) -> int:
        """Samples per batch so that the finest stage's activations stay within a budget."""
        h, w = self.shape(self.num_scales - 1)
        e = 2 * self.generator.num_layer + 2
        per_sample = 4 * self.generator.nfc * (h + e) * (w + e) * 4 * area_factor
        return max(1, int(budget_bytes // per_sample))

    def check_sample_args(self, num_samples, scale_v, scale_h) -> None:
        if num_samples < 1:
            raise SinGANError(f"num_samples must be at least 1, got {num_samples}")
        if not (scale_v > 0 and scale_h > 0):
            raise SinGANError(f"scale_v and scale_h must be positive, got {scale_v}, {scale_h}")
        h0, w0 = self.stage_shapes(scale_v, scale_h)[0]
        if h0 < 1 or w0 < 1:
            raise SinGANError(f"scale_v / scale_h too small for the coarsest stage "
                              f"({self.shape(0)[0]} x {self.shape(0)[1]})")


# ---- checkpoints (STYLE habit 4) ------------------------------------------------------------

def checkpoint_dict(generator: GrowingGenerator, discriminators: Sequence[dict],
                    fixed_noise: Sequence[torch.Tensor], noise_amp: Sequence[float],
                    reals: Sequence[torch.Tensor], hparams: ConSinGANConfig, plan: StagePlan,
                    info: dict, extra: Optional[dict] = None) -> dict:
    """{format_version, method, config, plan, image, generator, scales: [{D, fixed_noise,
    noise_amp, shape}], reals, ...}: tensors and plain data only (weights_only loadable).
    `generator` holds one body per finished stage, so training resumes after the last one."""
    scales = [{"D": {k: v.detach().cpu() for k, v in d.items()}, "fixed_noise": z.detach().cpu(),
               "noise_amp": float(a), "shape": list(r.shape[2:])}
              for d, z, a, r in zip(discriminators, fixed_noise, noise_amp, reals)]
    state = {k: v.detach().cpu() for k, v in generator.state_dict().items()}
    return envelope("consingan", asdict(hparams), asdict(plan), info, scales, reals,
                    {"generator": state, **(extra or {})})


def plan_from_dict(d: dict) -> StagePlan:
    return StagePlan(d["stop_scale"], d["scale1"], d["scale_factor"], tuple(d["real_shape"]),
                     list(d["level_scales"]), [tuple(s) for s in d["shapes"]])


def generator_from_checkpoint(ckpt: dict) -> GrowingGenerator:
    hparams = ConSinGANConfig.from_dict(ckpt["config"])
    generator = build_generator(hparams, len(ckpt["scales"]))
    generator.load_state_dict(ckpt["generator"])
    return generator


def consingan_from_checkpoint(ckpt: dict, device="cpu") -> ConSinGAN:
    """Rebuild the trained model from a model.pth dict (see checkpoint_dict)."""
    model = ConSinGAN(generator_from_checkpoint(ckpt),
                      [s["fixed_noise"] for s in ckpt["scales"]],
                      [s["noise_amp"] for s in ckpt["scales"]], ckpt["reals"],
                      ConSinGANConfig.from_dict(ckpt["config"]), plan_from_dict(ckpt["plan"]),
                      ckpt.get("image"))
    model.fine_tuned = ckpt.get("fine_tuned")
    return model.to(device)
