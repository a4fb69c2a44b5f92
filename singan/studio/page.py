"""The local web studio (studio.py): a Gradio page over the library, one tab per application.

An adapter only: every button is one method of actions.StudioActions, which checks the
request and makes one call of singan.train_model (through the training queue) or of an
application's function; every result is a picture, a gallery, a plot or a line of text. Each
action is also a named endpoint of Gradio's client API (train, stop, samples, harmonize,
paint, sr, animation). One builder function per tab lays it out and wires its buttons; they
share the actions object and the model list.

The page never reads or writes a path that a client sends: models are chosen by name from the
server's list, uploads are copied into a temporary folder, results go under the output folder,
in a folder of each client's own.

On a shared server (accounts given), gate.SignInGate wraps the whole web app: every
request needs a signed-in session and passes only where the gate knows what Gradio will do
with it, and each user's work is their own (space.py). server.py serves it.
"""
import os
import types
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr   # noqa: E402  (after the analytics switch)

from PIL import Image                                              # noqa: E402
from starlette.middleware import Middleware                       # noqa: E402

from ..errors import SinGANError                                   # noqa: E402
from ..image_io import IMAGES_DIR, declared_size                   # noqa: E402
from . import checks as check                                      # noqa: E402
from .actions import CANVAS_STARTS, TASKS, StudioActions, log_line, progress_bar  # noqa: E402
from .gate import SignInGate, user_of                              # noqa: E402
from .jobs import (MAX_UPLOAD_BYTES, MAX_UPLOAD_PIXELS, METHODS, PURPOSES,  # noqa: E402
                   UploadFolder)
from .server import StudioServer, studio_app                       # noqa: E402
from .space import UPLOAD_WINDOW, max_trainings as trainings_at_once  # noqa: E402

MASK_BRUSH = ("#ff0000", 0.6)
MAX_SCALE = 30           # the sliders' range until the page has described the chosen model
PRIVATE = {"api_visibility": "private"}
# Results are tiny images (a 40 px model draws 40 px pictures): shown enlarged, pixels kept.
CSS = """
.studio-pixels img { image-rendering: pixelated; width: 100% !important;
                     height: 100% !important; object-fit: contain !important; }
"""


# ---- input components that refuse a bad value with one line ------------------------------------

def sent_images(component, payload):
    """What a component's value makes Gradio decode: the files it names (FileData paths) and
    the image editor's layers sent as blobs (bytes), walked in the payload."""
    if payload is None:
        return
    blob_id = getattr(payload, "id", None)
    if isinstance(blob_id, str):
        yield from sent_images(component, getattr(component, "blob_storage", {}).get(blob_id))
    if isinstance(payload, bytes):
        yield payload
    elif isinstance(getattr(payload, "path", None), str):
        yield payload.path
    elif isinstance(payload, (list, tuple)):
        for item in payload:
            yield from sent_images(component, item)
    elif hasattr(payload, "__dict__") and not isinstance(payload, type):
        for item in vars(payload).values():
            yield from sent_images(component, item)


def guarded_preprocess(self, payload):
    """A component's own preprocess (Gradio's checks of a request's value: a slider's range, a
    radio's choices, an image that must decode), refusing a bad value with a one-line gr.Error
    and one line in the server's terminal instead of a traceback there. An image component's
    files are bounded before Gradio's decoder sees them (image_io.declared_size)."""
    try:
        if isinstance(self, (gr.Image, gr.ImageEditor)):
            for image in sent_images(self, payload):
                declared_size(image, MAX_UPLOAD_PIXELS, name="the image")
        return type(self).preprocess(self, payload)
    except Exception as err:
        text = err.message if isinstance(err, gr.Error) else str(err) if isinstance(
            err, SinGANError) else f"not a valid value ({type(err).__name__})"
        name = str(self.label or type(self).__name__).split("(")[0].split(":")[0]
        text = f"{name.strip(' .')}: {text}"
        log_line(f"studio: refused a request: {text.splitlines()[0][:300]}")
        raise gr.Error(text, print_exception=False) from None


def guard(component):
    """Give one component guarded_preprocess (bound, so that Gradio's per-session copies of
    the component keep it). Not a subclass: Gradio writes a .pyi stub beside any module that
    defines a component class."""
    component.preprocess = types.MethodType(guarded_preprocess, component)
    return component


def ranged(label: str, bounds) -> str:
    return f"{label} ({bounds[0]:g}-{bounds[1]:g})"


