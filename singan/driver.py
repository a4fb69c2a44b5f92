"""The one stage-by-stage training driver that SinGAN and ConSinGAN plug into.

A method (methods/singan/train.py's SinGANTrainer, methods/consingan/train.py's
ConSinGANTrainer) knows how to set up and play one stage (SinGAN: a scale) and what a finished stage adds to the model; this
module owns everything around that, written once:

- the model folder: checked for writability and free space before anything is written, one
  writer at a time (a lock), temporaries of a killed run removed;
- resuming after the last finished stage (same image and settings, or a clear error);
- the iterations: losses stay on the device and are read every LOG_EVERY iterations for the
  progress report and a nan/inf check; `should_stop()` is asked before every iteration;
- saving a finished stage atomically: all its files, then model.pth (checksummed), with
  Ctrl-C held back meanwhile, so a kill at any moment leaves a model that lists only
  complete stages; a diverged stage is never saved;
- the running stage's whole state (the method's StageRun.state(): weights, optimisers, random
  streams, losses so far), saved atomically every `checkpoint_minutes` and when Ctrl-C,
  SIGTERM or `should_stop` stops the run (after the iteration in progress; a second Ctrl-C
  stops at once), and continued from there by the next run with the same settings: an
  interruption loses minutes, not the stage;
- Ctrl-C, SIGTERM and `should_stop` keep the finished stages and the running one, and say how
  to resume.

A run's options (seed, force, the checkpoint interval, the callbacks...) travel as one frozen
RunOptions, built once by the caller (singan.train_model).
"""
import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Tuple, Union

import torch

from .catalog import is_reference_folder
from .checkpoint import (CHECKPOINT_NAME, FORMAT_VERSION, RUNNING_NAME, content_digest,
                         read_checkpoint, read_running, save_checkpoint, write_json)
from .errors import SinGANError
from .guards import (check_free_space, check_writable, exclusive, interrupts_deferred,
                     remove_temporaries, stop_requests)
from .image_io import write_error
from .progress import ProgressBar, ProgressCallback, ProgressEvent, RunLine, WorkClock
from .resources import check_training
from .tuning import bf16_hint

LOG_EVERY = 25   # iterations between host synchronisations (progress report, NaN check)
CHECKPOINT_MINUTES = 10.0   # default interval between saves of the running stage
DIVERGENCE_CAUSE = "likely cause: too high a learning rate --lr_g/--lr_d, or too low --lambda_grad"


@dataclass(frozen=True)
class RunOptions:
    """How one training runs, apart from what it trains (the trainer: image, config, plan):
    built once by train_model from its keyword arguments and handed to the driver as one value.

    device: where the trainer is built (train_model resolves "auto"); seed: the run's seed (a
    resumed model keeps its own); force: retrain from scratch; checkpoint_minutes: how often
    the running stage is saved (0: only when stopped); low_memory, cuda_graphs: the trainer's
    step (None: chosen by the machine); show_progress: the terminal's bars; progress(event):
    ProgressEvent's; should_stop(): asked before every iteration; on_saved(stage, iteration):
    after every save into the folder; log(line): what the run says."""
    device: Union[str, torch.device] = "auto"
    seed: int = 0
    force: bool = False
    checkpoint_minutes: float = CHECKPOINT_MINUTES
    low_memory: Optional[bool] = None
    cuda_graphs: Optional[bool] = None
    show_progress: bool = True
    progress: Optional[ProgressCallback] = None
    should_stop: Optional[Callable[[], bool]] = None
    on_saved: Optional[Callable[[int, int], None]] = None
    log: Callable[[str], None] = print


class TrainingStopped(SinGANError):
    """Training stopped because the caller's should_stop() said so; the finished stages are
    saved and calling train_model again resumes after them."""

    def __init__(self, message: str, stages_done: int = 0, folder: str = ""):
        super().__init__(message)
        self.stages_done = stages_done
        self.folder = folder


