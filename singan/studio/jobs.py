"""What the web studio needs beyond the applications, with no web framework in it: the list of
trained models, uploads kept in a temporary folder, one training at a time in a queue, and each
tab's action as one call of an application's function.

Training runs in a worker thread through singan.train_model: its `progress` callback fills the
job's state and its `should_stop` is the job's Stop flag, the same ones the command line uses;
a page only watches a job, so closing the page leaves the training running.
"""
import hashlib
import shutil
import tempfile
import threading
import time
import traceback
import uuid
import zipfile
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from ..api import TRAINED_ROOT, load_model, model_folder, train_model
from ..apps.animation import write_animations
from ..apps.generation import open_model, random_samples, samples_folder
from ..apps.harmonize import masked_injection
from ..apps.paint import kmeans_colours, paint2image
from ..apps.sr import super_resolve, sr_output_folder
from ..catalog import find_model_folders, model_name, model_stamp
from ..driver import TrainingStopped
from ..errors import SinGANError
from ..image_io import IMAGE_SUFFIXES, norm, read_image, save_image, to_uint8
from ..imresize import imresize_to_shape
from ..interface import TrainedModel
from ..layers import ANIMATION_MIN_SIZE
from ..methods.consingan.hparams import default_config
from ..methods.singan.hparams import SinGANConfig
from ..metrics import SIFIDOptions, sample_quality
from ..progress import format_seconds

MAX_UPLOAD_BYTES = 25 * 2 ** 20          # uploads larger than this are refused
MAX_UPLOAD_PIXELS = 50_000_000           # ...and images declaring more pixels (a 48 MP photo fits)
REQUEST_FILES_SECONDS = 3600             # a request's scratch files are kept this long
MAX_WAITING_PER_USER = 3                 # queued trainings of one signed-in user
PURPOSES = ("generation", "animation", "harmonization", "editing")   # what a model is trained for
METHODS = ("SinGAN", "ConSinGAN")        # the Train tab's choice


# ---- trained models --------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelEntry:
    """A trained model in the models root, named as the command line names it."""
    name: str        # '<image>/<model folder>', e.g. 'rocket/scale_factor=0.750000,alpha=10'
    folder: Path     # the model folder
    image: str       # the training image's stem (the applications' output folders use it)


def find_models(root=TRAINED_ROOT) -> List[ModelEntry]:
    """Every model of either method in `root` (singan.catalog), sorted by name."""
    return [ModelEntry(model_name(folder), folder, folder.parent.name)
            for folder in find_model_folders(root)]


def find_user_models(folder, user: str) -> List[ModelEntry]:
    """A signed-in user's own models (in their folder, space.Workspace.models_root),
    named '<user>/<image>/<model folder>' so that they never share a name with a model of the
    shared root."""
    return [replace(entry, name=f"{user}/{entry.name}") for entry in find_models(folder)]


def find_model(root, name, models: Optional[List[ModelEntry]] = None) -> ModelEntry:
    """The model called `name` in `models` (default find_models(root)); a name not in that list
    is an error (a client never gives a path)."""
    if not name:
        raise SinGANError("choose a trained model first (train one on the Train tab)")
    if not isinstance(name, str):
        raise SinGANError(f"a model is chosen by its name, got {str(name)[:40]!r}")
    for entry in find_models(root) if models is None else models:
        if entry.name == name:
            return entry
    hint = ("a model is chosen from the list, never by a path" if ".." in name or
            name.startswith("/") else "it was moved or deleted? refresh the model list")
    raise SinGANError(f"no model {name[:80]!r} in {Path(root).name}/ ({hint})")


class ModelCache:
    """The last few opened models, reopened when the model is saved again (a resumed training)."""

    def __init__(self, size: int = 2):
        self.size = size
        self.models: Dict[tuple, TrainedModel] = {}
        self.lock = threading.Lock()

    def open(self, entry: ModelEntry, device="auto") -> TrainedModel:
        key = (str(entry.folder), model_stamp(entry.folder), str(device))
        with self.lock:
            if key in self.models:
                return self.models[key]
        model = open_model(entry.folder, device)
        with self.lock:
            self.models[key] = model
            while len(self.models) > self.size:
                self.models.pop(next(iter(self.models)))
        return model


