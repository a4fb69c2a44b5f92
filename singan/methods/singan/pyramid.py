"""The scale schedule and the pyramid of real images (SPEC section 3)."""
import math
from dataclasses import dataclass
from typing import List, Tuple

import torch

from ...imresize import imresize


@dataclass(frozen=True)
class Pyramid:
    """The geometry of a SinGAN pyramid for one image size.

    Scale 0 is the coarsest, scale stop_scale the finest; shapes[i] is the (h, w) of scale i.
    """
    num_scales: int               # the reference's num_scales (before the max_size cut)
    stop_scale: int               # index of the finest scale; there are stop_scale + 1 scales
    scale1: float                 # factor that takes the input image to the finest scale
    scale_factor: float           # ratio between neighbouring scales (< 1)
    real_shape: Tuple[int, int]   # (h, w) of the finest training image
    shapes: List[Tuple[int, int]]  # (h, w) per scale, coarsest first
    min_size: int                 # the min_size actually used (18 in the SR variant)

    @property
    def n_scales(self) -> int:
        return self.stop_scale + 1

    @property
    def n_stages(self) -> int:
        """n_scales, under the name the stage driver uses for both methods."""
        return self.n_scales

    def level_scale(self, i: int) -> float:
        """Resize factor from the finest real image to scale i."""
        return math.pow(self.scale_factor, self.stop_scale - i)


def _ceil_shape(h: int, w: int, scale: float) -> Tuple[int, int]:
    return math.ceil(h * scale), math.ceil(w * scale)


def plan_pyramid(height: int, width: int, min_size: int = 25, max_size: int = 250,
                 scale_factor: float = 0.75, sr: bool = False) -> Pyramid:
    """The reference's adjust_scales2image (sr=False) or adjust_scales2image_SR (sr=True).

        num_scales   = ceil(log(min_size / min(H, W)) / log(scale_factor)) + 1
        scale2stop   = ceil(log(min(max_size, max(H, W)) / max(H, W)) / log(scale_factor))
        stop_scale   = num_scales - scale2stop
        scale1       = min(max_size / max(H, W), 1)
        scale_factor = (min_size / min(real.H, real.W)) ** (1 / stop_scale)

    Raises ValueError when the image is smaller than min_size or when the schedule leaves no
    valid pyramid (the reference then silently builds an empty or broken one).
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height} x {width}")
    if not 0 < scale_factor < 1:
        raise ValueError(f"scale_factor must be between 0 and 1, got {scale_factor}")
    if sr:
        min_size = 18      # Reference behaviour: the SR schedule forces min_size to 18
    if min(height, width) < min_size:
        raise ValueError(f"the image is {height} x {width} px; its shorter side must be at least "
                         f"min_size = {min_size} px (use a larger image or a smaller --min_size)")
    if min_size > max_size:
        raise ValueError(f"min_size ({min_size}) must not exceed max_size ({max_size})")
    longest = max(height, width)
    if sr:
        # Reference behaviour: int() (towards zero) instead of ceil, and scale2stop divides by
        # max(shape[0], shape[3]) where shape[0] is the batch size 1, i.e. by the width.
        num_scales = int(math.log(min_size / min(height, width), scale_factor)) + 1
        scale2stop = int(math.log(min(max_size, longest) / max(1, width), scale_factor))
    else:
        num_scales = math.ceil(math.log(min_size / min(height, width), scale_factor)) + 1
        scale2stop = math.ceil(math.log(min(max_size, longest) / longest, scale_factor))
    stop_scale = num_scales - scale2stop
    scale1 = min(max_size / longest, 1)
    real_shape = _ceil_shape(height, width, scale1)
    if stop_scale < 1 or min(real_shape) < min_size:
        raise ValueError(
            f"a {height} x {width} image has no valid pyramid with min_size {min_size} and "
            f"max_size {max_size}: its aspect ratio is too extreme (the finest scale would be "
            f"{real_shape[0]} x {real_shape[1]}); crop it, or lower --min_size / raise --max_size")
    factor = math.pow(min_size / min(real_shape), 1 / stop_scale)
    shapes = [_ceil_shape(*real_shape, math.pow(factor, stop_scale - i))
              for i in range(stop_scale + 1)]
    return Pyramid(num_scales, stop_scale, scale1, factor, real_shape, shapes, min_size)


def build_reals(image: torch.Tensor, plan: Pyramid) -> List[torch.Tensor]:
    """The training images per scale, coarsest first: [1, 3, h_i, w_i] each.

    The finest is imresize(image, scale1); every level is resized from that finest image, not
    from the level above (as the reference's creat_reals_pyramid).
    """
    real = imresize(image, plan.scale1)
    return [imresize(real, plan.level_scale(i)) for i in range(plan.stop_scale + 1)]
