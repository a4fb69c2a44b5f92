"""Reliability (issue 7): kills, Ctrl-C, damaged files, full or read-only disks, diverging
losses, odd images and bad options lose nothing and get one clear line each.

The script runs go through a "zygote": one Python process that has imported the scripts'
modules and forks a child per run, which runs the script as __main__ (a real process, sent a
real SIGKILL or SIGINT), so that each run does not pay torch's import time.
"""
import errno
import json
import os
import random
import re
import signal
import struct
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, assert_one_line_error, process_ended, smooth_image, write_image
from singan import load_model, train_model
from singan.checkpoint import CHECKPOINT_NAME, read_checkpoint
from singan.errors import SinGANError
from singan.guards import exclusive
from singan.methods.singan.hparams import SinGANConfig
from singan.image_io import read_image
from singan.methods.singan.train import SCALE_FILES

# The tiny training every kill/resume run uses: 28 x 32, 4 scales, 6 iterations each.
TRAIN = ["--input_dir", "Input", "--input_name", "tiny.png", "--max_size", "32",
         "--min_size", "19", "--niter", "6", "--manualSeed", "5", "--device", "cpu", "--quiet",
         "--num_samples", "0"]
# Training tests (they train tiny models, or run scripts that do): -m "not slow" skips them.
pytestmark = pytest.mark.slow

FOLDER = Path("TrainedModels/tiny/scale_factor=0.750000,alpha=10")
N_SCALES = 4

# ---- the zygote ----------------------------------------------------------------------------

ZYGOTE = r'''
import io, json, os, runpy, signal, sys, traceback
import numpy as np, imageio.v3 as iio, torch
import matplotlib.figure, matplotlib.backends.backend_agg   # the loss plots
import torch.utils._device   # torch.device("meta") imports it lazily; children may not read it
import torch._dynamo         # torch.optim's first optimizer imports it: 1.5-2 s in every child

torch.set_num_threads(1)
for script in ("main_train.py", "random_samples.py"):
    runpy.run_path(os.path.join(ROOT, script), run_name="__preload__")   # imports, no main()
iio.imread(iio.imwrite("<bytes>", np.zeros((2, 2, 3), np.uint8), extension=".png"),
           index=0, plugin="pillow", rotate=True)                       # loads the plugin


def memory_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])


SIGNALS = {"kill": signal.SIGKILL, "sigint": signal.SIGINT, "sigterm": signal.SIGTERM}


def install_hook(hook):
    """Faults on demand: act when the `nth` file named `target` is about to be renamed into
    place (its temporary is complete): "kill" (SIGKILL), "kill-half" (cut the temporary to
    half its size first: a kill in the middle of the write), "kill-after" (SIGKILL just after
    the rename), "sigint" (Ctrl-C) or "sigterm". Target "iteration": act as the nth training
    iteration of the run (either method) begins; action "sigint-hang" there: Ctrl-C, then
    that iteration never ends (it writes the file hook["marker"] and sleeps), so that only a
    second Ctrl-C can stop the run."""
    action = hook["action"]
    if hook["target"] == "iteration":
        import singan.methods.singan.train, singan.methods.consingan.train
        import time
        calls = [0]

        def counted(step):
            def stepped(self, it):
                calls[0] += 1
                if calls[0] == hook["nth"]:
                    os.kill(os.getpid(), SIGNALS[action.split("-")[0]])
                    if action == "sigint-hang":
                        open(hook["marker"], "w").close()
                        while True:
                            time.sleep(3600)
                return step(self, it)
            return stepped
        for cls in (singan.methods.singan.train.ScaleTrainer,
                    singan.methods.consingan.train.StageState):
            cls.step = counted(cls.step)
        return
    real_replace, seen = os.replace, [0]

    def replace(src, dst, *args, **kwargs):
        if os.path.basename(dst) == hook["target"]:
            seen[0] += 1
            if seen[0] == hook["nth"]:
                if action == "kill-after":
                    real_replace(src, dst, *args, **kwargs)
                if action == "kill-half":
                    os.truncate(src, os.path.getsize(src) // 2)
                os.kill(os.getpid(), SIGNALS[action.split("-")[0]])
        return real_replace(src, dst, *args, **kwargs)
    os.replace = replace


def child(req):
    # Ctrl-C as in a terminal, even where the suite itself runs with SIGINT ignored (a shell
    # starts background jobs so, and the forked child would inherit it)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(req["cwd"])
    os.environ.update(req["env"])
    for fd, name in ((1, "stdout"), (2, "stderr")):
        os.dup2(os.open(req[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    if req.get("hook"):
        install_hook(req["hook"])
    if req.get("uid") is not None:
        os.setgid(req["uid"]), os.setuid(req["uid"])
    if req.get("peak"):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                                   # peak RSS := current RSS
        start = memory_kb("VmRSS:")
    sys.argv = [req["script"]] + req["args"]
    code = 0
    try:
        runpy.run_path(os.path.join(req.get("script_dir") or ROOT, req["script"]),
                       run_name="__main__")
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else (err.code is not None)
        if isinstance(err.code, str):
            print(err.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    if req.get("peak"):
        with open(req["peak"], "w") as f:
            json.dump({"start_kb": start, "peak_kb": memory_kb("VmHWM:")}, f)
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(code)


for line in sys.stdin:
    req = json.loads(line)
    if req["cmd"] == "start":
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            child(req)
        print(pid, flush=True)
    else:
        _, status = os.waitpid(req["pid"], 0)
        print(os.waitstatus_to_exitcode(status), flush=True)
'''


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


