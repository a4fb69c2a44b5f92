"""Many images at once, on Ray: one model per image of a folder, trained, sampled or evaluated
as independent Ray tasks, on Ray's local runtime or on a cluster.

An adapter (STYLE, "Adapters stay thin"): a task calls `singan.train_model`, `load_model` or
the apps' functions for one image and returns one row of a table; progress and stopping flow
through train_model's `progress` and `should_stop`. The Ray plumbing is singan.cluster.ray_runner
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
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch

from ..api import method_of, model_folder, train_model
from ..apps.evaluate import PROTOCOL_COLUMNS, evaluate_protocol, load_sifid_extractor
from ..apps.generation import (open_model, open_trained_model, random_samples, samples_folder,
                               samples_roots)
from ..checkpoint import CHECKPOINT_NAME, RUNNING_NAME
from ..driver import CHECKPOINT_MINUTES, TrainingStopped, prepare_model_folder
from ..errors import SinGANError
from ..guards import Terminated, exclusive
from ..image_io import IMAGE_SUFFIXES, IMAGES_DIR, atomic_write_bytes, declared_size
from ..metrics import SIFIDOptions, sample_quality
from ..progress import ProgressEvent
from ..resources import human
from . import folder_copy
from .folder_copy import (MAX_FILE_BYTES, Mirror, batch_growth, checked_batch, finished_model,
                          read_files, write_batch)
from .ray_runner import (Channel, FolderRun, Link, gpus_per_model, ray_runtime, run_tasks,
                         threads_per_model)
from .settings import Cluster

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
#
# A task never reads or writes a path of the driver's machine: its image arrives as bytes with
# the model files it needs (singan.cluster.folder_copy), it works in a temporary folder of its
# own node, and it sends back every file it saves; the driver writes them into its own
# TrainedModels/ and Output/ (`_Folders`).

MODEL, OUTPUT = "model", "output"     # the driver's folders a task's files go to
RESUME_FILES = (CHECKPOINT_NAME, RUNNING_NAME, "config.json")   # what a training continues from
MODEL_FILES = (CHECKPOINT_NAME, "config.json")                  # what a trained model loads from


class _Space:
    """A task's working folder on its node: the image written from its bytes, the model
    folder from the files sent (`files`), a Mirror of it (what the driver holds), and the
    task's Link. `names`: how the driver names its image, the model folder and its output
    folder, which every line the task reports uses instead of this folder's (said()).
    Removed afterwards."""

    def __init__(self, scratch: Path, image_name: str, image_bytes: bytes, config,
                 files: Dict[str, bytes], link: Link, names: Dict[str, str]):
        if Path(image_name).name != image_name or image_name.startswith("."):
            raise SinGANError(f"{image_name!r} is not an image file name")
        self.scratch = scratch
        self.root, self.out = scratch / "TrainedModels", scratch / "Output"
        self.image = scratch / "images" / image_name
        self.image.parent.mkdir(parents=True)
        self.image.write_bytes(image_bytes)
        self.folder = model_folder(image_name, config, self.root)
        write_batch(self.folder, checked_batch(list(files.items()), image_name))
        self.model = Mirror(self.folder, held=files)
        self.link, self.names = link, names

    def said(self, text: str) -> str:
        """`text` with this node's paths replaced by the driver's names for them."""
        for path, name in ((self.folder, self.names.get("model")),
                           (self.image, self.names.get("image")),
                           (self.out, self.names.get("output")),
                           (self.scratch, "(a temporary folder of the task's node)")):
            if name:
                text = text.replace(str(path), name)
        return text

    def send_model(self, note: str = "") -> None:
        self.link.send(MODEL, self.model.changes(), note)

    def send_output(self) -> None:
        self.link.send(OUTPUT, Mirror(self.out).changes())

    def shown(self, path: Path) -> str:
        """How the driver names `path`, a folder under this task's Output/."""
        return str(Path(self.names["output"]) / path.relative_to(self.out))


