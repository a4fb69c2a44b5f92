"""Many images at once, on Ray: one model per image of a folder, trained, sampled or evaluated
as independent Ray tasks, on Ray's local runtime or on a cluster.

An adapter (STYLE, "Adapters stay thin"): a task calls `singan.train_model`, `load_model` or
the apps' functions for one image and returns one row of a table; progress and stopping flow
through train_model's `progress` and `should_stop`. Ray is imported only when a folder runs,
so that the rest of singan works without it.

    images = list_images("Input/Images")
    run = train_folder(images, SinGANConfig(max_size=48, niter=100))
    report(run, summary_path("Output", "Input/Images"), TRAIN_COLUMNS)

A task whose worker dies (killed, out of memory) is retried and resumes after the model's last
finished stage; a bad image fails its own row only; Ctrl-C makes every task stop at its next
iteration, keeping its finished stages.
"""
import contextlib
import csv
import io
import logging
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch

from ..api import TRAINERS, model_folder, train_model
from ..driver import TrainingStopped
from ..errors import SinGANError
from ..image_io import atomic_write_bytes
from ..metrics import diversity, sifid_scores
from .generation import model_tag, open_model, open_trained_model, random_samples, \
    samples_folder

# What read_image decodes (image_io): other files of a folder are listed and skipped.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")

# Measured with benchmarks/bench_many.py on a 2-core CPU machine (README, "Many images"):
# two 48 px trainings at once with one thread each beat one at a time with two threads.
DEFAULT_CPUS_PER_MODEL = 1
# Not measured here (no GPU): a SinGAN training fills a small part of a GPU, four share one.
DEFAULT_GPUS_PER_MODEL = 0.25
MAX_RETRIES = 3            # retries of a task whose worker died (the task resumes the model)
STOP_POLL_SECONDS = 0.2    # how often a task looks for the run's stop file

# Test hook, read by the driver and handed to the tasks: "<image stem>:<stage>:<iteration>"
# makes the worker training that image exit (os._exit(1), as a kill would) before that
# iteration of that stage, counted from the first stage the run trains; once only, recorded by
# a marker file beside the image's model folders.
TEST_EXIT_VARIABLE = "SINGAN_TEST_EXIT_AT"

# The paper's Table 2 (arXiv 1905.01164, section 4): SinGAN on 50 Places images.
PAPER_TABLE_2 = {"N": {"SIFID": 0.09, "diversity": 0.5},
                 "N-1": {"SIFID": 0.05, "diversity": 0.35}}
PROTOCOL_SCALES = {"N": 0, "N-1": 1}   # label -> gen_start_scale

TRAIN_COLUMNS = ("image", "method", "stages", "seconds", "status", "model folder")
SAMPLE_COLUMNS = ("image", "method", "samples", "diversity", "status", "samples folder")
EVALUATE_COLUMNS = ("image", "method", "samples", "SIFID N", "SIFID N-1", "diversity N",
                    "diversity N-1", "status", "model folder")


# ---- the folder ---------------------------------------------------------------------------------

