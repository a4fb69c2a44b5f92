"""Command-line options shared by every script (and the `singan` command, singan/cli/commands.py),
under the reference's names (argparse only).

The scripts build frozen configuration objects from these (config_from_args), then call the
library; nothing here is mutated later.
"""
import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import Optional

from ..apps.animation import FORMATS, check_format
from ..cluster.settings import DEFAULT_CPUS_PER_MODEL, DEFAULT_GPUS_PER_MODEL, MAX_RETRIES, \
    Cluster
from ..image_io import IMAGES_DIR
from ..layers import ANIMATION_MIN_SIZE
from ..methods.consingan.hparams import ACTIVATIONS, TRAIN_MODES, ConSinGANConfig
from ..methods.singan.hparams import SinGANConfig
from . import ArgumentParser


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


def get_arguments(description: str = None, both_methods: bool = False) -> ArgumentParser:
    """The reference's shared options (config.py), plus --device. both_methods: --nfc and
    --num_layer default to None, filled per method by check_consingan_arguments."""
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
    per_method = " (default: %d for SinGAN, %d for ConSinGAN)%%(default).0s"
    add("--nfc", type=positive_int, default=None if both_methods else d.nfc,
        help="channels at scales 0-3" + (per_method % MODEL_DEFAULTS["nfc"] if both_methods
                                         else ""))
    add("--min_nfc", type=positive_int, default=d.min_nfc, help="minimum channels of body blocks")
    add("--ker_size", type=positive_int, default=d.ker_size, help="kernel size")
    add("--num_layer", type=_typed(int, lambda v: v >= 3, "an integer >= 3"),
        default=None if both_methods else d.num_layer,
        help="conv layers per network" + (per_method % MODEL_DEFAULTS["num_layer"]
                                          if both_methods else ""))
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
    add("--amp", default="none", choices=["none", "bf16", "fp16"],
        help="mixed precision for training and sampling: bf16 autocast (CPUs with AVX-512 BF16 "
             "or AMX, recent GPUs) or fp16 autocast with loss scaling (GPUs); results differ "
             "slightly from fp32")
    add("--legacy_g_steps", action="store_true",
        help="reuse the last D step's graph in the G steps, as torch <= 1.4 did in the "
             "reference (bit-level comparison with old runs only)")
    return parser


def add_checkpoint_argument(parser: ArgumentParser) -> None:
    """--checkpoint_minutes, for the scripts that train."""
    parser.add_argument("--checkpoint_minutes", type=non_negative_float, default=10.0,
                        help="save the running scale or stage every this many minutes, and "
                             "on Ctrl-C or SIGTERM, so that running the same command again "
                             "continues it where it was (0: only on Ctrl-C or SIGTERM)")


def add_format_argument(parser: ArgumentParser) -> None:
    """--format gif|mp4, for the scripts that write animations; MP4 without PyAV installed is
    refused when the options are checked (check_arguments)."""
    parser.add_argument("--format", choices=FORMATS, default="gif",
                        help="animation file format: an endlessly looping GIF, or an H.264 MP4 "
                             "that browsers and phones play (needs PyAV: pip install -r "
                             "requirements-video.txt)")


def check_arguments(parser: ArgumentParser, args) -> None:
    """Checks that involve several options: one clear line each, from argument parsing."""
    if args.min_size > args.max_size:
        parser.error(f"--min_size ({args.min_size}) must not exceed --max_size ({args.max_size})")
    if args.not_cuda:
        args.device = "cpu"
    check_device(parser, args.device)
    if getattr(args, "format", "gif") != "gif":
        check_format(args.format)
    if getattr(args, "amp", "none") != "none":
        from singan.devices import amp_slowdown, resolve_device
        reason = amp_slowdown(resolve_device(args.device), args.amp)
        if reason:
            print(f"warning: {reason}", file=sys.stderr)