def scale_seed(seed: int, scale: int, stream: int) -> int:
    """A per-scale seed, so that a resumed run draws exactly what an uninterrupted one would."""
    return (seed * 1_000_003 + scale * 101 + stream) % (2 ** 63)


# ---- the model folder --------------------------------------------------------------------------

def remove_scale_files(folder: Path, first: int, names) -> None:
    """Delete the per-stage files (`names`) of stages >= first (a stage that never finished,
    or an old model's with --force); folders holding anything else are left alone."""
    if not folder.is_dir():
        return
    for scale_dir in folder.iterdir():
        if scale_dir.is_dir() and scale_dir.name.isdigit() and int(scale_dir.name) >= first:
            for name in names:
                (scale_dir / name).unlink(missing_ok=True)
            if not any(scale_dir.iterdir()):
                scale_dir.rmdir()


def prepare_model_folder(folder: Path, needed: int) -> None:
    """Create the model folder, but only once training can start: a folder that does not
    exist yet is first checked for writability and `needed` bytes of free space."""
    if not folder.exists():
        check_writable(folder, "model folder")
        check_free_space(folder, needed)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(folder, err) from None


def clear_for_training(folder: Path, needed: int, force: bool, first: int, names) -> None:
    """Ready a model folder for (re)training from stage `first` on: it must be writable with
    `needed` bytes free; temporaries left by a kill, the per-stage files `names` of stages >=
    first (an unfinished run's) and, with force, the old model.pth are removed."""
    check_writable(folder, "model folder")
    check_free_space(folder, needed)
    try:
        remove_temporaries(folder)
        if force:   # the old model goes first, so that a kill cannot leave it mixed with the new
            (folder / CHECKPOINT_NAME).unlink(missing_ok=True)
        remove_scale_files(folder, first, names)
    except OSError as err:
        raise write_error(folder, err) from None


def config_mismatch(saved: dict, current: dict) -> List[str]:
    """The settings that differ between a saved config and the current one, 'name old -> new'."""
    return [f"{k} {saved.get(k)!r} -> {v!r}" for k, v in current.items() if saved.get(k) != v]


def check_resumable(saved_config: dict, cfg, ckpt_reals, reals, folder) -> None:
    """Refuse to continue a saved model trained with other settings or another image."""
    mismatch = config_mismatch(saved_config, asdict(cfg))
    same_image = len(ckpt_reals) == len(reals) and all(
        a.shape == b.shape and torch.equal(a, b.cpu()) for a, b in zip(ckpt_reals, reals))
    if mismatch or not same_image:
        what = ", ".join(mismatch) if mismatch else "a different image"
        raise SinGANError(f"{folder} holds a model trained with other settings ({what}); "
                          "add --force to retrain it from scratch")


# ---- one stage's iterations --------------------------------------------------------------------

def latest_losses(history: dict, where: Tuple[str, int], it: int) -> dict:
    """The latest losses as floats (a host synchronisation); SinGANError on nan/inf. where:
    (unit, stage), e.g. ("scale", 3)."""
    unit, k = where
    latest = {key: values[-1].item() for key, values in history.items()}
    if not all(math.isfinite(v) for v in latest.values()):
        raise SinGANError(
            f"training diverged at {unit} {k}, iteration {it + 1}: a loss became "
            f"{'nan' if any(v != v for v in latest.values()) else 'inf'} ({DIVERGENCE_CAUSE}); "
            f"the finished {unit}s are kept")
    return latest