@contextlib.contextmanager
def _on_node(channel: Channel, image_name: str, image_bytes: bytes, config,
             files: Optional[Dict[str, bytes]] = None, names: Optional[Dict[str, str]] = None):
    link = Link(channel)
    try:
        with tempfile.TemporaryDirectory(prefix="singan-task-") as scratch:
            yield _Space(Path(scratch), image_name, image_bytes, config, files or {}, link,
                         names or {})
    finally:
        link.status(None)
        link.flush()


def _stopped_row(row: dict, link: Link) -> Optional[dict]:
    row["node"] = link.node
    return dict(row, status="stopped before it started") if link.stopped_before_start() \
        else None


def _train_task(image_name: str, image_bytes: bytes, files: Dict[str, bytes], source: str,
                names: Dict[str, str], config, device: str, seed: int, force: bool,
                num_samples: int, amp: str, threads: int,
                on_progress: Optional[ProgressWatcher], checkpoint_minutes: float,
                channel: Channel) -> dict:
    """Train (or resume, from `files`) the model of one image, then write its random samples;
    every save goes back to the driver. One row, in the driver's names (`names`)."""
    torch.set_num_threads(threads)
    name = Path(image_name).stem
    row = {"image": image_name, "method": method_of(config), "stages": "", "seconds": 0.0,
           "status": "", "model folder": names.get("model", "")}
    with _on_node(channel, image_name, image_bytes, config, files, names) as space:
        link = space.link
        stopped = _stopped_row(row, link)
        if stopped:
            return stopped
        started = time.perf_counter()
        events: List[ProgressEvent] = []

        def progress(event: ProgressEvent) -> None:
            events[:] = [event]
            done = event.stage + (event.kind == "stage")
            link.status(f"stage {min(done + 1, event.num_stages)}/{event.num_stages}"
                        if done < event.num_stages else "saving")
            if on_progress is not None:
                on_progress(name, event)

        def saved(stage: int, iteration: int) -> None:
            niter = config.niter
            space.send_model(f"stage {stage} finished" if iteration >= niter else
                             f"stage {stage} at iteration {iteration} of {niter}")

        link.status("starting")
        try:
            model = train_model(space.image, config, device=device, seed=seed,
                                progress=progress, should_stop=link.should_stop, force=force,
                                show_progress=False, root=space.root,
                                log=lambda line: link.log(space.said(line)),
                                checkpoint_minutes=checkpoint_minutes, on_saved=saved,
                                image_source=source)
            space.send_model()    # what no save announced (config.json of a finished model)
            if num_samples > 0:
                link.status("samples")
                out = samples_folder(space.out, name, tag=model.output_tag)
                random_samples(model, out, num_samples, seed=seed, amp=amp)
                space.send_output()
            row.update(method=model.method, stages=f"{model.num_scales}/{model.planned_stages}",
                       status="trained" if events else "already trained")
        except TrainingStopped as err:
            total = events[0].num_stages if events else "?"
            row.update(stages=f"{err.stages_done}/{total}",
                       status=f"stopped: {err.stages_done} stages saved; run again to resume")
        except SinGANError as err:
            row.update(status=f"failed: {space.said(str(err))}")
        row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def _sample_task(image_name: str, image_bytes: bytes, files: Dict[str, bytes],
                 names: Dict[str, str], config, num_samples: int, gen_start_scale: int,
                 scale_v: float, scale_h: float, arbitrary: bool, seed: int, amp: str,
                 device: str, threads: int, channel: Channel) -> dict:
    """Random samples of one image's trained model (random_samples.py's, per image), sent
    back to the driver's Output/; one row."""
    torch.set_num_threads(threads)
    row = {"image": image_name, "method": "", "samples": 0, "diversity": "", "status": "",
           "samples folder": ""}
    with _on_node(channel, image_name, image_bytes, config, files, names) as space:
        stopped = _stopped_row(row, space.link)
        if stopped:
            return stopped
        space.link.status("sampling")
        try:
            model = open_trained_model(space.folder, image_name, config, device,
                                       str(space.image.parent))
            out = samples_folder(space.out, space.image.stem, gen_start_scale, scale_v,
                                 scale_h, arbitrary, model.output_tag)
            samples = random_samples(model, out, num_samples, gen_start_scale, scale_v,
                                     scale_h, seed, amp=amp)
            space.send_output()
            quality = sample_quality(samples, model.trained_real)
            row.update(method=model.method, samples=num_samples, status="done",
                       diversity="" if quality.diversity is None else round(quality.diversity, 4),
                       **{"samples folder": space.shown(out)})
        except SinGANError as err:
            row.update(status=f"failed: {space.said(str(err))}")
    return row