# ---- one builder per tab -----------------------------------------------------------------------

def build_train_tab(actions: StudioActions, demo: gr.Blocks, refresh_models):
    examples = actions.examples
    job_id = gr.State(None)
    with gr.Row():
        with gr.Column():
            example = gr.Dropdown(list(examples), label="Example image",
                                  value=("rocket.png" if "rocket.png" in examples
                                         else next(iter(examples), None)))
            upload = gr.File(label=f"...or upload a photo (at most "
                                   f"{MAX_UPLOAD_BYTES // 2 ** 20} MB)",
                             file_types=["image"], type="filepath", elem_id="train-upload")
            preview = gr.Image(label="Training image", type="filepath", interactive=False,
                               height=200)
            with gr.Row():
                method = gr.Radio(list(METHODS), value="SinGAN", label="Method")
                purpose = gr.Radio(list(PURPOSES), value="generation",
                                   label="Train for (harmonization and editing: ConSinGAN's "
                                         "modes)")
            with gr.Row():
                max_size = gr.Number(250, precision=0, elem_id="max-size",
                                     label=ranged("Max size, px", check.MAX_SIZE))
                min_size = gr.Textbox("", placeholder="the default", max_lines=1,
                                      elem_id="min-size", label="Min size (px; empty: the default)")
                niter = gr.Number(2000, precision=0, elem_id="niter",
                                  label=ranged("Iterations per scale / stage", check.NITER))
            with gr.Row():
                scale_factor = gr.Number(0.75, label=ranged("Scale factor (SinGAN)",
                                                            check.SCALE_FACTOR))
                stages = gr.Number(6, precision=0, label=ranged("Stages (ConSinGAN)",
                                                                check.STAGES))
            with gr.Row():
                seed = gr.Number(0, precision=0, label="Seed")
                device = gr.Dropdown(actions.devices(), value="auto", label="Device")
            with gr.Row():
                start = gr.Button("Start", variant="primary", elem_id="train-start")
                stop = gr.Button("Stop", variant="stop", elem_id="train-stop")
        with gr.Column():
            bar = gr.HTML(progress_bar(0), elem_id="train-progress")
            status = gr.Textbox(label="Progress", lines=6, interactive=False,
                                elem_id="train-status")
            losses = gr.LinePlot(None, x="iteration", y="value",
                                 color="loss", label="Losses",
                                 elem_id="train-losses")
            stop_note = gr.Markdown()
            stages_shown = gr.Gallery(label="Each finished scale: sample and reconstruction",
                                      columns=4, format="png", height=300,
                                      elem_classes="studio-pixels")
    inputs = [example, upload, method, purpose, max_size, min_size, niter, scale_factor,
              stages, seed, device]
    outputs = [status, bar, stages_shown, losses, job_id]
    start.click(actions.train, inputs, outputs, api_name="train", concurrency_limit=None,
                show_progress="minimal").then(*refresh_models, **PRIVATE)
    stop.click(actions.stop, job_id, stop_note, api_name="stop", concurrency_limit=None)
    demo.load(actions.watch, job_id, outputs, concurrency_limit=None, show_progress="hidden",
              **PRIVATE)
    for event in (demo.load, example.change, upload.upload, upload.clear):
        event(actions.show_training_image, [example, upload], preview, **PRIVATE)


def build_space_tab(actions: StudioActions, refresh_models) -> SimpleNamespace:
    """A signed-in user's space: what it holds against the quota, and the means to free it."""
    with gr.Row():
        with gr.Column():
            usage = gr.Textbox(label="Your space on this server", interactive=False,
                               elem_id="space-usage")
            look = gr.Button("Refresh", elem_id="space-refresh")
            clear = gr.Button("Delete all my results (samples, harmonizations, ...)",
                              variant="stop", elem_id="space-clear")
        with gr.Column():
            mine = gr.Dropdown([], label="My trainings", elem_id="space-models",
                               allow_custom_value=True)
            remove = gr.Button("Delete this training", variant="stop",
                               elem_id="space-delete")
            done = gr.Markdown(elem_id="space-done")
    look.click(actions.my_space, None, [usage, mine], api_name="space")
    clear.click(actions.delete_results, None, done, api_name="delete_results").then(
        actions.my_space, None, [usage, mine], **PRIVATE)
    remove.click(actions.delete_training, mine, done, api_name="delete_training").then(
        actions.my_space, None, [usage, mine], **PRIVATE).then(*refresh_models, **PRIVATE)
    return SimpleNamespace(refresh=(actions.my_space, None, [usage, mine]))


