"""Command-line options shared by every script, under the reference's names (argparse only).

The scripts build frozen configuration objects from these (config_from_args), then call the
library; nothing here is mutated later.
"""
import argparse

from singan.cli import ArgumentParser
from singan.hparams import SinGANConfig


def _typed(kind, test, what):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value
    return parse


positive_int = _typed(int, lambda v: v > 0, "a positive integer")
non_negative_int = _typed(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _typed(float, lambda v: v > 0, "a positive number")
non_negative_float = _typed(float, lambda v: v >= 0, "a number >= 0")
fraction = _typed(float, lambda v: 0 < v < 1, "a number strictly between 0 and 1")


def get_arguments(description: str = None) -> ArgumentParser:
    """The reference's shared options (config.py), plus --device."""
    d = SinGANConfig()
    parser = ArgumentParser(description=description,
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    # where and how to run
    add("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
        help="device to run on; auto picks cuda, then mps, then cpu")
    add("--not_cuda", action="store_true", help="run on the CPU (the reference's switch)")
    add("--manualSeed", type=int, default=None, help="random seed (default: drawn and printed)")
    add("--out", default="Output", help="output folder for generated images")
    add("--quiet", action="store_true", help="no progress bars (for logs)")
    # networks
    add("--nc_z", type=positive_int, default=3, help="noise channels (fixed at 3)")
    add("--nc_im", type=positive_int, default=3, help="image channels (fixed at 3)")
    add("--nfc", type=positive_int, default=d.nfc, help="channels at scales 0-3")
    add("--min_nfc", type=positive_int, default=d.min_nfc, help="minimum channels of body blocks")
    add("--ker_size", type=positive_int, default=d.ker_size, help="kernel size")
    add("--num_layer", type=_typed(int, lambda v: v >= 3, "an integer >= 3"),
        default=d.num_layer, help="conv layers per network")
    add("--stride", type=positive_int, default=1, help="stride (fixed at 1)")
    add("--padd_size", type=non_negative_int, default=0, help="conv padding (fixed at 0)")
    # pyramid
    add("--scale_factor", type=fraction, default=d.scale_factor, help="pyramid scale factor")
    add("--noise_amp", type=non_negative_float, default=d.noise_amp,
        help="noise amplitude relative to the upsampling RMSE")
    add("--min_size", type=positive_int, default=d.min_size,
        help="shorter side at the coarsest scale")
    add("--max_size", type=positive_int, default=d.max_size, help="longer side at the finest scale")
    # optimisation
    add("--niter", type=positive_int, default=d.niter, help="iterations per scale")
    add("--gamma", type=positive_float, default=d.gamma, help="learning-rate decay factor")
    add("--lr_milestone", type=non_negative_int, default=d.lr_milestone,
        help="iteration at which the learning rate decays")
    add("--lr_g", type=positive_float, default=d.lr_g, help="learning rate of G")
    add("--lr_d", type=positive_float, default=d.lr_d, help="learning rate of D")
    add("--beta1", type=_typed(float, lambda v: 0 <= v < 1, "in [0, 1)"), default=d.beta1,
        help="Adam beta1")
    add("--Gsteps", type=positive_int, default=d.Gsteps, help="generator steps per iteration")
    add("--Dsteps", type=positive_int, default=d.Dsteps, help="critic steps per iteration")
    add("--lambda_grad", type=non_negative_float, default=d.lambda_grad,
        help="gradient-penalty weight")
    add("--alpha", type=non_negative_float, default=d.alpha, help="reconstruction-loss weight")
    add("--legacy_g_steps", action="store_true",
        help="reuse the last D step's graph in the G steps, as torch <= 1.4 did in the "
             "reference (bit-level comparison with old runs only)")
    return parser


def check_arguments(parser: ArgumentParser, args) -> None:
    """Checks that involve several options: one clear line each, from argument parsing."""
    if args.min_size > args.max_size:
        parser.error(f"--min_size ({args.min_size}) must not exceed --max_size ({args.max_size})")
    if args.not_cuda:
        args.device = "cpu"


def config_from_args(args, **overrides) -> SinGANConfig:
    """The frozen training configuration that the options describe."""
    values = {k: getattr(args, k) for k in SinGANConfig.__dataclass_fields__
              if hasattr(args, k) and k != "mode"}   # --mode names the task, not the variant
    values.update(overrides)
    return SinGANConfig(**values)