def list_images(folder, log: Callable[[str], None] = print) -> List[Path]:
    """The image files of `folder` (IMAGE_SUFFIXES), sorted; every other file is logged as
    skipped, and so is a second image with the same stem (its model would be the first's)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SinGANError(f"--input_dir {folder}: no such folder")
    images, stems = [], {}
    for path in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
        if path.is_dir():
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            log(f"skipped {path.name}: not an image file ({', '.join(IMAGE_SUFFIXES)})")
        elif path.stem in stems:
            log(f"skipped {path.name}: {stems[path.stem]} has the same name, and one model "
                "folder per name")
        else:
            stems[path.stem] = path.name
            images.append(path)
    if not images:
        raise SinGANError(f"--input_dir {folder}: no image files in it "
                          f"({', '.join(IMAGE_SUFFIXES)})")
    return images


def summary_path(out_root, input_dir, kind: str = "summary") -> Path:
    """Output/<folder name>_<kind>.csv."""
    return Path(out_root) / f"{Path(input_dir).resolve().name}_{kind}.csv"


# ---- Ray ----------------------------------------------------------------------------------------

def _ray():
    try:
        import ray
    except ImportError:
        raise SinGANError("--input_dir without --input_name runs on Ray, which is not "
                          "installed: pip install -r requirements-ray.txt") from None
    return ray


@dataclass(frozen=True)
class Cluster:
    """Where the tasks run and what each one takes."""
    address: Optional[str] = None                 # a Ray cluster; None: a local runtime
    num_cpus: Optional[int] = None                # the local runtime's CPUs (None: all)
    cpus_per_model: float = DEFAULT_CPUS_PER_MODEL
    gpus_per_model: Optional[float] = None        # None: 0 without GPUs, else the default
    max_retries: int = MAX_RETRIES


@contextlib.contextmanager
def ray_runtime(cluster: Cluster):
    """Ray, connected: to cluster.address, or to a local runtime started in this process (no
    dashboard, no network) and shut down afterwards. A runtime the caller already started is
    used as it is."""
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")   # no usage report, no prompt
    # A new local runtime turns Ray's token authentication on and warns that it did: the
    # warning is about Ray's defaults, not this run; silenced.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR)
    quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
    try:
        if cluster.address:
            ray.init(address=cluster.address, **quiet)
        else:
            ray.init(address="local", num_cpus=cluster.num_cpus, include_dashboard=False,
                     **quiet)
    except (ConnectionError, ValueError, RuntimeError) as err:
        where = f"the Ray cluster at {cluster.address}" if cluster.address else "Ray locally"
        raise SinGANError(f"cannot start {where}: {str(err).splitlines()[0]}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _gpus_per_model(ray, cluster: Cluster, device: str) -> float:
    """cluster.gpus_per_model, or: none on a cluster without GPUs or with --device cpu."""
    if cluster.gpus_per_model is not None:
        return cluster.gpus_per_model
    if device == "cpu" or not ray.cluster_resources().get("GPU", 0):
        return 0.0
    return DEFAULT_GPUS_PER_MODEL


class Board:
    """A small Ray actor to which one run's tasks report, without waiting for an answer: each
    running image's stage, and their log lines; the driver takes them to show them."""

    def __init__(self):
        self._status: Dict[str, str] = {}
        self._lines: List[str] = []

    def status(self, name: str, text: Optional[str]) -> None:
        if text is None:
            self._status.pop(name, None)
        else:
            self._status[name] = text

    def log(self, name: str, line: str) -> None:
        self._lines.append(f"{name}: {line}")

    def take(self):
        """(each running image's status, the log lines since the last call)."""
        lines, self._lines = self._lines, []
        return dict(self._status), lines


class _ExitHook:
    """The test hook of TEST_EXIT_VARIABLE for the image `name` (inactive otherwise)."""

    def __init__(self, spec: str, name: str, marker_dir: Path):
        spec = spec.split(":")
        self.active = len(spec) == 3 and spec[0] == name
        if self.active:
            self.stage, self.iteration = int(spec[1]), int(spec[2])
            self.marker = Path(marker_dir) / f".{name}.test_exit_done"
            self.active = not self.marker.exists()
        self.current, self.count = 0, 0

    def before_iteration(self) -> None:
        if self.active and (self.current, self.count) == (self.stage, self.iteration):
            self.marker.parent.mkdir(parents=True, exist_ok=True)
            self.marker.touch()
            os._exit(1)
        self.count += 1

    def stage_done(self, stage: int) -> None:
        self.current, self.count = stage + 1, 0


@dataclass(frozen=True)
class _Channel:
    """What the driver hands every task of a run: the Board, and the stop file that the driver
    creates on Ctrl-C, beside the model folders (storage every node sees).

    Why a file and not a flag in the Board: a task blocked in ray.get (asking the actor) gives
    its CPUs back to Ray meanwhile, which starts another task on them; polled every 0.2 s,
    that ran three 1-CPU trainings at once on 2 CPUs."""
    board: object
    stop_file: str


class _Link:
    """One task's side of the run: should_stop (the stop file, looked for at most every
    STOP_POLL_SECONDS), the progress callback (the image's stage) and the log."""

    def __init__(self, channel: _Channel, name: str, hook: Optional[_ExitHook] = None):
        self.board, self.stop_file, self.name, self.hook = channel.board, channel.stop_file, \
            name, hook
        self._stopped, self._polled = False, -math.inf
        self.last_event = None

    def should_stop(self) -> bool:
        """train_model's should_stop: asked before every iteration."""
        if self.hook is not None:
            self.hook.before_iteration()
        return self.stop_requested()

    def stop_requested(self) -> bool:
        now = time.monotonic()
        if not self._stopped and now - self._polled >= STOP_POLL_SECONDS:
            self._stopped = os.path.exists(self.stop_file)
            self._polled = now
        return self._stopped

    def progress(self, event) -> None:
        self.last_event = event
        if event.kind == "stage" and self.hook is not None:
            self.hook.stage_done(event.stage)
        done = event.stage + (event.kind == "stage")
        self.status(f"stage {min(done + 1, event.num_stages)}/{event.num_stages}"
                    if done < event.num_stages else "saving")

    def status(self, text: Optional[str]) -> None:
        self.board.status.remote(self.name, text)

    def log(self, line: str) -> None:
        self.board.log.remote(self.name, line)


