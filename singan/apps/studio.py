"""The local web studio (studio.py): a Gradio page over the library, one tab per application.

An adapter only: every button is one call of singan.train_model (through the training queue of
studio_jobs) or of an application's function, and every result is a picture, a gallery or a
line of text. Each action is also a named endpoint of Gradio's client API (train, stop,
samples, harmonize, paint, sr, animation). A SinGANError becomes the page's one-line message;
the page never reads or writes a path that a client sends: models are chosen by name from the
server's list, uploads are copied into a temporary folder, results go under the output folder.
"""
import functools
import os
import traceback
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr   # noqa: E402  (after the analytics switch)
import torch          # noqa: E402

from ..errors import SinGANError                     # noqa: E402
from ..image_io import read_image                    # noqa: E402
from .harmonize import mask_path                     # noqa: E402
from .studio_jobs import (IMAGE_SUFFIXES, MAX_UPLOAD_BYTES, PURPOSES, ModelCache,  # noqa: E402
                          TrainingQueue, UploadFolder, animate, blank_canvas, draw_samples,
                          find_model, find_models, from_uint8, harmonize, mask_from_layers,
                          paint, palette, super_resolution, training_config, training_image)

WATCH_EVERY = 1.0        # s: how often a page's progress is refreshed at the latest
MASK_BRUSH = ("#ff0000", 0.6)
MAX_SCALE = 30           # the sliders' range for a client that chose no model in the page


# ---- turning library errors into the page's message -------------------------------------------