def run_iterations(run, niter: int, where: Tuple[str, int],
                   report: Optional[Callable[[int, dict], None]] = None,
                   should_stop: Optional[Callable[[], bool]] = None, first: int = 0,
                   save: Optional[Callable[[int], None]] = None, every_s: float = 0.0):
    """Play iterations first..niter-1 of one stage (`run.step(it)`, losses appended to
    `run.history`) and return `run.result()`; where: (unit, stage). The losses are read every LOG_EVERY iterations
    (report(iteration, losses), divergence check). save(iterations done), when given, keeps
    the running stage: every `every_s` seconds (0: never on a timer), and before stopping.
    should_stop() is asked before every iteration and stops with _Stopped; Ctrl-C or SIGTERM
    stop after the iteration in progress (KeyboardInterrupt, guards.Terminated), a second one
    at once (without saving that iteration)."""
    saved_at = time.monotonic()
    with stop_requests() as stops:
        for it in range(first, niter):
            if should_stop is not None and should_stop():
                if save is not None and it > first:
                    save(it)
                raise _Stopped(it)
            run.step(it)
            if (it + 1) % LOG_EVERY == 0 or it == niter - 1:
                latest = latest_losses(run.history, where, it)
                if report is not None:
                    report(it + 1, latest)
            if stops.signum is not None:
                if save is not None:
                    save(it + 1)
                raise stops.interrupt()
            if save is not None and every_s and time.monotonic() - saved_at >= every_s \
                    and it + 1 < niter:
                save(it + 1)
                saved_at = time.monotonic()
    return run.result()


class _Stopped(Exception):
    """should_stop() said stop, before iteration `iteration` of the current stage."""

    def __init__(self, iteration: int):
        super().__init__(iteration)
        self.iteration = iteration


def check_finite(unit: str, k: int, losses: dict, parameters, kept: str) -> None:
    """Never save a diverged stage: every loss of every iteration, and G's weights, must be
    finite (the loop checks the latest losses every LOG_EVERY iterations; this catches a
    blow-up between its checks and names the first bad iteration)."""
    for key, values in losses.items():
        bad = torch.nonzero(~torch.isfinite(values.float()))
        if len(bad):
            it = int(bad[0, 0])
            raise SinGANError(f"training diverged at {unit} {k}, iteration {it + 1}: the loss "
                              f"{key} became {float(values[it])} ({DIVERGENCE_CAUSE}); {kept}")
    if not all(torch.isfinite(q).all() for q in parameters):
        raise SinGANError(f"training diverged at {unit} {k}: the generator's weights became "
                          f"nan/inf ({DIVERGENCE_CAUSE}); {kept}")


# ---- the driver --------------------------------------------------------------------------------

def train_stages(trainer, folder, run: RunOptions = RunOptions(),
                 image_info: Optional[dict] = None):
    """Train (or resume) the stages of `trainer` (a method's StageTrainer, singan.interface,
    holding the reals, the config and the plan) into `folder`, as `run` says (RunOptions);
    return the trained model. image_info: what the model records of its image.

    A second call with the same image and settings resumes after the last finished stage and
    returns at once when all are done; run.force retrains from scratch. A trainer that
    retrains one level of a source model (trainer.retrains) writes a complete new model into
    `folder`, which must not be the source's: a folder that already holds that very result
    is returned as it is, any other content is replaced (the source is never touched).
    Ctrl-C raises KeyboardInterrupt (SIGTERM guards.Terminated) and run.should_stop() raises
    TrainingStopped, all saying what is saved. The running stage is saved every
    run.checkpoint_minutes (0: only when stopped) and the next call continues it.
    run.on_saved(stage, iteration), when given, is called after each of these saves, once the
    files are in place: iteration == niter when the stage finished (model.pth lists it), else
    the running stage's checkpoint holds it after that many iterations (a folder run sends
    the changed files to its driver then).
    """
    folder = Path(folder)
    checkpoint_minutes = run.checkpoint_minutes
    if not (isinstance(checkpoint_minutes, (int, float)) and checkpoint_minutes >= 0
            and math.isfinite(checkpoint_minutes)):
        raise SinGANError(f"--checkpoint_minutes must be a number >= 0 (0: save the running "
                          f"stage only when stopped), not {checkpoint_minutes!r}")
    if is_reference_folder(folder):
        raise SinGANError(f"{folder} holds a model trained by the reference SinGAN or "
                          "ConSinGAN code; training here would overwrite its files: move it "
                          "away first")
    check_training(trainer, trainer.low_memory)   # memory first: nothing written yet
    needed = trainer.estimated_bytes()
    prepare_model_folder(folder, needed)
    with exclusive(folder):
        return _train_locked(_Session(trainer, folder, run, dict(image_info or {}), run.seed),
                             needed)


