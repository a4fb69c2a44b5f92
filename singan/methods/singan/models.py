"""SinGAN's per-scale generator and critic (SPEC section 4; arXiv 1905.01164, section 2.1).

State-dict key names are the reference's (head.conv.weight, head.norm.*, body.block1.conv.*,
..., tail.0.weight for G, tail.weight for D), so its netG.pth / netD.pth load as they are.
"""
import contextlib
import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...layers import init_weights, pad  # noqa: F401  (singan.methods.singan.models.pad is public)


def channels_at_scale(scale: int, nfc: int = 32, min_nfc: int = 32, cap: int = 128):
    """(nfc, min_nfc) at a scale: doubled every 4 scales, at most 128 (32, 64, 128 by default)."""
    growth = 2 ** math.floor(scale / 4)
    return min(nfc * growth, cap), min(min_nfc * growth, cap)


class BatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d as SinGAN trains it: with batches of ONE image.

    A batch of one image is normalised by BatchNorm exactly as here. In training mode each
    sample of a larger batch is normalised with its own statistics, as if it had been passed
    alone, and the running statistics are updated once per sample, in batch order, or only
    from the samples listed in `stats_from` (an empty list: no update). So several of the
    training step's single-image forward passes can run as one batch with the same maths
    (train.py batches them for speed). In eval mode it is plain BatchNorm.
    """
    stats_from: Optional[Sequence[int]] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or (x.shape[0] == 1 and self.stats_from in (None, [0])):
            return super().forward(x)
        if x.shape[0] == 1:     # one image whose statistics must not be recorded
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                training=True, momentum=0.0, eps=self.eps)
        out = F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)
        samples = range(x.shape[0]) if self.stats_from is None else self.stats_from
        if self.momentum and len(samples):
            with torch.no_grad():
                picked = _pick(x.detach(), samples).float()            # [k, C, H, W]
                m, k = self.momentum, len(samples)
                # k successive updates r <- (1 - m) r + m s_i, in closed form
                weights = m * (1 - m) ** torch.arange(k - 1, -1, -1, device=x.device)
                self.running_mean.mul_((1 - m) ** k).add_(weights @ picked.mean((2, 3)))
                self.running_var.mul_((1 - m) ** k).add_(weights @ picked.var((2, 3)))
                self.num_batches_tracked.add_(k)
        return out


def _pick(x: torch.Tensor, samples: Sequence[int]) -> torch.Tensor:
    """x[samples] along the batch; a run of consecutive samples as a slice (a view: no index
    tensor copied from the host, so no host synchronisation on a GPU)."""
    samples = list(samples)
    if samples == list(range(samples[0], samples[0] + len(samples))):
        return x[samples[0]:samples[0] + len(samples)]
    return x[samples]


@contextlib.contextmanager
def batchnorm_stats_from(module: nn.Module, samples: Sequence[int]):
    """Within the block, BatchNorm layers update their running statistics only from the
    listed samples of each batch (see BatchNorm2d)."""
    norms = [m for m in module.modules() if isinstance(m, BatchNorm2d)]
    for m in norms:
        m.stats_from = list(samples)
    try:
        yield
    finally:
        for m in norms:
            m.stats_from = None


class ConvBlock(nn.Sequential):
    """Conv2d(k, stride 1, no padding) -> BatchNorm2d -> LeakyReLU(0.2)."""

    def __init__(self, in_channels: int, out_channels: int, ker_size: int = 3):
        super().__init__()
        self.add_module("conv", nn.Conv2d(in_channels, out_channels, ker_size, stride=1, padding=0))
        self.add_module("norm", BatchNorm2d(out_channels))
        self.add_module("LeakyRelu", nn.LeakyReLU(0.2, inplace=True))


def _body(nfc: int, min_nfc: int, num_layer: int, ker_size: int, nc_im: int = 3):
    """Head and body shared by G and D; returns (head, body, channels of the body's output).

    Body block i (1-based) maps max(2 * nfc / 2**i, min_nfc) -> max(nfc / 2**i, min_nfc) channels.
    """
    head = ConvBlock(nc_im, nfc, ker_size)
    body = nn.Sequential()
    out = nfc
    for i in range(1, num_layer - 1):
        out = int(nfc / 2 ** i)
        body.add_module(f"block{i}", ConvBlock(max(2 * out, min_nfc), max(out, min_nfc), ker_size))
    return head, body, max(out, min_nfc)


class Generator(nn.Module):
    """G_n: a residual fully convolutional generator.

    forward(z, prev) = tail(body(head(z))) + prev, with prev cropped centrally to the output
    size. z and prev are [N, 3, H + 2p, W + 2p] (p = num_layer * (ker_size - 1) / 2 = 5 by
    default: each valid conv removes one pixel per side); the output is [N, 3, H, W].
    """

    def __init__(self, nfc: int, min_nfc: int, num_layer: int = 5, ker_size: int = 3,
                 nc_im: int = 3):
        super().__init__()
        self.nfc, self.min_nfc, self.num_layer, self.ker_size = nfc, min_nfc, num_layer, ker_size
        self.head, self.body, body_out = _body(nfc, min_nfc, num_layer, ker_size, nc_im)
        self.tail = nn.Sequential(nn.Conv2d(body_out, nc_im, ker_size, stride=1, padding=0),
                                  nn.Tanh())

    def forward(self, z: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        x = self.tail(self.body(self.head(z)))
        crop = (prev.shape[2] - x.shape[2]) // 2   # Reference behaviour: one crop for H and W
        return x + prev[:, :, crop:prev.shape[2] - crop, crop:prev.shape[3] - crop]


class Discriminator(nn.Module):
    """D_n: a WGAN critic; its output is a patch map (receptive field 11 x 11 by default) whose
    mean is the score."""

    def __init__(self, nfc: int, min_nfc: int, num_layer: int = 5, ker_size: int = 3,
                 nc_im: int = 3):
        super().__init__()
        self.nfc, self.min_nfc, self.num_layer, self.ker_size = nfc, min_nfc, num_layer, ker_size
        self.head, self.body, body_out = _body(nfc, min_nfc, num_layer, ker_size, nc_im)
        self.tail = nn.Conv2d(body_out, 1, ker_size, stride=1, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.body(self.head(x)))


def generator_from_state_dict(state: dict, num_layer: int = None, ker_size: int = None) -> Generator:
    """Build a Generator whose shape fits a saved state dict (ours or the reference's)."""
    head = state["head.conv.weight"]
    nfc, ker = head.shape[0], ker_size or head.shape[2]
    blocks = sorted(int(k.split(".")[1][5:]) for k in state if k.startswith("body.block")
                    and k.endswith(".conv.weight"))
    layers = num_layer or (len(set(blocks)) + 2)
    min_nfc = state["tail.0.weight"].shape[1]   # = max(nfc / 2**(layers-2), min_nfc): same net
    g = Generator(nfc, min_nfc, layers, ker, nc_im=head.shape[1])
    g.load_state_dict(state)
    return g
