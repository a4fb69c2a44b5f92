"""Import a TrainedModels folder written by the reference ConSinGAN code (SPEC 10; STYLE habit 4).

The reference's folder: per stage ``n/netG.pth`` (the state dict of the whole growing generator
after stage n: head, body.0 .. body.n, tail), ``n/netD.pth`` and ``n/z_opt.pth``; at the top
``fixed_noise.pth`` (per stage, the reconstruction input), ``noise_amp.pth`` (per stage),
``reals.pth`` (every planned stage's image, coarsest first), ``parameters.txt`` (its options,
one ``name<TAB>-<TAB>value`` a line) and ``G.pth``, the pickled generator module, which is never
loaded (unpickling it runs code). Everything else is read with ``torch.load(weights_only=True)``.

The reference's generator state dict uses our key names (singan.methods.consingan.models follows
them), so the last stage's netG.pth loads into our GrowingGenerator as it is.
"""
from dataclasses import fields, replace
from pathlib import Path

import torch

from ...checkpoint import load_torch
from ...errors import SinGANError
from .hparams import ConSinGANConfig
from .model import ConSinGAN
from .models import build_generator, receptive_field
from .pyramid import StagePlan, plan_stages

PARAMETERS_NAME = "parameters.txt"
# The reference's option whose value is our ConSinGANConfig field of another name.
REFERENCE_OPTION = {"noise_amp": "noise_amp_init"}


def read_parameters(path: Path) -> dict:
    """parameters.txt as {option: value text} (the reference writes 'name\\t-\\tvalue')."""
    if not path.is_file():
        raise SinGANError(f"missing file: {path}")
    options = {}
    for line in path.read_text(errors="replace").splitlines():
        name, sep, value = line.partition("\t-\t")
        if sep:
            options[name.strip()] = value.strip()
    return options


def _parse_option(text: str, default):
    """An option's text as the type of our field's default (bool: the reference writes 0/1
    for store_true options, or True/False)."""
    if isinstance(default, bool):
        if text in ("1", "True", "true"):
            return True
        if text in ("0", "False", "false", ""):
            return False
        raise ValueError(text)
    return type(default)(text)


def config_from_parameters(options: dict, path: Path) -> ConSinGANConfig:
    """Our ConSinGANConfig from the reference's options; a setting it does not record keeps
    our default (the reference's)."""
    values = {}
    for f in fields(ConSinGANConfig):
        name = REFERENCE_OPTION.get(f.name, f.name)
        text = options.get(name, options.get(f.name))
        if text is None:
            continue
        try:
            values[f.name] = _parse_option(text, f.default)
        except ValueError:
            raise SinGANError(f"{path}: option {name} = {text!r} is not a "
                              f"{type(f.default).__name__}") from None
    try:
        return ConSinGANConfig(**values)
    except ValueError as err:
        raise SinGANError(f"{path}: {err}") from None


def plan_from_reals(shapes, cfg: ConSinGANConfig, folder: Path) -> StagePlan:
    """The StagePlan of the reference's pyramid, rebuilt from its finest real's shape and the
    options, and checked against every stage's shape. The training image's own size is not
    recorded, so the plan starts at the finest real (scale1 = 1)."""
    h, w = shapes[-1]
    plan = plan_stages(h, w, len(shapes), cfg.min_size, max(cfg.max_size, h, w),
                       harmonization=cfg.train_mode == "harmonization",
                       min_input=receptive_field(cfg.num_layer, cfg.ker_size))
    if plan.shapes != shapes:
        raise SinGANError(f"{folder}: reals.pth's stage sizes {shapes} do not follow "
                          f"{PARAMETERS_NAME} (min_size {cfg.min_size}, train_mode "
                          f"{cfg.train_mode}: {plan.shapes}); the folder mixes two runs")
    return plan


def _count_bodies(state: dict) -> int:
    return len({key.split(".")[1] for key in state if key.startswith("body.")})


def import_reference_consingan(folder, device="cpu") -> ConSinGAN:
    """Load a TrainedModels folder written by the reference ConSinGAN code as our ConSinGAN.

    Reads fixed_noise.pth, noise_amp.pth, reals.pth, parameters.txt and the last trained
    stage's netG.pth; G.pth (the pickled module) is never opened. A missing or damaged file is
    one SinGANError naming it.
    """
    folder = Path(folder)
    fixed_noise = load_torch(folder / "fixed_noise.pth")
    noise_amp = load_torch(folder / "noise_amp.pth")
    reals = load_torch(folder / "reals.pth")
    options = read_parameters(folder / PARAMETERS_NAME)
    if not (isinstance(fixed_noise, list) and isinstance(noise_amp, list)
            and isinstance(reals, list) and noise_amp
            and len(fixed_noise) == len(noise_amp) <= len(reals)):
        raise SinGANError(f"{folder}: fixed_noise.pth, noise_amp.pth and reals.pth do not "
                          "describe one model (different lengths); the folder is incomplete")
    shapes = [tuple(r.shape[2:]) for r in reals]
    cfg = config_from_parameters(options, folder / PARAMETERS_NAME)
    cfg = replace(cfg, train_stages=len(reals))   # the pyramid the reals describe
    plan = plan_from_reals(shapes, cfg, folder)

    num_stages = len(noise_amp)
    netg = folder / str(num_stages - 1) / "netG.pth"
    state = load_torch(netg)
    if not isinstance(state, dict) or _count_bodies(state) != num_stages:
        raise SinGANError(f"{netg} does not hold a generator of {num_stages} stages (as "
                          "noise_amp.pth lists); the folder is incomplete")
    generator = build_generator(cfg, num_stages)
    try:
        generator.load_state_dict(state)
    except RuntimeError as err:
        raise SinGANError(f"{netg} does not fit the generator {PARAMETERS_NAME} describes "
                          f"({str(err).splitlines()[0][:120]})") from None
    for k, z in enumerate(fixed_noise):
        expected = generator.noise_shape(k, *shapes[k])
        if not isinstance(z, torch.Tensor) or tuple(z.shape[1:]) != expected:
            raise SinGANError(f"{folder / 'fixed_noise.pth'}: stage {k}'s noise is not "
                              f"[1, {', '.join(map(str, expected))}]; the folder is damaged")

    name = Path(options.get("input_name", "")).name
    info = {"name": name, "imported_from": str(folder)} if name else \
        {"imported_from": str(folder)}
    model = ConSinGAN(generator, [z.float() for z in fixed_noise],
                      [float(a) for a in noise_amp], [r.float() for r in reals], cfg, plan, info)
    return model.to(device)
