"""Many images at once, on Ray: one model per image of a folder, trained, sampled or evaluated
as independent Ray tasks, on Ray's local runtime or on a cluster.

An adapter (STYLE, "Adapters stay thin"): a task calls `singan.train_model`, `load_model` or
the apps' functions for one image and returns one row of a table; progress and stopping flow
through train_model's `progress` and `should_stop`. The Ray plumbing is singan.apps.ray_runner
(Ray is imported only when a folder runs, so that the rest of singan works without it); the
local runtime it starts listens on the loopback address only and requires a token of its own.

    images = list_images(IMAGES_DIR)
    run = train_folder(images, SinGANConfig(max_size=48, niter=100))
    report(run, summary_path("Output", IMAGES_DIR))

A task whose worker dies (killed, out of memory) is retried and resumes after the model's last
finished stage; a bad image fails its own row only; Ctrl-C makes every task stop at its next
iteration, keeping its finished stages.
"""
import contextlib
import csv
import io
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import torch

from ..api import method_of, model_folder, train_model
from ..driver import CHECKPOINT_MINUTES, TrainingStopped
from ..errors import SinGANError
from ..guards import Terminated
from ..image_io import IMAGE_SUFFIXES, IMAGES_DIR, atomic_write_bytes
from ..metrics import SIFIDOptions, sample_quality, sifid_unavailable
from ..progress import ProgressEvent
from .cluster import Cluster
from .evaluate import PROTOCOL_COLUMNS, evaluate_protocol, load_sifid_extractor
from .generation import open_model, open_trained_model, random_samples, samples_folder
from .ray_runner import (Channel, FolderRun, Link, gpus_per_model, ray_runtime, run_tasks,
                         threads_per_model)

# "node": the Ray node each image last ran on
TRAIN_COLUMNS = ("image", "method", "stages", "seconds", "status", "node", "model folder")
SAMPLE_COLUMNS = ("image", "method", "samples", "diversity", "status", "node",
                  "samples folder")
EVALUATE_COLUMNS = ("image", "method", "samples", *PROTOCOL_COLUMNS, "status", "node",
                    "model folder")

# on_progress(image name, event): what train_folder's caller may watch, in the task's process
ProgressWatcher = Callable[[str, ProgressEvent], None]


# ---- the folder ---------------------------------------------------------------------------------

