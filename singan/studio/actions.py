"""What each of the studio's buttons does: StudioActions holds the server's state (its models
root, output folder, uploads, training queue, opened models) and one method per action, which
checks every argument (checks.py), makes one call of jobs.py, and returns what the
page shows. A SinGANError becomes the page's one-line message (gr.Error, no traceback in the
server's terminal: one line there per refused request).

Every client's results go to its own folder, <out>/studio/<session>/, laid out as the scripts
lay out Output/, so that two clients at once never overwrite each other's files. With accounts
(a studio on a shared server) each signed-in user has their own models, results, uploads,
trainings and quota (space.Workspace), and sees and stops only their own trainings;
the models of the root are shared and read-only.
"""
import functools
import hashlib
import html
import shutil
import sys
import traceback
from pathlib import Path

import gradio as gr
import pandas as pd
import torch

from ..apps.animation import FORMATS, check_format
from ..apps.harmonize import mask_path
from ..errors import SinGANError
from ..image_io import IMAGE_SUFFIXES, read_image
from . import checks as check
from .jobs import (MAX_UPLOAD_PIXELS, METHODS, PURPOSES, ModelCache, TrainingQueue, UploadFolder,
                   animate, blank_canvas, draw_samples, find_model, find_models, find_user_models,
                   from_uint8, harmonize, mask_from_layers, paint, palette, super_resolution,
                   training_config, training_image)
from .space import Workspace

WATCH_EVERY = 1.0        # s: how often a page's progress is refreshed at the latest
TASKS = ("harmonization", "editing")
CANVAS_STARTS = ("training image", "blank")
LOSS_COLUMNS = ["iteration", "loss", "value"]


def loss_frame(rows) -> pd.DataFrame:
    """The loss plot's table (iteration, loss, value), typed: the axes are numbers."""
    return pd.DataFrame(list(rows), columns=LOSS_COLUMNS).astype(
        {"iteration": "int64", "loss": "str", "value": "float64"})


