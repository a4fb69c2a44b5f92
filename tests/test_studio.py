"""The web studio (studio.py) through Gradio's own client: every endpoint on tiny models, bad
and hostile input answered with the one-line message (and the server still serving), two
clients at once kept apart, and the training queue on its own."""
import hashlib
import math
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, optional, reserved_port

optional("gradio")
gradio_client = optional("gradio_client")
import imageio.v3 as iio  # noqa: E402
import torch  # noqa: E402

from singan import SinGANConfig, SinGANError, load_model, train_model  # noqa: E402
from singan.studio import checks as studio_checks, jobs as studio_jobs  # noqa: E402
from singan.studio.jobs import TrainingQueue, find_models, training_config  # noqa: E402
from singan.catalog import find_model_folders  # noqa: E402
from singan.image_io import save_image  # noqa: E402

ROCKET = ROOT / "Input" / "Images" / "rocket.png"
MODEL = "rocket/scale_factor=0.750000,alpha=10"
ANIMATION_MODEL = "rocket/scale_factor=0.750000_noise_padding"


# ---- a studio server on tiny models --------------------------------------------------------

def train_tiny_models(root: Path) -> None:
    """A 40 px SinGAN model of 4 scales and a 32 px animation model, 3 iterations a scale."""
    quiet = {"show_progress": False, "log": lambda line: None, "root": root, "device": "cpu",
             "seed": 0}
    train_model(ROCKET, SinGANConfig(max_size=40, min_size=15, niter=3), **quiet)
    train_model(ROCKET, training_config("SinGAN", "animation", max_size=32, niter=3), **quiet)


class ServerLog:
    """What a server process prints, line by line, read by a thread of its own (so that the
    server never blocks on a full pipe). A test reads the lines printed since it began
    (`since(cursor)`, cursor = `mark()` at its start), so that what an earlier test's requests
    made the server print is never held against a later one; `wait_for` waits, on an event
    rather than a sleep, until the reader has seen what the server has printed."""

    def __init__(self, stream):
        self.lines = []
        self.changed = threading.Condition()
        self.ended = False
        self.stream = stream

    def read_until(self, found, timeout: float) -> bool:
        """Read lines here (before the reader thread starts) until found(line) is true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.stream.readline()
            if not line:
                return False
            self.lines.append(line)
            if found(line):
                return True
        return False

    def follow(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.stream:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.ended = True
            self.changed.notify_all()

    def mark(self) -> int:
        with self.changed:
            return len(self.lines)

    def since(self, cursor: int) -> str:
        with self.changed:
            return "".join(self.lines[cursor:])

    def wait_for(self, ready, cursor: int = 0, timeout: float = 60) -> str:
        """The text since `cursor` once ready(text) is true (or the time is up, or the server
        has ended): the caller asserts on it."""
        with self.changed:
            self.changed.wait_for(lambda: self.ended or ready("".join(self.lines[cursor:])),
                                  timeout)
            return "".join(self.lines[cursor:])


class Studio:
    """python studio.py on a port reserved for it, as a user starts it; .url, .client, .root,
    .out, .log (a ServerLog)."""

    def __init__(self, folder: Path):
        self.root, self.out = folder / "TrainedModels", folder / "Output"
        self._port = reserved_port()
        port = self._port.__enter__()
        env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="1",
                   PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "studio.py"), "--port", str(port), "--root",
             str(self.root), "--out", str(self.out), "--device", "cpu"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.log = ServerLog(self.process.stdout)
        started = self.log.read_until(lambda line: line.startswith("singan studio: "), 90)
        assert started, "the studio did not start:\n" + self.log.since(0)
        self.url = self.log.lines[-1].split()[2]
        assert self.url.endswith(f":{port}/"), self.url
        self.log.follow()
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = gradio_client.Client(self.url, verbose=False)
        return self._client

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._port.__exit__(None, None, None)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """The studio serving two tiny models it trained first (the tests that use it are
    marked slow: -m "not slow" trains nothing)."""
    folder = tmp_path_factory.mktemp("studio")
    train_tiny_models(folder / "TrainedModels")
    server = Studio(folder)
    yield server
    server.stop()


def call(studio, api_name, *args):
    return studio.client.predict(*args, api_name=api_name)


def client_folder(studio, client) -> Path:
    """Where the studio writes one client's results: <out>/studio/<digest of its session>/."""
    return studio.out / "studio" / hashlib.sha256(client.session_hash.encode()).hexdigest()[:16]