def check_device(parser: ArgumentParser, device: str) -> None:
    """--device cuda or mps on a machine without it: one line, before anything runs."""
    import torch
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available on this machine (no GPU, or torch "
                     "built without CUDA); use --device cpu, or auto")
    mps = getattr(torch.backends, "mps", None)
    if device == "mps" and not (mps and mps.is_available()):
        parser.error("--device mps: MPS is not available on this machine; use --device cpu, "
                     "or auto")


def config_from_args(args, **overrides) -> SinGANConfig:
    """The frozen training configuration that the options describe."""
    values = {k: getattr(args, k) for k in SinGANConfig.__dataclass_fields__ if hasattr(args, k)}
    values.update(overrides)
    return SinGANConfig(**values)


def model_dir_from_args(args) -> Path:
    """The model folder the options name: --model_dir, or the one main_train.py writes for
    --input_name and the model options."""
    from singan import model_folder
    return Path(args.model_dir) if args.model_dir else model_folder(args.input_name,
                                                                   config_from_args(args))


def add_injection_arguments(parser: ArgumentParser, task: str, ref_dir: str, ref_what: str,
                            start_scale_option: str, mask_region: Optional[str] = None) -> None:
    """The options of the scripts that inject an image into a trained SinGAN (harmonization,
    editing, paint-to-image), under the reference's names, and --mode fixed to `task`."""
    add = parser.add_argument
    add("--input_dir", default=IMAGES_DIR, help="folder of the training image")
    add("--input_name", required=True, help="training image file name")
    add("--ref_dir", default=ref_dir, help=f"folder of the {ref_what}")
    add("--ref_name", required=True, help=f"{ref_what} file name")
    if mask_region:
        add("--mask", help="mask file, a path or a name in --ref_dir (default: <ref_name stem>"
            f"_mask.<ext> in --ref_dir); white marks the {mask_region} region")
    add(f"--{start_scale_option}", type=int, default=None,
        help="injection scale, 1..N (N: the finest scale); a ConSinGAN harmonization or "
             "editing model takes the image at stage 0 and needs none")
    add("--model_dir", help="model folder (default: the one main_train.py writes for "
        "--input_name and the current model options)")
    add("--num_samples", type=positive_int, default=1,
        help="results to write (the reference writes 1)")
    add("--mode", default=task, choices=[task], help="task")


# ---- ConSinGAN (main_train.py --model consingan) -------------------------------------------------

# ConSinGAN's own options: given on the command line, they select --model consingan.
CONSINGAN_OPTIONS = ("train_mode", "train_stages", "train_depth", "lr_scale", "activation",
                     "lrelu_alpha", "batch_norm", "fine_tune", "naive_img")
# Shared options whose default depends on the method: (SinGAN, ConSinGAN).
MODEL_DEFAULTS = {"nfc": (32, 64), "num_layer": (5, 3)}
# SinGAN's options that ConSinGAN has no use for: refused with --model consingan, not dropped.
SINGAN_ONLY_OPTIONS = {
    "scale_factor": "ConSinGAN's stage sizes follow --train_stages and --min_size/--max_size",
    "min_nfc": "ConSinGAN's stages all have --nfc channels",
    "lr_milestone": "ConSinGAN's learning rate decays at 0.8 * --niter, as the reference's",
    "legacy_g_steps": "ConSinGAN's generator steps have no legacy variant",
}


def options_given(parser: ArgumentParser, argv=None) -> set:
    """The destinations of the options the command line itself names (--name, --name=value,
    or an abbreviation argparse accepts), as opposed to those filled by defaults."""
    argv = sys.argv[1:] if argv is None else argv
    actions = parser._option_string_actions
    given = set()
    for token in argv:
        if not token.startswith("--"):
            continue
        name = token.split("=", 1)[0]
        matches = [a for flag, a in actions.items() if flag == name] or \
            [a for flag, a in actions.items() if flag.startswith(name)]
        if len({a.dest for a in matches}) == 1:
            given.add(matches[0].dest)
    return given