# ---- uploads and images from the page --------------------------------------------------------

class UploadFolder:
    """Where the studio keeps what a page uploads or makes: a temporary folder of its own, one
    sub-folder per uploaded file's content (a queued training still finds its image) and one
    per request for what a request writes (two clients never share one)."""

    def __init__(self, folder=None):
        self.folder = Path(folder or tempfile.mkdtemp(prefix="singan-studio-"))

    def of(self, user: Optional[str]) -> "UploadFolder":
        """The same for one signed-in user: its sub-folder <user>/ (None: this one)."""
        return self if user is None else UploadFolder(self.folder / user)

    def keep_image(self, upload, what: str = "the upload", room=None) -> Path:
        """Copy an uploaded file in, after checking its size and that it reads as an image, and
        room(nbytes) (the user's quota; it raises when full); returns the kept path (the file's
        own name, so that its model is named after it)."""
        if not isinstance(upload, (str, Path)) or not Path(upload).is_file():
            raise SinGANError(f"{what} did not arrive as a file; upload it again")
        upload = Path(upload)
        name, size = upload.name, upload.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise SinGANError(f"{name} is {size / 2 ** 20:.0f} MB, over the "
                              f"{MAX_UPLOAD_BYTES // 2 ** 20} MB limit; downscale it first")
        if upload.suffix.lower() not in IMAGE_SUFFIXES:
            raise SinGANError(f"{name} is not an image file ({what}); use a PNG, JPEG, BMP, "
                              "TIFF or WebP file")
        if size == 0:
            raise SinGANError(f"{name} is empty (0 bytes), not an image ({what})")
        try:
            read_image(upload, max_pixels=MAX_UPLOAD_PIXELS)
        except SinGANError as err:
            raise SinGANError(str(err).replace(str(upload), name)) from None
        digest = hashlib.sha256(upload.read_bytes()).hexdigest()[:16]
        kept = self.folder / digest / name
        if not kept.exists():
            if room is not None:
                room(size)
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(upload, kept)
        return kept

    def new_folder(self) -> Path:
        """A fresh folder for one request's files; those of requests older than
        REQUEST_FILES_SECONDS are removed."""
        requests = self.folder / "requests"
        if requests.is_dir():
            old = time.time() - REQUEST_FILES_SECONDS
            for folder in requests.iterdir():
                try:
                    if folder.stat().st_mtime < old:
                        shutil.rmtree(folder, ignore_errors=True)
                except OSError:
                    pass
        folder = requests / uuid.uuid4().hex
        folder.mkdir(parents=True)
        return folder

    def save(self, name: str, image: torch.Tensor) -> Path:
        """A picture made in the page ([1, 3, H, W]) saved as a PNG in a fresh folder, for a
        function that reads files."""
        path = self.new_folder() / name
        save_image(path, image)
        return path


def from_uint8(pixels) -> torch.Tensor:
    """An H x W x 3 (or x 4: alpha dropped) uint8 picture -> [1, 3, H, W] in [-1, 1]."""
    if not isinstance(pixels, np.ndarray) or pixels.ndim not in (2, 3) or pixels.size == 0:
        raise SinGANError("the picture did not arrive as an image; upload it again")
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    x = torch.from_numpy(np.ascontiguousarray(pixels[:, :, :3])).permute(2, 0, 1)
    return norm(x[None].float() / 255)


def mask_from_layers(layers: List[np.ndarray]) -> torch.Tensor:
    """The brush strokes of an image editor's layers (H x W x 4, painted where alpha > 0) as a
    mask image [1, 3, H, W]: white where painted, black elsewhere."""
    painted = None
    for layer in layers:
        if layer is None or layer.ndim != 3 or layer.shape[2] != 4:
            continue
        alpha = layer[:, :, 3] > 0
        painted = alpha if painted is None else painted | alpha
    if painted is None or not painted.any():
        raise SinGANError("the mask is empty: paint over the region to change with the brush "
                          "(or upload a mask)")
    return norm(torch.from_numpy(painted).float()[None, None].expand(1, 3, -1, -1).clone())


