"""Long trainings (issue 28): the running stage is saved every --checkpoint_minutes and on
Ctrl-C or SIGTERM, and a rerun of the same command continues it where it was, ending with
exactly the model of an uninterrupted run, for SinGAN and ConSinGAN.

The runs go through test_reliability's zygote (forked children of one preloaded process: real
processes, real signals, no import time per run)."""
import re
import shutil
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import singan.driver
from conftest import run_here, smooth_image, write_image
from singan import train_model
from singan.studio.jobs import TrainingQueue
from singan.checkpoint import CHECKPOINT_NAME, RUNNING_NAME, read_checkpoint, read_running
from singan.methods.singan.hparams import SinGANConfig
from test_reliability import tiny_workdir, zygote  # noqa: F401  (zygote: a fixture)

pytestmark = pytest.mark.slow

NITER = 6
BASE = ["--input_dir", "Input", "--input_name", "tiny.png", "--max_size", "32", "--min_size",
        "19", "--niter", str(NITER), "--manualSeed", "5", "--device", "cpu", "--quiet",
        "--num_samples", "0"]
METHODS = {"singan": [], "consingan": ["--model", "consingan", "--train_stages", "4"]}
UNIT = {"singan": "scale", "consingan": "stage"}
OFTEN = ["--checkpoint_minutes", "0.00001"]    # the running stage saved after every iteration


def model_folder(work: Path) -> Path:
    (folder,) = (work / "TrainedModels" / "tiny").iterdir()
    return folder


@pytest.fixture(scope="module")
def baselines(zygote, tmp_path_factory):
    """Each method's tiny model trained without interruption: its model.pth."""
    out = {}
    for method, extra in METHODS.items():
        work = tiny_workdir(tmp_path_factory.mktemp(f"baseline_{method}"))
        proc = zygote.run("main_train.py", *BASE, *extra, cwd=work)
        assert proc.returncode == 0, proc.stderr
        out[method] = read_checkpoint(model_folder(work) / CHECKPOINT_NAME)
    return out


def assert_same(got, want, where="model.pth"):
    """Every tensor bit-identical, every other value equal, at every key."""
    if isinstance(want, torch.Tensor):
        assert isinstance(got, torch.Tensor) and got.dtype == want.dtype, where
        assert torch.equal(got, want), where
    elif isinstance(want, dict):
        assert sorted(got) == sorted(want), where
        for key in want:
            assert_same(got[key], want[key], f"{where}[{key!r}]")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert got == want, where


def rerun_until_done(zygote, work, extra, limit=3):
    """The same command again until it finishes; every rerun must load what was left."""
    outputs = []
    for _ in range(limit):
        proc = zygote.run("main_train.py", *BASE, *extra, *OFTEN, cwd=work)
        outputs.append(proc.stdout)
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr
        if proc.returncode == 0:
            return outputs
    raise AssertionError(f"not finished after {limit} reruns")