def build_samples_tab(actions: StudioActions, model) -> SimpleNamespace:
    with gr.Row():
        with gr.Column(scale=1):
            num_samples = gr.Slider(*check.NUM_SAMPLES, value=16, step=1, label="Samples")
            start = gr.Slider(0, MAX_SCALE, value=0, step=1, label="Start scale",
                              elem_id="samples-start")
            with gr.Row():
                scale_v = gr.Number(1.0, label=ranged("Vertical scale", check.RETARGET))
                scale_h = gr.Number(1.0, label=ranged("Horizontal scale", check.RETARGET))
            seed = gr.Number(0, precision=0, label="Seed")
            sifid = gr.Checkbox(False, label="Also SIFID (needs the Inception weights; slower)")
            run = gr.Button("Draw samples", variant="primary", elem_id="samples-run")
            figures = gr.Textbox(label="Diversity and SIFID", lines=2, interactive=False)
            archive = gr.File(label="All samples (zip)")
        with gr.Column(scale=2):
            gallery = gr.Gallery(label="Samples", columns=4, format="png", height=560,
                                 elem_id="samples-gallery", elem_classes="studio-pixels")
    run.click(actions.samples, [model, num_samples, start, scale_v, scale_h, seed, sifid],
              [gallery, figures, archive], api_name="samples")
    return SimpleNamespace(start=start)


def build_harmonize_tab(actions: StudioActions, model) -> SimpleNamespace:
    naive_examples = actions.naive_examples
    with gr.Row():
        with gr.Column():
            task = gr.Radio(list(TASKS), value="harmonization", label="Task")
            with gr.Row():
                example = gr.Dropdown(list(naive_examples), label="Example naive image",
                                      value=next(iter(naive_examples), None))
                load_example = gr.Button("Load example")
                from_training = gr.Button("Start from the training image")
            editor = gr.ImageEditor(
                label="Naive image: upload or paste it, then paint the mask over the region "
                      "to change", type="numpy", image_mode="RGBA", format="png",
                sources=["upload", "clipboard"],
                brush=gr.Brush(colors=[MASK_BRUSH], default_size=6, color_mode="fixed"),
                layers=False, elem_id="harmonize-editor", height=420)
            mask_file = gr.File(label="...or upload a mask (white: the region; used when "
                                      "nothing is painted)", type="filepath")
            scale = gr.Slider(0, MAX_SCALE, value=1, step=1, label="Injection scale",
                              elem_id="harmonize-scale")
            seed = gr.Number(0, precision=0, label="Seed")
            run = gr.Button("Run", variant="primary", elem_id="harmonize-run")
        with gr.Column():
            result = gr.Image(label="Result (blended into the training image)", type="filepath",
                              height=420, elem_id="harmonize-result",
                              elem_classes="studio-pixels")
            with gr.Row():
                naive = gr.Image(label="Naive", type="filepath", height=160,
                                 elem_id="harmonize-naive", elem_classes="studio-pixels")
                grid = gr.Image(label="Training image | naive | results", type="filepath",
                                height=160, elem_classes="studio-pixels")
            files = gr.File(label="Download", file_count="multiple")
    load_example.click(actions.load_naive_example, example, [editor, mask_file], **PRIVATE)
    from_training.click(actions.start_from_training_image, model, editor, **PRIVATE)
    run.click(actions.harmonize, [model, task, editor, mask_file, scale, seed],
              [result, naive, grid, files], api_name="harmonize")
    return SimpleNamespace(scale=scale)


def build_paint_tab(actions: StudioActions, model) -> SimpleNamespace:
    with gr.Row():
        with gr.Column():
            with gr.Row():
                start = gr.Radio(list(CANVAS_STARTS), value="training image",
                                 label="New canvas from")
                new_canvas = gr.Button("New canvas")
            canvas = gr.ImageEditor(
                label="Painting (brush colours: the training image's k-means colours)",
                type="numpy", image_mode="RGB", format="png", sources=["upload", "clipboard"],
                layers=False, elem_id="paint-editor", height=420)
            scale = gr.Slider(0, MAX_SCALE, value=1, step=1, label="Injection scale")
            quantize = gr.Checkbox(False, label="Quantize colours (retrains the scale once: "
                                                "slow)")
            seed = gr.Number(0, precision=0, label="Seed")
            run = gr.Button("Run", variant="primary", elem_id="paint-run")
        with gr.Column():
            result = gr.Image(label="Result", type="filepath", height=420,
                              elem_id="paint-result", elem_classes="studio-pixels")
            download = gr.File(label="Download")
    new_canvas.click(actions.new_canvas, [model, start], canvas, **PRIVATE)
    run.click(actions.paint, [model, canvas, scale, quantize, seed], [result, download],
              api_name="paint")
    return SimpleNamespace(scale=scale, canvas=canvas)


