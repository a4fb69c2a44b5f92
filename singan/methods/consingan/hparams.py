"""ConSinGAN's frozen hyper-parameters (SPEC section 10; arXiv 2003.11512, section 3).

Defaults are the reference ConSinGAN's. Built once from the command line (STYLE habit 1).
"""
from dataclasses import dataclass, fields

from ...layers import ANIMATION_MIN_SIZE, number_text

TRAIN_MODES = ("generation", "retarget", "harmonization", "editing", "animation")
ACTIVATIONS = ("lrelu", "elu", "prelu", "selu")


@dataclass(frozen=True)
class ConSinGANConfig:
    """Everything that defines a ConSinGAN training run."""
    train_mode: str = "generation"  # generation | retarget | harmonization | editing | animation
    # networks
    nfc: int = 64                 # channels of every conv layer (head, stage bodies, D)
    ker_size: int = 3             # conv kernel size (the stage geometry assumes 3)
    num_layer: int = 3            # conv blocks per stage body (and in D's body)
    activation: str = "lrelu"     # lrelu | elu | prelu | selu
    lrelu_alpha: float = 0.05     # negative slope of the LeakyReLU
    batch_norm: bool = False      # BatchNorm after the generator's convs
    # stages
    train_stages: int = 6         # number of stages (pyramid levels)
    train_depth: int = 3          # how many of the newest stage bodies train concurrently
    min_size: int = 25            # shorter side at the coarsest stage
    max_size: int = 250           # longer side at the finest stage
    # training
    niter: int = 2000             # iterations per stage
    lr_g: float = 5e-4            # Adam learning rate of the newest stage body and the tail
    lr_d: float = 5e-4            # Adam learning rate of D
    lr_scale: float = 0.1         # lr of a body k stages below the newest: lr_g * lr_scale**k
    beta1: float = 0.5            # Adam beta1 (beta2 is 0.999)
    gamma: float = 0.1            # learning-rate decay factor, applied at 0.8 * niter
    Dsteps: int = 3               # critic steps per iteration
    Gsteps: int = 3               # generator optimizer steps per iteration (on one gradient)
    lambda_grad: float = 0.1      # gradient-penalty weight
    alpha: float = 10.0           # reconstruction-loss weight
    noise_amp: float = 0.1        # noise_amp_init: noise std relative to the reconstruction RMSE
    amp: str = "none"             # mixed precision of the training step: none | bf16 | fp16

    def __post_init__(self):
        if self.train_mode not in TRAIN_MODES:
            raise ValueError(f"train_mode must be one of {', '.join(TRAIN_MODES)}, "
                             f"got {self.train_mode!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, "
                             f"got {self.activation!r}")

    @property
    def stop_scale(self) -> int:
        """Index of the finest stage."""
        return self.train_stages - 1

    @property
    def edge_upsample(self) -> bool:
        """Generation and animation upsample the head's output by 2 px and draw the later
        stages' noise 2 * num_layer px larger (more diversity at the image edges)."""
        return self.train_mode in ("generation", "animation")

    @property
    def image_input(self) -> bool:
        """Harmonization and editing feed an image, not noise, to stage 0."""
        return self.train_mode in ("harmonization", "editing")

    @property
    def lr_milestone(self) -> float:
        """The iteration at which the learning rates decay: 0.8 * niter (a float, as the
        reference passes it to MultiStepLR; see train.make_stage)."""
        return 0.8 * self.niter

    @property
    def noise_scaling(self) -> float:
        """Std of the noise added to editing's stage-0 input (the reference's noise_scaling)."""
        return 0.1

    @classmethod
    def from_dict(cls, d: dict) -> "ConSinGANConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def folder_name(self) -> str:
        """The model folder's name: the method, the mode and every setting that changes the
        model, e.g. 'consingan_generation,stages=6,depth=3,lr_scale=0.1' for the defaults and
        '...,lrelu_alpha=0.3,batch_norm,min_size=120,niter=1000' otherwise."""
        # Fix: the reference names model folders by a timestamp, so that every run starts a
        # new model; named by the settings, a second run resumes or reuses it.
        parts = [f"consingan_{self.train_mode}", f"stages={self.train_stages}",
                 f"depth={self.train_depth}", f"lr_scale={number_text(self.lr_scale)}"]
        defaults = default_config(self.train_mode)
        for f in fields(self):
            if f.name in ("train_mode", "train_stages", "train_depth", "lr_scale"):
                continue
            value = getattr(self, f.name)
            if value != getattr(defaults, f.name):
                parts.append(f.name if value is True else f"{f.name}={number_text(value)}")
        return ",".join(parts)


def default_config(train_mode: str = "generation") -> ConSinGANConfig:
    """The reference's defaults for a train mode (animation: min_size 20)."""
    if train_mode == "animation":
        return ConSinGANConfig(train_mode=train_mode, min_size=ANIMATION_MIN_SIZE)
    return ConSinGANConfig(train_mode=train_mode)

