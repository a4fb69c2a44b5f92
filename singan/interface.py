"""The one interface of a trained model, whichever method trained it (STYLE: two methods,
one interface), and the one contract a method plugs into the stage driver.

SinGAN's TrainedPyramid and ConSinGAN's ConSinGAN both implement TrainedModel; the
applications, the scripts, the web studio and the cluster runner use only this, and ask the
model rather than compare its method: what it calls a level (``unit``), how many levels it plans
and has trained, where samples may start and images may be injected, which applications it
supports (``unsupported(application)`` gives the reason when not), the tag that keeps its
outputs apart, and a one-line description.

An argument that a method cannot honour raises SinGANError saying so (for example
gen_start_scale > 0 for ConSinGAN, whose one generator starts at stage 0), never ignored.
"""
from pathlib import Path
from typing import Iterable, List, Optional, Protocol, runtime_checkable

import torch

from .errors import SinGANError
from .tuning import training_layout

# What an application may ask a model for (TrainedModel.unsupported):
APPLICATIONS = (
    "samples",            # random samples at the training size (random_samples.py)
    "arbitrary_sizes",    # samples at scale_v x scale_h
    "injection",          # an image injected at a coarse level: harmonization, editing, paint
    "quantised_paint",    # paint2image --quantization_flag: one scale retrained on a palette
    "sr",                 # super-resolution by the finest generator (SR.py)
    "animation",          # a random walk around the reconstruction noise (animation.py)
    "fine_tune",          # retraining the last stage on a naive image (--fine_tune)
    "evaluate",           # the reference ConSinGAN's evaluation (evaluate_model.py)
)


@runtime_checkable
class TrainedModel(Protocol):
    """A trained (or partly trained) single-image GAN."""
    method: str                      # "singan" | "consingan" (model.pth's "method")
    display_name: str                # "SinGAN" | "ConSinGAN", for people
    unit: str                        # "scale" | "stage": what the method calls one level
    reals: List[torch.Tensor]        # the training image of every planned level, [1, 3, h, w],
                                     # coarsest first (also those not trained yet)
    config: dict                     # the training hyper-parameters, as saved
    folder: Optional[Path]           # the model folder, when loaded from or trained into one

    @property
    def num_scales(self) -> int:
        """How many levels (scales or stages) are trained."""

    @property
    def planned_stages(self) -> int:
        """How many levels the training plans (len(reals))."""

    @property
    def complete(self) -> bool:
        """Whether every planned level is trained (a stopped training leaves a partial model)."""

    @property
    def trained_real(self) -> torch.Tensor:
        """The training image at the size the model draws at (its finest trained level),
        [1, 3, H, W]."""

    @property
    def sample_start_scales(self) -> range:
        """The gen_start_scale values sample() accepts."""

    @property
    def injection_scales(self) -> range:
        """The levels at which generate() accepts an image (empty: none)."""

    @property
    def output_tag(self) -> str:
        """What keeps one image's outputs of different models apart: '' (the reference's
        output folders) or a level of the output path."""

    @property
    def device(self) -> torch.device:
        """Where the model's tensors are."""

    def unsupported(self, application: str) -> Optional[str]:
        """None when the model can serve `application` (one of APPLICATIONS), else the reason
        it cannot, as a sentence that says what to do instead."""

    def describe(self) -> str:
        """One line for people: the method, how many levels are trained of how many, the size,
        and where samples start and images can be injected."""

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


def _span(levels: range) -> str:
    if not len(levels):
        return "none"
    return str(levels[0]) if len(levels) == 1 else f"{levels[0]}-{levels[-1]}"


class ModelAnswers:
    """The TrainedModel answers that follow from the per-method ones (a mixin of both model
    classes, so that each answer is written once)."""
    display_name: str
    unit: str

    @property
    def planned_stages(self) -> int:
        return len(self.reals)

    @property
    def complete(self) -> bool:
        return self.num_scales == self.planned_stages

    @property
    def trained_real(self) -> torch.Tensor:
        return self.reals[self.num_scales - 1]

    def require(self, application: str) -> None:
        """Raise SinGANError with the reason when the model cannot serve `application`."""
        reason = self.unsupported(application)
        if reason is not None:
            raise SinGANError(reason)

    def progress_text(self) -> str:
        """'3 of 5 scales trained' (or 'all 5 scales trained')."""
        if self.complete:
            return f"all {self.planned_stages} {self.unit}s trained"
        return f"{self.num_scales} of {self.planned_stages} {self.unit}s trained"

    def describe(self) -> str:
        h, w = self.trained_real.shape[2:]
        injection = self.injection_scales
        inject = (f"images can be injected at {self.unit} {_span(injection)}" if len(injection)
                  else "no image injection")
        return (f"{self.display_name}{self.mode_text()}: {self.progress_text()}, {w} x {h} px; "
                f"samples start at {self.unit} {_span(self.sample_start_scales)}; {inject}")

    def mode_text(self) -> str:
        """' (harmonization)' where the method has training modes, else ''."""
        return ""