def add_consingan_arguments(parser: ArgumentParser) -> None:
    """--model and ConSinGAN's options, under the reference ConSinGAN's names and defaults.

    ConSinGAN-only options default to None so that giving one can select ConSinGAN (the
    reference's command lines work as they are); --nfc and --num_layer default per method.
    """
    c = ConSinGANConfig()
    group = parser.add_argument_group("ConSinGAN (--model consingan; defaults as its reference)")
    add = group.add_argument
    add("--model", choices=["singan", "consingan"], default=None,
        help="training method (default: singan, or consingan when a ConSinGAN option is given)")
    add("--train_mode", choices=TRAIN_MODES, default=None,
        help=f"what the model is for (default: {c.train_mode})%(default).0s")
    add("--train_stages", type=_typed(int, lambda v: v >= 2, "an integer >= 2"), default=None,
        help=f"number of stages (default: {c.train_stages})%(default).0s")
    add("--train_depth", type=positive_int, default=None,
        help=f"stages trained concurrently (default: {c.train_depth})%(default).0s")
    add("--lr_scale", type=positive_float, default=None,
        help=f"learning-rate factor per stage below the newest (default: {c.lr_scale})"
             "%(default).0s")
    add("--activation", choices=ACTIVATIONS, default=None,
        help=f"activation function (default: {c.activation})%(default).0s")
    add("--lrelu_alpha", type=non_negative_float, default=None,
        help=f"LeakyReLU slope (default: {c.lrelu_alpha})%(default).0s")
    add("--batch_norm", action="store_true", default=None,
        help="BatchNorm in the generator%(default).0s")
    add("--fine_tune", action="store_true", default=None,
        help="fine-tune a harmonization/editing model (--model_dir) on --naive_img%(default).0s")
    add("--model_dir", default=None, help="the trained model to fine-tune%(default).0s")
    add("--naive_img", default=None, help="naive image for fine-tuning%(default).0s")
    add("--start_scale", type=non_negative_int, default=0,
        help="the reference's first stage to train: 0 (fine-tuning retrains the last stage)")
    add_gpu_argument(parser)


def add_gpu_argument(parser: ArgumentParser) -> None:
    """The reference ConSinGAN's --gpu (a CUDA device index)."""
    parser.add_argument("--gpu", type=non_negative_int, default=None,
                        help="CUDA device index, as ConSinGAN's --gpu (with --device auto "
                             "or cuda)%(default).0s")


def apply_gpu_argument(args) -> None:
    """--gpu N selects cuda:N where --device would pick CUDA."""
    import torch
    if getattr(args, "gpu", None) is not None and args.device in ("auto", "cuda") \
            and torch.cuda.is_available():
        args.device = f"cuda:{args.gpu}"


def check_consingan_arguments(parser: ArgumentParser, args, folder_mode: bool = False) -> None:
    """Pick the method (--model), fill the per-method defaults, check ConSinGAN's options.
    folder_mode: a folder of images (--input_dir) stands for --input_name."""
    given = [name for name in CONSINGAN_OPTIONS if getattr(args, name) is not None]
    if args.model is None:
        args.model = "consingan" if given else "singan"
    elif args.model == "singan" and given:
        parser.error(f"--{given[0]} is a ConSinGAN option; add --model consingan")
    consingan = args.model == "consingan"
    for name, defaults in MODEL_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, defaults[consingan])
    apply_gpu_argument(args)
    if not consingan:
        if not getattr(args, "input_name", None) and not folder_mode:
            parser.error("the following arguments are required: --input_name")
        return
    for name in sorted(options_given(parser) & set(SINGAN_ONLY_OPTIONS)):
        parser.error(f"--{name} is a SinGAN option, which ConSinGAN cannot honour "
                     f"({SINGAN_ONLY_OPTIONS[name]}); leave it out with --model consingan")
    if args.ker_size != 3:
        parser.error("ConSinGAN's stage geometry needs --ker_size 3")
    if args.start_scale != 0:
        parser.error("--start_scale: ConSinGAN trains from stage 0; to retrain the last stage "
                     "of a model use --fine_tune --model_dir <model> --naive_img <image>")
    if args.fine_tune:
        if not args.model_dir or not args.naive_img:
            parser.error("--fine_tune needs --model_dir <trained model> and --naive_img <image>")
    elif not getattr(args, "input_name", None) and not folder_mode:
        parser.error("the following arguments are required: --input_name")


