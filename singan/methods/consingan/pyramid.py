"""ConSinGAN's stages: the image pyramid with more levels near the finest (SPEC section 10).

    scale1       = min(max_size / max(H, W), 1);  real = imresize(image, scale1)
    stop_scale   = train_stages - 1
    scale_factor = (min_size / min(real.H, real.W)) ** (1 / stop_scale)
    level i < stop_scale: imresize(real, scale_factor ** e_i) with
        e_i = (stop_scale - 1) / ln(stop_scale) * ln(stop_scale - i) + 1   (all modes but
        harmonization: more levels near the finest scale, arXiv 2003.11512 section 3.3)
        e_i = stop_scale - i                                               (harmonization)
    the last level is `real` itself.
"""
import math
from dataclasses import dataclass
from typing import List, Tuple

import torch

from ...errors import SinGANError
from ...imresize import imresize


@dataclass(frozen=True)
class StagePlan:
    """The geometry of a ConSinGAN pyramid for one image size; stage 0 is the coarsest."""
    stop_scale: int                # index of the finest stage
    scale1: float                  # factor that takes the input image to the finest stage
    scale_factor: float            # the base factor of the level exponents (< 1)
    real_shape: Tuple[int, int]    # (h, w) of the finest training image
    level_scales: List[float]      # resize factor from the finest image to each stage
    shapes: List[Tuple[int, int]]  # (h, w) per stage, coarsest first

    @property
    def n_stages(self) -> int:
        return self.stop_scale + 1


def level_exponent(i: int, stop_scale: int, harmonization: bool = False) -> float:
    """The exponent e_i of scale_factor for level i < stop_scale (see the module docstring)."""
    if harmonization:
        return float(stop_scale - i)
    if stop_scale == 1:
        # Fix: the reference divides by ln(1) = 0 here (two stages crash it); the term it
        # scales is ln(stop_scale - i) = ln(1) = 0 for the only level i = 0, so e_0 = 1.
        return 1.0
    return (stop_scale - 1) / math.log(stop_scale) * math.log(stop_scale - i) + 1


def plan_stages(height: int, width: int, train_stages: int = 6, min_size: int = 25,
                max_size: int = 250, harmonization: bool = False,
                min_input: int = 11) -> StagePlan:
    """The stage shapes of a height x width image (pure arithmetic: imresize's output length
    is ceil(length * scale)). `min_input` is the discriminator's receptive field: the coarsest
    stage must be at least that large. Bad sizes raise SinGANError with a hint."""
    if train_stages < 2:
        raise SinGANError(f"--train_stages must be at least 2, got {train_stages}")
    if min_size > max_size:
        raise SinGANError(f"--min_size ({min_size}) must not exceed --max_size ({max_size})")
    if min(height, width) < min_size:
        raise SinGANError(f"the image is {height} x {width} px; its shorter side must be at "
                          f"least --min_size = {min_size} px (use a larger image or a smaller "
                          "--min_size)")
    longest = max(height, width)
    scale1 = min(max_size / longest, 1)
    real_shape = (math.ceil(height * scale1), math.ceil(width * scale1))
    if min(real_shape) < min_size:
        raise SinGANError(
            f"a {height} x {width} image is {real_shape[0]} x {real_shape[1]} px at --max_size "
            f"{max_size}, smaller than --min_size {min_size} on its shorter side: crop it, or "
            "lower --min_size / raise --max_size")
    stop_scale = train_stages - 1
    scale_factor = math.pow(min_size / min(real_shape), 1 / stop_scale)
    level_scales = [math.pow(scale_factor, level_exponent(i, stop_scale, harmonization))
                    for i in range(stop_scale)] + [1.0]
    shapes = [(math.ceil(real_shape[0] * s), math.ceil(real_shape[1] * s))
              for s in level_scales[:-1]] + [real_shape]
    if min(shapes[0]) < min_input:
        raise SinGANError(f"the coarsest stage would be {shapes[0][0]} x {shapes[0][1]} px, "
                          f"smaller than the discriminator's {min_input} px receptive field: "
                          "raise --min_size")
    return StagePlan(stop_scale, scale1, scale_factor, real_shape, level_scales, shapes)


def build_stage_reals(image: torch.Tensor, plan: StagePlan) -> List[torch.Tensor]:
    """The training image per stage, coarsest first: [1, 3, h_i, w_i] each. Every level is
    resized from the finest image (MATLAB resize with the reference's uint8 truncation)."""
    real = imresize(image, plan.scale1)
    return [imresize(real, s) for s in plan.level_scales[:-1]] + [real]
