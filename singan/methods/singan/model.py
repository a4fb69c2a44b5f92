"""A trained SinGAN pyramid and every way of drawing through it (SPEC sections 6 and 7).

One object, :class:`TrainedPyramid`, holds the frozen generators, their reconstruction noise
z_opt, the noise amplitudes and the real images per scale. It implements the TrainedModel
interface (singan.interface) that ConSinGAN's model implements too: random samples at any
start scale and at arbitrary sizes (``sample``), injection of an image at scale n
(``generate``: harmonization, editing, paint-to-image), the reconstruction, animation frames.
Training uses ``draw`` (the coarser scales' output as input of the scale being trained), SR
and the rest ``synthesize`` (the pyramid run from any scale on any noise).
"""
import copy
from dataclasses import asdict
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ...checkpoint import envelope
from ...errors import SinGANError
from ...imresize import imresize
from ...interface import ModelAnswers
from ...layers import noise_walk, pad
from ...resources import (check_frames, check_injection, check_samples, draw_tile,
                          pyramid_draw_bytes, scaled_shapes, with_outputs)
from .hparams import SinGANConfig
from .models import Generator


def spatial_noise(num: int, channels: int, h: int, w: int, device, generator=None):
    """N(0, 1) noise [num, 3, h, w]; with channels == 1 one map is broadcast to 3 channels
    (the reference's noise at the coarsest scale)."""
    z = torch.randn(num, channels, h, w, device=device, generator=generator)
    return z.expand(num, 3, h, w) if channels == 1 else z