def training_config_from_args(args):
    """The frozen configuration of the method --model picked (check_consingan_arguments)."""
    return consingan_config_from_args(args) if args.model == "consingan" else \
        config_from_args(args)


def consingan_config_from_args(args):
    """The frozen ConSinGAN configuration the options describe (reference defaults for the
    ConSinGAN options not given)."""
    values = {f.name: getattr(args, f.name) for f in fields(ConSinGANConfig)
              if getattr(args, f.name, None) is not None}
    if values.get("train_mode") == "animation":
        values["min_size"] = ANIMATION_MIN_SIZE   # Reference behaviour: forced in animation mode
    return ConSinGANConfig(**values)


# ---- many images (--input_dir without --input_name, on Ray) -------------------------------------

RAY_OPTIONS = ("ray_address", "num_cpus", "cpus_per_model", "gpus_per_model", "max_retries")


def add_ray_arguments(parser) -> None:
    """The options of a run over a folder (--input_dir without --input_name), in a group."""
    def number(kind, minimum):
        def parse(text):
            value = kind(text)
            if value < minimum:
                raise ValueError(text)
            return value
        parse.__name__ = kind.__name__
        return parse
    group = parser.add_argument_group("many images (--input_dir without --input_name), on Ray")
    add = group.add_argument
    add("--ray_address", default=None,
        help="join this Ray cluster (e.g. HEAD:6379; its token in RAY_AUTH_TOKEN, see README) "
             "instead of starting Ray's local runtime (loopback only, a token of its own)")
    add("--num_cpus", type=number(int, 1), default=None,
        help="CPUs of the local runtime (default: all of this machine's)")
    add("--cpus_per_model", type=number(float, 0.01), default=None,
        help=f"CPUs (and torch threads) per image's task (default: {DEFAULT_CPUS_PER_MODEL}, "
             "measured best on a 2-core machine)")
    add("--gpus_per_model", type=number(float, 0), default=None,
        help=f"GPUs per task, fractional: 0.25 puts four on one GPU (default: "
             f"{DEFAULT_GPUS_PER_MODEL} where the cluster has GPUs, else 0)")
    add("--max_retries", type=number(int, 0), default=None,
        help=f"retries of a task whose worker died (default: {MAX_RETRIES}); a retry resumes "
             "after the last finished stage")


def check_ray_arguments(parser, args, folder_mode: bool) -> None:
    """The folder options only with a folder; --num_cpus only for the local runtime."""
    given = [name for name in RAY_OPTIONS if getattr(args, name) is not None]
    if given and not folder_mode:
        parser.error(f"--{given[0]} is for a folder of images: --input_dir DIR without "
                     "--input_name")
    if args.ray_address and args.num_cpus:
        parser.error("--num_cpus sizes the local runtime; a cluster's nodes have their own "
                     "(ray start --num-cpus)")
    if getattr(args, "device", None) == "cuda" and args.gpus_per_model == 0:
        parser.error("--device cuda needs --gpus_per_model above 0")


def cluster_from_args(args) -> Cluster:
    """The Cluster the folder options describe (defaults for those not given)."""
    return Cluster(args.ray_address, args.num_cpus,
                   args.cpus_per_model if args.cpus_per_model is not None
                   else DEFAULT_CPUS_PER_MODEL,
                   args.gpus_per_model,
                   args.max_retries if args.max_retries is not None else MAX_RETRIES)