def _method(config) -> str:
    """"singan" or "consingan": the method train_model picks for the config's type."""
    return getattr(TRAINERS.get(type(config)), "method", "")


def _shown(path) -> str:
    """A path relative to the working folder where it is inside it."""
    path = Path(path)
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


# ---- the tasks: one image each ------------------------------------------------------------------

def _train_task(image: str, config, root: str, out_root: str, device: str, seed: int,
                force: bool, num_samples: int, amp: str, threads: int, exit_at: str,
                channel: _Channel) -> dict:
    """Train (or resume) the model of one image, then write its random samples; one row."""
    torch.set_num_threads(threads)
    name = Path(image).stem
    folder = model_folder(Path(image).name, config, root)
    row = {"image": Path(image).name, "method": _method(config), "stages": "", "seconds": 0.0,
           "status": "", "model folder": _shown(folder)}
    link = _Link(channel, name, _ExitHook(exit_at, name, Path(root) / name))
    if link.stop_requested():
        return dict(row, status="stopped before it started")
    started = time.perf_counter()
    link.status("starting")
    try:
        model = train_model(image, config, device=device, seed=seed, progress=link.progress,
                            should_stop=link.should_stop, force=force, show_progress=False,
                            log=link.log, root=root)
        trained = link.last_event is not None
        if num_samples > 0:
            link.status("samples")
            out = samples_folder(out_root, name, tag=model_tag(model))
            random_samples(model, out, num_samples, seed=seed, amp=amp)
        status = "trained" if trained else "already trained"
        row.update(method=model.method, stages=f"{model.num_scales}/{len(model.reals)}",
                   status=status)
    except TrainingStopped as err:
        total = link.last_event.num_stages if link.last_event else "?"
        row.update(stages=f"{err.stages_done}/{total}",
                   status=f"stopped: {err.stages_done} stages saved; run again to resume")
    except SinGANError as err:
        row.update(status=f"failed: {err}")
    finally:
        link.status(None)
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def _sample_task(image: str, config, root: str, out_root: str, num_samples: int,
                 gen_start_scale: int, scale_v: float, scale_h: float, arbitrary: bool,
                 seed: int, amp: str, device: str, threads: int, channel: _Channel) -> dict:
    """Random samples of one image's trained model (random_samples.py's, per image); one row."""
    torch.set_num_threads(threads)
    image = Path(image)
    folder = model_folder(image.name, config, root)
    row = {"image": image.name, "method": "", "samples": 0, "diversity": "", "status": "",
           "samples folder": ""}
    link = _Link(channel, image.stem)
    if link.stop_requested():
        return dict(row, status="stopped before it started")
    link.status("sampling")
    try:
        model = open_trained_model(folder, image.name, config, device, str(image.parent))
        out = samples_folder(out_root, image.stem, gen_start_scale, scale_v, scale_h, arbitrary,
                             model_tag(model))
        samples = random_samples(model, out, num_samples, gen_start_scale, scale_v, scale_h,
                                 seed, amp=amp)
        row.update(method=model.method, samples=num_samples, status="done",
                   **{"samples folder": _shown(out)})
        if num_samples > 1:
            row["diversity"] = round(diversity(samples, model.reals[-1]), 4)
    except SinGANError as err:
        row.update(status=f"failed: {err}")
    finally:
        link.status(None)
    return row


@dataclass(frozen=True)
class SIFIDOptions:
    """SIFID's own options (SIFID/sifid_score.py): the feature layer, backbone, weights file."""
    dims: int = 64
    backbone: str = "torchvision"
    weights: Optional[str] = None