def _message(err: Exception) -> gr.Error:
    if isinstance(err, gr.Error):
        return err
    if isinstance(err, SinGANError):
        return gr.Error(str(err))
    traceback.print_exc()
    return gr.Error(f"unexpected error ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                    "the server's terminal has the details")


def user_errors(fn):
    """Run a handler; a SinGANError (or any other failure) becomes a one-line gr.Error."""
    @functools.wraps(fn)
    def handler(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            raise _message(err) from None
    return handler


def user_errors_stream(fn):
    """user_errors for a generator handler."""
    @functools.wraps(fn)
    def handler(*args, **kwargs):
        try:
            yield from fn(*args, **kwargs)
        except Exception as err:
            raise _message(err) from None
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


# ---- the page ----------------------------------------------------------------------------------

def build_studio(root="TrainedModels", out_root="Output", images_dir="Input/Images",
                 app_examples=("Input/Harmonization", "Input/Editing"), device="auto",
                 uploads=None) -> gr.Blocks:
    """The studio's page over the models in `root`, writing results under `out_root`."""
    root, out_root = Path(root), Path(out_root)
    uploads = uploads or UploadFolder()
    queue = TrainingQueue(root)
    models = ModelCache()
    examples = image_files(images_dir)
    naive_examples = image_files(*app_examples)
    devices = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    def open_entry(name):
        entry = find_model(root, name)
        return entry, models.open(entry, device)

    def model_names():
        return [e.name for e in find_models(root)]

    # -- Train --

    def train_image(example, upload):
        if upload:
            return uploads.keep_image(upload, "the training image")
        if example not in examples:
            raise SinGANError("choose an example image or upload a photo")
        return examples[example]

    def job_outputs(job):
        if job is None:
            return "No training yet: choose an image and press Start.", progress_bar(0), [], None
        text = job.describe(queue.ahead(job))
        fraction = job.event.fraction if job.event is not None else 0.0
        if job.state == "finished":
            fraction = 1.0
        gallery = []
        for stage, fake, rec in job.stages:
            gallery += [(fake, f"{stage + 1}: sample"), (rec, f"{stage + 1}: reconstruction")]
        return text, progress_bar(fraction), gallery, job.id

    def follow(job):
        version = -1
        while True:
            seen = queue.wait(job, version, WATCH_EVERY)
            done = job.done          # read first: the outputs then show at least this state
            if seen != version or done:
                version = seen
                yield job_outputs(job)
            if done:
                break
        if job.state == "failed":
            raise gr.Error(job.message)

    @user_errors_stream
    def train(example, upload, method, purpose, max_size, min_size, niter, scale_factor, stages,
              seed, train_device):
        """Start (or resume) a training and follow it until it ends; a second one waits in
        the queue."""
        image = train_image(example, upload)
        cfg = training_config(method, purpose, max_size, niter, scale_factor, stages,
                              min_size)
        job = queue.submit(image, cfg, train_device, int(seed))
        yield from follow(job)

    @user_errors_stream
    def watch(job_id=None):
        """Show the running training, or the last one (a reopened page)."""
        job = queue.get(job_id)
        if job is None or job.done:
            yield job_outputs(job)
            return
        yield from follow(job)

    @user_errors
    def stop(job_id=None):
        """Stop the training (it keeps its finished stages; Start again resumes it)."""
        job = queue.stop(job_id)
        if job is None:
            return "No training to stop."
        return f"Stop asked for {job.name}: it stops before its next iteration."

    @user_errors
    def show_training_image(example, upload):
        return str(train_image(example, upload))

    # -- Samples, Harmonize, Paint, SR, Animation --

    @user_errors
    def describe_model(name):
        """What the chosen model is, and every tab's scale choices for it."""
        if not name:
            none = gr.Slider(minimum=0, maximum=1, value=0)
            return ("No model chosen: train one on the Train tab.", none, none, none, none,
                    gr.ImageEditor())
        entry, model = open_entry(name)
        h, w = model.reals[-1].shape[2:]
        unit = "scales" if model.method == "singan" else "stages"
        last = model.num_scales - 1
        inj = model.injection_scales
        text = (f"{model.method}: {model.num_scales} {unit}, trained on {w} x {h} px; injection "
                + (f"scales {inj[0]}-{inj[-1]}" if len(inj) > 1 else
                   f"scale {inj[0]}" if len(inj) else "not possible (a generation model of "
                   "ConSinGAN: train it for harmonization or editing)"))
        sample_max = last if model.method == "singan" else 0
        samples_scale = gr.Slider(minimum=0, maximum=max(sample_max, 1), value=0,
                                  interactive=sample_max > 0)
        first, top = (inj[0], inj[-1]) if len(inj) else (0, 1)
        default = first + (top - first) // 2 if len(inj) else 0
        injection = gr.Slider(minimum=first, maximum=max(top, first + 1), value=default,
                              interactive=len(inj) > 1)
        anim_scale = gr.Slider(minimum=0, maximum=max(last, 1), value=0)
        canvas = gr.ImageEditor(value={"background": training_image(model), "layers": [],
                                       "composite": None},
                                brush=gr.Brush(colors=palette(model), color_mode="fixed"))
        return text, samples_scale, injection, injection, anim_scale, canvas

    def refresh(current):
        names = model_names()
        value = current if current in names else (names[-1] if names else None)
        return gr.Dropdown(choices=names, value=value)

    @user_errors
    def samples(name, num_samples, gen_start_scale, scale_v, scale_h, seed, sifid):
        """Random samples of a model: the gallery, a zip of them, diversity (and SIFID)."""
        entry, model = open_entry(name)
        paths, zip_path, figures = draw_samples(model, entry, out_root, int(num_samples),
                                                int(gen_start_scale), float(scale_v),
                                                float(scale_h), int(seed), bool(sifid))
        return [str(p) for p in paths], figures, str(zip_path)

    @user_errors
    def start_from_training_image(name):
        _, model = open_entry(name)
        return {"background": training_image(model), "layers": [], "composite": None}

    @user_errors
    def load_naive_example(example):
        if example not in naive_examples:
            raise SinGANError("choose one of the example images")
        path = naive_examples[example]
        mask = mask_path(path)
        return ({"background": str(path), "layers": [], "composite": None},
                str(mask) if mask.is_file() else None)

    @user_errors
    def harmonize_action(name, task, edited, mask_file, start_scale, seed):
        """Harmonization / editing: naive | result | blended, and the files to download."""
        entry, model = open_entry(name)
        if not edited or edited.get("background") is None:
            raise SinGANError("upload, paste or load the naive image first")
        naive = from_uint8(edited["background"])
        layers = [x for x in edited.get("layers") or [] if x is not None]
        painted = any(x.ndim == 3 and x.shape[2] == 4 and (x[:, :, 3] > 0).any() for x in layers)
        if painted or not mask_file:
            mask = mask_from_layers(layers)
        else:
            mask = read_upload(mask_file, "the mask")
        paths = harmonize(model, entry, out_root, task, naive, mask, start_scale, int(seed))
        files = [str(p) for p in paths.values()]
        return str(paths["naive"]), str(paths["result"]), str(paths["blended"]), files

    def read_upload(upload, what):
        return read_image(uploads.keep_image(upload, what))

    @user_errors
    def new_canvas(name, start):
        entry, model = open_entry(name)
        image = training_image(model) if start == "training image" else blank_canvas(model)
        return gr.ImageEditor(value={"background": image, "layers": [], "composite": None},
                              brush=gr.Brush(colors=palette(model), color_mode="fixed"))

    @user_errors
    def paint_action(name, painting, start_scale, quantize, seed):
        """Paint to image: the painting injected at a scale (optionally colour-quantised)."""
        entry, model = open_entry(name)
        if not painting or painting.get("composite") is None:
            raise SinGANError("paint on the canvas first (start it from the training image)")
        path = uploads.save("painting.png", from_uint8(painting["composite"]))
        result = paint(model, entry, out_root, path, start_scale, bool(quantize), int(seed))
        return str(result), str(result)

    @user_errors
    def sr_action(name, factor, seed):
        """Super-resolution: bicubic | SinGAN."""
        entry, model = open_entry(name)
        bicubic, hr = super_resolution(model, entry, out_root, float(factor), int(seed))
        return str(bicubic), str(hr), [str(bicubic), str(hr)]

    @user_errors
    def animation_action(name, start_scale, alpha, beta, num_frames, fps, seed):
        """Animation: a GIF of a random walk around the reconstruction."""
        entry, model = open_entry(name)
        gif = animate(model, entry, out_root, int(start_scale), float(alpha), float(beta),
                      int(num_frames), float(fps), int(seed))
        return str(gif), str(gif)

    # -- layout --

    names = model_names()
    with gr.Blocks(title="singan studio") as demo:
        gr.Markdown("# singan studio\nTrain SinGAN or ConSinGAN on one image, then draw "
                    "samples, harmonize, edit, paint, super-resolve and animate with it.")
        job_id = gr.State(None)
        with gr.Row():
            model = gr.Dropdown(names, value=names[-1] if names else None, scale=4,
                                allow_custom_value=True, elem_id="model",
                                label=f"Model (from {root}) for Samples, Harmonize / Edit, "
                                      "Paint, Super-resolution and Animation")
            refresh_button = gr.Button("Refresh the list", scale=1)
        model_info = gr.Markdown()
        with gr.Tabs():
            with gr.Tab("Train", id="train"):
                with gr.Row():
                    with gr.Column():
                        example = gr.Dropdown(list(examples), label="Example image",
                                              value=("rocket.png" if "rocket.png" in examples
                                                     else next(iter(examples), None)))
                        upload = gr.File(label=f"...or upload a photo (at most "
                                               f"{MAX_UPLOAD_BYTES // 2 ** 20} MB)",
                                         file_types=["image"], type="filepath",
                                         elem_id="train-upload")
                        preview = gr.Image(label="Training image", type="filepath",
                                           interactive=False, height=200)
                        with gr.Row():
                            method = gr.Radio(["SinGAN", "ConSinGAN"], value="SinGAN",
                                              label="Method")
                            purpose = gr.Radio(list(PURPOSES), value="generation",
                                               label="Train for (harmonization and editing: "
                                                     "ConSinGAN's modes)")
                        with gr.Row():
                            max_size = gr.Number(250, precision=0, label="Max size (px)",
                                                 elem_id="max-size")
                            min_size = gr.Number(None, precision=0, elem_id="min-size",
                                                 label="Min size (px; empty: the default)")
                            niter = gr.Number(2000, precision=0, elem_id="niter",
                                              label="Iterations per scale / stage")
                        with gr.Row():
                            scale_factor = gr.Number(0.75, label="Scale factor (SinGAN)")
                            stages = gr.Number(6, precision=0, label="Stages (ConSinGAN)")
                        with gr.Row():
                            seed = gr.Number(0, precision=0, label="Seed")
                            train_device = gr.Dropdown(devices, value="auto", label="Device")
                        with gr.Row():
                            start_button = gr.Button("Start", variant="primary",
                                                     elem_id="train-start")
                            stop_button = gr.Button("Stop", variant="stop", elem_id="train-stop")
                    with gr.Column():
                        bar = gr.HTML(progress_bar(0), elem_id="train-progress")
                        status = gr.Textbox(label="Progress", lines=7, interactive=False,
                                            elem_id="train-status")
                        stop_note = gr.Markdown()
                        stage_gallery = gr.Gallery(label="Each finished scale: sample and "
                                                         "reconstruction", columns=4,
                                                   format="png", height=320)

            with gr.Tab("Samples", id="samples") as samples_tab:
                with gr.Row():
                    with gr.Column(scale=1):
                        num_samples = gr.Slider(1, 64, value=16, step=1, label="Samples")
                        sample_scale = gr.Slider(0, MAX_SCALE, value=0, step=1, label="Start scale")
                        with gr.Row():
                            scale_v = gr.Number(1.0, label="Vertical scale")
                            scale_h = gr.Number(1.0, label="Horizontal scale")
                        sample_seed = gr.Number(0, precision=0, label="Seed")
                        sifid = gr.Checkbox(False, label="Also SIFID (needs the Inception "
                                                         "weights; slower)")
                        sample_button = gr.Button("Draw samples", variant="primary",
                                                  elem_id="samples-run")
                        figures = gr.Textbox(label="Diversity and SIFID", lines=2,
                                             interactive=False)
                        sample_zip = gr.File(label="All samples (zip)")
                    with gr.Column(scale=2):
                        gallery = gr.Gallery(label="Samples", columns=4, format="png",
                                             elem_id="samples-gallery", height=480)

            with gr.Tab("Harmonize / Edit", id="harmonize") as harmonize_tab:
                with gr.Row():
                    with gr.Column():
                        task = gr.Radio(["harmonization", "editing"], value="harmonization",
                                        label="Task")
                        with gr.Row():
                            naive_example = gr.Dropdown(list(naive_examples),
                                                        label="Example naive image",
                                                        value=next(iter(naive_examples), None))
                            load_example = gr.Button("Load example")
                            from_training = gr.Button("Start from the training image")
                        editor = gr.ImageEditor(
                            label="Naive image: upload or paste it, then paint the mask over "
                                  "the region to change", type="numpy", image_mode="RGBA",
                            format="png", sources=["upload", "clipboard"],
                            brush=gr.Brush(colors=[MASK_BRUSH], default_size=6,
                                           color_mode="fixed"),
                            layers=False, elem_id="harmonize-editor", height=420)
                        mask_file = gr.File(label="...or upload a mask (white: the region; "
                                                  "used when nothing is painted)",
                                            type="filepath")
                        injection_scale = gr.Slider(0, MAX_SCALE, value=1, step=1,
                                                    label="Injection scale")
                        harmonize_seed = gr.Number(0, precision=0, label="Seed")
                        harmonize_button = gr.Button("Run", variant="primary",
                                                     elem_id="harmonize-run")
                    with gr.Column():
                        with gr.Row():
                            naive_out = gr.Image(label="Naive", type="filepath",
                                                 elem_id="harmonize-naive")
                            result_out = gr.Image(label="Result", type="filepath",
                                                  elem_id="harmonize-result")
                            blended_out = gr.Image(label="Blended", type="filepath",
                                                   elem_id="harmonize-blended")
                        harmonize_files = gr.File(label="Download", file_count="multiple")

            with gr.Tab("Paint", id="paint") as paint_tab:
                with gr.Row():
                    with gr.Column():
                        with gr.Row():
                            canvas_start = gr.Radio(["training image", "blank"],
                                                    value="training image",
                                                    label="New canvas from")
                            new_canvas_button = gr.Button("New canvas")
                        canvas = gr.ImageEditor(
                            label="Painting (brush colours: the training image's k-means "
                                  "colours)", type="numpy", image_mode="RGB", format="png",
                            sources=["upload", "clipboard"], layers=False,
                            elem_id="paint-editor", height=420)
                        paint_scale = gr.Slider(0, MAX_SCALE, value=1, step=1,
                                                label="Injection scale")
                        quantize = gr.Checkbox(False, label="Quantize colours (retrains the "
                                                            "scale once: slow)")
                        paint_seed = gr.Number(0, precision=0, label="Seed")
                        paint_button = gr.Button("Run", variant="primary", elem_id="paint-run")
                    with gr.Column():
                        paint_out = gr.Image(label="Result", type="filepath")
                        paint_file = gr.File(label="Download")

            with gr.Tab("Super-resolution", id="sr") as sr_tab:
                with gr.Row():
                    factor = gr.Number(4, label="Factor (best with a model SR.py trained)")
                    sr_seed = gr.Number(0, precision=0, label="Seed")
                    sr_button = gr.Button("Run", variant="primary", elem_id="sr-run")
                with gr.Row():
                    bicubic_out = gr.Image(label="Bicubic", type="filepath")
                    hr_out = gr.Image(label="SinGAN", type="filepath")
                sr_files = gr.File(label="Download", file_count="multiple")

            with gr.Tab("Animation", id="animation") as animation_tab:
                with gr.Row():
                    with gr.Column():
                        anim_scale = gr.Slider(0, MAX_SCALE, value=0, step=1, label="Start scale")
                        alpha = gr.Slider(0, 1, value=0.1, step=0.01, label="Alpha")
                        beta = gr.Slider(0, 1, value=0.9, step=0.01, label="Beta")
                        with gr.Row():
                            num_frames = gr.Number(100, precision=0, label="Frames")
                            fps = gr.Number(10, label="Frames per second")
                        anim_seed = gr.Number(0, precision=0, label="Seed")
                        anim_button = gr.Button("Run", variant="primary",
                                                elem_id="animation-run")
                    with gr.Column():
                        gif_out = gr.Image(label="Animation (an animation model: Train for "
                                                 "animation)", type="filepath", format="gif")
                        gif_file = gr.File(label="Download")


        # -- events --
        private = {"api_visibility": "private"}
        train_inputs = [example, upload, method, purpose, max_size, min_size, niter,
                        scale_factor, stages, seed, train_device]
        train_outputs = [status, bar, stage_gallery, job_id]
        start_button.click(train, train_inputs, train_outputs, api_name="train",
                           concurrency_limit=None, show_progress="minimal").then(
            refresh, model, model, **private)
        stop_button.click(stop, job_id, stop_note, api_name="stop", concurrency_limit=None)
        demo.load(watch, job_id, train_outputs, concurrency_limit=None, show_progress="hidden",
                  **private)
        demo.load(show_training_image, [example, upload], preview, **private)
        example.change(show_training_image, [example, upload], preview, **private)
        upload.upload(show_training_image, [example, upload], preview, **private)
        upload.clear(show_training_image, [example, upload], preview, **private)

        model_outputs = [model_info, sample_scale, injection_scale, paint_scale, anim_scale,
                         canvas]
        demo.load(refresh, model, model, **private)
        refresh_button.click(refresh, model, model, **private)
        for tab in (samples_tab, harmonize_tab, paint_tab, sr_tab, animation_tab):
            tab.select(refresh, model, model, **private)
        model.change(describe_model, model, model_outputs, **private)

        sample_button.click(samples, [model, num_samples, sample_scale, scale_v, scale_h,
                                      sample_seed, sifid], [gallery, figures, sample_zip],
                            api_name="samples")
        load_example.click(load_naive_example, naive_example, [editor, mask_file], **private)
        from_training.click(start_from_training_image, model, editor, **private)
        harmonize_button.click(harmonize_action, [model, task, editor, mask_file,
                                                  injection_scale, harmonize_seed],
                               [naive_out, result_out, blended_out, harmonize_files],
                               api_name="harmonize")
        new_canvas_button.click(new_canvas, [model, canvas_start], canvas, **private)
        paint_button.click(paint_action, [model, canvas, paint_scale, quantize, paint_seed],
                           [paint_out, paint_file], api_name="paint")
        sr_button.click(sr_action, [model, factor, sr_seed], [bicubic_out, hr_out, sr_files],
                        api_name="sr")
        anim_button.click(animation_action, [model, anim_scale, alpha, beta, num_frames, fps,
                                             anim_seed], [gif_out, gif_file],
                          api_name="animation")
    demo.studio_queue = queue
    demo.studio_uploads = uploads
    return demo


def serve(host="127.0.0.1", port=7860, root="TrainedModels", out_root="Output",
          images_dir="Input/Images", device="auto"):
    """Build the page and serve it on http://host:port (never shared publicly), in the
    background; returns the Blocks (demo.block_thread() waits) and its address."""
    uploads = UploadFolder()
    demo = build_studio(root, out_root, images_dir, device=device, uploads=uploads)
    demo.queue(default_concurrency_limit=1)
    Path(out_root).mkdir(parents=True, exist_ok=True)
    _, url, _ = demo.launch(server_name=host, server_port=port, share=False, quiet=True,
                            max_file_size=MAX_UPLOAD_BYTES, prevent_thread_lock=True,
                            allowed_paths=[str(Path(out_root).resolve()),
                                           str(uploads.folder), str(Path(images_dir).resolve()),
                                           "Input"],
                            footer_links=["api"], ssr_mode=False)
    return demo, url