def app_error(studio, api_name, *args) -> str:
    """The one-line message of a call that must fail."""
    with pytest.raises(gradio_client.exceptions.AppError) as caught:
        call(studio, api_name, *args)
    message = str(caught.value)
    assert "Traceback" not in message
    return message


def read(path) -> np.ndarray:
    return iio.imread(path)[:, :, :3].astype(int)


def loss_names(plot) -> set:
    """The loss names in a LinePlot's value as the client returns it."""
    rows = plot["value"]["data"] if isinstance(plot.get("value"), dict) else plot["data"]
    return {row[1] for row in rows}


def editor_value(background, layers=(), composite=None):
    handle = gradio_client.handle_file
    return {"background": handle(str(background)), "layers": [handle(str(p)) for p in layers],
            "composite": handle(str(composite)) if composite else None}


# ---- the endpoints -----------------------------------------------------------------------------

@pytest.mark.slow
def test_every_action_is_a_named_endpoint(studio):
    names = studio.client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(names) == {"/train", "/stop", "/samples", "/harmonize", "/paint", "/sr",
                          "/animation"}


@pytest.mark.slow
def test_samples_gallery_zip_and_diversity(studio):
    gallery, figures, zip_path = call(studio, "/samples", MODEL, 16, 0, 1.0, 1.0, 0, False)
    assert len(gallery) == 16
    assert read(gallery[0]["image"]).shape == (27, 40, 3)
    assert "diversity" in figures
    with zipfile.ZipFile(zip_path) as archive:
        assert sorted(archive.namelist()) == sorted(f"{i}.png" for i in range(16))
    written = client_folder(studio, studio.client) / "RandomSamples" / "rocket"
    assert len(list((written / "gen_start_scale=0").glob("*.png"))) == 16
    assert np.array_equal(read(gallery[3]["image"]), read(written / "gen_start_scale=0" / "3.png"))
    wide, _, _ = call(studio, "/samples", MODEL, 2, 0, 1.0, 1.5, 0, False)
    assert read(wide[0]["image"]).shape[1] > 40


@pytest.mark.slow
def test_harmonize_changes_the_painted_region_only(studio, tmp_path):
    real = load_model(studio.root / MODEL).reals[-1]
    save_image(tmp_path / "real.png", real)
    naive = real.clone()
    naive[:, :, 2:8, 2:8] = torch.tensor([1.0, -1.0, 1.0])[:, None, None]   # a magenta patch
    save_image(tmp_path / "naive.png", naive)
    stroke = np.zeros((27, 40, 4), np.uint8)
    stroke[2:8, 2:8] = (255, 0, 0, 150)                                      # the brush layer
    iio.imwrite(tmp_path / "stroke.png", stroke)
    result, shown, grid, files = call(
        studio, "/harmonize", MODEL, "harmonization",
        editor_value(tmp_path / "naive.png", [tmp_path / "stroke.png"]), None, 2, 0)
    before, after = read(tmp_path / "real.png"), read(result)
    assert after.shape == before.shape == read(shown).shape
    assert np.abs(after[2:8, 2:8] - before[2:8, 2:8]).max() > 20             # inside: changed
    assert np.abs(after[20:, 32:] - before[20:, 32:]).max() <= 1             # far outside: kept
    assert read(grid).shape[1] > 3 * 40                  # training image | naive | result
    folder = client_folder(studio, studio.client) / "Harmonization" / "rocket" / "studio_out"
    assert sorted(Path(f).name for f in files) == sorted(p.name for p in folder.iterdir())
    assert {"start_scale=2.png", "studio_mask_dilated.png", "start_scale=2_grid.png"} == {
        Path(f).name for f in files}


@pytest.mark.slow
def test_harmonize_bad_masks_get_one_line(studio, tmp_path):
    save_image(tmp_path / "real.png", load_model(studio.root / MODEL).reals[-1])
    editor = editor_value(tmp_path / "real.png")
    assert "mask is empty" in app_error(studio, "/harmonize", MODEL, "editing", editor, None, 2, 0)
    iio.imwrite(tmp_path / "square_mask.png", np.full((30, 30, 3), 255, np.uint8))
    message = app_error(studio, "/harmonize", MODEL, "editing", editor,
                        gradio_client.handle_file(str(tmp_path / "square_mask.png")), 2, 0)
    assert "aspect ratio" in message
    iio.imwrite(tmp_path / "mask.png", np.full((27, 40, 3), 255, np.uint8))
    assert "injection scale must be between 1 and 3" in app_error(studio, "/harmonize", MODEL, "editing", editor,
                                          gradio_client.handle_file(str(tmp_path / "mask.png")),
                                          5, 0)