def palette(model: TrainedModel, k: int = 5) -> List[str]:
    """The training image's k-means colours as '#rrggbb' brush colours."""
    centres = to_uint8(kmeans_colours(model.trained_real, k).t()[:, :, None])   # [k, 1, 3]
    return ["#%02x%02x%02x" % tuple(int(v) for v in c[0]) for c in centres]


def training_image(model: TrainedModel) -> np.ndarray:
    """The model's training image (at the size it draws at) as H x W x 3 uint8."""
    return to_uint8(model.trained_real)


def blank_canvas(model: TrainedModel) -> np.ndarray:
    """A canvas of the training image's size filled with its most common k-means colour."""
    h, w = model.trained_real.shape[2:]
    colour = palette(model, 1)[0]
    rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    return np.tile(np.array(rgb, np.uint8), (h, w, 1))


# ---- training, one at a time -----------------------------------------------------------------

def training_config(method: str, purpose: str = "generation", max_size: int = 250,
                    niter: int = 2000, scale_factor: float = 0.75, stages: int = 6,
                    min_size: Optional[int] = None):
    """The config of a training from the Train tab's choices, as the training scripts build
    it from their options (main_train.py, animation.py, ConSinGAN's --train_mode)."""
    if purpose not in PURPOSES:
        raise SinGANError(f"the purpose must be one of {', '.join(PURPOSES)}, got {purpose!r}")
    if method == "SinGAN":
        if not 0 < scale_factor < 1:
            raise SinGANError(f"the scale factor must be between 0 and 1, got {scale_factor}")
        cfg = SinGANConfig(max_size=int(max_size), niter=int(niter),
                           scale_factor=float(scale_factor))
        if purpose == "animation":
            cfg = replace(cfg, pad_noise=False, min_size=ANIMATION_MIN_SIZE)
        return replace(cfg, min_size=int(min_size)) if min_size else cfg
    if method == "ConSinGAN":
        if int(stages) < 2:
            raise SinGANError(f"ConSinGAN needs at least 2 stages, got {stages}")
        cfg = replace(default_config(purpose), max_size=int(max_size), niter=int(niter),
                      train_stages=int(stages))
        return replace(cfg, min_size=int(min_size)) if min_size else cfg
    raise SinGANError(f"the method must be {' or '.join(METHODS)}, got {method!r}")


@dataclass
class Job:
    """One training: what to train, and what it has reported so far."""
    id: int
    image: Path
    config: object
    device: str
    seed: int
    folder: Path
    label: str = ""                    # the method, as the Train tab names it
    user: Optional[str] = None         # who started it (None: the single-user studio)
    state: str = "queued"              # queued | running | finished | stopped | failed
    message: str = ""                  # the last log line, or the error / stop message
    event: Optional[object] = None     # the latest singan.ProgressEvent (images dropped)
    unit: Optional[str] = None         # "scale" | "stage", once the model exists (its answer)
    stages: List[Tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)
    losses: List[dict] = field(default_factory=list)   # {iteration, loss, value} rows to plot
    version: int = 0                   # bumped at every change, for watchers
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def name(self) -> str:
        return f"{self.image.stem}/{self.folder.name}"

    @property
    def done(self) -> bool:
        return self.state in ("finished", "stopped", "failed")

    def seconds_left(self) -> Optional[float]:
        """The time left, as the driver estimates it from this run's rate (None: not yet)."""
        return None if self.event is None else self.event.seconds_left

    def describe(self, waiting_ahead: int = 0) -> str:
        """The job's state in a few lines of text."""
        head = f"{self.label} {self.name}".strip()
        if self.state == "queued" and not waiting_ahead:
            return f"{head}: starting"
        if self.state == "queued":
            return (f"{head}: waiting in the queue ({waiting_ahead} training"
                    f"{'s' if waiting_ahead != 1 else ''} ahead)")
        lines = [f"{head}: {self.state}"]
        e = self.event
        if e is not None:
            lines.append(f"{self.unit or 'level'} {e.stage + 1} of {e.num_stages}, iteration "
                         f"{e.iteration} of {e.total} ({100 * e.fraction:.0f}% of the work "
                         "done)")
            left = self.seconds_left()
            if self.state == "running" and left is not None:
                lines.append(f"time left: about {format_seconds(left)} "
                             f"(elapsed {format_seconds(e.elapsed)})")
            if e.losses:
                lines.append("losses: " + ", ".join(f"{k} {v:.4g}" for k, v in e.losses.items()))
        if self.message:
            lines.append(self.message)
        return "\n".join(lines)


