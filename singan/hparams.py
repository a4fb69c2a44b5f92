"""Frozen hyper-parameters, built once from the command line (STYLE habit 1)."""
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class SinGANConfig:
    """Everything that defines a SinGAN training run. Defaults are the reference's."""
    # networks (SPEC 4)
    nfc: int = 32                 # channels at scales 0-3 (doubled every 4 scales, cap 128)
    min_nfc: int = 32             # lower bound on the channels of the body blocks
    ker_size: int = 3             # conv kernel size
    num_layer: int = 5            # conv layers per network (head + 3 body blocks + tail)
    # pyramid (SPEC 3)
    scale_factor: float = 0.75    # initial scale factor (the folder name's scale_factor)
    min_size: int = 25            # shorter side at the coarsest scale
    max_size: int = 250           # longer side at the finest scale
    # training (SPEC 5)
    niter: int = 2000             # iterations per scale
    lr_g: float = 5e-4            # Adam learning rate of G
    lr_d: float = 5e-4            # Adam learning rate of D
    beta1: float = 0.5            # Adam beta1 (beta2 is 0.999)
    gamma: float = 0.1            # learning-rate decay factor
    lr_milestone: int = 1600      # iteration at which the learning rate decays (reference: fixed)
    Dsteps: int = 3               # critic steps per iteration
    Gsteps: int = 3               # generator steps per iteration
    lambda_grad: float = 0.1      # gradient-penalty weight
    alpha: float = 10.0           # reconstruction-loss weight
    noise_amp: float = 0.1        # noise_amp_init: noise std relative to the upsampling RMSE
    mode: str = "train"           # train | animation_train | paint_train (training variant)
    legacy_g_steps: bool = False  # reuse the last D step's graph in the G steps (torch 1.4 maths)
    amp: str = "none"             # mixed precision of the training step: none | bf16 | fp16

    @property
    def pad(self) -> int:
        """Zero padding of every generator input: num_layer * (ker_size - 1) / 2 (5 px)."""
        return self.num_layer * (self.ker_size - 1) // 2

    @property
    def pad_noise(self) -> bool:
        """Whether noise maps are zero-padded (not in animation training: drawn larger instead)."""
        return self.mode != "animation_train"

    @classmethod
    def from_dict(cls, d: dict) -> "SinGANConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def model_folder_name(self) -> str:
        """The reference's folder name: 'scale_factor=0.750000,alpha=10'."""
        return "scale_factor=%f,alpha=%d" % (self.scale_factor, self.alpha)