def sifid_unavailable(options: SIFIDOptions) -> Optional[str]:
    """Why SIFID cannot be measured with these options (the weights are missing), or None.
    Looks for the file only (never downloads); the tasks load it."""
    from SIFID import SIFIDError
    from SIFID.sifid import find_fid_inception_weights, find_torchvision_weights
    try:
        if options.backbone == "fid-inception":
            find_fid_inception_weights(options.weights)
        else:
            find_torchvision_weights(options.weights, download=False)
    except SIFIDError as err:
        return str(err)
    return None


def _evaluate_task(image: str, config, root: str, num_samples: int, seed: int,
                   sifid: Optional[SIFIDOptions], no_sifid: str, device: str, threads: int,
                   train_hint: str, channel: _Channel) -> dict:
    """The paper's Table 2 protocol for one image's model: num_samples samples from the
    coarsest scale (N) and from scale 1 (N-1), their mean SIFID against the training image
    and their diversity; one row."""
    torch.set_num_threads(threads)
    image = Path(image)
    folder = model_folder(image.name, config, root)
    row = {column: "" for column in EVALUATE_COLUMNS}
    row.update(image=image.name, **{"model folder": _shown(folder)})
    link = _Link(channel, image.stem)
    if link.stop_requested():
        return dict(row, status="stopped before it started")
    link.status("sampling")
    try:
        model = open_model(folder, device, train_hint=train_hint)
        row.update(method=model.method, samples=num_samples)
        extractor = None
        if sifid is not None:
            from SIFID import load_extractor
            extractor = load_extractor(sifid.dims, sifid.backbone, sifid.weights, model.device,
                                       download=False)
        real = model.reals[-1]                                         # [1, 3, H, W]
        notes = []
        for label, start in PROTOCOL_SCALES.items():
            generator = torch.Generator(model.device).manual_seed(seed)
            try:
                samples = model.sample(num_samples, start, generator=generator)  # [n, 3, H, W]
            except SinGANError as err:       # e.g. ConSinGAN samples from stage 0 only
                row[f"SIFID {label}"] = row[f"diversity {label}"] = "n/a"
                notes.append(f"{label}: {err}")
                continue
            row[f"diversity {label}"] = round(diversity(samples, real), 4)
            link.status(f"SIFID {label}" if extractor is not None else "diversity")
            if extractor is not None:
                values = sifid_scores(samples, real, extractor=extractor)[1]
                row[f"SIFID {label}"] = round(sum(values) / len(values), 4)
            else:
                row[f"SIFID {label}"] = no_sifid
        row["status"] = "; ".join(["done"] + notes)
    except SinGANError as err:
        row["status"] = f"failed: {err}"
    finally:
        link.status(None)
    return row


# ---- the command-line options (main_train.py, random_samples.py, evaluate_folder.py) ------------

def cluster_from_args(args) -> Cluster:
    """The Cluster the options describe (defaults for those not given)."""
    return Cluster(args.ray_address, args.num_cpus,
                   args.cpus_per_model if args.cpus_per_model is not None
                   else DEFAULT_CPUS_PER_MODEL,
                   args.gpus_per_model,
                   args.max_retries if args.max_retries is not None else MAX_RETRIES)


# ---- the driver ---------------------------------------------------------------------------------

@dataclass
class FolderRun:
    """The rows of a run over a folder's images (in the images' order), and whether it was
    stopped (Ctrl-C)."""
    rows: List[dict]
    interrupted: bool = False
    columns: Sequence[str] = field(default=TRAIN_COLUMNS)


def _failed_row(ray, err, row: dict) -> dict:
    """The row of a task that raised instead of returning one (a bug, a worker that died
    more than max_retries times, a task killed by a second Ctrl-C)."""
    if isinstance(err, ray.exceptions.TaskCancelledError):
        return dict(row, status="killed (stopped twice)")
    if isinstance(err, ray.exceptions.WorkerCrashedError):
        return dict(row, status="failed: its worker died on every try (killed, or out of "
                                "memory)")
    cause = getattr(err, "cause", None) or err
    text = str(cause).strip().splitlines()
    return dict(row, status=f"failed: {type(cause).__name__}: {text[-1] if text else ''}")