class Zygote:
    """Runs the scripts in forked children of one preloaded Python process."""

    def __init__(self, scratch: Path):
        self.scratch = scratch
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, "-c", f"ROOT = {str(ROOT)!r}\n" + ZYGOTE],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env, cwd=scratch)
        self.runs = 0

    def _ask(self, req) -> int:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def start(self, script, *args, cwd, env=None, hook=None, uid=None, peak=None,
              script_dir=None):
        self.runs += 1
        out = {name: str(self.scratch / f"{self.runs}.{name}") for name in ("stdout", "stderr")}
        pid = self._ask({"cmd": "start", "script": script, "args": [str(a) for a in args],
                         "cwd": str(cwd), "env": env or {}, "hook": hook, "uid": uid,
                         "peak": str(peak) if peak else None,
                         "script_dir": str(script_dir) if script_dir else None, **out})
        return pid, out

    def wait(self, pid, out) -> Result:
        code = self._ask({"cmd": "wait", "pid": pid})
        return Result(code, Path(out["stdout"]).read_text(), Path(out["stderr"]).read_text())

    def run(self, script, *args, cwd, **kwargs) -> Result:
        return self.wait(*self.start(script, *args, cwd=cwd, **kwargs))

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    z = Zygote(tmp_path_factory.mktemp("zygote"))
    yield z
    z.close()


def tiny_workdir(path: Path) -> Path:
    write_image(path / "Input" / "tiny.png", smooth_image(28, 32, seed=4))
    return path


@pytest.fixture(scope="module")
def baseline(zygote, tmp_path_factory):
    """The tiny model trained without interruption, and how long that took."""
    work = tiny_workdir(tmp_path_factory.mktemp("baseline"))
    start = time.perf_counter()
    proc = zygote.run("main_train.py", *TRAIN, cwd=work)
    assert proc.returncode == 0, proc.stderr
    return work / FOLDER, time.perf_counter() - start


def state(folder: Path):
    """model.pth's finished scales as plain tensors (checksum verified), or [] without one."""
    path = folder / CHECKPOINT_NAME
    return read_checkpoint(path)["scales"] if path.exists() else []


def assert_same_scales(scales, reference):
    for got, want in zip(scales, reference):
        for key in ("G", "D"):
            for name, value in want[key].items():
                assert torch.equal(got[key][name], value), (key, name)
        assert torch.equal(got["z_opt"], want["z_opt"]) and got["noise_amp"] == want["noise_amp"]


def temporaries(folder: Path):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob(".*.tmp"))


# ---- kill -9 ----------------------------------------------------------------------------------

RANDOM_KILLS = 6