@pytest.mark.slow
def test_paint_sr_and_animation(studio, tmp_path):
    save_image(tmp_path / "real.png", load_model(studio.root / MODEL).reals[-1])
    result, _ = call(studio, "/paint", MODEL,
                     editor_value(tmp_path / "real.png", composite=tmp_path / "real.png"), 2,
                     False, 0)
    assert read(result).shape == (27, 40, 3)
    bicubic, hr, files = call(studio, "/sr", MODEL, 2, 0)
    assert read(bicubic).shape == read(hr).shape == (54, 80, 3)
    gif, video, _ = call(studio, "/animation", ANIMATION_MODEL, 1, 0.1, 0.9, 5, 10, 0)
    assert iio.imread(gif, index=None).shape[0] == 5 and video is None
    av = pytest.importorskip("av")
    gif, video, download = call(studio, "/animation", ANIMATION_MODEL, 1, 0.1, 0.9, 6, 12, 0,
                                "mp4")
    assert gif is None and Path(download).suffix == ".mp4"
    with av.open(video["video"] if isinstance(video, dict) else video) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.average_rate == 12
        assert sum(1 for _ in container.decode(stream)) == 6
    refused = app_error(studio, "/animation", ANIMATION_MODEL, 1, 0.1, 0.9, 5, 10, 0, "avi")
    assert refused.startswith("Format:") and "'avi'" in refused and "mp4" in refused
    assert "animation needs a model trained for it" in app_error(
        studio, "/animation", MODEL, 0, 0.1, 0.9, 5, 10, 0)


@pytest.mark.slow
def test_bad_uploads_and_names_get_one_line_and_the_server_keeps_serving(studio, tmp_path):
    text = tmp_path / "photo.png"
    text.write_text("this is not an image")
    args = (None, "SinGAN", "generation", 32, "", 3, 0.75, 3, 0, "cpu")
    message = app_error(studio, "/train", "rocket.png", gradio_client.handle_file(str(text)),
                        *args[1:])
    assert "cannot read photo.png as an image" in message
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (26 * 2 ** 20))
    with pytest.raises(Exception) as caught:
        call(studio, "/train", "rocket.png", gradio_client.handle_file(str(big)), *args[1:])
    assert "size" in str(caught.value).lower() or "large" in str(caught.value).lower()
    gone = studio.root / "rocket" / "copy"
    shutil.copytree(studio.root / MODEL, gone)
    assert "rocket/copy" in [e.name for e in find_models(studio.root)]
    shutil.rmtree(gone)
    assert "moved or deleted" in app_error(studio, "/samples", "rocket/copy", 2, 0, 1.0, 1.0, 0,
                                           False)
    assert len(call(studio, "/samples", MODEL, 2, 0, 1.0, 1.0, 0, False)[0]) == 2   # still serving
    assert "No training to stop" in call(studio, "/stop")


@pytest.mark.slow
def test_train_queue_stop_and_resume(studio):
    """A training streams its progress; a second Start of it is refused, another training
    waits in the queue and says so; Stop keeps the finished scales and Start resumes."""
    client = studio.client
    settings = ("SinGAN", "generation", 40, "", 40, 0.75, 3, 1, "cpu")
    first = client.submit("astronaut.png", None, *settings, api_name="/train")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any("iteration" in o[0] for o in first.outputs()):
        time.sleep(0.2)
    assert "already running" in app_error(studio, "/train", "astronaut.png", None, *settings)
    second = client.submit("chelsea.png", None, "SinGAN", "generation", 40, "", 3, 0.75, 3, 0,
                           "cpu", api_name="/train")
    while time.monotonic() < deadline and not second.outputs():
        time.sleep(0.2)
    assert "waiting in the queue (1 training ahead" in second.outputs()[0][0]
    while time.monotonic() < deadline and not first.outputs()[-1][2]:    # a finished scale
        time.sleep(0.2)
    assert "Stop asked" in call(studio, "/stop")
    status, _, stopped_gallery, losses = first.result()
    assert loss_names(losses) == {"errD", "errG", "rec", "D_real", "D_fake"}
    assert "stopped" in status and "saved" in status and len(stopped_gallery) >= 2
    done = second.result()[0]
    assert "finished: all 2 scales trained" in done and "\nscale 2 of 2, iteration 3 of 3" in done
    status, bar, gallery, _ = call(studio, "/train", "astronaut.png", None, *settings)
    assert "finished" in status and "100%" in bar
    model = load_model(studio.root / "astronaut" / "scale_factor=0.750000,alpha=10")
    assert model.complete
    assert len(gallery) + len(stopped_gallery) == 2 * model.num_scales   # resumed, not redone