class TrainerDefaults:
    """What a StageTrainer answers unless it says otherwise (a mixin of both methods' trainers,
    so that each default is written once): a whole training, nothing to reuse, nothing more to
    record."""
    retrains, retrain_name = False, ""
    layout = None     # the training networks' memory layout, decided once (run_layout)

    def stages_to_train(self) -> List[int]:
        return list(range(self.num_done, self.plan.n_stages))

    def total_work(self) -> float:
        """The work left to train: each stage's stage_cost times its iterations."""
        return sum(self.stage_cost(k) for k in self.stages_to_train()) * self.cfg.niter

    def run_layout(self, log=None):
        """The memory layout every stage of this run trains in (singan.tuning.training_layout:
        NCHW, or channels-last where bf16 measured faster so on this CPU)."""
        if self.layout is None:
            self.layout = training_layout(self.device, self.cfg.amp, self.total_work(), log)
        return self.layout

    def reusable(self, ckpt: dict) -> bool:
        return False

    def run_record(self) -> dict:
        return {}


# What every StageRun trains with, by attribute name: networks, optimisers, loss scalers.
TRAINING_PARTS = ("G", "D", "opt_g", "opt_d", "scaler_g", "scaler_d")


def parts_state(run, names=TRAINING_PARTS) -> dict:
    """The state_dict() of each named part of a StageRun (for its state())."""
    return {name: getattr(run, name).state_dict() for name in names}


def load_parts_state(run, state: dict, names=TRAINING_PARTS) -> None:
    for name in names:
        getattr(run, name).load_state_dict(state[name])


def history_state(history: dict) -> dict:
    """A StageRun's losses so far as one CPU tensor per loss (for its state())."""
    return {key: torch.stack(values).cpu() if values else torch.zeros(0)
            for key, values in history.items()}


def history_from_state(state: dict, device) -> dict:
    """history_state's losses back as lists of 0-d tensors on `device`."""
    return {key: list(values.to(device).unbind()) for key, values in state.items()}


class StageRun(Protocol):
    """One level's training in progress, as the driver plays it."""
    history: dict                    # loss name -> list of 0-d device tensors, one per iteration

    def step(self, it: int) -> None:
        """Play iteration `it`, appending its losses to `history` (no host synchronisation)."""

    def state(self) -> dict:
        """Everything the next iterations depend on, as tensors and plain values: the
        networks (with BatchNorm's statistics), the optimisers, schedulers and loss scalers,
        every random generator the level draws from, the losses so far. A run made by
        begin_stage(k, seed) and given it through load_state continues bit for bit."""

    def load_state(self, state: dict) -> None:
        """Continue from a state() of the same level."""

    def result(self):
        """The finished level: an object with .losses (name -> [niter] CPU tensor), .fake and
        .reconstruction ([1, 3, h, w]), and what the method's add() needs."""


class StageTrainer(Protocol):
    """What a method plugs into the one stage driver (singan.driver): the driver owns the
    folder, the lock, resuming, the iterations, the finite checks, progress, stopping and the
    atomic save; the trainer knows how to set up one level and what a finished level adds.

    The same contract serves a whole training (stages num_done .. n_stages - 1) and a retraining
    of one level of an existing model into a new folder (ConSinGAN's fine-tuning, paint's
    colour-quantised scale): there `stages_to_train` lists that one level and `retrains` is
    true."""
    method: str                      # model.pth's "method"
    unit: str                        # "scale" | "stage"
    stage_files: Iterable[str]       # the file names a finished level writes in its folder
    cfg: object                      # the frozen hyper-parameters (a dataclass)
    plan: object                     # the geometry (a dataclass with n_stages)
    reals: List[torch.Tensor]        # the training image per level
    device: torch.device
    retrains: bool                   # True: retrain one level of a source model (no resume)

    @property
    def num_done(self) -> int:
        """How many levels are finished (and listed in the checkpoint)."""

    def stages_to_train(self) -> List[int]:
        """The levels this run trains, in order."""

    def stage_cost(self, k: int) -> float:
        """The work of one iteration of level k (any unit, the same for every level: the
        progress weighs the levels by it)."""

    def estimated_bytes(self) -> int:
        """About how much disk the model folder needs while training."""

    def saved_config(self, ckpt: dict) -> dict:
        """The saved config of `ckpt`, normalised as asdict(cfg) is (for resume checks)."""

    def load(self, ckpt: dict) -> None:
        """Take the finished levels of a saved checkpoint (resume)."""

    def reusable(self, ckpt: dict) -> bool:
        """Retraining only: whether `ckpt` (in the target folder) already is this retraining's
        finished result, so that nothing needs to run."""

    def begin_stage(self, k: int, seed: int) -> StageRun:
        """Set up level k's game (networks, optimisers, noise) and return it."""

    def stage_label(self, k: int) -> str:
        """The progress bar's label for level k."""

    def stage_parameters(self, result) -> Iterable[torch.Tensor]:
        """The generator weights that must be finite before level k is saved."""

    def stage_noise_amp(self, k: int, result) -> float:
        """Level k's noise amplitude, once it is finished (for the progress events)."""

    def stage_summary(self, k: int, result, seconds: float) -> str:
        """The line logged when level k is finished."""

    def add(self, k: int, result) -> None:
        """Make the finished level k part of the model (num_done grows, or k is replaced)."""

    def drop(self, k: int) -> None:
        """Undo add(k) (its save failed)."""

    def save_stage_files(self, folder: Path, k: int, result) -> None:
        """Write level k's files (stage_files) into folder/k."""

    def run_record(self) -> dict:
        """What config.json records about this run besides the config, plan and image."""

    def checkpoint(self, info: dict, extra: Optional[dict] = None) -> dict:
        """model.pth's content, listing the finished levels."""

    def model(self, info: dict) -> TrainedModel:
        """The trained model."""

