"""The public entry points that programs call, for both methods: ``train_model`` and
``load_model`` (and ``model_folder``, where a model of an image lives).

The method is chosen from data, through the small tables below (the only place in singan that
names a method): training by the type of the config (SinGANConfig or ConSinGANConfig),
loading by model.pth's "method" field, a reference code's folder by its files.
"""
from pathlib import Path
from typing import Callable, Optional, Union

import torch

from .catalog import is_reference_consingan_folder, is_reference_folder, is_reference_singan_folder
from .checkpoint import CHECKPOINT_NAME, read_checkpoint
from .devices import resolve_device
from .driver import CHECKPOINT_MINUTES, RunOptions, train_stages
from .errors import SinGANError
from .image_io import read_image
from .interface import TrainedModel
from .methods.consingan.hparams import ConSinGANConfig
from .methods.consingan.model import consingan_from_checkpoint
from .methods.consingan.reference import import_reference_consingan
from .methods.consingan.train import ConSinGANTrainer
from .methods.singan.hparams import SinGANConfig
from .methods.singan.model import TrainedPyramid
from .methods.singan.reference import import_reference_singan
from .methods.singan.train import SinGANTrainer
from .progress import ProgressCallback

TRAINED_ROOT = "TrainedModels"

# The trainer of each kind of config, and the class of each checkpoint's "method".
TRAINERS = {SinGANConfig: SinGANTrainer, ConSinGANConfig: ConSinGANTrainer}
LOADERS = {"singan": TrainedPyramid.from_checkpoint, "consingan": consingan_from_checkpoint}
# How to recognise, and import, a folder written by each method's reference code.
REFERENCE_IMPORTERS = {"singan": (is_reference_singan_folder, import_reference_singan),
                       "consingan": (is_reference_consingan_folder, import_reference_consingan)}

Config = Union[SinGANConfig, ConSinGANConfig]


def trainer_for(config: Config):
    """The StageTrainer class of a config's method (TRAINERS), or SinGANError."""
    trainer_class = TRAINERS.get(type(config))
    if trainer_class is None:
        raise SinGANError(f"config must be a SinGANConfig or a ConSinGANConfig, not "
                          f"{type(config).__name__}")
    return trainer_class


def model_folder(image_name, config: Config, root=TRAINED_ROOT) -> Path:
    """Where the model of an image lives: TrainedModels/<image stem>/<the config's folder name>
    (SinGAN: the reference's 'scale_factor=0.750000,alpha=10'; ConSinGAN:
    'consingan_<mode>,stages=<S>,depth=<D>,lr_scale=<x>[,...]')."""
    return Path(root) / Path(str(image_name)).stem / config.folder_name()


def train_model(image, config: Config, model_dir=None, *, device="auto", seed: int = 0,
                progress: Optional[ProgressCallback] = None,
                should_stop: Optional[Callable[[], bool]] = None, force: bool = False,
                show_progress: bool = True, log: Callable[[str], None] = print,
                root=TRAINED_ROOT, low_memory: Optional[bool] = None,
                cuda_graphs: Optional[bool] = None,
                checkpoint_minutes: float = CHECKPOINT_MINUTES,
                on_saved: Optional[Callable[[int, int], None]] = None,
                image_source: Optional[str] = None) -> TrainedModel:
    """Train SinGAN or ConSinGAN (by the type of `config`) on one image, or resume it.

    image: a path, or a [1, 3, H, W] tensor in [-1, 1] (then model_dir is required);
    model_dir: default model_folder(image name, config, root). The model folder is written
    after every finished stage; calling again with the same image and settings resumes after
    the last finished one, or returns the finished model at once (force=True retrains).
    progress(event) receives singan.progress.ProgressEvent's; should_stop() is asked before
    every iteration: when it returns True, training stops with TrainingStopped (a
    SinGANError saying which stages are saved). low_memory: SinGAN's lean step (the same
    numbers, fewer activations alive); None takes it when the plain step would not fit. A
    training that cannot fit either way is refused before anything is written (SinGANError
    with the figures). checkpoint_minutes: how often the running stage is saved (also on
    Ctrl-C, SIGTERM and should_stop; 0: only then), so that the next call continues it at
    that iteration, bit for bit. cuda_graphs: SinGAN on CUDA replays each iteration from a captured
    CUDA graph (methods/singan/graphs.py: the same kernels and noise, far fewer launches); None takes it
    for the plain fp32 step on CUDA, where it was proven equal and faster; True also under
    --amp bf16; refused off CUDA, with fp16 and for ConSinGAN. on_saved(stage, iteration) is
    called after every save into the folder (singan.driver.train_stages). image_source: where
    the image came from, recorded in the model instead of the path given (a folder run's task
    reads a copy of the driver's file). Returns the model, its folder in .folder.
    """
    trainer_class = trainer_for(config)
    run = RunOptions(device=resolve_device(device), seed=seed, force=force,
                     checkpoint_minutes=checkpoint_minutes, low_memory=low_memory,
                     cuda_graphs=cuda_graphs, show_progress=show_progress, progress=progress,
                     should_stop=should_stop, on_saved=on_saved, log=log)
    device = run.device
    if isinstance(image, torch.Tensor):
        if model_dir is None:
            raise SinGANError("train_model(tensor, ...) needs model_dir: where to save the model")
        if image.dim() != 4 or image.shape[:2] != (1, 3):
            raise SinGANError(f"the image tensor must be [1, 3, H, W] in [-1, 1], got "
                              f"{list(image.shape)}")
        tensor, info = image.to(device), {"name": Path(model_dir).parent.name}
    else:
        tensor = read_image(image, device)
        info = {"name": Path(image).name, "path": str(image_source or image)}
    info.update(height=tensor.shape[2], width=tensor.shape[3])
    folder = Path(model_dir) if model_dir is not None else model_folder(info["name"], config,
                                                                         root)
    trainer = trainer_class(tensor, config, low_memory=run.low_memory,
                            cuda_graphs=run.cuda_graphs)
    model = train_stages(trainer, folder, run, info)
    model.folder = folder
    return model