def _evaluate_task(image_name: str, image_bytes: bytes, files: Dict[str, bytes],
                   names: Dict[str, str], config, num_samples: int, seed: int, extractor,
                   no_sifid: str, device: str, threads: int, train_hint: str,
                   channel: Channel) -> dict:
    """The paper's Table 2 protocol (singan.apps.evaluate.evaluate_protocol) for one image's
    model; one row. `extractor` is SIFID's, loaded by the driver from its own weights file
    and sent with the task (None: no SIFID, the cells say `no_sifid`)."""
    torch.set_num_threads(threads)
    row = dict.fromkeys(EVALUATE_COLUMNS, "")
    shown = names.get("model", "")
    row.update(image=image_name, **{"model folder": shown})
    with _on_node(channel, image_name, image_bytes, config, files, names) as space:
        stopped = _stopped_row(row, space.link)
        if stopped:
            return stopped
        space.link.status("loading")
        try:
            if not files:
                raise SinGANError(f"no trained model at {shown}; train it first: {train_hint}")
            model = open_model(space.folder, device, train_hint=train_hint)
            row.update(method=model.method, samples=num_samples)
            if extractor is not None:
                extractor = extractor.to(model.device)
            values, notes = evaluate_protocol(model, num_samples, seed, extractor, no_sifid,
                                              space.link.status)
            row.update(values, status="; ".join(["done"] + notes))
        except SinGANError as err:
            row["status"] = f"failed: {space.said(str(err))}"
    return row


# ---- the driver's side: what a task gets, where its files go ------------------------------------

class _Folders:
    """The driver's folders of a run over images, and its records of them. What each image's
    task is sent: the image as bytes, the model files it needs from the driver's copy, and
    the driver's names for them (what every line a task reports says); a training's image has
    its header checked first (image_io.declared_size: no node starts decoding what the driver
    would refuse). Where the files a task sends back go, under the image and area the driver
    recorded for the task (ray_runner's tickets): checked (folder_copy.checked_batch), only
    inside that image's own model folder or its own samples folders (write_batch: no link
    leading out), at most folder_copy.MAX_IMAGE_BYTES more per image in a run, and never over
    or instead of a finished model.pth (a --force run's driver removes that itself before the
    task starts)."""

    def __init__(self, config, root, out_root=None):
        self.config = config
        self.root = Path(root).resolve()
        self.out_root = Path(out_root).resolve() if out_root is not None else None
        self.added: Dict[Path, int] = {}        # bytes the run's tasks added, per image
        self.finished: Dict[Path, bool] = {}    # whether the image's model.pth is finished

    def model_folder(self, image: Path) -> Path:
        return model_folder(Path(image).name, self.config, self.root)

    def image(self, image: Path) -> dict:
        size = Path(image).stat().st_size
        if size > MAX_FILE_BYTES:
            raise SinGANError(f"{Path(image).name} is {size / 2**20:.0f} MB: more than the "
                              f"{MAX_FILE_BYTES >> 20} MB a task is sent")
        return {"image_name": Path(image).name, "image_bytes": Path(image).read_bytes()}

    def names(self, image: Path) -> Dict[str, str]:
        """How the driver names the image, its model folder and the output folder."""
        return {"image": _shown(image), "model": _shown(self.model_folder(image)),
                "output": _shown(self.out_root) if self.out_root is not None else ""}

    def files(self, image: Path, names: Sequence[str]) -> Dict[str, bytes]:
        return read_files(self.model_folder(image), names)

    def model_task(self, image: Path, **extra) -> dict:
        """What a task over the image's trained model (sampling, evaluating) is sent: the
        image, its model files and the driver's names, the config, and `extra`; a file that
        cannot be read is one line naming it."""
        try:
            return dict(self.image(image), files=self.files(image, MODEL_FILES),
                        names=self.names(image), config=self.config, **extra)
        except OSError as err:
            raise _read_error(image, err) from None

    def clear(self, image: Path) -> None:
        """--force: the image's model files removed by the driver itself, as a local --force
        training removes them when it starts."""
        folder = self.model_folder(image)
        for rel in read_files(folder):
            with contextlib.suppress(FileNotFoundError):
                (folder / rel).unlink()
        self.finished[image] = False

    def is_finished(self, image: Path) -> bool:
        if image not in self.finished:
            self.finished[image] = finished_model(self.model_folder(image) / CHECKPOINT_NAME)
        return self.finished[image]

    def receive(self, image: Path, area: str, batch, note: str) -> None:
        if area == MODEL:
            folder, inside = self.model_folder(image), ()
        elif area == OUTPUT and self.out_root is not None:
            folder = self.out_root
            inside = [str(p.relative_to(folder)) for p in samples_roots(folder, image.stem)]
        else:
            raise SinGANError(f"refused files for {area!r}: not a folder of this run")
        where = _shown(folder)
        batch = checked_batch(batch, where, inside)
        model = [data for rel, data in batch if rel == CHECKPOINT_NAME] if area == MODEL else []
        if model and self.is_finished(image):
            raise SinGANError(f"refused the files for {where}: a task may not "
                              f"{'remove' if model[-1] is None else 'replace'} the finished "
                              f"model {where}/{CHECKPOINT_NAME}")
        added = self.added.get(image, 0) + batch_growth(folder, batch)
        if added > folder_copy.MAX_IMAGE_BYTES:
            raise SinGANError(f"refused the files for {where}: with them this run's tasks "
                              f"would have added {human(added)} for {Path(image).name}, more "
                              f"than the {human(folder_copy.MAX_IMAGE_BYTES)} a run may add "
                              "per image")
        write_batch(folder, batch, where)
        self.added[image] = added
        if model:
            self.finished[image] = model[-1] is not None and finished_model(model[-1])