class TrainingQueue:
    """At most `max_running` trainings at once (each in a worker thread of the server), and at
    most one of each signed-in user; the others wait in order.

    submit() refuses a second job for a model folder that is already queued or training, and a
    user's job past MAX_WAITING_PER_USER waiting ones; stop() sets a job's Stop flag
    (train_model's should_stop), or takes it off the queue. With a `user`, get() and stop()
    see that user's jobs only.
    """

    def __init__(self, root=TRAINED_ROOT, log=print, max_running: int = 1):
        self.root = Path(root)
        self.server_log = log
        self.jobs: List[Job] = []
        self.waiting: deque = deque()
        self.changed = threading.Condition()
        self.workers = [threading.Thread(target=self._work, args=(slot,), daemon=True,
                                         name=f"singan-training-{slot}")
                        for slot in range(max(1, int(max_running)))]
        for worker in self.workers:
            worker.start()

    def submit(self, image: Path, config, device: str = "auto", seed: int = 0,
               label: str = "", user: Optional[str] = None, root=None) -> Job:
        """Queue a training of `image` into its model folder under `root` (default the
        queue's)."""
        folder = model_folder(Path(image).name, config, self.root if root is None else root)
        with self.changed:
            for job in self.jobs:
                if job.folder == folder and not job.done:
                    raise SinGANError(f"{job.name} is already {job.state} (job {job.id}); wait "
                                      "for it, or Stop it first")
            if user is not None and sum(j.user == user for j in self.waiting) >= \
                    MAX_WAITING_PER_USER:
                raise SinGANError(f"you already have {MAX_WAITING_PER_USER} trainings waiting; "
                                  "wait for them, or Stop one first")
            job = Job(len(self.jobs) + 1, Path(image), config, device, int(seed), folder,
                      label, user)
            self.jobs.append(job)
            self.waiting.append(job)
            self.changed.notify_all()
        return job

    def get(self, job_id: Optional[int] = None, user: Optional[str] = None) -> Optional[Job]:
        """Job `job_id`; without one, the running job, else the last one submitted (with a
        user: among that user's jobs only)."""
        with self.changed:
            jobs = [j for j in self.jobs if user is None or j.user == user]
            if job_id:
                return next((j for j in jobs if j.id == job_id), None)
            running = [j for j in jobs if j.state == "running"]
            return running[0] if running else (jobs[-1] if jobs else None)

    def busy(self, folder: Path) -> bool:
        """Whether a training into `folder` is queued or running."""
        with self.changed:
            return any(j.folder == Path(folder) and not j.done for j in self.jobs)

    def ahead(self, job: Job) -> int:
        """How many trainings run or wait before `job`."""
        with self.changed:
            if job.state != "queued":
                return 0
            running = sum(j.state == "running" for j in self.jobs)
            return running + list(self.waiting).index(job) if job in self.waiting else running

    def stop(self, job_id: Optional[int] = None, user: Optional[str] = None) -> Optional[Job]:
        """Stop job `job_id` (default: the running one): a queued job leaves the queue, a
        running one stops before its next iteration and keeps its finished stages. With a
        user, only a job that user started: another's is a SinGANError."""
        if user is not None and job_id and self.get(job_id) is not None and \
                self.get(job_id, user) is None:
            raise SinGANError(f"training {job_id} was started by another user; only they can "
                              "stop it")
        job = self.get(job_id, user)
        if job is None or job.done:
            return job
        with self.changed:
            job.stop.set()
            if job.state == "queued":
                self.waiting.remove(job)
                self._update(job, state="stopped", message="taken off the queue before it "
                                                           "started")
        return job

    def shutdown(self, timeout: float = 120.0) -> None:
        """Stop every job (the server is going down): the queue empties, and the running
        training stops after its iteration in progress, saving its running stage (Start with
        the same settings continues it), within `timeout` seconds."""
        with self.changed:
            jobs = [job for job in self.jobs if not job.done]
        for job in jobs:
            self.stop(job.id)
        with self.changed:
            self.changed.wait_for(lambda: all(job.done for job in jobs), timeout)

    def wait(self, job: Job, version: int, timeout: float) -> int:
        """Block until the job changes past `version` (or timeout); returns its version."""
        with self.changed:
            self.changed.wait_for(lambda: job.version != version, timeout)
            return job.version

    def _update(self, job: Job, **changes) -> None:
        with self.changed:
            for key, value in changes.items():
                setattr(job, key, value)
            job.version += 1
            self.changed.notify_all()

    def _progress(self, job: Job, event) -> None:
        changes = {"event": replace(event, images=None)}
        step = event.stage * event.total + event.iteration      # iterations of the whole run
        with self.changed:
            job.losses.extend({"iteration": step, "loss": name, "value": value}
                              for name, value in event.losses.items())
        if event.kind == "stage" and event.images:
            changes["stages"] = job.stages + [(event.stage, to_uint8(event.images["fake"]),
                                               to_uint8(event.images["reconstruction"]))]
        if event.kind == "stage" and job.unit is None:   # the saved model names its levels
            changes["unit"] = load_model(job.folder).unit
        self._update(job, **changes)

    def _next(self) -> Optional[Job]:
        """The first waiting job whose user has no training running."""
        busy = {j.user for j in self.jobs if j.state == "running" and j.user is not None}
        return next((j for j in self.waiting if j.user is None or j.user not in busy), None)

    def _work(self, slot: int) -> None:
        while True:
            with self.changed:
                self.changed.wait_for(lambda: self._next() is not None)
                job = self._next()
                self.waiting.remove(job)
                self._update(job, state="running")
            self._run(job, slot)

    @staticmethod
    def _device(device: str, slot: int) -> str:
        """Worker `slot`'s GPU where there are several (one training per GPU)."""
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return f"cuda:{slot % count}" if count > 1 and device in ("auto", "cuda") else device

    def _run(self, job: Job, slot: int = 0) -> None:
        try:
            model = train_model(job.image, job.config, job.folder,
                                device=self._device(job.device, slot),
                                seed=job.seed, progress=lambda e: self._progress(job, e),
                                should_stop=job.stop.is_set, show_progress=False,
                                log=lambda line: self._update(job, message=line))
            self._update(job, state="finished", unit=model.unit,
                         message=f"finished: {model.progress_text()} in {job.folder}; its "
                                 "model is in the lists of the other tabs")
        except TrainingStopped as err:
            self._update(job, state="stopped", message=str(err))
        except SinGANError as err:
            self._update(job, state="failed", message=str(err))
        except Exception as err:   # a bug or an exhausted device: the server keeps serving
            self.server_log(traceback.format_exc())
            self._update(job, state="failed", message=f"training failed: {type(err).__name__}: "
                                                      f"{str(err).splitlines()[0][:200]}")