def build_sr_tab(actions: StudioActions, model) -> None:
    with gr.Row():
        factor = gr.Number(4, label=ranged("Factor (best with a model SR.py trained)",
                                           check.SR_FACTOR))
        seed = gr.Number(0, precision=0, label="Seed")
        run = gr.Button("Run", variant="primary", elem_id="sr-run")
    with gr.Row():
        bicubic = gr.Image(label="Bicubic", type="filepath", height=420,
                           elem_classes="studio-pixels")
        hr = gr.Image(label="SinGAN", type="filepath", height=420, elem_id="sr-result",
                      elem_classes="studio-pixels")
    files = gr.File(label="Download", file_count="multiple")
    run.click(actions.sr, [model, factor, seed], [bicubic, hr, files], api_name="sr")


def build_animation_tab(actions: StudioActions, model) -> SimpleNamespace:
    with gr.Row():
        with gr.Column():
            start = gr.Slider(0, MAX_SCALE, value=0, step=1, label="Start scale",
                              elem_id="animation-start")
            alpha = gr.Slider(*check.WALK, value=0.1, step=0.01, label="Alpha")
            beta = gr.Slider(*check.WALK, value=0.9, step=0.01, label="Beta")
            with gr.Row():
                num_frames = gr.Number(100, precision=0,
                                       label=ranged("Frames", check.NUM_FRAMES))
                fps = gr.Number(10, label=ranged("Frames per second", check.FPS))
            seed = gr.Number(0, precision=0, label="Seed")
            file_format = gr.Radio([("GIF", "gif"), ("MP4 (H.264: far smaller, plays everywhere)",
                                                     "mp4")], value="gif", label="Format",
                                   elem_id="animation-format")
            run = gr.Button("Run", variant="primary", elem_id="animation-run")
        with gr.Column():
            gif = gr.Image(label="Animation (an animation model: Train for animation)",
                           type="filepath", format="gif", height=420,
                           elem_classes="studio-pixels", elem_id="animation-gif")
            video = gr.Video(label="Animation (MP4)", height=420, visible=False, loop=True,
                             autoplay=True, elem_id="animation-video")
            download = gr.File(label="Download")
    run.click(actions.animation, [model, start, alpha, beta, num_frames, fps, seed, file_format],
              [gif, video, download], api_name="animation")
    file_format.change(actions.show_format, file_format, [gif, video], **PRIVATE)
    return SimpleNamespace(start=start)


# ---- the page ----------------------------------------------------------------------------------