def _resume(trainer, folder: Path, ckpt: dict, seed: int, log) -> int:
    """Take the finished stages of the model saved in `folder` (same method, settings and
    image, or a clear error); returns the seed it was trained with."""
    method = ckpt.get("method", "singan")
    if method != trainer.method or ckpt.get("fine_tuned"):
        raise SinGANError(f"{folder} holds another kind of model ({method}"
                          f"{', fine-tuned' if ckpt.get('fine_tuned') else ''}); add --force "
                          "to replace it")
    check_resumable(trainer.saved_config(ckpt), trainer.cfg, ckpt["reals"], trainer.reals,
                    folder)
    trainer.load(ckpt)
    if 0 < trainer.num_done < trainer.plan.n_stages:
        log(f"resuming {folder} after {trainer.unit} {trainer.num_done - 1} "
            f"({trainer.num_done}/{trainer.plan.n_stages} {trainer.unit}s done)")
    return ckpt.get("seed", seed)


def _kept(trainer, folder, running: Optional[dict] = None) -> str:
    """What a stopped or failed run leaves, in words; `running`: the running stage's last
    save, {"stage", "iteration"}."""
    unit, done, last = trainer.unit, trainer.num_done, trainer.plan.n_stages - 1
    niter = trainer.cfg.niter
    at = (f"{unit} {running['stage']} at iteration {running['iteration']} of {niter}"
          if running else "")
    if trainer.retrains:
        return (f"{at} is saved in {folder}" if at else
                f"nothing was saved in {folder}") + " (the source model is untouched)"
    if not done:
        return f"{at} is saved in {folder}" if at else f"no {unit} had finished yet ({folder})"
    kept = f"{unit}s 0-{done - 1} of 0-{last}"
    return f"{kept} and {at} are saved in {folder}" if at else f"{kept} are saved in {folder}"


# ---- the running stage's checkpoint -------------------------------------------------------------

def run_identity(trainer, seed: int) -> dict:
    """What a running stage's checkpoint must share with this run to be continued by it."""
    return {"method": trainer.method, "config": asdict(trainer.cfg),
            "reals": content_digest([r.detach().cpu() for r in trainer.reals]),
            "record": trainer.run_record(), "seed": seed}


def running_checkpoint(identity: dict, stage: int, iteration: int, niter: int, run) -> dict:
    """What RUNNING_NAME holds: stage `stage` of the run `identity` after `iteration` of its
    niter iterations, the StageRun's state() and torch's global random streams."""
    return {"format_version": FORMAT_VERSION, "kind": "running stage", "identity": identity,
            "stage": stage, "iteration": iteration, "niter": niter, "run": run.state(),
            "rng": _rng_states()}