def _run(ray, task, images: Sequence[Path], kwargs: dict, cluster: Cluster, gpus: float,
         root: Path, columns: Sequence[str], desc: str, show_progress: bool) -> FolderRun:
    """One task per image, `task(image, **kwargs, channel=...)`, each taking
    cluster.cpus_per_model CPUs and `gpus` GPUs; a progress bar over the images (done / running
    / failed) with each running image's stage. Ctrl-C creates the run's stop file (in `root`)
    and waits for the tasks to stop at their next iteration; a second Ctrl-C kills them."""
    from tqdm import tqdm
    stop_file = Path(root) / f".stop-{uuid.uuid4().hex}"
    channel = _Channel(ray.remote(Board).options(num_cpus=0).remote(), str(stop_file))
    try:
        return _drive(ray, task, images, kwargs, cluster, gpus, channel, columns,
                      tqdm(total=len(images), desc=desc, dynamic_ncols=True,
                           disable=None if show_progress else True,
                           bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} images "
                                      "[{elapsed}{postfix}]"))
    finally:
        stop_file.unlink(missing_ok=True)


def _drive(ray, task, images, kwargs, cluster, gpus, channel: _Channel, columns, bar):
    """_run's loop: submit, then collect the rows and show the Board until every task ended."""
    remote = ray.remote(task).options(num_cpus=cluster.cpus_per_model, num_gpus=gpus,
                                      max_retries=cluster.max_retries)
    # absolute paths: a cluster's workers do not share the driver's working folder
    refs = {remote.remote(str(Path(image).resolve()), **kwargs, channel=channel): image
            for image in images}
    rows: Dict[Path, dict] = {}
    pending, interrupted = list(refs), False
    while pending:
        try:
            done, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
            for ref in done:
                blank = dict.fromkeys(columns, "")
                blank["image"] = refs[ref].name
                try:
                    rows[refs[ref]] = ray.get(ref)
                except ray.exceptions.RayError as err:
                    rows[refs[ref]] = _failed_row(ray, err, blank)
            running, lines = ray.get(channel.board.take.remote())
            for line in lines:
                bar.write(line)
            failed = sum(row["status"].startswith(("failed", "killed")) for row in rows.values())
            bar.update(len(rows) - bar.n)
            bar.set_postfix_str(f"{len(rows) - failed} done, {len(running)} running, "
                                f"{failed} failed" + "".join(f" | {name}: {text}" for name, text
                                                             in sorted(running.items())))
        except KeyboardInterrupt:
            if interrupted:
                for ref in pending:
                    ray.cancel(ref, force=True)
                continue
            interrupted = True
            Path(channel.stop_file).parent.mkdir(parents=True, exist_ok=True)
            Path(channel.stop_file).touch()
            bar.write("stopping: every image stops at its next iteration and keeps its "
                      "finished stages (Ctrl-C again kills the tasks)")
    bar.close()
    return FolderRun([rows[image] for image in images], interrupted, columns)


def _threads(cluster: Cluster) -> int:
    return max(1, int(cluster.cpus_per_model))


def train_folder(images: Sequence[Path], config, *, cluster: Cluster = Cluster(),
                 device: str = "auto", seed: int = 0, force: bool = False,
                 num_samples: int = 0, amp: str = "none", out_root="Output",
                 root="TrainedModels", show_progress: bool = True) -> FolderRun:
    """Train (or resume) one model per image, each a Ray task calling train_model with
    `config` (SinGANConfig or ConSinGANConfig) into its usual folder under `root`; then
    num_samples random samples each, as main_train.py writes. Rows: TRAIN_COLUMNS."""
    root, out_root = Path(root).resolve(), Path(out_root).resolve()
    with ray_runtime(cluster) as ray:
        kwargs = dict(config=config, root=str(root), out_root=str(out_root), device=device,
                      seed=seed, force=force, num_samples=num_samples, amp=amp,
                      threads=_threads(cluster),
                      exit_at=os.environ.get(TEST_EXIT_VARIABLE, ""))
        return _run(ray, _train_task, images, kwargs, cluster,
                    _gpus_per_model(ray, cluster, device), root, TRAIN_COLUMNS, "training",
                    show_progress)


def sample_folder(images: Sequence[Path], config, *, cluster: Cluster = Cluster(),
                  num_samples: int = 50, gen_start_scale: int = 0, scale_v: float = 1.0,
                  scale_h: float = 1.0, arbitrary: bool = False, seed: int = 0,
                  amp: str = "none", device: str = "auto", out_root="Output",
                  root="TrainedModels", show_progress: bool = True) -> FolderRun:
    """Random samples of every image's trained model (the one `config` names), one Ray task
    per image, in random_samples.py's folders. Rows: SAMPLE_COLUMNS."""
    root, out_root = Path(root).resolve(), Path(out_root).resolve()
    with ray_runtime(cluster) as ray:
        kwargs = dict(config=config, root=str(root), out_root=str(out_root),
                      num_samples=num_samples, gen_start_scale=gen_start_scale,
                      scale_v=scale_v, scale_h=scale_h, arbitrary=arbitrary, seed=seed, amp=amp,
                      device=device, threads=_threads(cluster))
        return _run(ray, _sample_task, images, kwargs, cluster,
                    _gpus_per_model(ray, cluster, device), root, SAMPLE_COLUMNS, "sampling",
                    show_progress)