# ---- the applications, one call per tab ------------------------------------------------------

def seeded(model: TrainedModel, seed: int) -> torch.Generator:
    return torch.Generator(device=model.device).manual_seed(int(seed))


def draw_samples(model: TrainedModel, entry: ModelEntry, out_root, num_samples: int = 16,
                 gen_start_scale: int = 0, scale_v: float = 1.0, scale_h: float = 1.0,
                 seed: int = 0, sifid: bool = False):
    """Random samples written where random_samples.py writes them (under out_root), a zip of
    them, and metrics.sample_quality's report as text: (sample paths, zip path, text)."""
    arbitrary = (scale_v, scale_h) != (1.0, 1.0)
    model.require("arbitrary_sizes" if arbitrary else "samples")
    folder = samples_folder(out_root, entry.image, gen_start_scale, scale_v, scale_h,
                            arbitrary, model.output_tag)
    samples = random_samples(model, folder, num_samples, gen_start_scale, scale_v, scale_h,
                             seed=seed)                                    # [N, 3, H', W']
    paths = [folder / f"{i}.png" for i in range(len(samples))]
    zip_path = folder.parent / f"{folder.name}.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in paths:
            archive.write(path, path.name)
    report = sample_quality(samples, model.trained_real, SIFIDOptions() if sifid else None)
    return paths, zip_path, "\n".join(report.lines())