def _read_error(image: Path, err: OSError) -> SinGANError:
    return SinGANError(f"cannot read {image}: {err.strerror or err}")


# ---- the runs -----------------------------------------------------------------------------------

def train_folder(images: Sequence[Path], config, *, cluster: Cluster = Cluster(),
                 device: str = "auto", seed: int = 0, force: bool = False,
                 num_samples: int = 0, amp: str = "none", out_root="Output",
                 root="TrainedModels", show_progress: bool = True,
                 on_progress: Optional[ProgressWatcher] = None,
                 checkpoint_minutes: float = CHECKPOINT_MINUTES) -> FolderRun:
    """Train (or resume) one model per image, each a Ray task calling train_model with
    `config` (SinGANConfig or ConSinGANConfig); then num_samples random samples each, as
    main_train.py writes. Every file a task saves comes back to this process, which writes it
    into the image's usual folder under `root` (samples under `out_root`): the nodes need no
    shared storage. on_progress(image stem, event), if given, sees every progress event in
    the task's process (it must pickle: a function of a module). A task whose worker or node
    is lost runs again from this process's copy of its running stage (saved every
    checkpoint_minutes). Rows: TRAIN_COLUMNS."""
    folders = _Folders(config, root, out_root)
    common = dict(config=config, device=device, seed=seed, num_samples=num_samples, amp=amp,
                  on_progress=on_progress, checkpoint_minutes=checkpoint_minutes)

    def kwargs_for(image: Path, first: bool) -> dict:
        forced = force and first      # a retry continues what the first try saved
        declared_size(image, name=_shown(image))
        try:
            sent = dict(folders.image(image), **common, force=forced,
                        source=str(Path(image).resolve()), names=folders.names(image),
                        threads=threads)
            if forced:
                folders.clear(image)
            return dict(sent, files=folders.files(image, RESUME_FILES))
        except OSError as err:
            raise _read_error(image, err) from None

    with ray_runtime(cluster) as ray, _held(folders, images):
        threads = threads_per_model(cluster)
        return run_tasks(ray, _train_task, images, kwargs_for, folders.receive, cluster,
                         gpus_per_model(ray, cluster, device), TRAIN_COLUMNS, "training",
                         show_progress, areas=(MODEL, OUTPUT) if num_samples > 0 else (MODEL,))