# ---- hostile clients: every argument checked on the server -------------------------------------

def hostile_requests(tmp_path):
    """(what, endpoint, arguments, words of the one-line message) for requests no page sends."""
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    handle = gradio_client.handle_file
    train = ("SinGAN", "generation", 32, "", 3, 0.75, 3, 0, "cpu")
    ok = dict(num=2, start=0, v=1.0, h=1.0, seed=0)

    def samples(**changes):
        a = dict(ok, **changes)
        return (MODEL, a["num"], a["start"], a["v"], a["h"], a["seed"], False)
    return [
        ("huge horizontal scale", "/samples", samples(h=1000.0),
         ["horizontal scale", "between 0.25 and 4", "1000"]),
        ("a hundred million samples", "/samples", samples(num=100_000_000),
         ["Samples", "greater than maximum value 64"]),
        ("negative vertical scale", "/samples", samples(v=-1.0), ["vertical scale", "-1"]),
        ("negative seed", "/samples", samples(seed=-5), ["seed", "between 0 and"]),
        ("a start scale the model lacks", "/samples", samples(start=9),
         ["start scale", "between 0 and 3", "9"]),
        ("a fractional number of samples", "/samples", samples(num=2.5), ["whole number"]),
        ("text for a number", "/samples", samples(v="wide"), ["must be a number", "wide"]),
        ("unknown model", "/samples", ("rocket/nothing",) + samples()[1:],
         ["no model 'rocket/nothing'"]),
        ("a path for a model", "/samples", ("../../etc",) + samples()[1:],
         ["no model '../../etc'", "never by a path"]),
        ("an absolute path for a model", "/sr", ("/etc/passwd", 2, 0), ["never by a path"]),
        ("a text file renamed .png", "/train", ("rocket.png", handle(str(text))) + train,
         ["cannot read notes.png as an image"]),
        ("a 0-byte upload", "/train", ("rocket.png", handle(str(empty))) + train,
         ["empty.png", "empty"]),
        ("a huge max size", "/train", ("rocket.png", None, "SinGAN", "generation", 10 ** 9, "",
                                       3, 0.75, 3, 0, "cpu"), ["max size", "between 16 and"]),
        ("min size as text", "/train", ("rocket.png", None, "SinGAN", "generation", 32, "tiny",
                                        3, 0.75, 3, 0, "cpu"), ["min size", "tiny"]),
        ("an unknown method", "/train", ("rocket.png", None, "GAN", "generation", 32, "", 3,
                                         0.75, 3, 0, "cpu"), ["Method", "not in the list"]),
        ("an SR factor of 1000", "/sr", (MODEL, 1000, 0), ["factor", "between 1.2 and 8"]),
        ("a million frames", "/animation", (ANIMATION_MODEL, 0, 0.1, 0.9, 10 ** 6, 10, 0),
         ["number of frames", "between 2 and 300"]),
        ("an unknown task", "/harmonize", (MODEL, "erase", None, None, 2, 0),
         ["Task", "not in the list"]),
        ("a naive image that is no image", "/harmonize",
         (MODEL, "harmonization", {"background": handle(str(text)), "layers": [],
                                   "composite": None}, None, 2, 0), ["Naive image"]),
    ]


@pytest.mark.slow
def test_hostile_requests_get_one_line_each_and_the_server_keeps_serving(studio, tmp_path):
    requests = hostile_requests(tmp_path)
    assert len(requests) >= 8
    cursor = studio.log.mark()     # this test's lines only: not an earlier test's
    for what, api_name, args, words in requests:
        message = app_error(studio, api_name, *args)
        assert len(message.strip().splitlines()) == 1, (what, message)
        for word in words:
            assert word in message, (what, word, message)
    gallery, figures, _ = call(studio, "/samples", MODEL, 3, 1, 1.0, 1.0, 0, False)
    assert len(gallery) == 3 and read(gallery[0]["image"]).shape == (27, 40, 3)
    assert "diversity" in figures
    # one line per refused request, each printed before its answer was sent: wait for the
    # reader to have seen them all
    log = studio.log.wait_for(lambda text: text.count("studio: refused") >= len(requests),
                              cursor)
    assert log.count("studio: refused") == len(requests), log
    assert "Traceback" not in log