# The moments of a kill -9 (target file or "iteration", the nth of them in the run, action):
# the iterations are counted over the stages (6 each), the saves per file name (stage 0 saves
# its running state 5 times, after iterations 1-5).
KILLS = {
    "during an iteration": ("iteration", 9, "kill"),
    "during a mid-stage save": (RUNNING_NAME, 7, "kill-half"),
    "just after a mid-stage save": (RUNNING_NAME, 9, "kill-after"),
    "during a stage save": (CHECKPOINT_NAME, 2, "kill-half"),
    "just after a stage save": (CHECKPOINT_NAME, 1, "kill-after"),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("moment", KILLS)
def test_kill_9_at_any_moment_resumes_to_the_uninterrupted_model(zygote, baselines, tmp_path,
                                                                 method, moment):
    target, nth, action = KILLS[moment]
    work, extra = tiny_workdir(tmp_path), METHODS[method]
    proc = zygote.run("main_train.py", *BASE, *extra, *OFTEN, cwd=work,
                      hook={"target": target, "nth": nth, "action": action})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    folder = model_folder(work)
    if target == "iteration" or target == RUNNING_NAME:   # a stage was running, and saved
        running = read_running(folder / RUNNING_NAME)
        assert running["stage"] == 1 and 0 < running["iteration"] < NITER
    outputs = rerun_until_done(zygote, work, extra)
    if target == "iteration" or target == RUNNING_NAME:
        assert f"resuming {UNIT[method]} 1 at iteration {running['iteration']} of {NITER}" \
            in outputs[0], outputs[0]
    assert_same(read_checkpoint(folder / CHECKPOINT_NAME), baselines[method])
    assert not (folder / RUNNING_NAME).exists()          # dropped once its stage was saved


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("action, code, word", [("sigint", 130, "interrupted"),
                                                ("sigterm", 143, "terminated")])
def test_ctrl_c_and_sigterm_save_the_running_stage_and_the_rerun_continues_it(
        zygote, baselines, tmp_path, method, action, code, word):
    """The signal comes as iteration 3 of stage 1 begins: that iteration is finished, the
    stage is saved after it, the run exits, and the rerun starts at iteration 3."""
    work, extra = tiny_workdir(tmp_path), METHODS[method]
    proc = zygote.run("main_train.py", *BASE, *extra, cwd=work,
                      hook={"target": "iteration", "nth": NITER + 3, "action": action})
    assert proc.returncode == code, proc.stderr
    unit = UNIT[method]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{word}: "), proc.stderr
    assert f"{unit}s 0-0 of 0-3 and {unit} 1 at iteration 3 of {NITER} are saved" in lines[0]
    folder = model_folder(work)
    assert read_running(folder / RUNNING_NAME)["iteration"] == 3
    rerun = zygote.run("main_train.py", *BASE, *extra, cwd=work)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming {unit} 1 at iteration 3 of {NITER}" in rerun.stdout, rerun.stdout
    assert_same(read_checkpoint(folder / CHECKPOINT_NAME), baselines[method])


def test_a_running_stage_of_other_settings_is_not_continued(zygote, tmp_path):
    """Stopped during scale 0 (no model.pth yet), then run with another --niter: the saved
    iterations belong to another training and are dropped, not mixed in."""
    work = tiny_workdir(tmp_path)
    proc = zygote.run("main_train.py", *BASE, cwd=work,
                      hook={"target": "iteration", "nth": 4, "action": "sigint"})
    assert proc.returncode == 130 and "scale 0 at iteration 4 of 6 is saved" in proc.stderr
    other = [a if a != str(NITER) else "5" for a in BASE]
    proc = zygote.run("main_train.py", *other, cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "resuming" not in proc.stdout
    assert not (model_folder(work) / RUNNING_NAME).exists()


def test_a_running_stage_of_another_image_is_not_continued(zygote, tmp_path):
    """Stopped during scale 0, then run on another picture under the same name (so the same
    model folder, and no model.pth yet to refuse it): the saved iterations belong to another
    image's training and are dropped; the run ends with the new image's own model."""
    work = tiny_workdir(tmp_path)
    proc = zygote.run("main_train.py", *BASE, cwd=work,
                      hook={"target": "iteration", "nth": 4, "action": "sigint"})
    assert proc.returncode == 130 and "scale 0 at iteration 4 of 6 is saved" in proc.stderr
    write_image(work / "Input" / "tiny.png", smooth_image(28, 32, seed=11))
    proc = zygote.run("main_train.py", *BASE, cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "resuming" not in proc.stdout
    assert not (model_folder(work) / RUNNING_NAME).exists()
    fresh = tiny_workdir(tmp_path / "fresh")
    write_image(fresh / "Input" / "tiny.png", smooth_image(28, 32, seed=11))
    assert zygote.run("main_train.py", *BASE, cwd=fresh).returncode == 0
    assert_same(read_checkpoint(model_folder(work) / CHECKPOINT_NAME),
                read_checkpoint(model_folder(fresh) / CHECKPOINT_NAME))


def test_a_running_stage_of_another_seed_is_not_continued(zygote, baselines, tmp_path):
    """A model's running stage must come from its own training: seed 5's model.pth (scale 0
    done) beside a running stage of scale 1 saved by a training with seed 6 (same image and
    settings) is not continued; the run trains scale 1 afresh and ends with seed 5's model."""
    other = tiny_workdir(tmp_path / "seed6")
    seed6 = [a if a != "5" else "6" for a in BASE]
    proc = zygote.run("main_train.py", *seed6, cwd=other,
                      hook={"target": "iteration", "nth": NITER + 3, "action": "sigint"})
    assert proc.returncode == 130, proc.stderr
    work = tiny_workdir(tmp_path / "seed5")
    proc = zygote.run("main_train.py", *BASE, cwd=work,
                      hook={"target": "iteration", "nth": NITER + 1, "action": "sigint"})
    assert proc.returncode == 130, proc.stderr
    assert read_running(model_folder(work) / RUNNING_NAME)["iteration"] == 1
    shutil.copy(model_folder(other) / RUNNING_NAME, model_folder(work) / RUNNING_NAME)
    assert read_running(model_folder(work) / RUNNING_NAME)["iteration"] == 3
    proc = zygote.run("main_train.py", *BASE, cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "resuming scale 1 at iteration" not in proc.stdout, proc.stdout
    assert_same(read_checkpoint(model_folder(work) / CHECKPOINT_NAME), baselines["singan"])


def test_checkpoint_minutes_0_saves_the_running_stage_only_when_stopped(zygote, tmp_path):
    """--checkpoint_minutes 0: no running-stage save on a timer (a kill at the first save of
    running_stage.pth never comes: the run finishes; with saves after every iteration the same
    kill comes at once), and Ctrl-C still saves it."""
    kill_at_first_save = {"target": RUNNING_NAME, "nth": 1, "action": "kill"}
    work = tiny_workdir(tmp_path / "often")
    proc = zygote.run("main_train.py", *BASE, *OFTEN, cwd=work, hook=kill_at_first_save)
    assert proc.returncode == -signal.SIGKILL                  # the kill can come
    work = tiny_workdir(tmp_path / "never")
    proc = zygote.run("main_train.py", *BASE, "--checkpoint_minutes", "0", cwd=work,
                      hook=kill_at_first_save)
    assert proc.returncode == 0, proc.stderr                   # no save: no kill
    assert read_checkpoint(model_folder(work) / CHECKPOINT_NAME)["scales"][-1]
    work = tiny_workdir(tmp_path / "stopped")
    proc = zygote.run("main_train.py", *BASE, "--checkpoint_minutes", "0", cwd=work,
                      hook={"target": "iteration", "nth": NITER + 3, "action": "sigint"})
    assert proc.returncode == 130 and "scale 1 at iteration 3 of 6" in proc.stderr
    assert read_running(model_folder(work) / RUNNING_NAME)["iteration"] == 3


class FakeClock:
    """singan.driver's clock, moved on by `seconds_per_iteration` at every training
    iteration (time.perf_counter stays the real one, for the timings)."""

    def __init__(self, monkeypatch, seconds_per_iteration: float):
        self.now = 0.0
        monkeypatch.setattr(singan.driver, "time", SimpleNamespace(
            monotonic=lambda: self.now, perf_counter=time.perf_counter))
        step = singan.methods.singan.train.ScaleTrainer.step

        def timed_step(trainer, it):
            self.now += seconds_per_iteration
            return step(trainer, it)
        monkeypatch.setattr(singan.methods.singan.train.ScaleTrainer, "step", timed_step)


@pytest.mark.parametrize("seconds, saved_after", [(250, [3, 6]), (100, [6]), (60, [])])
def test_the_running_stage_is_saved_every_10_minutes_by_default(tmp_path, monkeypatch,
                                                                seconds, saved_after):
    """Without checkpoint_minutes, the running stage is saved once 10 minutes (600 s) have
    passed since the stage began or since its last save: at 250 s an iteration after
    iterations 3 and 6 of 8 (750 s, 1500 s), at 100 s after iteration 6, at 60 s never
    (480 s at the stage's end: a finished stage is saved as model.pth instead)."""
    import singan.methods.singan.train
    FakeClock(monkeypatch, seconds)
    saves = []
    real_save = singan.driver.save_checkpoint

    def recorded(path, ckpt):
        if Path(path).name == RUNNING_NAME:
            saves.append((ckpt["stage"], ckpt["iteration"]))
        return real_save(path, ckpt)
    monkeypatch.setattr(singan.driver, "save_checkpoint", recorded)
    image = torch.from_numpy(smooth_image(24, 28)).permute(2, 0, 1)[None].float() / 127.5 - 1
    cfg = SinGANConfig(max_size=28, min_size=20, niter=8, nfc=8, min_nfc=8)
    model = train_model(image, cfg, tmp_path / "m", device="cpu", seed=0, show_progress=False,
                        log=lambda line: None)
    assert saves == [(k, it) for k in range(model.num_scales) for it in saved_after]


def test_checkpoint_minutes_defaults_to_10_on_the_command_line(tmp_path, monkeypatch):
    proc = run_here("main_train.py", "--help", cwd=tmp_path, monkeypatch=monkeypatch)
    text = " ".join(proc.stdout.split())
    assert proc.returncode == 0 and "--checkpoint_minutes" in text
    assert re.search(r"--checkpoint_minutes \S+ .*?\(default: 10(\.0)?\)", text), text


def test_the_studio_queue_shutting_down_saves_the_running_stage(tmp_path):
    """What studio.py does on Ctrl-C or SIGTERM: the running training stops after its
    iteration, saves its running stage, and a new submission with the same settings goes on
    from there."""
    image = write_image(tmp_path / "tiny.png", smooth_image(28, 32, seed=4))
    config = SinGANConfig(max_size=32, min_size=19, niter=200)
    queue = TrainingQueue(tmp_path / "TrainedModels", log=lambda _: None)
    job = queue.submit(image, config, device="cpu", seed=5)
    deadline = time.monotonic() + 60
    while (job.event is None or job.event.stage < 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    queue.shutdown(timeout=60)
    assert job.state == "stopped", job.message
    running = read_running(job.folder / RUNNING_NAME)
    assert running["stage"] >= 1 and 0 < running["iteration"] < 200
    assert f"at iteration {running['iteration']} of 200 are saved" in job.message
    again = queue.submit(image, config, device="cpu", seed=5)
    while again.event is None and not again.done and time.monotonic() < deadline + 60:
        time.sleep(0.01)
    # the last line logged before its first progress report
    assert again.message == (f"resuming scale {running['stage']} at iteration "
                             f"{running['iteration']} of 200"), again.message
    queue.shutdown(timeout=60)
    assert again.state == "stopped"