def harmonize(model: TrainedModel, entry: ModelEntry, out_root, scratch: Path, task: str,
              naive: torch.Tensor, mask: torch.Tensor, start_scale: int,
              seed: int = 0) -> Dict[str, object]:
    """Harmonization or editing (apps.harmonize.masked_injection) of a naive image and a mask
    image ([1, 3, h, w] each, white inside), written into `scratch` as studio.png and
    studio_mask.png, so that the results land in <out_root>/<Task>/<image>/studio_out/.
    Returns {"result": the blend, "naive", "grid", "files": every file written}."""
    model.require("injection")
    naive_path, mask_path = scratch / "studio.png", scratch / "studio_mask.png"
    save_image(naive_path, naive)
    save_image(mask_path, mask)
    written = masked_injection(task, model, entry.image, naive_path, start_scale, seed,
                               out_root, mask=str(mask_path))
    folder = written[0].parent
    grid = folder / f"start_scale={start_scale}_grid.png"
    files = written + [folder / "studio_mask_dilated.png", grid]
    return {"result": written[-1], "naive": naive_path, "grid": grid, "files": files}


def paint(model: TrainedModel, entry: ModelEntry, out_root, painting: Path, start_scale: int,
          quantize: bool = False, seed: int = 0, model_dir=None) -> Path:
    """paint2image.py on a painting file; returns the result's path. A quantised model goes
    beside `model_dir` (default the model's folder)."""
    model.require("quantised_paint" if quantize else "injection")
    written = paint2image(model, entry.image, painting, start_scale, seed=seed,
                          out_root=out_root, quantization=quantize, quiet=True,
                          log=lambda line: None,
                          model_dir=model_dir or entry.folder)
    return written[-1]


def super_resolution(model: TrainedModel, entry: ModelEntry, out_root, sr_factor: float,
                     seed: int = 0) -> Tuple[Path, Path]:
    """The training image enlarged by sr_factor, bicubic and by apps.sr.super_resolve (SR.py's
    method; best with a model SR.py trained): (bicubic path, SinGAN path)."""
    model.require("sr")
    hr = super_resolve(model, sr_factor, seeded(model, seed))          # [1, 3, fH, fW]
    bicubic = imresize_to_shape(model.trained_real, hr.shape[2:])
    folder = sr_output_folder(out_root, sr_factor)
    paths = (folder / f"{entry.image}_bicubic.png", folder / f"{entry.image}_HR.png")
    save_image(paths[0], bicubic)
    save_image(paths[1], hr)
    return paths


def animate(model: TrainedModel, entry: ModelEntry, out_root, start_scale: int = 0,
            alpha: float = 0.1, beta: float = 0.9, num_frames: int = 100, fps: float = 10,
            seed: int = 0, format: str = "gif") -> Path:
    """One GIF or MP4 (format) of an animation model (apps.animation.write_animations), where
    animation.py writes it."""
    model.require("animation")
    return write_animations(model, entry.image, seed, out_root, [start_scale], [alpha], [beta],
                            num_frames, fps, format)[0]