@contextlib.contextmanager
def _held(folders: _Folders, images: Sequence[Path]):
    """Each image's model folder locked (guards.exclusive) while the run writes into it, as
    a local training holds its own; a folder left empty is removed afterwards."""
    with contextlib.ExitStack() as stack:
        made = []
        for image in images:
            folder = folders.model_folder(image)
            if not folder.exists():
                made.append(folder)
            prepare_model_folder(folder, 0)
            stack.enter_context(exclusive(folder))
        try:
            yield
        finally:
            for folder in made:
                with contextlib.suppress(OSError):
                    folder.rmdir()
                    folder.parent.rmdir()


def sample_folder(images: Sequence[Path], config, *, cluster: Cluster = Cluster(),
                  num_samples: int = 50, gen_start_scale: int = 0, scale_v: float = 1.0,
                  scale_h: float = 1.0, arbitrary: bool = False, seed: int = 0,
                  amp: str = "none", device: str = "auto", out_root="Output",
                  root="TrainedModels", show_progress: bool = True) -> FolderRun:
    """Random samples of every image's trained model (the one `config` names), one Ray task
    per image, written into random_samples.py's folders under `out_root` by this process
    (the tasks send them). Rows: SAMPLE_COLUMNS."""
    folders = _Folders(config, root, out_root)

    def kwargs_for(image: Path, first: bool) -> dict:
        return folders.model_task(image, num_samples=num_samples,
                                  gen_start_scale=gen_start_scale, scale_v=scale_v,
                                  scale_h=scale_h, arbitrary=arbitrary, seed=seed, amp=amp,
                                  device=device, threads=threads)

    with ray_runtime(cluster) as ray:
        threads = threads_per_model(cluster)
        return run_tasks(ray, _sample_task, images, kwargs_for, folders.receive, cluster,
                         gpus_per_model(ray, cluster, device), SAMPLE_COLUMNS, "sampling",
                         show_progress, areas=(OUTPUT,))


def evaluate_folder(images: Sequence[Path], config, *, cluster: Cluster = Cluster(),
                    num_samples: int = 50, sifid: Optional[SIFIDOptions] = SIFIDOptions(),
                    seed: int = 0, device: str = "auto", root="TrainedModels",
                    train_hint: str = "", show_progress: bool = True,
                    log: Callable[[str], None] = print) -> FolderRun:
    """The paper's Table 2 protocol over every image's trained model, one Ray task per image
    (singan.apps.evaluate.evaluate_protocol). sifid=None, or missing weights (here, or on a
    task's node), leaves SIFID out (the columns say why) and measures diversity only. Rows:
    EVALUATE_COLUMNS; singan.apps.evaluate.protocol_table sums them up. SIFID's weights are
    the driver's: its feature extractor (a few hundred KB) travels with the tasks, so that no
    node needs the weights file."""
    no_sifid, extractor = "not measured", None
    if sifid is not None:
        from SIFID import SIFIDError   # stands apart from singan; imported on demand
        try:
            extractor = load_sifid_extractor(sifid, "cpu")
        except SIFIDError as err:      # missing or unreadable weights: a note, not an error
            log(f"warning: SIFID not measured: {str(err).splitlines()[0]}")
            no_sifid = "weights missing"
    folders = _Folders(config, root)

    def kwargs_for(image: Path, first: bool) -> dict:
        return folders.model_task(image, num_samples=num_samples, seed=seed, extractor=shared,
                                  no_sifid=no_sifid, device=device, threads=threads,
                                  train_hint=train_hint)

    with ray_runtime(cluster) as ray:
        threads = threads_per_model(cluster)
        shared = None if extractor is None else ray.put(extractor)   # sent once, not per task
        return run_tasks(ray, _evaluate_task, images, kwargs_for, folders.receive, cluster,
                         gpus_per_model(ray, cluster, device), EVALUATE_COLUMNS,
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
