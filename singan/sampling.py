"""A trained SinGAN pyramid and every way of drawing through it (SPEC sections 6 and 7).

One object, :class:`TrainedPyramid`, holds the frozen generators, their reconstruction noise
z_opt, the noise amplitudes and the real images per scale; its methods serve training
(``draw``: the coarser scales' output as input of the scale being trained), random samples at
any start scale and at arbitrary sizes (``sample``), and injection of an image at scale n
(``generate``), which harmonization, editing, paint-to-image and SR build on.
"""
import copy
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .errors import SinGANError
from .imresize import imresize


def pad(x: torch.Tensor, p: int) -> torch.Tensor:
    """Zero-pad H and W by p pixels on each side."""
    return F.pad(x, [p, p, p, p]) if p else x


def spatial_noise(num: int, channels: int, h: int, w: int, device, generator=None):
    """N(0, 1) noise [num, 3, h, w]; with channels == 1 one map is broadcast to 3 channels
    (the reference's noise at the coarsest scale)."""
    z = torch.randn(num, channels, h, w, device=device, generator=generator)
    return z.expand(num, 3, h, w) if channels == 1 else z


class TrainedPyramid(nn.Module):
    """Frozen generators G_0..G_{k-1} with their z_opt, noise_amp, and the reals of all scales.

    z_opt[i] is [1, 3, h_i + 2p, w_i + 2p] (padded); reals[i] is [1, 3, h_i, w_i]; while a
    pyramid is being trained, len(generators) < len(reals).
    """

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

    def _run(self, n: int, z: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """G_n(z, prev), by G_n's copy for drawing (see drawing_generator), in the channels-last
        layout that CPU convolution libraries run fastest forward-only (10-15% here)."""
        cl = torch.channels_last
        return self.drawing_generator(n)(z.contiguous(memory_format=cl),
                                         prev.contiguous(memory_format=cl))

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
    def generate(self, num_samples: int = 1, start_scale: int = 0,
                 start_image: Optional[torch.Tensor] = None, gen_start_scale: int = 0,
                 scale_v: float = 1.0, scale_h: float = 1.0,
                 noise: Optional[List[torch.Tensor]] = None, generator=None,
                 end_scale: Optional[int] = None) -> torch.Tensor:
        """The reference's SinGAN_generate, batched over samples: [num_samples, 3, H, W].

        Starts at `start_scale` from `start_image` ([1 or N, 3, h, w] at that scale's size,
        default zeros of the (scaled) coarsest size) and runs up to the finest scale (or
        `end_scale`, inclusive). Per scale n: noise of size round((z_opt - 2p) * (scale_v,
        scale_h)) (1 channel broadcast at scale 0), or z_opt itself while n < gen_start_scale;
        the previous output is imresized by 1 / scale_factor, cropped to round(scale * reals[n]),
        padded, cropped to the noise size and bilinearly resized (align_corners) to it;
        output = G_n(noise_amp_n * z + prev, prev). `noise`, when given, holds one unpadded
        tensor per scale from start_scale on, [num_samples, C, h, w], instead of fresh noise.
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
            x = self._run(n, self.noise_amp[n] * z + prev, prev)
        return x

    def reconstruct(self) -> torch.Tensor:
        """G(z_opt) through every trained scale: the model's reconstruction of the image."""
        return self.generate(1, gen_start_scale=self.num_scales)

    def sample(self, num_samples: int = 1, gen_start_scale: int = 0, scale_v: float = 1.0,
               scale_h: float = 1.0, noise: Optional[List[torch.Tensor]] = None,
               generator: Optional[torch.Generator] = None,
               batch_size: Optional[int] = None, clamp: Optional[bool] = None) -> torch.Tensor:
        """Random samples, [num_samples, 3, H, W] in [-1, 1] (SPEC 7).

        gen_start_scale > 0 keeps the training image's reconstruction at the coarser scales;
        scale_v / scale_h give arbitrary sizes. Samples are drawn in batches of `batch_size`
        (default: all at once, or chunks that keep memory bounded at large sizes).
        The finest generator's output (tanh + the upsampled image) can leave [-1, 1] slightly;
        it is clamped, except when `noise` is given (clamp=None): then the raw output is
        returned, exactly what the reference's SinGAN_generate computes for that noise.
        """
        self.check_sample_args(num_samples, gen_start_scale, scale_v, scale_h)
        if noise is not None:
            out = self.generate(num_samples, gen_start_scale=gen_start_scale, scale_v=scale_v,
                                scale_h=scale_h, noise=noise, generator=generator)
        else:
            batch_size = batch_size or self.default_batch_size(scale_v * scale_h)
            out = torch.cat([self.generate(min(batch_size, num_samples - i),
                                           gen_start_scale=gen_start_scale, scale_v=scale_v,
                                           scale_h=scale_h, generator=generator)
                             for i in range(0, num_samples, batch_size)])
        return out.clamp(-1, 1) if (clamp if clamp is not None else noise is None) else out

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