def evaluate_folder(images: Sequence[Path], config, *, cluster: Cluster = Cluster(),
                    num_samples: int = 50, sifid: Optional[SIFIDOptions] = SIFIDOptions(),
                    seed: int = 0, device: str = "auto", root="TrainedModels",
                    train_hint: str = "", show_progress: bool = True,
                    log: Callable[[str], None] = print) -> FolderRun:
    """The paper's Table 2 protocol over every image's trained model, one Ray task per image
    (see _evaluate_task). sifid=None, or missing weights, leaves SIFID out (the columns say
    why) and measures diversity only. Rows: EVALUATE_COLUMNS; protocol_table() sums them up."""
    no_sifid = "not measured"
    if sifid is not None:
        problem = sifid_unavailable(sifid)
        if problem:
            log(f"warning: SIFID not measured: {problem}")
            sifid, no_sifid = None, "weights missing"
    root = Path(root).resolve()
    with ray_runtime(cluster) as ray:
        kwargs = dict(config=config, root=str(root), num_samples=num_samples, seed=seed,
                      sifid=sifid, no_sifid=no_sifid, device=device, threads=_threads(cluster),
                      train_hint=train_hint)
        return _run(ray, _evaluate_task, images, kwargs, cluster,
                    _gpus_per_model(ray, cluster, device), root, EVALUATE_COLUMNS,
                    "evaluating", show_progress)


# ---- the results --------------------------------------------------------------------------------

def format_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """The rows as an aligned text table, one line per row."""
    cells = [list(columns)] + [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(text.ljust(w) for text, w in zip(line, widths)).rstrip()
                     for line in cells)


def write_rows(rows: Sequence[dict], path, columns: Sequence[str]) -> Path:
    """The rows as a CSV file (atomically)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, text.getvalue().encode())
    return Path(path)


def report(run: FolderRun, csv_path, log: Callable[[str], None] = print) -> Path:
    """Print the run's table, write it to csv_path; then Ctrl-C's KeyboardInterrupt (exit 130
    in the scripts) if the run was stopped, or a SinGANError if an image failed."""
    log(format_table(run.rows, run.columns))
    path = write_rows(run.rows, csv_path, run.columns)
    log(f"summary: {_shown(path)}")
    if run.interrupted:
        raise KeyboardInterrupt("every image stopped at its next iteration with its finished "
                                "stages saved; run the same command again to resume")
    failed = [row["image"] for row in run.rows if row["status"].startswith(("failed", "killed"))]
    if failed:
        raise SinGANError(f"{len(failed)} of {len(run.rows)} images failed "
                          f"({', '.join(failed)}); their reasons are in {_shown(path)}")
    return path


def _mean_std(values: List[float]) -> str:
    if not values:
        return "-"
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return f"{mean:.3f} +- {std:.3f}"


def protocol_table(rows: Sequence[dict]) -> str:
    """Mean +- standard deviation over the images of each measure, beside the paper's Table 2
    (SinGAN on 50 Places images; its SIFID uses torchvision's Inception, 64 dims)."""
    lines = [f"{'':<8}{'SIFID':>18}{'paper':>8}{'diversity':>18}{'paper':>8}"]
    for label in PROTOCOL_SCALES:
        cells = []
        for measure in ("SIFID", "diversity"):
            values = [row[f"{measure} {label}"] for row in rows]
            numbers = [float(v) for v in values if isinstance(v, (int, float))]
            text = _mean_std(numbers) if numbers else next((v for v in values if v), "-")
            cells.append(f"{text:>18}{PAPER_TABLE_2[label][measure]:>8}")
        lines.append(f"{label:<8}" + "".join(cells))
    measured = sum(isinstance(row["diversity N"], float) for row in rows)
    lines.append(f"over {measured} of {len(rows)} images; paper: 50 Places images, 50 samples "
                 "each (arXiv 1905.01164, Table 2)")
    return "\n".join(lines)