def test_kill_9_at_any_moment_loses_nothing_and_resumes_to_the_same_model(zygote, baseline,
                                                                           tmp_path):
    """Kills in the middle of a model.pth write and of a per-scale write, then at random
    moments (seeded): after each, model.pth lists only complete scales, bit-identical to the
    uninterrupted run's; the final rerun resumes and ends with exactly the baseline model."""
    reference_folder, elapsed = baseline
    reference = state(reference_folder)
    work = tiny_workdir(tmp_path)
    folder = work / FOLDER
    faults, done = [], 0

    def check_after_kill(what):
        nonlocal done
        scales = state(folder)
        assert len(scales) >= done, f"{what}: finished scales were lost"
        done = len(scales)
        assert_same_scales(scales, reference)
        for n in range(done):
            assert all((folder / str(n) / name).is_file() for name in SCALE_FILES), (what, n)
        faults.append(what)

    # 1. in the middle of writing model.pth after scale 1: model.pth still lists scale 0 only
    proc = zygote.run("main_train.py", *TRAIN, cwd=work,
                      hook={"target": CHECKPOINT_NAME, "nth": 2, "action": "kill-half"})
    assert proc.returncode == -signal.SIGKILL
    assert [t for t in temporaries(folder) if t.startswith(".model.pth.")], temporaries(folder)
    check_after_kill("half-written model.pth")
    assert done == 1

    # 2. the resumed run, killed as scale 1's netD.pth is about to be renamed into place
    proc = zygote.run("main_train.py", *TRAIN, cwd=work,
                      hook={"target": "netD.pth", "nth": 1, "action": "kill"})
    assert proc.returncode == -signal.SIGKILL
    assert ".model.pth." not in " ".join(temporaries(folder))   # the stale one was removed
    assert any(t.startswith("1/.netD.pth.") for t in temporaries(folder))
    check_after_kill("netD.pth before its rename")

    # 3. random moments, drawn from a seeded RNG over the time the remaining scales take
    rng = random.Random(7)
    for k in range(RANDOM_KILLS):
        remaining = elapsed * (N_SCALES - done) / N_SCALES
        delay = rng.uniform(0.05, 0.8) * remaining
        pid, out = zygote.start("main_train.py", *TRAIN, cwd=work)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        proc = zygote.wait(pid, out)
        if proc.returncode == 0:   # it finished before the kill came
            break
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        check_after_kill(f"random kill {k} after {delay:.2f} s")

    # the rerun resumes after the last finished scale and completes the same model
    done = len(state(folder))
    proc = zygote.run("main_train.py", *TRAIN, cwd=work)
    assert proc.returncode == 0, proc.stderr
    if done == N_SCALES:
        assert "already trained" in proc.stdout
    elif done:
        assert f"resuming {FOLDER} after scale {done - 1}" in proc.stdout, proc.stdout
    assert len(state(folder)) == N_SCALES
    assert_same_scales(state(folder), reference)
    assert temporaries(folder) == []
    for n in range(N_SCALES):
        assert sorted(p.name for p in (folder / str(n)).iterdir()) == sorted(SCALE_FILES)
        got = torch.load(folder / str(n) / "netG.pth", weights_only=True)
        want = torch.load(reference_folder / str(n) / "netG.pth", weights_only=True)
        assert all(torch.equal(got[k], want[k]) for k in want)
    assert load_model(folder).num_scales == N_SCALES
    print(f"\nkill -9 fault points: {len(faults)}: {faults}")
    assert len(faults) >= 4


# ---- Ctrl-C ----------------------------------------------------------------------------------

def test_ctrl_c_stops_at_once_saves_finished_scales_and_says_how_to_resume(zygote, tmp_path):
    """SIGINT as soon as scale 0 is saved (model.pth appears), i.e. while scale 1 trains."""
    work = tiny_workdir(tmp_path)
    args = [a if a != "6" else "10" for a in TRAIN]       # --niter 10
    pid, out = zygote.start("main_train.py", *args, cwd=work)
    ckpt = work / FOLDER / CHECKPOINT_NAME
    deadline = time.monotonic() + 120
    while not ckpt.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(pid, signal.SIGINT)
    proc = zygote.wait(pid, out)
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted: "), proc.stderr
    done = len(state(work / FOLDER))
    assert 1 <= done < N_SCALES
    # the finished scales, and the running one after its iteration in progress, when the
    # signal came during an iteration rather than during a scale's save
    kept = f"scales 0-{done - 1} of 0-{N_SCALES - 1}"
    assert (f"{kept} are saved in {FOLDER}" in lines[0]
            or re.search(rf"{kept} and scale {done} at iteration \d+ of 10 are saved in "
                         rf"{re.escape(str(FOLDER))}", lines[0])), lines[0]
    assert "run the same command again to resume" in lines[0]
    assert temporaries(work / FOLDER) == []
    assert not (work / FOLDER / str(done)).exists()        # the interrupted scale left nothing

    rerun = zygote.run("main_train.py", *args, cwd=work)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming {FOLDER} after scale {done - 1}" in rerun.stdout
    assert len(state(work / FOLDER)) == N_SCALES