class TrainedPyramid(ModelAnswers, nn.Module):
    """Frozen generators G_0..G_{k-1} with their z_opt, noise_amp, and the reals of all scales.

    z_opt[i] is [1, 3, h_i + 2p, w_i + 2p] (padded); reals[i] is [1, 3, h_i, w_i]; while a
    pyramid is being trained, len(generators) < len(reals).
    """
    method, display_name, unit = "singan", "SinGAN", "scale"
    ANIMATION_START_MIX = 0.05   # the walk starts at z_{-1} = 0.95 z_opt + 0.05 w (reference)

    def __init__(self, generators: Sequence[nn.Module], z_opt: Sequence[torch.Tensor],
                 noise_amp: Sequence[float], reals: Sequence[torch.Tensor], scale_factor: float,
                 pad: int = 5, pad_noise: bool = True, config: Optional[dict] = None):
        super().__init__()
        self.generators = nn.ModuleList(generators)
        self.z_opt = list(z_opt)
        self.noise_amp = [float(a) for a in noise_amp]
        self.reals = list(reals)
        self.scale_factor = float(scale_factor)
        self.pad = pad
        self.pad_noise = pad_noise
        self.config = dict(config or {})
        self.folder = None   # the model folder it was loaded from or trained into
        self._drawing = {}   # n -> (G_n's identity and weights' versions, G_n for drawing)
        for g in self.generators:
            freeze(g)

    # ---- bookkeeping -------------------------------------------------------------------------
    @property
    def num_scales(self) -> int:
        """Number of trained scales."""
        return len(self.generators)

    @property
    def device(self) -> torch.device:
        return self.reals[0].device

    @property
    def hparams(self) -> SinGANConfig:
        """The typed training configuration (defaults where a reference import has none)."""
        return SinGANConfig.from_dict(self.config)

    @property
    def injection_scales(self) -> range:
        """The scales an image can be injected at (generate): 1..N; none in an animation
        model (its noise is not padded: generate says so)."""
        return range(1, self.num_scales) if self.pad_noise else range(0)

    @property
    def sample_start_scales(self) -> range:
        return range(self.num_scales)

    @property
    def output_tag(self) -> str:
        """'': SinGAN's outputs go where the reference writes them."""
        return ""

    def unsupported(self, application: str) -> Optional[str]:
        if application == "animation" and self.pad_noise:
            return ("animation needs a model trained for it (noise not zero-padded): train it "
                    "with animation.py")
        if application in ("injection", "quantised_paint") and not self.pad_noise:
            return ("this model was trained for animation (animation.py); injecting an image "
                    "needs the model that main_train.py trains")
        if application in ("injection", "quantised_paint") and self.num_scales < 2:
            return "the model has a single scale: injection needs at least two"
        if application == "fine_tune":
            return ("--fine_tune retrains a ConSinGAN harmonization/editing model; this is a "
                    "SinGAN model (harmonization.py and editing.py use it as it is)")
        if application == "evaluate":
            return ("the reference ConSinGAN's evaluation needs a ConSinGAN model; this is a "
                    "SinGAN model (use random_samples.py or the application scripts)")
        return None

    def to(self, device):  # keeps the plain-tensor lists in step with the modules
        super().to(device)
        self._drawing = {}
        self.z_opt = [z.to(device) for z in self.z_opt]
        self.reals = [r.to(device) for r in self.reals]
        return self

    def train(self, mode: bool = True):
        """The generators stay frozen in eval mode whatever is asked (they are trained)."""
        return super().train(False)

    def append(self, generator: nn.Module, z_opt: torch.Tensor, noise_amp: float) -> None:
        """Add a freshly trained scale (frozen and put in eval mode)."""
        self.generators.append(freeze(generator))
        self.z_opt.append(z_opt.detach())
        self.noise_amp.append(float(noise_amp))

    def shape(self, i: int):
        return tuple(self.reals[i].shape[2:])

    def _noise(self, num: int, scale: int, h: int, w: int, generator=None) -> torch.Tensor:
        """Fresh padded noise for scale `scale` at unpadded size h x w: [num, 3, h+2p, w+2p].

        Without noise padding (animation training) the map is drawn 2p larger instead.
        """
        channels = 1 if scale == 0 else 3
        if self.pad_noise:
            return pad(spatial_noise(num, channels, h, w, self.device, generator), self.pad)
        p2 = 2 * self.pad
        return spatial_noise(num, channels, h + p2, w + p2, self.device, generator)

    def _run(self, n: int, z: torch.Tensor, prev: torch.Tensor,
             exact: bool = False) -> torch.Tensor:
        """G_n(z, prev), by G_n's copy for drawing (see drawing_generator), in the channels-last
        layout that CPU convolution libraries run fastest forward-only (10-15% here).

        exact: by G_n itself. The folded copy differs from it by float rounding (~1e-6), and
        the reference's uint8 truncation inside every resize can turn a rare one of those
        differences into a whole 1/255 step that spreads through the finer scales; the
        unfolded network reproduces the reference's arithmetic.

        A pass whose activations would exceed singan.resources.DRAW_TILE_BYTES (a large
        sample, super-resolution) is made in overlapping tiles (run_tiled): the same pixels to
        float rounding (1e-6), with a tile's activations alive instead of the whole image's."""
        g = self.generators[n] if exact else self.drawing_generator(n)
        layout = torch.contiguous_format if exact else torch.channels_last
        margin = g.num_layer * (g.ker_size - 1) // 2
        h, w = z.shape[2] - 2 * margin, z.shape[3] - 2 * margin
        tile = draw_tile(z.shape[0], g.nfc, h, w, margin)
        if tile is None and exact:
            return g(z, prev)
        if tile is None:
            return g(z.contiguous(memory_format=layout), prev.contiguous(memory_format=layout))
        return run_tiled(g, z, prev, tile, margin, layout)

    def drawing_generator(self, n: int) -> nn.Module:
        """G_n for drawing: a channels-last copy with each BatchNorm (eval mode: a per-channel
        affine map) folded into the convolution before it, which saves the normalisation's
        pass over every activation (11% of sampling time here). The same maths up to float
        rounding (~1e-6). Made again whenever G_n's weights have changed."""
        g = self.generators[n]
        weight = g.tail[0].weight
        key = (id(g), weight.device, weight.dtype,
               tuple(t._version for t in g.state_dict().values()))
        if n not in self._drawing or self._drawing[n][0] != key:
            self._drawing[n] = (key, fold_batchnorm(g))
        return self._drawing[n][1]

    # ---- SPEC 6: drawing through the pyramid, for training -----------------------------------
    @torch.no_grad()
    def draw(self, k: int, mode: str = "rand", num: int = 1, generator=None,
             start: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The input of scale k made by G_0..G_{k-1}: [num, 3, h_k, w_k], unpadded.

        mode "rec" uses each scale's z_opt (the reconstruction), "rand" fresh noise. Each step:
        crop to reals[i], pad, G_i(noise_amp_i * z + padded, padded), imresize by 1/scale_factor,
        crop to reals[i+1]. Frozen generators are in eval mode, so samples in a batch are
        independent: the num draws are made as one batch.
        """
        x = start if start is not None else torch.zeros(1, 3, *self.shape(0), device=self.device)
        x = x.expand(num, -1, -1, -1)
        for i in range(k):
            h, w = self.shape(i)
            x = pad(x[:, :, :h, :w], self.pad)
            if mode == "rec":
                z = self.z_opt[i].expand(num, -1, -1, -1)
            else:
                z = self._noise(num, i, h, w, generator)
            x = self._run(i, self.noise_amp[i] * z + x, x)
            x = imresize(x, 1 / self.scale_factor)
            x = x[:, :, :self.shape(i + 1)[0], :self.shape(i + 1)[1]]
        return x

    # ---- SPEC 7: generation ------------------------------------------------------------------
    @torch.no_grad()
    def synthesize(self, num_samples: int = 1, start_scale: int = 0,
                   start_image: Optional[torch.Tensor] = None, gen_start_scale: int = 0,
                   scale_v: float = 1.0, scale_h: float = 1.0,
                   noise: Optional[List[torch.Tensor]] = None, generator=None,
                   end_scale: Optional[int] = None, exact: bool = False) -> torch.Tensor:
        """The reference's SinGAN_generate, batched over samples: [num_samples, 3, H, W].

        Starts at `start_scale` from `start_image` ([1 or N, 3, h, w] at that scale's size,
        default zeros of the (scaled) coarsest size) and runs up to the finest scale (or
        `end_scale`, inclusive). Per scale n: noise of size round((z_opt - 2p) * (scale_v,
        scale_h)) (1 channel broadcast at scale 0), or z_opt itself while n < gen_start_scale;
        the previous output is imresized by 1 / scale_factor, cropped to round(scale * reals[n]),
        padded, cropped to the noise size and bilinearly resized (align_corners) to it;
        output = G_n(noise_amp_n * z + prev, prev). `noise`, when given, holds one unpadded
        tensor per scale from start_scale on, [num_samples, C, h, w], instead of fresh noise.
        exact: run the generators unfolded (see _run).
        """
        last = self.num_scales - 1 if end_scale is None else end_scale
        x = None
        for n in range(start_scale, last + 1):
            z_opt = self.z_opt[n]
            nzx = round((z_opt.shape[2] - 2 * self.pad) * scale_v)
            nzy = round((z_opt.shape[3] - 2 * self.pad) * scale_h)
            if noise is not None:
                z = noise[n - start_scale].to(self.device)
                z = z.expand(num_samples, 3, *z.shape[2:]) if z.shape[1] == 1 else z
                z = pad(z, self.pad) if self.pad_noise else z
            else:
                z = self._noise(num_samples, n, nzx, nzy, generator)
            if n < gen_start_scale:
                z = z_opt.expand(num_samples, -1, -1, -1)
            if x is None:
                if start_image is None:
                    start = torch.zeros(1, 3, round(scale_v * self.shape(0)[0]),
                                        round(scale_h * self.shape(0)[1]), device=self.device)
                else:
                    start = start_image.to(self.device)
                prev = pad(start, self.pad).expand(num_samples, -1, -1, -1)
            else:
                prev = imresize(x, 1 / self.scale_factor)
                prev = prev[:, :, :round(scale_v * self.shape(n)[0]),
                            :round(scale_h * self.shape(n)[1])]
                prev = pad(prev, self.pad)[:, :, :z.shape[2], :z.shape[3]]
                if prev.shape[2:] != z.shape[2:]:
                    prev = F.interpolate(prev, size=z.shape[2:], mode="bilinear",
                                         align_corners=True)
            x = self._run(n, self.noise_amp[n] * z + prev, prev, exact)
        return x

    def reconstruct(self) -> torch.Tensor:
        """G(z_opt) through every trained scale: the model's reconstruction of the image."""
        return self.synthesize(1, gen_start_scale=self.num_scales)

    # ---- injection (harmonization, editing, paint-to-image; SPEC 8) --------------------------
    def injection_input(self, image: torch.Tensor, n: int) -> torch.Tensor:
        """The start image of scale n made from an image at the finest size: [1, 3, h_n, w_n].

            in_s = imresize(R, s ** (N - n + 1)) cropped to reals[n-1], imresize(., 1 / s)
                   cropped to reals[n]                     (s: the pyramid's scale factor)
        """
        last = len(self.reals) - 1
        s = self.scale_factor
        h, w = self.shape(n - 1)
        x = imresize(image, s ** (last - n + 1))[:, :, :h, :w]
        x = imresize(x, 1 / s)
        h, w = self.shape(n)
        return x[:, :, :h, :w]

    def check_injection_scale(self, n: int, option: str = "start_scale") -> None:
        """Injection needs a coarser scale below n: n in 1..N."""
        last = self.num_scales - 1
        if last < 1:
            raise SinGANError("the model has a single scale: injection needs at least two")
        if not 1 <= n <= last:
            raise SinGANError(f"{option} must be between 1 and {last} (the model's scales are "
                              f"0..{last}; injection needs a coarser scale below it), got {n}")

    @torch.no_grad()
    def generate(self, start_image: torch.Tensor, start_scale: int, num_samples: int = 1,
                 generator: Optional[torch.Generator] = None,
                 start_is_scaled: bool = False) -> torch.Tensor:
        """An image injected at scale `start_scale` (SPEC 8): [num_samples, 3, H, W] in
        [-1, 1], drawn in memory-bounded batches. `start_image` is [1, 3, H, W] at the training
        image's size (made into scale n's input by injection_input), or already scale n's
        input with start_is_scaled.

        Fix: the finest generator's output (tanh + the upsampled image) can leave [-1, 1]; the
        reference blends it unclamped with the mask, so the blend disagrees with the saved
        (clamped) output where the mask is partial. We clamp first.
        """
        self.require("injection")
        self.check_injection_scale(start_scale)
        check_injection(self, num_samples)
        start = start_image.to(self.device)
        if not start_is_scaled:
            start = self.injection_input(start, start_scale)
        batch = self.default_batch_size()
        return torch.cat([self.synthesize(min(batch, num_samples - i), start_scale=start_scale,
                                          start_image=start, generator=generator)
                          for i in range(0, num_samples, batch)]).clamp(-1, 1)

    # ---- animation (SPEC 8) ------------------------------------------------------------------
    @torch.no_grad()
    def animate(self, alpha: float = 0.1, beta: float = 0.9, start_scale: int = 0,
                num_frames: int = 100, generator: Optional[torch.Generator] = None,
                batch_size: Optional[int] = None) -> torch.Tensor:
        """The frames of one animation, [num_frames, 3, H, W] in [-1, 1]: at every scale from
        start_scale on, a noise_walk around z_opt (fresh noise one channel broadcast to three
        at scale 0); the scales below keep z_opt, so the coarse layout stays the image's."""
        last = self.num_scales - 1
        if not 0 <= start_scale <= last:
            raise SinGANError(f"--start_scale must be between 0 and {last} (the model's "
                              f"scales), got {start_scale}")
        self.require("animation")
        check_frames(self, num_frames, batch_size)
        noise = []                                                     # per scale [T, 3, h, w]
        for n, z_opt in enumerate(self.z_opt[:self.num_scales]):
            if n < start_scale:
                noise.append(z_opt.expand(num_frames, -1, -1, -1))
                continue
            h, w = z_opt.shape[2:]
            fresh = spatial_noise(num_frames + 1, 1 if n == 0 else 3, h, w, self.device,
                                  generator)
            noise.append(noise_walk(z_opt, fresh, alpha, beta, self.ANIMATION_START_MIX))
        batch = batch_size or self.default_batch_size()
        chunks = [self.synthesize(min(batch, num_frames - i),
                                  noise=[z[i:i + batch] for z in noise],
                                  gen_start_scale=start_scale)
                  for i in range(0, num_frames, batch)]
        return torch.cat(chunks).clamp(-1, 1)

    def sample(self, num_samples: int = 1, gen_start_scale: int = 0, scale_v: float = 1.0,
               scale_h: float = 1.0, noise: Optional[List[torch.Tensor]] = None,
               generator: Optional[torch.Generator] = None,
               batch_size: Optional[int] = None, clamp: Optional[bool] = None,
               exact: Optional[bool] = None) -> torch.Tensor:
        """Random samples, [num_samples, 3, H, W] in [-1, 1] (SPEC 7).

        gen_start_scale > 0 keeps the training image's reconstruction at the coarser scales;
        scale_v / scale_h give arbitrary sizes. Samples are drawn in batches of `batch_size`
        (default: all at once, or chunks that keep memory bounded at large sizes).
        The finest generator's output (tanh + the upsampled image) can leave [-1, 1] slightly;
        it is clamped, except when `noise` is given (clamp=None): then the raw output is
        returned, exactly what the reference's SinGAN_generate computes for that noise.
        exact (default: when `noise` is given) runs the generators as trained rather than
        with BatchNorm folded in, reproducing the reference's arithmetic (see _run).
        """
        self.check_sample_args(num_samples, gen_start_scale, scale_v, scale_h)
        if noise is None:
            batch_size = batch_size or self.default_batch_size(scale_v * scale_h)
        check_samples(self, num_samples, scale_v, scale_h, batch_size)
        exact = noise is not None if exact is None else exact
        if noise is not None:
            out = self.synthesize(num_samples, gen_start_scale=gen_start_scale, scale_v=scale_v,
                                  scale_h=scale_h, noise=noise, generator=generator,
                                  exact=exact)
        else:
            out = torch.cat([self.synthesize(min(batch_size, num_samples - i),
                                             gen_start_scale=gen_start_scale, scale_v=scale_v,
                                             scale_h=scale_h, generator=generator, exact=exact)
                             for i in range(0, num_samples, batch_size)])
        return out.clamp(-1, 1) if (clamp if clamp is not None else noise is None) else out

    def drawing_bytes(self, num: int, scale_v: float = 1.0, scale_h: float = 1.0,
                      batch: Optional[int] = None) -> int:
        """Peak bytes of drawing `num` outputs at scale_v x scale_h in batches of `batch`
        (default: all at once): a batch's pass up the pyramid (tiled where large), plus the
        outputs kept (singan.resources' arithmetic)."""
        shapes = scaled_shapes(self, scale_v, scale_h)
        work = pyramid_draw_bytes(min(num, batch or num), shapes,
                                  [g.nfc for g in self.generators], self.pad)
        return with_outputs(work, num, shapes[-1])

    def noise_values(self) -> int:
        """Noise values of one animation frame, over every trained scale."""
        return sum(3 * (h + 2 * self.pad + 2) * (w + 2 * self.pad + 2)
                   for h, w in scaled_shapes(self))

    def default_batch_size(self, area_factor: float = 1.0,
                           budget_bytes: Optional[float] = None) -> int:
        """Samples per batch so that the finest scale's activations stay within a budget:
        0.5 GB on a GPU; on a CPU about a last-level cache (48 MB), because batches whose
        activations outgrow the cache ran slower there: 50 samples at 188 x 250 took 24.3 s
        one by one and 26.8 s in batches of 6, while at 94 x 125 batches of 4 beat both 1
        and 46 (2.1 s vs 2.4 and 2.5)."""
        if budget_bytes is None:
            budget_bytes = 48e6 if self.device.type == "cpu" else 0.5e9
        h, w = self.shape(self.num_scales - 1)
        nfc = self.generators[-1].nfc
        per_sample = 4 * nfc * (h + 2 * self.pad) * (w + 2 * self.pad) * 3 * area_factor
        return max(1, int(budget_bytes // per_sample))

    def check_sample_args(self, num_samples, gen_start_scale, scale_v, scale_h) -> None:
        if num_samples < 1:
            raise SinGANError(f"num_samples must be at least 1, got {num_samples}")
        if not 0 <= gen_start_scale < self.num_scales:
            raise SinGANError(f"gen_start_scale must be between 0 and {self.num_scales - 1} "
                              f"(the model has {self.num_scales} scales), got {gen_start_scale}")
        if not (scale_v > 0 and scale_h > 0):
            raise SinGANError(f"scale_v and scale_h must be positive, got {scale_v}, {scale_h}")
        if gen_start_scale > 0 and (scale_v, scale_h) != (1, 1):
            raise SinGANError("gen_start_scale > 0 follows the training image's reconstruction, "
                              "which exists only at scale_v = scale_h = 1")
        h0, w0 = self.shape(0)
        if round(scale_v * h0) < 1 or round(scale_h * w0) < 1:
            raise SinGANError(f"scale_v / scale_h too small for the coarsest scale ({h0} x {w0})")


    # ---- checkpoints (STYLE habit 4) ---------------------------------------------------------
    def checkpoint_scales(self, discriminators) -> list:
        """model.pth's per-scale entries: {G, D, nfc, min_nfc, z_opt, noise_amp}."""
        return [{"G": {k: v.detach().cpu() for k, v in g.state_dict().items()},
                 "D": {k: v.detach().cpu() for k, v in d.state_dict().items()},
                 "nfc": g.nfc, "min_nfc": g.min_nfc, "z_opt": z.detach().cpu(),
                 "noise_amp": float(amp)}
                for g, d, z, amp in zip(self.generators, discriminators, self.z_opt,
                                        self.noise_amp)]

    @classmethod
    def from_checkpoint(cls, ckpt: dict, device="cpu") -> "TrainedPyramid":
        """Rebuild the trained pyramid from a model.pth dict (singan.checkpoint.envelope)."""
        cfg = SinGANConfig.from_dict(ckpt["config"], ckpt.get("plan"))
        generators = []
        for s in ckpt["scales"]:
            g = Generator(s["nfc"], s["min_nfc"], cfg.num_layer, cfg.ker_size)
            g.load_state_dict(s["G"])
            generators.append(g)
        pyramid = cls(generators, [s["z_opt"] for s in ckpt["scales"]],
                      [s["noise_amp"] for s in ckpt["scales"]], ckpt["reals"],
                      ckpt["scale_factor"], ckpt.get("pad", cfg.pad),
                      ckpt.get("pad_noise", cfg.pad_noise), asdict(cfg))
        return pyramid.to(device)


def run_tiled(g: nn.Module, z: torch.Tensor, prev: torch.Tensor, tile: int, margin: int,
              layout=torch.contiguous_format) -> torch.Tensor:
    """g(z, prev) in overlapping tiles of tile x tile output pixels: the same pixels (to
    float rounding) with a tile's activations alive instead of the whole image's.

    A frozen generator is a stack of valid convolutions and pointwise maps (BatchNorm in eval
    mode, LeakyReLU, tanh), so output pixel (i, j) depends only on the inputs
    [i, i + 2 margin] x [j, j + 2 margin]: a tile of output rows r0..r1 needs input rows
    r0..r1 + 2 margin, and G's central crop of prev picks prev's matching rows."""
    h, w = z.shape[2] - 2 * margin, z.shape[3] - 2 * margin
    out = None                                                       # [N, 3, h, w]
    for r0 in range(0, h, tile):
        r1 = min(h, r0 + tile)
        for c0 in range(0, w, tile):
            c1 = min(w, c0 + tile)
            window = (slice(None), slice(None), slice(r0, r1 + 2 * margin),
                      slice(c0, c1 + 2 * margin))
            part = g(z[window].contiguous(memory_format=layout),
                     prev[window].contiguous(memory_format=layout))
            if out is None:
                out = part.new_empty(z.shape[0], part.shape[1], h, w)
            out[:, :, r0:r1, c0:c1] = part
    return out


def checkpoint_dict(pyramid: TrainedPyramid, discriminators, config: dict, plan: dict,
                    image: dict, extra: Optional[dict] = None) -> dict:
    """A SinGAN model.pth: the shared envelope with the pyramid's per-scale entries and its
    geometry (scale_factor, pad, pad_noise)."""
    return envelope("singan", config, plan, image, pyramid.checkpoint_scales(discriminators),
                    pyramid.reals, {"scale_factor": pyramid.scale_factor, "pad": pyramid.pad,
                                    "pad_noise": pyramid.pad_noise, **(extra or {})})


def fold_batchnorm(generator: nn.Module) -> nn.Module:
    """A frozen channels-last copy of an eval-mode generator with every Conv2d -> BatchNorm2d
    pair (its ConvBlocks' conv and norm) fused into one Conv2d."""
    fused = copy.deepcopy(generator).eval()
    for block in fused.modules():
        conv, norm = getattr(block, "conv", None), getattr(block, "norm", None)
        if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
            block.conv, block.norm = fuse_conv_bn_eval(conv, norm), nn.Identity()
    return freeze(fused).to(memory_format=torch.channels_last)


def freeze(module: nn.Module) -> nn.Module:
    """No gradients, eval mode (BatchNorm uses its running statistics from now on)."""
    module.requires_grad_(False)
    return module.eval()