def import_reference_folder(folder, scale_factor: Optional[float] = None,
                            device="cpu") -> TrainedModel:
    """The one entry for a TrainedModels folder written by the reference SinGAN or ConSinGAN
    code (picked by its files: SinGAN's Zs.pth/NoiseAmp.pth/reals.pth, ConSinGAN's
    fixed_noise.pth/noise_amp.pth); their pickled Gs.pth / G.pth are never loaded.
    scale_factor is SinGAN's (see load_model); a ConSinGAN folder refuses it."""
    folder = Path(folder)
    for method, (recognises, importer) in REFERENCE_IMPORTERS.items():
        if not recognises(folder):
            continue
        if scale_factor is not None and method != "singan":
            raise SinGANError(f"scale_factor is for SinGAN models; {folder} holds a reference "
                              f"{method} model, whose stage sizes its reals.pth stores")
        extra = {"scale_factor": scale_factor} if scale_factor is not None else {}
        return importer(folder, device=device, **extra)
    raise SinGANError(f"{folder} is not a folder of the reference SinGAN or ConSinGAN code")


def load_model(folder, scale_factor: Optional[float] = None, device="cpu") -> TrainedModel:
    """A trained model from its folder: ours (model.pth, either method) or a reference
    TrainedModels folder (SinGAN's or ConSinGAN's, see import_reference_folder).

    A reference folder's name says 0.75, but its pyramid used the factor recomputed from the
    image and min/max size (SPEC 3): pass it as scale_factor, or it is recovered from reals.pth's
    shapes when that is unambiguous. scale_factor is SinGAN's: ConSinGAN models refuse it.
    """
    folder = Path(folder)
    device = resolve_device(device)
    if not folder.exists():
        raise SinGANError(f"model folder not found: {folder} (train one with main_train.py)")
    if not folder.is_dir():
        raise SinGANError(f"{folder} is not a folder; pass the model folder, e.g. "
                          "TrainedModels/<image>/scale_factor=0.750000,alpha=10")
    if (folder / CHECKPOINT_NAME).exists():   # a damaged one is an error, not "no model"
        ckpt = read_checkpoint(folder / CHECKPOINT_NAME)
        method = ckpt.get("method", "singan")
        if method not in LOADERS:
            raise SinGANError(f"{folder} holds a {method} model, which this singan cannot "
                              "load (known: " + ", ".join(LOADERS) + ")")
        if not ckpt["scales"]:
            raise SinGANError(f"{folder}: no scale has finished training yet; run main_train.py "
                              "again to resume")
        if scale_factor is not None and method != "singan":
            raise SinGANError(f"scale_factor is for SinGAN models; {folder} holds a {method} "
                              "model, which stores its own")
        try:
            model = LOADERS[method](ckpt, device)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise SinGANError(f"{folder}: the checkpoint is incomplete or inconsistent "
                              f"({type(err).__name__}: {str(err).splitlines()[0][:100]}); "
                              "retrain it with --force") from None
        if scale_factor is not None:
            model.scale_factor = float(scale_factor)
    elif is_reference_folder(folder):
        model = import_reference_folder(folder, scale_factor, device)
    else:
        raise SinGANError(f"{folder} holds no trained model ({CHECKPOINT_NAME}, or a "
                          "reference SinGAN's Zs.pth/NoiseAmp.pth/reals.pth or ConSinGAN's "
                          "fixed_noise.pth/noise_amp.pth): train it with main_train.py, or "
                          "resume")
    model.folder = folder
    return model


def method_of(config: Config) -> str:
    """"singan" or "consingan": the method train_model trains for `config`."""
    return trainer_for(config).method