def wait_for(condition, timeout: float, step: float = 0.05) -> bool:
    """Poll condition() until it holds or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def test_a_second_ctrl_c_stops_at_once(zygote, tmp_path):
    """The first Ctrl-C waits for the iteration in progress; a second one stops at once. Here
    the iteration in progress (scale 1's third) never ends: only the second Ctrl-C can stop
    the run, and then it exits 130 with the finished scale kept and the running one's
    unfinished iteration not saved."""
    work = tiny_workdir(tmp_path)
    marker = tmp_path / "first-ctrl-c-sent"
    pid, out = zygote.start("main_train.py", *TRAIN, cwd=work,
                            hook={"target": "iteration", "nth": 6 + 3, "action": "sigint-hang",
                                  "marker": str(marker)})
    assert wait_for(marker.exists, 120), "the run never reached scale 1's third iteration"
    assert not process_ended(pid)                    # the first Ctrl-C waits for the iteration
    os.kill(pid, signal.SIGINT)
    if not wait_for(lambda: process_ended(pid), 60):
        os.kill(pid, signal.SIGKILL)
        zygote.wait(pid, out)
        raise AssertionError("a second Ctrl-C did not stop the run")
    proc = zygote.wait(pid, out)
    assert proc.returncode == 130, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted: scales 0-0 of 0-3 are saved in "
                                                   f"{FOLDER}"), proc.stderr
    assert len(state(work / FOLDER)) == 1
    assert not (work / FOLDER / "running_stage.pth").exists()
    assert temporaries(work / FOLDER) == []


def test_ctrl_c_while_a_finished_scale_is_saved_waits_for_the_save(zygote, tmp_path):
    """SIGINT arriving while scale 1's files are written: all of scale 1 is still saved and
    listed in model.pth before the program stops with 130."""
    work = tiny_workdir(tmp_path)
    proc = zygote.run("main_train.py", *TRAIN, cwd=work,
                      hook={"target": "netG.pth", "nth": 2, "action": "sigint"})
    assert proc.returncode == 130, proc.stderr
    assert "scales 0-1 of 0-3 are saved" in proc.stderr
    assert len(state(work / FOLDER)) == 2
    assert all((work / FOLDER / "1" / name).is_file() for name in SCALE_FILES)
    assert not (work / FOLDER / "2").exists()


# ---- damaged model files ------------------------------------------------------------------------

def _truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _bit_flip(path):
    data = bytearray(path.read_bytes())
    reals = read_checkpoint(path)["reals"][-1]             # some tensor bytes deep in the file
    where = bytes(data).find(reals.numpy().tobytes()[:64])
    assert where > 0
    data[where + 10] ^= 0x40
    path.write_bytes(bytes(data))


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("damage, words", [
    (lambda p: p.write_bytes(b""), ["model.pth", "empty"]),
    (_truncated, ["model.pth", "not a readable"]),
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n not a checkpoint"),
     ["model.pth", "not a readable"]),
    (lambda p: torch.save([torch.ones(2)], p), ["model.pth", "not a singan checkpoint"]),
    (lambda p: torch.save({"format_version": 1, "scales": [], "x": _Evil()}, p),
     ["model.pth", "not a readable"]),
    (_bit_flip, ["model.pth", "corrupted", "checksum"]),
    (lambda p: (p.unlink(), p.mkdir()), ["model.pth", "is a folder"]),
], ids=["empty", "truncated", "foreign-bytes", "foreign-pickle", "pickled-code", "bit-flip",
        "folder"])
def test_damaged_model_pth_is_one_line_naming_it(zygote, baseline, tmp_path, damage, words):
    import shutil
    model = tmp_path / "model"
    shutil.copytree(baseline[0], model)
    damage(model / CHECKPOINT_NAME)
    proc = zygote.run("random_samples.py", "--model_dir", "model", "--num_samples", "2",
                      "--device", "cpu", cwd=tmp_path)
    assert_one_line_error(proc, *words)
    assert not (tmp_path / "pwned").exists()               # weights_only: no code ran
    assert not (tmp_path / "Output").exists()


def test_damaged_model_pth_blocks_resume_until_force(zygote, tmp_path):
    work = tiny_workdir(tmp_path)
    (work / FOLDER).mkdir(parents=True)
    (work / FOLDER / CHECKPOINT_NAME).write_bytes(b"PK\x03\x04 half a zip")
    (work / FOLDER / "7").mkdir()                          # an old model's scale folder
    (work / FOLDER / "7" / "netG.pth").write_bytes(b"old")
    proc = zygote.run("main_train.py", *TRAIN, cwd=work)
    assert_one_line_error(proc, "model.pth", "--force")
    assert (work / FOLDER / CHECKPOINT_NAME).read_bytes() == b"PK\x03\x04 half a zip"
    proc = zygote.run("main_train.py", *TRAIN, "--niter", "2", "--force", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert len(state(work / FOLDER)) == N_SCALES
    assert not (work / FOLDER / "7").exists()              # --force removed the old files


# ---- read-only folders, full disks, two writers ------------------------------------------------

def _read_only_run(zygote, work: Path, ro: Path, *args):
    """Run main_train.py in `work` with `ro` unwritable: chmod, and, as root (who ignores
    permissions), in a child that drops to the unprivileged user 'nobody'. The checkout may
    sit in a folder that nobody cannot enter (a clone under /root, a mode-0700 folder): the
    script runs from a copy in `work` (the library is already imported by the zygote)."""
    uid = script_dir = None
    if os.geteuid() == 0:
        uid, script_dir = 65534, work
        shutil.copyfile(ROOT / "main_train.py", work / "main_train.py")
        for path in [work, *work.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    ro.mkdir(parents=True, exist_ok=True)
    ro.chmod(0o555)
    try:
        return zygote.run("main_train.py", *args, cwd=work, uid=uid, script_dir=script_dir)
    finally:
        ro.chmod(0o755)


@pytest.fixture
def open_workdir():
    """A work folder that an unprivileged user can enter (pytest's tmp_path is private)."""
    path = Path(tempfile.mkdtemp(prefix="singan-ro-"))
    path.chmod(0o755)
    yield tiny_workdir(path)
    import shutil
    shutil.rmtree(path, ignore_errors=True)


def test_unwritable_model_folder_fails_before_training(zygote, open_workdir):
    work = open_workdir
    proc = _read_only_run(zygote, work, work / "TrainedModels", *TRAIN)
    assert_one_line_error(proc, "cannot write", "TrainedModels/tiny", "not writable")
    assert list((work / "TrainedModels").iterdir()) == []


def test_unwritable_samples_folder_fails_before_training(zygote, open_workdir):
    work = open_workdir
    args = [a for a in TRAIN if a not in ("--num_samples", "0")] + ["--out", "ro/Output"]
    proc = _read_only_run(zygote, work, work / "ro", *args)
    assert_one_line_error(proc, "cannot write", "ro/Output/RandomSamples/tiny", "not writable")
    assert not (work / "TrainedModels").exists()           # nothing trained, nothing written


def _tiny_image():
    """24 x 28: with CFG, 3 scales (20 x 24, 22 x 26, 24 x 28)."""
    return torch.from_numpy(smooth_image(24, 28, seed=4)).permute(2, 0, 1)[None].float() \
        / 127.5 - 1


CFG = SinGANConfig(max_size=28, min_size=20, niter=2)


def test_disk_full_during_a_save_keeps_the_finished_scales(tmp_path, monkeypatch):
    """ENOSPC while model.pth is written after scale 1 (reported by fsync, as delayed
    allocation does): one line saying the disk is full, model.pth still lists scale 0, no
    temporary and no file of scale 1 remain, and a rerun resumes."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to name the file being synced")
    real_fsync, writes = os.fsync, []

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if Path(name).name.startswith(".model.pth."):
            writes.append(name)
            if len(writes) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    folder = tmp_path / "model"
    with pytest.raises(SinGANError) as err:
        train_model(_tiny_image(), CFG, folder, seed=1, log=lambda s: None,
                      show_progress=False)
    message = str(err.value)
    assert "\n" not in message and "model.pth" in message and "disk is full" in message
    assert len(state(folder)) == 1
    assert temporaries(folder) == [] and not (folder / "1").exists()
    monkeypatch.setattr(os, "fsync", real_fsync)
    logs = []
    pyramid = train_model(_tiny_image(), CFG, folder, seed=1, log=logs.append,
                            show_progress=False)
    assert pyramid.num_scales == 3 and logs[0].startswith("resuming")


def test_too_little_free_space_is_known_before_anything_is_written(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 ** 9, 10 ** 9, 50_000))
    with pytest.raises(SinGANError, match="not enough free disk space .* MB"):
        train_model(_tiny_image(), CFG, tmp_path / "model", log=lambda s: None,
                      show_progress=False)
    assert not (tmp_path / "model").exists()


def test_a_second_writer_of_the_same_model_folder_is_refused(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    with exclusive(folder):
        with pytest.raises(SinGANError, match="being written by another run"):
            train_model(_tiny_image(), CFG, folder, log=lambda s: None, show_progress=False)
    assert list(folder.iterdir()) == []


def test_a_model_of_the_reference_code_is_never_overwritten(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("Zs.pth", "NoiseAmp.pth", "reals.pth"):
        (folder / name).write_bytes(b"reference")
    for force in (False, True):
        with pytest.raises(SinGANError, match="reference SinGAN or ConSinGAN code"):
            train_model(_tiny_image(), CFG, folder, force=force, log=lambda s: None,
                          show_progress=False)
    assert sorted(p.name for p in folder.iterdir()) == ["NoiseAmp.pth", "Zs.pth", "reals.pth"]


# ---- nan / inf ------------------------------------------------------------------------------

def test_nan_loss_stops_the_scale_names_it_and_keeps_earlier_scales(tmp_path, monkeypatch):
    """The reconstruction loss turns nan at scale 1 after two iterations, with 5 iterations
    per scale (fewer than LOG_EVERY): the end-of-scale check catches it."""
    import singan.methods.singan.train
    real_loss = singan.methods.singan.train.reconstruction_loss
    shape_1 = (22, 26)
    calls = []

    def poisoned(rec, real, alpha):
        loss = real_loss(rec, real, alpha)
        if tuple(real.shape[-2:]) == shape_1:
            calls.append(1)
            if len(calls) > 6:
                return loss * float("nan")
        return loss
    monkeypatch.setattr(singan.methods.singan.train, "reconstruction_loss", poisoned)
    cfg = SinGANConfig(max_size=28, min_size=20, niter=5)
    folder = tmp_path / "model"
    with pytest.raises(SinGANError) as err:
        train_model(_tiny_image(), cfg, folder, log=lambda s: None, show_progress=False)
    message = str(err.value)
    assert "\n" not in message
    for words in ("diverged at scale 1", "iteration", "learning rate", "nan"):
        assert words in message, message
    assert len(state(folder)) == 1 and not (folder / "1").exists()
    monkeypatch.setattr(singan.methods.singan.train, "reconstruction_loss", real_loss)
    assert train_model(_tiny_image(), cfg, folder, log=lambda s: None,
                         show_progress=False).num_scales == 3


def test_a_blow_up_between_loss_checks_is_never_saved(tmp_path, monkeypatch):
    """train_scale looks at the latest losses only every LOG_EVERY iterations; a loss that
    was inf at iteration 2 of scale 1 and finite again later is still caught before the
    scale is saved, naming that iteration."""
    import singan.methods.singan.train
    real_result = singan.methods.singan.train.ScaleTrainer.result

    def blown_up(self):
        result = real_result(self)
        if self.n == 1:
            result.losses["errD"][1] = float("inf")
        return result
    monkeypatch.setattr(singan.methods.singan.train.ScaleTrainer, "result", blown_up)
    folder = tmp_path / "model"
    with pytest.raises(SinGANError) as err:
        train_model(_tiny_image(), CFG, folder, log=lambda s: None, show_progress=False)
    assert str(err.value).startswith("training diverged at scale 1, iteration 2: the loss errD "
                                     "became inf (likely cause: too high a learning rate")
    assert f"scales 0-0 are kept in {folder}" in str(err.value)
    assert len(state(folder)) == 1 and not (folder / "1").exists()


def test_absurd_learning_rate_is_one_line(zygote, tmp_path):
    work = tiny_workdir(tmp_path)
    proc = zygote.run("main_train.py", *TRAIN, "--lr_g", "1e30", "--lr_d", "1e30", cwd=work)
    assert_one_line_error(proc, "diverged at scale 0", "iteration", "learning rate")


# ---- inputs -----------------------------------------------------------------------------------

def _expected(pixels: np.ndarray) -> torch.Tensor:
    """What read_image must return for 8-bit RGB pixels."""
    return torch.from_numpy(pixels / 255).permute(2, 0, 1)[None].float() * 2 - 1


def _png16(path: Path, pixels: np.ndarray) -> Path:
    """A 16-bit PNG (colour type 2 or 6) written by hand: Pillow cannot write one."""
    h, w, c = pixels.shape
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    header = struct.pack(">IIBBBBB", w, h, 16, {3: 2, 4: 6}[c], 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


RGB = smooth_image(24, 30, seed=9)


def _decoded(path: Path) -> np.ndarray:
    """Pillow's own RGB decoding of a file (for the lossy formats)."""
    return np.asarray(Image.open(path).convert("RGB"))


GRAY = np.asarray(Image.fromarray(RGB).convert("L"))
GRAY_RGB = np.repeat(GRAY[:, :, None], 3, axis=2)


@pytest.mark.parametrize("name, write, expected", [
    ("x.png", lambda p: iio.imwrite(p, RGB), RGB),
    ("x.bmp", lambda p: iio.imwrite(p, RGB), RGB),
    ("x.tif", lambda p: iio.imwrite(p, RGB), RGB),
    ("x16.tiff", lambda p: iio.imwrite(p, RGB.astype(np.uint16) * 257), RGB),   # 16-bit colour
    ("x.webp", lambda p: iio.imwrite(p, RGB, lossless=True), RGB),
    ("lossy.webp", lambda p: iio.imwrite(p, RGB, quality=60), _decoded),
    ("x.jpg", lambda p: iio.imwrite(p, RGB, quality=90), _decoded),
    ("x.gif", lambda p: Image.fromarray(RGB).save(p), _decoded),                 # 256 colours
    ("rgba.png", lambda p: iio.imwrite(p, np.dstack([RGB, np.full((24, 30), 7, np.uint8)])), RGB),
    ("palette.png", lambda p: Image.fromarray(RGB).quantize(12).save(p), _decoded),
    ("palette-alpha.png", lambda p: Image.fromarray(RGB).quantize(12).save(p, transparency=0),
     _decoded),
    ("gray.png", lambda p: iio.imwrite(p, GRAY), GRAY_RGB),
    ("gray-alpha.png", lambda p: Image.fromarray(GRAY).convert("LA").save(p), GRAY_RGB),
    ("gray16.png", lambda p: iio.imwrite(p, GRAY.astype(np.uint16) * 257), GRAY_RGB),
    ("bilevel.png", lambda p: Image.fromarray(GRAY).convert("1").save(p), _decoded),
    ("cmyk.jpg", lambda p: Image.fromarray(RGB).convert("CMYK").save(p, quality=90), _decoded),
    ("cmyk.tif", lambda p: Image.fromarray(RGB).convert("CMYK").save(p), _decoded),
])
def test_every_image_format_reads_as_rgb(tmp_path, name, write, expected):
    if name.endswith(".webp"):
        from PIL import features
        if not features.check("webp"):
            pytest.skip("Pillow without WebP")
    path = tmp_path / name
    write(path)
    if callable(expected):
        expected = expected(path)
    image = read_image(path)
    assert image.shape == (1, 3, 24, 30) and image.dtype == torch.float32
    assert torch.allclose(image, _expected(expected), atol=1e-6)


def test_an_animated_gif_is_read_as_its_first_frame(tmp_path):
    """The README: GIF (first frame). Three frames of other pictures; what is read is the
    first, as Pillow decodes that frame on its own, not a later frame nor a blend."""
    frames = [RGB, 255 - RGB, np.full_like(RGB, 90)]
    path = tmp_path / "moving.gif"
    Image.fromarray(frames[0]).save(path, save_all=True, duration=100, loop=0,
                                    append_images=[Image.fromarray(f) for f in frames[1:]])
    with Image.open(path) as gif:
        assert gif.n_frames == 3
        decoded = []
        for i in range(3):
            gif.seek(i)
            decoded.append(np.asarray(gif.convert("RGB")))
    assert not np.array_equal(decoded[0], decoded[1]) and not np.array_equal(decoded[0],
                                                                             decoded[2])
    image = read_image(path)
    assert image.shape == (1, 3, 24, 30)
    assert torch.allclose(image, _expected(decoded[0]), atol=1e-6)


def test_16_bit_rgb_png_is_read_to_within_one_8_bit_level(tmp_path):
    """Pillow decodes 16-bit colour PNGs to their high byte (as the reference's reader)."""
    pixels = RGB.astype(np.uint16) * 257 + np.arange(30, dtype=np.uint16)[None, :, None] * 5
    image = read_image(_png16(tmp_path / "x.png", pixels))
    exact = torch.from_numpy(pixels / 65535).permute(2, 0, 1)[None].float() * 2 - 1
    assert image.shape == (1, 3, 24, 30)
    assert (image - exact).abs().max() <= 2 / 255 + 1e-6


@pytest.mark.parametrize("orientation, turn", [(3, lambda a: np.rot90(a, 2)),
                                               (6, lambda a: np.rot90(a, -1)),
                                               (8, lambda a: np.rot90(a, 1))])
def test_exif_orientation_is_respected(tmp_path, orientation, turn):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "phone photo.jpg"
    Image.fromarray(RGB).save(path, exif=exif, quality=95)
    stored = np.asarray(Image.open(path).convert("RGB"))           # as the bytes lie
    got = read_image(path)
    assert torch.equal(got, _expected(np.ascontiguousarray(turn(stored))))


@pytest.mark.parametrize("make, words", [
    (lambda d: (d / "x.png").write_bytes(b"definitely not a png"), ["cannot read", "x.png"]),
    (lambda d: (d / "x.png").write_bytes(os.urandom(3000)), ["cannot read", "x.png"]),
    (lambda d: (d / "x.png").write_bytes(b""), ["cannot read", "x.png"]),
    (lambda d: (d / "x.png").write_bytes(iio.imwrite("<bytes>", RGB, extension=".png")[:200]),
     ["cannot read", "x.png"]),
    (lambda d: (d / "x.png").mkdir(), ["x.png", "is a folder"]),
    (lambda d: None, ["image not found", "x.png"]),
    (lambda d: write_image(d / "x.png", smooth_image(12, 40)), ["at least", "min_size"]),
    (lambda d: write_image(d / "x.png", smooth_image(30, 600)), ["aspect ratio"]),
], ids=["text", "random-bytes", "empty", "truncated", "folder", "missing", "tiny",
        "extreme-aspect"])
def test_bad_image_files_are_one_line_and_write_nothing(zygote, tmp_path, make, words):
    (tmp_path / "Input").mkdir()
    make(tmp_path / "Input")
    proc = zygote.run("main_train.py", "--input_dir", "Input", "--input_name", "x.png",
                      "--niter", "1", "--quiet", "--device", "cpu", cwd=tmp_path)
    assert_one_line_error(proc, *words)
    assert not (tmp_path / "TrainedModels").exists() and not (tmp_path / "Output").exists()


def test_names_with_spaces_and_non_ascii_absolute_and_relative(zygote, tmp_path):
    name = "my café 写真.png"
    write_image(tmp_path / "In put" / name, smooth_image(24, 28))
    options = ["--max_size", "28", "--min_size", "20", "--niter", "2", "--manualSeed", "1",
               "--quiet", "--device", "cpu", "--num_samples", "2"]
    proc = zygote.run("main_train.py", "--input_name", tmp_path / "In put" / name, *options,
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "TrainedModels" / "my café 写真" / "scale_factor=0.750000,alpha=10"
    assert load_model(folder).num_scales == 3
    samples = tmp_path / "Output" / "RandomSamples" / "my café 写真" / "gen_start_scale=0"
    assert sorted(p.name for p in samples.iterdir()) == ["0.png", "1.png"]
    proc = zygote.run("main_train.py", "--input_dir", "In put", "--input_name", name, *options,
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "already trained" in proc.stdout


def test_huge_photo_is_downscaled_within_bounded_memory(zygote, tmp_path):
    """A 6000 x 4000 JPEG trains at --max_size 32: the process grows by less than 1 GB while
    reading and resizing it (one uint8 and one float32 copy, resized a channel at a time; a
    float64 read alone would take 1.7 GB)."""
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux's /proc to measure the peak memory")
    y, x = np.ogrid[0:4000, 0:6000]
    pixels = np.empty((4000, 6000, 3), np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = x % 256, y % 256, (x // 7 + y // 5) % 256
    iio.imwrite(tmp_path / "huge.jpg", pixels, quality=80)
    del pixels
    peak = tmp_path / "peak.json"
    proc = zygote.run("main_train.py", "--input_dir", ".", "--input_name", "huge.jpg",
                      "--max_size", "32", "--min_size", "20", "--niter", "1", "--quiet",
                      "--device", "cpu", "--num_samples", "0", cwd=tmp_path, peak=peak)
    assert proc.returncode == 0, proc.stderr
    model = load_model(tmp_path / "TrainedModels" / "huge" / "scale_factor=0.750000,alpha=10")
    assert model.reals[-1].shape == (1, 3, 22, 32)
    memory = json.loads(peak.read_text())
    grown_mb = (memory["peak_kb"] - memory["start_kb"]) / 1024
    print(f"\n6000 x 4000 JPEG: peak memory growth {grown_mb:.0f} MB")
    assert grown_mb < 1000, grown_mb


# ---- option values ----------------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["--niter", "0"], ["--niter", "positive"]),
    (["--niter", "-3"], ["--niter", "positive"]),
    (["--niter", "ten"], ["--niter", "expected a positive integer"]),
    (["--scale_factor", "0"], ["--scale_factor", "between 0 and 1"]),
    (["--scale_factor", "1"], ["--scale_factor", "between 0 and 1"]),
    (["--scale_factor", "1.5"], ["--scale_factor", "between 0 and 1"]),
    (["--min_size", "40", "--max_size", "30"], ["--min_size", "must not exceed"]),
    (["--max_size", "0"], ["--max_size", "positive"]),
    (["--num_samples", "-1"], ["--num_samples", ">= 0"]),
    (["--lr_g", "-1"], ["--lr_g", "positive"]),
    (["--device", "tpu"], ["--device", "invalid choice"]),
    (["--device", "cuda"], ["--device cuda", "not available"]),
])
def test_bad_option_values_are_one_line_from_argument_parsing(zygote, tmp_path, args, words):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = zygote.run("main_train.py", "--input_name", "tiny.png", *args, cwd=tmp_path,
                      env={"CUDA_VISIBLE_DEVICES": ""})
    assert_one_line_error(proc, *words)
    assert proc.returncode == 2 and "main_train.py: error:" in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("scale", ["4", "-1", "99"])
def test_start_scale_out_of_range_is_one_line(zygote, baseline, tmp_path, scale):
    proc = zygote.run("random_samples.py", "--model_dir", baseline[0], "--gen_start_scale",
                      scale, "--num_samples", "2", "--device", "cpu", cwd=tmp_path)
    assert_one_line_error(proc, "gen_start_scale", "between 0 and 3")