def log_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _message(err: Exception, action: str) -> gr.Error:
    if isinstance(err, gr.Error):
        return err
    if isinstance(err, SinGANError):
        text = str(err)
        log_line(f"studio: refused {action}: {text.splitlines()[0][:300]}")
        return gr.Error(text, print_exception=False)
    traceback.print_exc()
    return gr.Error(f"unexpected error ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                    "the server's terminal has the details", print_exception=False)


def user_errors(fn):
    """Run a handler; a SinGANError (or any other failure) becomes a one-line gr.Error."""
    @functools.wraps(fn)
    def handler(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            raise _message(err, fn.__name__) from None
    return handler


def user_errors_stream(fn):
    """user_errors for a generator handler."""
    @functools.wraps(fn)
    def handler(*args, **kwargs):
        try:
            yield from fn(*args, **kwargs)
        except Exception as err:
            raise _message(err, fn.__name__) from None
    return handler


def image_files(*folders) -> dict:
    """{file name: path} of the image files in `folders` (masks left out): a list the server
    makes, so that a page names a file and never gives a path."""
    files = {}
    for folder in folders:
        folder = Path(folder)
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.suffix.lower() in IMAGE_SUFFIXES and "_mask" not in path.stem:
                    files.setdefault(path.name, path)
    return files


def progress_bar(fraction: float) -> str:
    percent = max(0.0, min(1.0, fraction)) * 100
    return (f'<div class="studio-progress"><progress max="100" value="{percent:.1f}" '
            f'style="width:100%"></progress> <span id="train-percent">{percent:.0f}%</span></div>')


def level_slider(levels: range, default=None) -> gr.Slider:
    """A slider over a model's levels (a fixed one when there is one level or none)."""
    if not len(levels):
        return gr.Slider(minimum=0, maximum=1, value=0, interactive=False)
    first, last = levels[0], levels[-1]
    return gr.Slider(minimum=first, maximum=max(last, first + 1),
                     value=first if default is None else default, interactive=last > first)


def editor_value(image) -> dict:
    return {"background": image, "layers": [], "composite": None}


def editor_image(value, part: str, what: str):
    """One part ("background", "composite") of an image editor's value, checked."""
    if not isinstance(value, dict) or value.get(part) is None:
        raise SinGANError(f"{what} first")
    return from_uint8(value[part])


class StudioActions:
    """The studio's state and its actions (each one a Gradio event handler)."""

    def __init__(self, root, out_root, images_dir, app_examples, device="auto",
                 uploads=None, accounts: bool = False, quota_bytes=None, max_trainings=1):
        self.root, self.out_root, self.device = Path(root), Path(out_root), device
        self.uploads = uploads or UploadFolder()
        self.accounts = accounts
        self.space = Workspace(root, out_root, self.uploads.folder,
                               quota_bytes if accounts else None)
        self.queue = TrainingQueue(root, max_running=max_trainings)
        self.models = ModelCache()
        self.examples = image_files(images_dir)
        self.naive_examples = image_files(*app_examples)

    # -- helpers --

    def user(self, request):
        """The signed-in user of a request (None: a studio without accounts)."""
        if not self.accounts:
            return None
        user = getattr(request, "username", None)
        if not user:
            raise SinGANError("sign in first")
        return user

    def account(self, request) -> str:
        """The signed-in user, for what exists with accounts only (My space)."""
        user = self.user(request)
        if user is None:
            raise SinGANError("without accounts there is no per-user space")
        return user

    def user_models(self, user):
        return find_user_models(self.space.models_root(user), user)

    def signed_in(self, request: gr.Request = None) -> str:
        """Who is signed in, and the way out."""
        return (f'<form method="post" action="logout" style="display: inline">Signed in as '
                f'<b>{html.escape(str(self.user(request)))}</b> · <button type="submit" '
                'id="sign-out" style="text-decoration: underline">Sign out</button></form>')

    def entries(self, user):
        """The models a user may use: the root's (shared), then their own."""
        shared = find_models(self.root)
        return shared if user is None else shared + self.user_models(user)

    def open(self, name, request=None):
        entry = find_model(self.root, name, self.entries(self.user(request)))
        return entry, self.models.open(entry, self.device)

    def model_names(self, user=None):
        return [e.name for e in self.entries(user)]

    def out_for(self, request) -> Path:
        """This client's output folder: <out>/studio/[<user>/]<a digest of its session>/."""
        session = getattr(request, "session_hash", None) or "local"
        return self.space.results(self.user(request)) / hashlib.sha256(
            str(session).encode()).hexdigest()[:16]

    def writing(self, request, make):
        """make(folder) writes a result into this client's output folder, within the user's
        quota (space.Workspace.staged)."""
        return self.space.staged(self.user(request), self.out_for(request), make)

    def scratch(self, request) -> UploadFolder:
        """The upload folder of the request's user."""
        return self.uploads.of(self.user(request))

    def keep_upload(self, upload, what: str, request) -> Path:
        """An uploaded file kept in the user's upload folder, within their quota."""
        user = self.user(request)
        return self.scratch(request).keep_image(
            upload, what, room=lambda size: self.space.refuse_if_full(user, size, "this upload"))

    def train_image(self, example, upload, request=None) -> Path:
        if upload:
            return self.keep_upload(upload, "the training image", request)
        if not isinstance(example, str) or example not in self.examples:
            raise SinGANError("choose an example image or upload a photo")
        return self.examples[example]

    # -- Train --

    def job_outputs(self, job):
        if job is None:
            return ("No training yet: choose an image and press Start.", progress_bar(0), [],
                    None, None)
        text = job.describe(self.queue.ahead(job))
        fraction = 1.0 if job.state == "finished" else (job.event.fraction if job.event else 0.0)
        gallery = []
        for stage, fake, rec in list(job.stages):
            gallery += [(fake, f"{stage + 1}: sample"), (rec, f"{stage + 1}: reconstruction")]
        # No plot until there are losses: a plot that starts empty never draws the lines added
        # to it later (Gradio 6).
        losses = loss_frame(job.losses) if job.losses else None
        return text, progress_bar(fraction), gallery, losses, job.id

    def follow(self, job):
        version = -1
        while True:
            seen = self.queue.wait(job, version, WATCH_EVERY)
            done = job.done          # read first: the outputs then show at least this state
            if seen != version or done:
                version = seen
                yield self.job_outputs(job)
            if done:
                break
        if job.state == "failed":
            raise SinGANError(job.message)

    @user_errors_stream
    def train(self, example, upload, method, purpose, max_size, min_size, niter, scale_factor,
              stages, seed, train_device, request: gr.Request = None):
        """Start (or resume) a training and follow it until it ends; a second one waits in
        the queue."""
        method = check.one_of(method, "the method", METHODS)
        purpose = check.one_of(purpose, "the purpose", PURPOSES)
        max_size = check.whole(max_size, "max size", check.MAX_SIZE)
        min_size = check.optional_whole(min_size, "min size", check.MIN_SIZE)
        if min_size is not None and min_size > max_size:
            raise SinGANError(f"min size ({min_size}) must not exceed max size ({max_size})")
        cfg = training_config(method, purpose, max_size,
                              check.whole(niter, "iterations", check.NITER),
                              check.real(scale_factor, "the scale factor", check.SCALE_FACTOR),
                              check.whole(stages, "stages", check.STAGES), min_size)
        device = check.one_of(train_device, "the device", self.devices())
        seed = check.whole(seed, "the seed", check.SEED)
        user = self.user(request)
        self.space.refuse_if_full(user, 0, "a new training")
        job = self.queue.submit(self.train_image(example, upload, request), cfg, device, seed,
                                method, user, self.space.models_root(user))
        yield from self.follow(job)

    def devices(self):
        return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    @user_errors_stream
    def watch(self, job_id=None, request: gr.Request = None):
        """Show the running training, or the last one (a reopened page): the user's own."""
        job = self.queue.get(job_id if isinstance(job_id, int) else None, self.user(request))
        if job is None or job.done:
            yield self.job_outputs(job)
            return
        yield from self.follow(job)

    @user_errors
    def stop(self, job_id=None, request: gr.Request = None):
        """Stop the training (it keeps its finished stages; Start again resumes it); only the
        user who started it can."""
        job = self.queue.stop(job_id if isinstance(job_id, int) else None, self.user(request))
        if job is None:
            return "No training to stop."
        return f"Stop asked for {job.name}: it stops before its next iteration."

    @user_errors
    def show_training_image(self, example, upload, request: gr.Request = None):
        return str(self.train_image(example, upload, request))

    # -- My space (with accounts) --

    @user_errors
    def my_space(self, request: gr.Request = None):
        """The user's space, and their own trainings to choose from."""
        user = self.account(request)
        mine = [e.name for e in self.user_models(user)]
        return self.space.report(user), gr.Dropdown(choices=mine, value=mine[-1] if mine
                                                    else None)

    @user_errors
    def delete_results(self, request: gr.Request = None):
        """Remove all of the user's results (samples, harmonizations, ...)."""
        user = self.account(request)
        self.space.clear_results(user)
        return f"your results are removed; {self.space.report(user)}"

    @user_errors
    def delete_training(self, name, request: gr.Request = None):
        """Remove one of the user's own trained models (not one in training)."""
        user = self.account(request)
        entry = find_model(self.root, name, self.user_models(user))
        if self.queue.busy(entry.folder):
            raise SinGANError(f"{entry.name} is training; Stop it first")
        shutil.rmtree(entry.folder, ignore_errors=True)
        shutil.rmtree(entry.folder.with_name(entry.folder.name + "_paint"), ignore_errors=True)
        return f"{entry.name} is removed; {self.space.report(user)}"

    # -- the model and the tabs that use it --

    @user_errors
    def describe_model(self, name, request: gr.Request = None):
        """What the chosen model is, and every tab's scale choices for it."""
        if not name:
            none = level_slider(range(0))
            return ("No model chosen: train one on the Train tab.", none, none, none, none,
                    gr.ImageEditor())
        entry, model = self.open(name, request)
        inj = model.injection_scales
        injection = level_slider(inj, inj[len(inj) // 2] if len(inj) else None)
        canvas = gr.ImageEditor(value=editor_value(training_image(model)),
                                brush=gr.Brush(colors=palette(model), color_mode="fixed"))
        return (f"**{entry.name}** — {model.describe()}", level_slider(model.sample_start_scales),
                injection, injection, level_slider(range(model.num_scales)), canvas)

    def refresh(self, current, request: gr.Request = None):
        names = self.model_names(self.user(request))
        value = current if current in names else (names[-1] if names else None)
        return gr.Dropdown(choices=names, value=value)

    @user_errors
    def samples(self, name, num_samples, gen_start_scale, scale_v, scale_h, seed, sifid,
                request: gr.Request = None):
        """Random samples of a model: the gallery, the diversity (and SIFID), a zip of them."""
        num_samples = check.whole(num_samples, "the number of samples", check.NUM_SAMPLES)
        scale_v = check.real(scale_v, "the vertical scale", check.RETARGET)
        scale_h = check.real(scale_h, "the horizontal scale", check.RETARGET)
        seed, sifid = check.whole(seed, "the seed", check.SEED), check.flag(sifid, "SIFID")
        entry, model = self.open(name, request)
        start = check.level(gen_start_scale, "the start scale", model.sample_start_scales)

        def make(out):
            paths, zip_path, figures = draw_samples(model, entry, out, num_samples, start,
                                                    scale_v, scale_h, seed, sifid)
            return [str(p) for p in paths], figures, str(zip_path)
        return self.writing(request, make)

    @user_errors
    def start_from_training_image(self, name, request: gr.Request = None):
        _, model = self.open(name, request)
        return editor_value(training_image(model))

    @user_errors
    def load_naive_example(self, example):
        if not isinstance(example, str) or example not in self.naive_examples:
            raise SinGANError("choose one of the example images")
        path = self.naive_examples[example]
        mask = mask_path(path)
        return editor_value(str(path)), str(mask) if mask.is_file() else None

    @user_errors
    def harmonize(self, name, task, edited, mask_file, start_scale, seed,
                  request: gr.Request = None):
        """Harmonization / editing: the result, the naive image and the overview grid, and
        the files to download."""
        task = check.one_of(task, "the task", TASKS)
        seed = check.whole(seed, "the seed", check.SEED)
        entry, model = self.open(name, request)
        start_scale = check.level(start_scale, "the injection scale", model.injection_scales)
        naive = editor_image(edited, "background", "upload, paste or load the naive image")
        layers = edited.get("layers") or []
        layers = [x for x in layers if x is not None] if isinstance(layers, list) else []
        painted = any(x.ndim == 3 and x.shape[2] == 4 and (x[:, :, 3] > 0).any() for x in layers)
        if painted or not mask_file:
            mask = mask_from_layers(layers)
        else:
            mask = read_image(self.keep_upload(mask_file, "the mask", request),
                              max_pixels=MAX_UPLOAD_PIXELS)
        scratch = self.scratch(request).new_folder()

        def make(out):
            made = harmonize(model, entry, out, scratch, task, naive, mask, start_scale, seed)
            return (str(made["result"]), str(made["naive"]), str(made["grid"]),
                    [str(p) for p in made["files"]])
        return self.writing(request, make)

    @user_errors
    def new_canvas(self, name, start, request: gr.Request = None):
        start = check.one_of(start, "the canvas start", CANVAS_STARTS)
        _, model = self.open(name, request)
        image = training_image(model) if start == "training image" else blank_canvas(model)
        return gr.ImageEditor(value=editor_value(image),
                              brush=gr.Brush(colors=palette(model), color_mode="fixed"))

    @user_errors
    def paint(self, name, painting, start_scale, quantize, seed, request: gr.Request = None):
        """Paint to image: the painting injected at a scale (optionally colour-quantised)."""
        quantize = check.flag(quantize, "quantize")
        seed = check.whole(seed, "the seed", check.SEED)
        entry, model = self.open(name, request)
        start_scale = check.level(start_scale, "the injection scale", model.injection_scales)
        part = "composite" if isinstance(painting, dict) and painting.get("composite") is not None \
            else "background"      # a canvas not painted on yet is its background
        image = editor_image(painting, part, "paint on the canvas (start it from the training "
                                             "image)")
        path = self.scratch(request).save("painting.png", image)
        user = self.user(request)
        if quantize:
            self.space.refuse_if_full(user, 0, "a quantised model")

        def make(out):
            result = paint(model, entry, out, path, start_scale, quantize, seed,
                           self.own_folder(entry, user))
            return str(result), str(result)
        return self.writing(request, make)

    def own_folder(self, entry, user) -> Path:
        """Where what a model makes beside itself (paint's quantised model) goes for a user:
        beside the model when it is theirs (or there are no accounts), else at the same place
        in their own models folder (the root's models are read-only)."""
        mine = self.space.models_root(user)
        if user is None or entry.folder.is_relative_to(mine):
            return entry.folder
        return mine / entry.image / entry.folder.name

    @user_errors
    def sr(self, name, factor, seed, request: gr.Request = None):
        """Super-resolution: bicubic | SinGAN."""
        factor = check.real(factor, "the factor", check.SR_FACTOR)
        seed = check.whole(seed, "the seed", check.SEED)
        entry, model = self.open(name, request)

        def make(out):
            bicubic, hr = super_resolution(model, entry, out, factor, seed)
            return str(bicubic), str(hr), [str(bicubic), str(hr)]
        return self.writing(request, make)

    @user_errors
    def animation(self, name, start_scale, alpha, beta, num_frames, fps, seed, format="gif",
                  request: gr.Request = None):
        """Animation: a GIF or an MP4 (H.264) of a random walk around the reconstruction,
        shown in the picture or the video player; (GIF or None, MP4 or None, the file)."""
        format = check.one_of(format, "the format", FORMATS)
        check_format(format)            # MP4 without PyAV: one line, before any drawing
        alpha, beta = (check.real(value, what, check.WALK)
                       for value, what in ((alpha, "alpha"), (beta, "beta")))
        num_frames = check.whole(num_frames, "the number of frames", check.NUM_FRAMES)
        fps = check.real(fps, "frames per second", check.FPS)
        seed = check.whole(seed, "the seed", check.SEED)
        entry, model = self.open(name, request)
        model.require("animation")
        start_scale = check.level(start_scale, "the start scale", range(model.num_scales))

        def make(out):
            made = str(animate(model, entry, out, start_scale, alpha, beta, num_frames, fps,
                               seed, format))
            return (made if format == "gif" else None), (made if format == "mp4" else None), made
        return self.writing(request, make)

    @staticmethod
    def show_format(format):
        """The Animation tab shows a GIF as a picture and an MP4 in the video player."""
        return gr.Image(visible=format != "mp4"), gr.Video(visible=format == "mp4")