def _rng_states() -> dict:
    """torch's global random streams (the stages draw from their own generators, but a
    method's code may use these too)."""
    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["cpu"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _running_to_continue(trainer, folder: Path, stage: int, seed: int, seed_known: bool, log):
    """The running stage's checkpoint in `folder` that this run continues (stage `stage`, same
    method, settings, image and seed), or None; a stale or foreign one is removed. Returns
    (checkpoint or None, seed): with no model.pth yet (seed_known False) the checkpoint's
    seed is taken, as model.pth's is."""
    path = folder / RUNNING_NAME
    if not path.exists():
        return None, seed
    try:
        ckpt = read_running(path)
    except SinGANError as err:
        log(f"ignoring the running stage's checkpoint: {err}")
        ckpt = None
    mine = run_identity(trainer, seed)
    if ckpt is not None:
        theirs = ckpt.get("identity", {})
        same = all(theirs.get(key) == value for key, value in mine.items() if key != "seed")
        if same and ckpt.get("stage") == stage and (theirs.get("seed") == seed or not seed_known):
            return ckpt, theirs["seed"]
    with contextlib.suppress(OSError):
        path.unlink()
    return None, seed


@dataclass
class _Session:
    """One training run while this process holds its folder: what all its stages share."""
    trainer: object
    folder: Path
    run: RunOptions
    info: dict                       # what the model records of its image
    seed: int                        # the run's, or the resumed model's
    emit: Optional[Callable] = None  # emit(kind, k, it, losses, images, noise_amp): an event
    clock: Optional[WorkClock] = None
    saved: dict = field(default_factory=dict)   # the running stage's last save: stage, iteration


def _train_locked(session: _Session, needed: int):
    """train_stages' work, while this process holds the folder."""
    trainer, folder, run, info = session.trainer, session.folder, session.run, session.info
    seed, force, log = session.seed, run.force, run.log
    unit, n_stages = trainer.unit, trainer.plan.n_stages
    ckpt_path = folder / CHECKPOINT_NAME
    seed_known = False
    if force:
        with contextlib.suppress(OSError):
            (folder / RUNNING_NAME).unlink()
    if ckpt_path.exists() and not force:
        ckpt = read_checkpoint(ckpt_path)
        if not trainer.retrains:
            seed, seed_known = _resume(trainer, folder, ckpt, seed, log), True
        elif trainer.reusable(ckpt):
            trainer.load(ckpt)
            log(f"reusing {folder}: it already holds this {trainer.retrain_name} (--force "
                "makes it again)")
            return trainer.model(info)
        else:
            log(f"{folder} holds another {trainer.retrain_name}: making it again")
    stages = trainer.stages_to_train()
    if not stages:
        log(f"{folder} is already trained ({n_stages} {unit}s); nothing to do "
            "(--force retrains it)")
        return trainer.model(info)
    if trainer.retrains:
        log(f"retraining {unit} {stages[0]} ({trainer.retrain_name}, {trainer.cfg.niter} "
            f"iterations) into {folder}")
    running, seed = _running_to_continue(trainer, folder, stages[0], seed,
                                         seed_known or trainer.retrains, log)
    session.seed = seed
    clear_for_training(folder, needed, force or trainer.retrains,
                       0 if trainer.retrains else stages[0], trainer.stage_files)
    write_json(folder / "config.json", {"method": trainer.method, "config": asdict(trainer.cfg),
                                        "seed": seed, "image": info,
                                        "plan": asdict(trainer.plan),
                                        "device": str(trainer.device), **trainer.run_record()})

    hint = bf16_hint(trainer.device, trainer.cfg.amp, trainer.total_work(), log)
    if hint:
        log(hint)
    trainer.run_layout(log)   # a probe, if any, before the clock starts
    started = time.perf_counter()
    # the work of the whole training (a retraining's: its one stage), and this run's rate
    scope = stages if trainer.retrains else range(n_stages)
    clock = session.clock = WorkClock({j: trainer.stage_cost(j) for j in scope},
                                      trainer.cfg.niter)
    line = RunLine(run.show_progress)

    def emit(kind, k, it, losses, images=None, noise_amp=None):
        event = ProgressEvent(kind, trainer.method, k, n_stages, it, trainer.cfg.niter,
                              dict(losses), time.perf_counter() - started, str(folder), images,
                              clock.work_done(k, it), clock.seconds_left(k, it), noise_amp,
                              unit)
        line.show(event)
        if run.progress is not None:
            run.progress(event)

    session.emit, saved = emit, session.saved
    try:
        for k in stages:
            _train_one_stage(session, k, running if k == stages[0] else None)
    except KeyboardInterrupt as stop:   # Ctrl-C, or guards.Terminated (SIGTERM)
        raise type(stop)(f"{_kept(trainer, folder, saved)}; run the same command again to "
                         "resume") from None
    except _Stopped as stop:
        done = 0 if trainer.retrains else trainer.num_done
        at = stages[0] if trainer.retrains else done
        raise TrainingStopped(f"training stopped at {unit} {at}, iteration {stop.iteration}: "
                              f"{_kept(trainer, folder, saved)}; train again with the same "
                              "settings to resume", done, str(folder)) from None
    finally:
        line.close()
    return trainer.model(info)


def _train_one_stage(session: _Session, k: int, running: Optional[dict] = None) -> None:
    """Play stage k's iterations (from `running`, a checkpoint of it, when given), check
    them, save the stage atomically and report it."""
    trainer, folder, run, seed = session.trainer, session.folder, session.run, session.seed
    info, log, emit, clock = session.info, run.log, session.emit, session.clock
    saved, on_saved, every_s = session.saved, run.on_saved, 60.0 * run.checkpoint_minutes
    unit, niter = trainer.unit, trainer.cfg.niter
    start = time.perf_counter()
    stage_run = trainer.begin_stage(k, seed)
    first = 0
    if running is not None:
        stage_run.load_state(running["run"])
        _set_rng_states(running["rng"])
        first = running["iteration"]
        log(f"resuming {unit} {k} at iteration {first} of {niter}")
    identity = run_identity(trainer, seed)

    def save(it):
        """The running stage after `it` iterations, atomically, Ctrl-C held back."""
        with interrupts_deferred():
            save_checkpoint(folder / RUNNING_NAME,
                            running_checkpoint(identity, k, it, niter, stage_run))
        saved.update(stage=k, iteration=it)
        if on_saved is not None:
            on_saved(k, it)

    bar = ProgressBar(trainer.stage_label(k), niter, run.show_progress, initial=first)

    def report(it, losses):
        if clock is not None:
            clock.timed(k, it - first, time.perf_counter() - iterating)
        bar.update_to(it, losses)
        emit("iteration", k, it, losses)
    iterating = time.perf_counter()
    try:
        result = run_iterations(stage_run, niter, (unit, k), report, run.should_stop, first,
                                save, every_s)
    finally:
        bar.close()
    iterated = time.perf_counter() - iterating
    kept = (_kept(trainer, folder) if trainer.retrains else
            f"{unit}s 0-{k - 1} are kept in {folder}" if k else f"no {unit} was saved")
    check_finite(unit, k, result.losses, trainer.stage_parameters(result), kept)
    # Stage k is finished: write all its files, then list it in model.pth, then drop the
    # running stage's checkpoint; Ctrl-C waits.
    with interrupts_deferred():
        _save_finished_stage(trainer, folder, k, result, info, seed)
        with contextlib.suppress(OSError):
            (folder / RUNNING_NAME).unlink()
        saved.clear()
    if on_saved is not None:
        on_saved(k, niter)
    seconds = time.perf_counter() - start
    if clock is not None:
        clock.stage_overhead(seconds - iterated)
    log(trainer.stage_summary(k, result, seconds))
    emit("stage", k, trainer.cfg.niter, {key: float(v[-1]) for key, v in result.losses.items()},
         {"real": trainer.reals[k].detach().cpu(), "fake": result.fake.detach().cpu(),
          "reconstruction": result.reconstruction.detach().cpu()},
         trainer.stage_noise_amp(k, result))


def _save_finished_stage(trainer, folder: Path, k: int, result, info: dict, seed: int) -> None:
    """Add stage k to the model and save it: its files, then model.pth listing it. If a write
    fails (disk full...), model.pth is as before, stage k's files are removed and stage k
    leaves the model again."""
    trainer.add(k, result)
    try:
        trainer.save_stage_files(folder, k, result)
        save_checkpoint(folder / CHECKPOINT_NAME, trainer.checkpoint(info, {"seed": seed}))
    except BaseException:
        trainer.drop(k)
        with contextlib.suppress(OSError):
            remove_scale_files(folder, k, trainer.stage_files)   # never listed in model.pth
        raise
