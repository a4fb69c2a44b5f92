"""Frozen hyper-parameters, built once from the command line (STYLE habit 1)."""
from dataclasses import dataclass, fields
from typing import Optional



PAINT_COLOURS = 5   # the reference's k-means cluster count for paint-to-image's quantisation


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
    legacy_g_steps: bool = False  # reuse the last D step's graph in the G steps (torch 1.4 maths)
    amp: str = "none"             # mixed precision of the training step: none | bf16 | fp16
    # the training variant of an application (the reference's opt.mode), explicit settings
    pad_noise: bool = True        # False: animation's variant, noise drawn 10 px larger, unpadded
    sr_schedule: bool = False     # super-resolution's scale schedule (SPEC 3, min_size 18)
    paint_colours: int = 0        # > 0: a paint model, whose paint scale was retrained on inputs
    #                               quantised to this many colours (paint2image --quantization_flag)

    @property
    def pad(self) -> int:
        """Zero padding of every generator input: num_layer * (ker_size - 1) / 2 (5 px)."""
        return self.num_layer * (self.ker_size - 1) // 2

    @classmethod
    def from_dict(cls, d: dict, plan: Optional[dict] = None) -> "SinGANConfig":
        """A config from a saved dict, older ones included: they named the variant with the
        reference's mode string (train | animation_train | paint_train), and an SR model was
        one whose saved plan used min_size 18 (`plan`)."""
        d = dict(d)
        mode = d.pop("mode", None)
        if mode == "animation_train":
            d.setdefault("pad_noise", False)
        elif mode == "paint_train":
            d.setdefault("paint_colours", PAINT_COLOURS)
        if mode is not None and plan and plan.get("min_size") == 18 and d.get("min_size") != 18:
            d.setdefault("sr_schedule", True)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def folder_name(self) -> str:
        """The reference's folder names: 'scale_factor=0.750000,alpha=10', and for the
        animation variant 'scale_factor=0.750000_noise_padding'."""
        if not self.pad_noise:
            return "scale_factor=%f_noise_padding" % self.scale_factor
        return "scale_factor=%f,alpha=%d" % (self.scale_factor, self.alpha)

    def variant_script(self) -> str:
        """The script that trains this variant (for messages)."""
        if not self.pad_noise:
            return "animation.py"
        if self.paint_colours:
            return "paint2image.py --quantization_flag"
        return "SR.py" if self.sr_schedule else "main_train.py"


# Settings that name a variant, set by the applications rather than by an option of the same name.
VARIANT_SETTINGS = ("pad_noise", "sr_schedule", "paint_colours")
