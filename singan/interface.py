"""The one interface of a trained model, whichever method trained it (STYLE: two methods,
one interface). SinGAN's TrainedPyramid and ConSinGAN's ConSinGAN both implement it; the
applications, the scripts, the web studio and the cluster runner use only this.

An argument that a method cannot honour raises SinGANError saying so (for example
gen_start_scale > 0 for ConSinGAN, whose one generator starts at stage 0), never ignored.
"""
from pathlib import Path
from typing import List, Optional, Protocol, runtime_checkable

import torch


@runtime_checkable
class TrainedModel(Protocol):
    """A trained (or partly trained) single-image GAN."""
    method: str                      # "singan" | "consingan" (model.pth's "method")
    reals: List[torch.Tensor]        # the training image per scale, [1, 3, h, w], coarsest first
    config: dict                     # the training hyper-parameters, as saved
    folder: Optional[Path]           # the model folder, when loaded from or trained into one

    @property
    def num_scales(self) -> int:
        """How many scales (ConSinGAN: stages) are trained."""

    @property
    def complete(self) -> bool:
        """Whether every scale is trained (a stopped training leaves a partial model)."""

    @property
    def injection_scales(self) -> range:
        """The scales at which generate() accepts an image (empty: none)."""

    @property
    def device(self) -> torch.device:
        """Where the model's tensors are."""

    def sample(self, num_samples: int = 1, gen_start_scale: int = 0, scale_v: float = 1.0,
               scale_h: float = 1.0, noise: Optional[List[torch.Tensor]] = None,
               generator: Optional[torch.Generator] = None, batch_size: Optional[int] = None,
               clamp: Optional[bool] = None, exact: Optional[bool] = None) -> torch.Tensor:
        """Random samples [num_samples, 3, H', W'] in [-1, 1]; scale_v / scale_h retarget."""

    def generate(self, start_image: torch.Tensor, start_scale: int, num_samples: int = 1,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """An image ([1, 3, H, W] at the training size) injected at `start_scale`, carried up
        to the finest scale: [num_samples, 3, H, W] (harmonization, editing, paint)."""

    def reconstruct(self) -> torch.Tensor:
        """The model's reconstruction of its training image, [1, 3, H, W]."""

    def animate(self, alpha: float = 0.1, beta: float = 0.9, start_scale: int = 0,
                num_frames: int = 100, generator: Optional[torch.Generator] = None,
                batch_size: Optional[int] = None) -> torch.Tensor:
        """Frames [num_frames, 3, H, W] of a random walk around the reconstruction noise."""

    def to(self, device) -> "TrainedModel":
        """The model on another device."""
