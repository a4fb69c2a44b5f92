"""Pieces both methods build on and neither owns: zero padding, the reference's weight init,
animation's noise walk and minimum size, and the number spelling of model folder names."""
import torch
import torch.nn.functional as F
from torch import nn

# Reference behaviour: both methods train animation models with min_size 20.
ANIMATION_MIN_SIZE = 20


def pad(x: torch.Tensor, p: int) -> torch.Tensor:
    """Zero-pad H and W by p pixels on each side."""
    return F.pad(x, [p, p, p, p]) if p else x


def init_weights(module: nn.Module, generator: torch.Generator = None) -> None:
    """Reference init: conv weights ~ N(0, 0.02) (bias left at torch's default), BN weight
    ~ N(1, 0.02), BN bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.data.normal_(0.0, 0.02, generator=generator)
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data.normal_(1.0, 0.02, generator=generator)
            m.bias.data.fill_(0)


def noise_walk(z_fixed: torch.Tensor, fresh: torch.Tensor, alpha: float, beta: float,
               start_mix: float) -> torch.Tensor:
    """Animation's random walk in noise space around z_fixed ([1, ...]) with momentum (SPEC 8):

        z_t = alpha * z_fixed + (1 - alpha) * (z_{t-1} + beta * (z_{t-1} - z_{t-2})
                                               + (1 - beta) * w_t)

    from z_{-1} = (1 - start_mix) z_fixed + start_mix w_0 and z_{-2} = z_fixed, with the fresh
    noise w_0 .. w_T in `fresh` ([T + 1, ...]). Returns z_0 .. z_{T-1}: [T, ...]."""
    prev1 = (1 - start_mix) * z_fixed + start_mix * fresh[:1]
    prev2 = z_fixed
    frames = []
    for t in range(1, len(fresh)):
        z = alpha * z_fixed + (1 - alpha) * (prev1 + beta * (prev1 - prev2)
                                             + (1 - beta) * fresh[t:t + 1])
        prev2, prev1 = prev1, z
        frames.append(z)
    return torch.cat(frames)


def number_text(value) -> str:
    """4.0 -> '4', 0.0005 -> '0.0005', and every float exactly (repr) where %g would round."""
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)
