"""What training reports while it runs: structured events for programs (the web studio, a
cluster task) and the terminal's progress bar, which is one consumer of those events."""
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import torch


@dataclass
class ProgressEvent:
    """One report from a training run (singan.train_model's `progress` callback).

    kind "iteration": every LOG_EVERY iterations and at a stage's last one; "stage": a stage
    (SinGAN: a scale) has finished and is saved, `images` holds its last fake sample and its
    reconstruction ([1, 3, h, w] in [-1, 1], on the CPU).
    """
    kind: str                     # "iteration" | "stage"
    method: str                   # "singan" | "consingan"
    stage: int                    # the stage (scale) being trained, 0 = coarsest
    num_stages: int               # how many the model will have
    iteration: int                # iterations done in this stage
    total: int                    # iterations per stage
    losses: Dict[str, float]      # the latest errD, errG, rec, D_real, D_fake
    elapsed: float                # seconds since this call of train_model started
    folder: str = ""              # the model folder
    images: Optional[Dict[str, torch.Tensor]] = field(default=None, repr=False)

    @property
    def fraction(self) -> float:
        """How much of the whole training is done, 0..1 (by iterations; stages differ in cost)."""
        return (self.stage + self.iteration / max(self.total, 1)) / max(self.num_stages, 1)


ProgressCallback = Callable[[ProgressEvent], None]


class ProgressBar:
    """A tqdm bar for one scale or stage, showing the latest losses; silent when disabled."""

    def __init__(self, desc: str, niter: int, enabled: bool = True, initial: int = 0):
        self.bar = None
        if enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=niter, desc=desc, leave=False, dynamic_ncols=True,
                            initial=initial)
        self.done = initial

    def update_to(self, it: int, losses: dict) -> None:
        if self.bar is not None:
            self.bar.update(it - self.done)
            self.bar.set_postfix(D=f"{losses['errD']:.3f}", G=f"{losses['errG']:.3f}",
                                 rec=f"{losses['rec']:.4f}", refresh=False)
        self.done = it

    def close(self):
        if self.bar is not None:
            self.bar.close()