def list_images(folder, log: Callable[[str], None] = print) -> List[Path]:
    """The image files of `folder` (IMAGE_SUFFIXES), sorted; every other file is logged as
    skipped, and so is a second image with the same stem (its model would be the first's) and
    a link that leads out of the folder or nowhere (a folder run reads the folder only)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SinGANError(f"--input_dir {folder}: no such folder")
    inside = folder.resolve()
    images, stems = [], {}
    for path in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
        if path.is_symlink() and not path.exists():
            log(f"skipped {path.name}: a link to nothing")
            continue
        if path.is_dir():
            continue
        if path.is_symlink() and not path.resolve().is_relative_to(inside):
            log(f"skipped {path.name}: a link to a file outside {folder}")
        elif path.suffix.lower() not in IMAGE_SUFFIXES:
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


def summary_path(out_root, input_dir=IMAGES_DIR, kind: str = "summary") -> Path:
    """Output/<folder name>_<kind>.csv."""
    return Path(out_root) / f"{Path(input_dir).resolve().name}_{kind}.csv"


def _shown(path) -> str:
    """A path relative to the working folder where it is inside it."""
    path = Path(path)
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


# ---- the tasks: one image each ------------------------------------------------------------------

def _train_task(image: str, config, root: str, out_root: str, device: str, seed: int,
                force: bool, num_samples: int, amp: str, threads: int,
                on_progress: Optional[ProgressWatcher], channel: Channel,
                checkpoint_minutes: float = CHECKPOINT_MINUTES) -> dict:
    """Train (or resume) the model of one image, then write its random samples; one row."""
    torch.set_num_threads(threads)
    name = Path(image).stem
    folder = model_folder(Path(image).name, config, root)
    row = {"image": Path(image).name, "method": method_of(config), "stages": "",
           "seconds": 0.0, "status": "", "model folder": _shown(folder)}
    link = Link(channel, name)
    row["node"] = link.node
    if link.should_stop():
        return dict(row, status="stopped before it started")
    started = time.perf_counter()
    events: List[ProgressEvent] = []

    def progress(event: ProgressEvent) -> None:
        events[:] = [event]
        done = event.stage + (event.kind == "stage")
        link.status(f"stage {min(done + 1, event.num_stages)}/{event.num_stages}"
                    if done < event.num_stages else "saving")
        if on_progress is not None:
            on_progress(name, event)

    link.status("starting")
    try:
        model = train_model(image, config, device=device, seed=seed, progress=progress,
                            should_stop=link.should_stop, force=force, show_progress=False,
                            log=link.log, root=root, checkpoint_minutes=checkpoint_minutes)
        if num_samples > 0:
            link.status("samples")
            out = samples_folder(out_root, name, tag=model.output_tag)
            random_samples(model, out, num_samples, seed=seed, amp=amp)
        row.update(method=model.method, stages=f"{model.num_scales}/{model.planned_stages}",
                   status="trained" if events else "already trained")
    except TrainingStopped as err:
        total = events[0].num_stages if events else "?"
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
                 seed: int, amp: str, device: str, threads: int, channel: Channel) -> dict:
    """Random samples of one image's trained model (random_samples.py's, per image); one row."""
    torch.set_num_threads(threads)
    image = Path(image)
    folder = model_folder(image.name, config, root)
    row = {"image": image.name, "method": "", "samples": 0, "diversity": "", "status": "",
           "samples folder": ""}
    link = Link(channel, image.stem)
    row["node"] = link.node
    if link.should_stop():
        return dict(row, status="stopped before it started")
    link.status("sampling")
    try:
        model = open_trained_model(folder, image.name, config, device, str(image.parent))
        out = samples_folder(out_root, image.stem, gen_start_scale, scale_v, scale_h, arbitrary,
                             model.output_tag)
        samples = random_samples(model, out, num_samples, gen_start_scale, scale_v, scale_h,
                                 seed, amp=amp)
        quality = sample_quality(samples, model.trained_real)
        row.update(method=model.method, samples=num_samples, status="done",
                   diversity="" if quality.diversity is None else round(quality.diversity, 4),
                   **{"samples folder": _shown(out)})
    except SinGANError as err:
        row.update(status=f"failed: {err}")
    finally:
        link.status(None)
    return row


def _evaluate_task(image: str, config, root: str, num_samples: int, seed: int,
                   sifid: Optional[SIFIDOptions], no_sifid: str, device: str, threads: int,
                   train_hint: str, channel: Channel) -> dict:
    """The paper's Table 2 protocol (singan.apps.evaluate.evaluate_protocol) for one image's
    model; one row."""
    torch.set_num_threads(threads)
    image = Path(image)
    folder = model_folder(image.name, config, root)
    row = dict.fromkeys(EVALUATE_COLUMNS, "")
    row.update(image=image.name, **{"model folder": _shown(folder)})
    link = Link(channel, image.stem)
    row["node"] = link.node
    if link.should_stop():
        return dict(row, status="stopped before it started")
    link.status("loading")
    try:
        model = open_model(folder, device, train_hint=train_hint)
        row.update(method=model.method, samples=num_samples)
        values, notes = evaluate_protocol(model, num_samples, seed,
                                          load_sifid_extractor(sifid, model.device), no_sifid,
                                          link.status)
        row.update(values, status="; ".join(["done"] + notes))
    except SinGANError as err:
        row["status"] = f"failed: {err}"
    finally:
        link.status(None)
    return row


# ---- the runs -----------------------------------------------------------------------------------

def train_folder(images: Sequence[Path], config, *, cluster: Cluster = Cluster(),
                 device: str = "auto", seed: int = 0, force: bool = False,
                 num_samples: int = 0, amp: str = "none", out_root="Output",
                 root="TrainedModels", show_progress: bool = True,
                 on_progress: Optional[ProgressWatcher] = None,
                 checkpoint_minutes: float = CHECKPOINT_MINUTES) -> FolderRun:
    """Train (or resume) one model per image, each a Ray task calling train_model with
    `config` (SinGANConfig or ConSinGANConfig) into its usual folder under `root`; then
    num_samples random samples each, as main_train.py writes. on_progress(image stem, event),
    if given, sees every progress event in the task's process (it must pickle: a function of
    a module). A task retried after its worker died continues the running stage from its
    last save (every checkpoint_minutes). Rows: TRAIN_COLUMNS."""
    root, out_root = Path(root).resolve(), Path(out_root).resolve()
    with ray_runtime(cluster) as ray:
        kwargs = dict(config=config, root=str(root), out_root=str(out_root), device=device,
                      seed=seed, force=force, num_samples=num_samples, amp=amp,
                      threads=threads_per_model(cluster), on_progress=on_progress,
                      checkpoint_minutes=checkpoint_minutes)
        return run_tasks(ray, _train_task, images, kwargs, cluster,
                         gpus_per_model(ray, cluster, device), root, TRAIN_COLUMNS, "training",
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
                      device=device, threads=threads_per_model(cluster))
        return run_tasks(ray, _sample_task, images, kwargs, cluster,
                         gpus_per_model(ray, cluster, device), root, SAMPLE_COLUMNS,
                         "sampling", show_progress)


def evaluate_folder(images: Sequence[Path], config, *, cluster: Cluster = Cluster(),
                    num_samples: int = 50, sifid: Optional[SIFIDOptions] = SIFIDOptions(),
                    seed: int = 0, device: str = "auto", root="TrainedModels",
                    train_hint: str = "", show_progress: bool = True,
                    log: Callable[[str], None] = print) -> FolderRun:
    """The paper's Table 2 protocol over every image's trained model, one Ray task per image
    (singan.apps.evaluate.evaluate_protocol). sifid=None, or missing weights, leaves SIFID out
    (the columns say why) and measures diversity only. Rows: EVALUATE_COLUMNS;
    singan.apps.evaluate.protocol_table sums them up."""
    no_sifid = "not measured"
    if sifid is not None:
        problem = sifid_unavailable(sifid)
        if problem:
            log(f"warning: SIFID not measured: {problem}")
            sifid, no_sifid = None, "weights missing"
    root = Path(root).resolve()
    with ray_runtime(cluster) as ray:
        kwargs = dict(config=config, root=str(root), num_samples=num_samples, seed=seed,
                      sifid=sifid, no_sifid=no_sifid, device=device,
                      threads=threads_per_model(cluster), train_hint=train_hint)
        return run_tasks(ray, _evaluate_task, images, kwargs, cluster,
                         gpus_per_model(ray, cluster, device), root, EVALUATE_COLUMNS,
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
        raise (Terminated if run.terminated else KeyboardInterrupt)(
            "every image stopped at its next iteration with its finished stages and its "
            "running one saved; run the same command again to resume")
    failed = [row["image"] for row in run.rows if row["status"].startswith(("failed", "killed"))]
    if failed:
        raise SinGANError(f"{len(failed)} of {len(run.rows)} images failed "
                          f"({', '.join(failed)}); their reasons are in {_shown(path)}")
    return path
