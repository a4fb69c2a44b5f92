"""ConSinGAN's growing generator and per-stage critic (SPEC section 10; arXiv 2003.11512,
section 3.1, figure 3).

State-dict key names follow the reference (head.conv.weight, head.norm.*, body.<stage>.block<i>
.conv.*, tail.0.weight for G; head.conv.*, body.block<i>.conv.*, tail.weight for D; a PReLU's
slope is <block>.prelu.weight).
"""
import copy
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ...layers import pad


def make_activation(name: str, lrelu_alpha: float = 0.05) -> nn.Module:
    if name == "lrelu":
        return nn.LeakyReLU(lrelu_alpha, inplace=True)
    if name == "elu":
        return nn.ELU(alpha=1.0, inplace=True)
    if name == "prelu":
        return nn.PReLU(num_parameters=1, init=0.25)
    if name == "selu":
        return nn.SELU(inplace=True)
    raise ValueError(f"unknown activation {name!r} (lrelu, elu, prelu or selu)")


class SampleNorm(nn.BatchNorm2d):
    """BatchNorm2d that normalises every sample with its own statistics.

    Reference behaviour: the reference never puts its generator in eval mode, and it trains
    and samples one image at a time, so BatchNorm always uses the statistics of the one sample
    in the batch (its running statistics are updated but never used). In training (batches of
    one) this is plain BatchNorm; otherwise each sample is normalised over its own H x W, which
    gives the same images as the reference while letting samples be drawn as a batch.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return super().forward(x)
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


class ConvBlock(nn.Sequential):
    """Conv2d(k, stride 1, no padding) -> [SampleNorm] -> activation."""

    def __init__(self, in_channels: int, out_channels: int, ker_size: int = 3,
                 activation: str = "lrelu", lrelu_alpha: float = 0.05, norm: bool = False):
        super().__init__()
        self.add_module("conv", nn.Conv2d(in_channels, out_channels, ker_size, stride=1,
                                          padding=0))
        if norm:
            self.add_module("norm", SampleNorm(out_channels))
        self.add_module(activation, make_activation(activation, lrelu_alpha))


def upsample(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bicubic resize with align_corners=True (ConSinGAN's feature upsampling)."""
    return F.interpolate(x, size=tuple(int(s) for s in size), mode="bicubic",
                         align_corners=True)


class GrowingGenerator(nn.Module):
    """One generator for all stages: head -> body[0] -> ... -> body[k] -> tail.

    forward(noise, shapes, noise_amp), with noise[0] [N, 3, h_0, w_0] (noise, or an image in
    harmonization/editing) and noise[k] [N, nfc, h_k + 2e, w_k + 2e] for k > 0, where e =
    num_layer with edge upsampling (generation, animation) and 0 otherwise:

        x   = head(pad_1(noise[0]))                                  # [N, nfc, h_0, w_0]
        x   = upsample(x, (h_0 + 2, w_0 + 2))                        # edge upsampling only
        out = body[0](pad_{L-1 or L}(x))                             # [N, nfc, h_0, w_0]
        stage k: up  = upsample(out, shapes[k])
                 out = body[k](upsample(out, shapes[k] + 2L) + noise[k] * amp[k]) + up
                       (edge upsampling), or body[k](pad_L(up + noise[k] * amp[k])) + up
        image = tail(pad_1(out))                                     # [N, 3, h_k, w_k]

    Every stage body is num_layer (L) valid 3 x 3 ConvBlocks, nfc -> nfc.
    """

    def __init__(self, nfc: int = 64, num_layer: int = 3, ker_size: int = 3,
                 activation: str = "lrelu", lrelu_alpha: float = 0.05, batch_norm: bool = False,
                 edge_upsample: bool = True):
        super().__init__()
        self.nfc, self.num_layer, self.edge_upsample = nfc, num_layer, edge_upsample
        block = dict(ker_size=ker_size, activation=activation, lrelu_alpha=lrelu_alpha,
                     norm=batch_norm)
        self.head = ConvBlock(3, nfc, **block)
        first = nn.Sequential()
        for i in range(num_layer):
            first.add_module(f"block{i}", ConvBlock(nfc, nfc, **block))
        self.body = nn.ModuleList([first])
        self.tail = nn.Sequential(nn.Conv2d(nfc, 3, ker_size, stride=1, padding=0), nn.Tanh())

    @property
    def num_stages(self) -> int:
        return len(self.body)

    def grow(self) -> None:
        """Add a stage whose body starts as a copy of the newest stage's body."""
        self.body.append(copy.deepcopy(self.body[-1]))

    def noise_shape(self, stage: int, h: int, w: int) -> Tuple[int, int, int]:
        """(channels, height, width) of the noise that stage `stage` of size h x w takes."""
        if stage == 0:
            return 3, h, w
        e = self.num_layer if self.edge_upsample else 0
        return self.nfc, h + 2 * e, w + 2 * e

    def forward(self, noise: List[torch.Tensor], shapes: Sequence[Sequence[int]],
                noise_amp: Sequence[float]) -> torch.Tensor:
        L = self.num_layer
        x = self.head(pad(noise[0], 1))                              # [N, nfc, h_0, w_0]
        if self.edge_upsample:
            x = upsample(x, (x.shape[2] + 2, x.shape[3] + 2))
            x = pad(x, L - 1)
        else:
            x = pad(x, L)
        out = self.body[0](x)                                        # [N, nfc, h_0, w_0]
        for k in range(1, len(self.body)):
            h, w = shapes[k][-2:]
            up = upsample(out, (h, w))                               # [N, nfc, h_k, w_k]
            if self.edge_upsample:
                wide = upsample(out, (h + 2 * L, w + 2 * L))
                out = self.body[k](wide + noise[k] * noise_amp[k]) + up
            else:
                out = self.body[k](pad(up + noise[k] * noise_amp[k], L)) + up
        return self.tail(pad(out, 1))                                # [N, 3, h_k, w_k]


class Discriminator(nn.Module):
    """A stage's WGAN critic: head ConvBlock(3 -> nfc), num_layer ConvBlocks nfc -> nfc (no
    norm), tail Conv2d(nfc -> 1); its output is a patch map whose mean is the score."""

    def __init__(self, nfc: int = 64, num_layer: int = 3, ker_size: int = 3,
                 activation: str = "lrelu", lrelu_alpha: float = 0.05):
        super().__init__()
        block = dict(ker_size=ker_size, activation=activation, lrelu_alpha=lrelu_alpha)
        self.head = ConvBlock(3, nfc, **block)
        self.body = nn.Sequential()
        for i in range(num_layer):
            self.body.add_module(f"block{i}", ConvBlock(nfc, nfc, **block))
        self.tail = nn.Conv2d(nfc, 1, ker_size, stride=1, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.body(self.head(x)))


def receptive_field(num_layer: int = 3, ker_size: int = 3) -> int:
    """The critic's receptive field (and smallest input): 11 px by default."""
    return (num_layer + 2) * (ker_size - 1) + 1


def build_generator(cfg, num_stages: int = 1) -> GrowingGenerator:
    """A generator with `num_stages` stage bodies for a ConSinGANConfig."""
    g = GrowingGenerator(cfg.nfc, cfg.num_layer, cfg.ker_size, cfg.activation, cfg.lrelu_alpha,
                         cfg.batch_norm, cfg.edge_upsample)
    for _ in range(num_stages - 1):
        g.grow()
    return g


def build_discriminator(cfg) -> Discriminator:
    return Discriminator(cfg.nfc, cfg.num_layer, cfg.ker_size, cfg.activation, cfg.lrelu_alpha)
