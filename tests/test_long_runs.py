"""Long trainings (issue 28): the running stage is saved every --checkpoint_minutes and on
Ctrl-C or SIGTERM, and a rerun of the same command continues it where it was, ending with
exactly the model of an uninterrupted run, for SinGAN and ConSinGAN.

The runs go through test_reliability's zygote (forked children of one preloaded process: real
processes, real signals, no import time per run)."""
import signal
import time
from pathlib import Path

import pytest
import torch

from conftest import smooth_image, write_image
from singan.apps.studio_jobs import TrainingQueue
from singan.checkpoint import CHECKPOINT_NAME, RUNNING_NAME, read_checkpoint, read_running
from singan.hparams import SinGANConfig
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