@pytest.mark.slow
def test_two_clients_at_once_get_their_own_samples(studio):
    clients = [gradio_client.Client(studio.url, verbose=False) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(c.predict, MODEL, 6, 0, 1.0, 1.0, seed, False, api_name="/samples")
                for c, seed in zip(clients, (1, 2))]
        results = [job.result(timeout=120) for job in jobs]
    pictures = []
    for client, (gallery, _, zip_path) in zip(clients, results):
        folder = client_folder(studio, client) / "RandomSamples" / "rocket" / "gen_start_scale=0"
        shown = [read(item["image"]) for item in gallery]
        assert all(np.array_equal(shown[i], read(folder / f"{i}.png")) for i in range(6))
        with zipfile.ZipFile(zip_path) as archive:
            assert np.array_equal(iio.imread(archive.read("0.png"))[:, :, :3], shown[0])
        pictures.append(shown)
    assert client_folder(studio, clients[0]) != client_folder(studio, clients[1])
    assert not np.array_equal(pictures[0][0], pictures[1][0])   # seeds 1 and 2: not crossed


def test_checks_refuse_what_json_cannot_carry():
    """NaN and infinity (a raw HTTP client can send them; gradio_client cannot), booleans for
    numbers, and Gradio's own preprocessing of a NaN through a guarded component."""
    import gradio as gr
    from singan.studio.page import guard
    for bad, words in ((math.nan, "finite"), (math.inf, "finite"), (True, "a number"),
                       ("3", "a number"), (None, "a number")):
        with pytest.raises(SinGANError, match=words):
            studio_checks.whole(bad, "the seed", studio_checks.SEED)
    assert studio_checks.optional_whole(" ", "min size", studio_checks.MIN_SIZE) is None
    assert studio_checks.optional_whole("20", "min size", studio_checks.MIN_SIZE) == 20
    with pytest.raises(Exception, match="Seed: not a valid value") as caught:
        guard(gr.Number(0, precision=0, label="Seed")).preprocess(math.nan)
    assert caught.value.print_exception is False


def test_catalog_lists_model_folders_only(tmp_path):
    (tmp_path / "rocket" / "half").mkdir(parents=True)           # no model.pth: not a model
    (tmp_path / "rocket" / "done").mkdir()
    (tmp_path / "rocket" / "done" / "model.pth").write_bytes(b"x")
    (tmp_path / "stray.pth").write_bytes(b"x")
    assert find_model_folders(tmp_path) == [tmp_path / "rocket" / "done"]
    assert find_model_folders(tmp_path / "absent") == []


# ---- the training queue on its own ----------------------------------------------------------

def test_queue_reports_failure_and_stop(monkeypatch, tmp_path):
    """A diverged training is a failed job with the library's message; Stop reaches
    should_stop; a queued job can be taken off the queue."""
    started = threading.Event()

    def fake_train(image, config, folder, *, should_stop, progress, **_):
        if Path(image).name == "diverges.png":
            raise SinGANError("scale 1 diverged (nan loss); likely cause: too high a "
                              "learning rate")
        started.set()
        while not should_stop():
            time.sleep(0.01)
        raise studio_jobs.TrainingStopped("training stopped at scale 0, iteration 3: no "
                                          "scale had finished yet")

    monkeypatch.setattr(studio_jobs, "train_model", fake_train)
    jobs = TrainingQueue(tmp_path)
    cfg = SinGANConfig(max_size=32, niter=3)
    failed = jobs.submit(tmp_path / "diverges.png", cfg)
    running = jobs.submit(tmp_path / "a.png", cfg)
    waiting = jobs.submit(tmp_path / "b.png", cfg)
    assert started.wait(10)
    assert failed.state == "failed" and "diverged" in failed.describe()
    with pytest.raises(SinGANError, match="already"):
        jobs.submit(tmp_path / "a.png", cfg)
    assert "1 training ahead" in waiting.describe(jobs.ahead(waiting))
    jobs.stop(waiting.id)
    assert waiting.state == "stopped"
    jobs.stop()
    jobs.wait(running, -1, 0)
    deadline = time.monotonic() + 10
    while not running.done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert running.state == "stopped" and "no scale had finished" in running.describe()