def build_studio(root="TrainedModels", out_root="Output", images_dir=IMAGES_DIR,
                 app_examples=("Input/Harmonization", "Input/Editing"), device="auto",
                 uploads=None, accounts: bool = False, quota_bytes=None,
                 max_trainings=None) -> gr.Blocks:
    """The studio's page over the models in `root`, writing results under `out_root`; with
    accounts, each signed-in user's own work within quota_bytes, and at most max_trainings
    trainings at once (default: one per GPU, else one)."""
    actions = StudioActions(root, out_root, images_dir, app_examples, device, uploads,
                            accounts, quota_bytes, trainings_at_once(max_trainings))
    names = actions.model_names()
    # With accounts, Gradio's own copies of uploads and results are kept an hour at most.
    cache = (600, int(UPLOAD_WINDOW)) if accounts else None
    with gr.Blocks(title="singan studio", delete_cache=cache) as demo:
        gr.Markdown("# singan studio\nTrain SinGAN or ConSinGAN on one image, then draw "
                    "samples, harmonize, edit, paint, super-resolve and animate with it.")
        signed_in = gr.HTML(elem_id="signed-in") if accounts else None
        with gr.Row():
            model = gr.Dropdown(names, value=names[-1] if names else None, scale=4,
                                allow_custom_value=True, elem_id="model",
                                label=f"Model (from {Path(root).name}/) for Samples, Harmonize "
                                      "/ Edit, Paint, Super-resolution and Animation")
            refresh_button = gr.Button("Refresh the list", scale=1)
        model_info = gr.Markdown(elem_id="model-info")
        refresh_models = (actions.refresh, model, model)
        tabs = {}
        with gr.Tabs():
            with gr.Tab("Train", id="train"):
                build_train_tab(actions, demo, refresh_models)
            for key, title, builder in (("samples", "Samples", build_samples_tab),
                                        ("harmonize", "Harmonize / Edit", build_harmonize_tab),
                                        ("paint", "Paint", build_paint_tab),
                                        ("sr", "Super-resolution", build_sr_tab),
                                        ("animation", "Animation", build_animation_tab)):
                with gr.Tab(title, id=key) as tab:
                    tabs[key] = (tab, builder(actions, model))
            if accounts:
                with gr.Tab("My space", id="space") as space_tab:
                    space = build_space_tab(actions, refresh_models)
                space_tab.select(*space.refresh, **PRIVATE)
        parts = {key: built for key, (_, built) in tabs.items()}
        described = [model_info, parts["samples"].start, parts["harmonize"].scale,
                     parts["paint"].scale, parts["animation"].start, parts["paint"].canvas]
        describe = (actions.describe_model, model, described)
        demo.load(*refresh_models, **PRIVATE).then(*describe, **PRIVATE)
        if signed_in is not None:
            demo.load(actions.signed_in, None, signed_in, **PRIVATE)
        refresh_button.click(*refresh_models, **PRIVATE)
        for tab, _ in tabs.values():
            tab.select(*refresh_models, **PRIVATE)
        model.change(*describe, **PRIVATE)
    for block in demo.blocks.values():
        if isinstance(block, gr.components.Component):
            guard(block)
    demo.studio_actions = actions
    demo.studio_queue = actions.queue
    demo.studio_uploads = actions.uploads
    return demo


def serve(host="127.0.0.1", port=7860, root="TrainedModels", out_root="Output",
          images_dir=IMAGES_DIR, device="auto", accounts=None, quota_bytes=2 * 10 ** 9,
          max_trainings=None, ssl_certfile=None, ssl_keyfile=None, trusted_proxies=(),
          behind_tls_proxy=False):
    """Build the page and serve it on http(s)://host:port (port 0: any free port), in the
    background (server.py); returns the Blocks (demo.block_thread() waits, demo.close()
    stops it) and its address.

    accounts: {user: hash} (accounts.read_accounts): every request then passes the
    sign-in gate (gate.py), and each user has their own work and quota_bytes of space.
    trusted_proxies: the addresses whose X-Forwarded-For / -Proto uvicorn believes (none by
    default); behind_tls_proxy: browsers reach the studio by HTTPS through such a proxy.
    Whether a host may be served so is the caller's check (accounts.check_host)."""
    uploads = UploadFolder()
    demo = build_studio(root, out_root, images_dir, device=device, uploads=uploads,
                        accounts=bool(accounts), quota_bytes=quota_bytes,
                        max_trainings=max_trainings)
    demo.queue(default_concurrency_limit=1)
    Path(out_root).mkdir(parents=True, exist_ok=True)
    # Gradio's image components decode with Pillow: its own bound, never above the studio's
    Image.MAX_IMAGE_PIXELS = min(Image.MAX_IMAGE_PIXELS or MAX_UPLOAD_PIXELS, MAX_UPLOAD_PIXELS)
    gate = None
    if accounts:
        space = demo.studio_actions.space
        gate = Middleware(SignInGate, accounts=accounts, foreign=space.foreign,
                          upload_refusal=space.upload_refusal, secure=bool(ssl_certfile),
                          behind_tls_proxy=behind_tls_proxy)
    app = studio_app(demo, gate, auth_dependency=user_of if accounts else None,
                     max_file_size=MAX_UPLOAD_BYTES, footer_links=["api"], ssr_mode=False,
                     run_history=False, css=CSS,
                     allowed_paths=[str(Path(out_root).resolve()), str(uploads.folder),
                                    str(Path(images_dir).resolve()), str(Path("Input").resolve())])
    server = StudioServer(app, host, port, ssl_certfile, ssl_keyfile, trusted_proxies)
    server.start()
    demo.server, demo.server_port, demo.local_url = server, server.port, server.url
    return demo, server.url
