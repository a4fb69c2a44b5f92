"""Shared test fixtures: the reference data folder, tiny images, running the scripts, a port
handed to a server without a gap; hypothesis's settings for CI."""
import contextlib
import importlib
import io
import os
import runpy
import signal
import socket
import subprocess
import sys
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings as hypothesis_settings

# Tiny test images gain nothing from several threads, and threads fight with each other and
# with the scripts the tests start: one thread per process.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SINGAN_SHARED", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference"


# CI (CI=true, as .ci/run sets it) draws the same hypothesis examples on every run, from the
# test's own source (derandomize), and keeps no example database between runs: a failure
# there is a failure of the code, never of the draw. Elsewhere hypothesis explores afresh.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                                     print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

# `python -m pytest -q` runs everything; `-m "not slow"` leaves out the tests that train a
# model (a check in about 2 minutes); `-m gpu` runs the CUDA tests only (skipped without CUDA).


# The test files that take longest (seconds in one process on 2 cores: cluster 115, many 140,
# reliability 95, train 95, apps 94, quality_vs_time 83, studio_browser 62, studio 56, studio_accounts 50,
# package 30, notebook 25, design 36, api 27),
# run first: pytest-xdist hands whole files to its workers in collection order, so the long
# ones start early and the two workers end together instead of one waiting for the other.
LONGEST_FIRST = ("test_cluster.py", "test_many.py", "test_reliability.py", "test_long_runs.py",
                 "test_train.py", "test_apps.py",
                 "test_quality_vs_time.py", "test_studio_browser.py", "test_studio.py",
                 "test_studio_accounts.py", "test_package.py", "test_notebook.py",
                 "test_design.py", "test_api.py")


def pytest_collection_modifyitems(items):
    """Longest files first (LONGEST_FIRST), the rest after them; within a file, its order."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))   # a stable sort


def optional(module: str):
    """Import an optional dependency of a test module (gradio, ray, playwright): skipped where it
    is not installed, except in CI (CI=true), which installs every optional requirement; there
    a missing one is an error, so those tests never pass by skipping."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


@pytest.fixture(scope="session")
def reference():
    """../shared/reference, or skip the test where it is absent."""
    if not REFERENCE.is_dir():
        pytest.skip("../shared/reference is not present")
    return REFERENCE


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A small colourful uint8 test image with structure at several scales."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(7 * x + 3 * y), np.cos(5 * y - 2 * x), np.sin(11 * x * y)], -1)
    image = 0.5 + 0.35 * base + 0.08 * rng.standard_normal((h, w, 3))
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def photo(name: str, h: int, w: int) -> np.ndarray:
    """One of the example photos (Input/Images/<name>) made h x w by Pillow's Lanczos resize:
    a natural image of a few colours for a tiny model to learn quickly (uint8 [h, w, 3])."""
    from PIL import Image
    with Image.open(ROOT / "Input" / "Images" / name) as image:
        return np.asarray(image.convert("RGB").resize((w, h), Image.LANCZOS)).copy()


def write_image(path: Path, pixels: np.ndarray) -> Path:
    import imageio.v3 as iio
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, pixels)
    return path


def temporaries_made(monkeypatch, module) -> list:
    """The paths of the temporaries `module` makes with tempfile.mkstemp from now on (the
    real mkstemp still makes them): a list that fills as they are made."""
    made, real = [], module.tempfile.mkstemp

    def spy(*args, **kwargs):
        fd, name = real(*args, **kwargs)
        made.append(Path(name))
        return fd, name
    monkeypatch.setattr(module.tempfile, "mkstemp", spy)
    return made


def ctrl_c_as_in_a_terminal() -> None:
    """Let SIGINT interrupt this process (KeyboardInterrupt) as it would in a terminal, even
    where the suite itself runs with SIGINT ignored, as a shell starts a background job: a
    forked child inherits that, and so does a script started from it. The preexec_fn of a
    script that a test sends Ctrl-C (test_reliability's zygote, a separate interpreter, does
    the same for its children)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def process_stat(pid: int) -> list:
    """The fields of Linux's /proc/PID/stat after the command's name (the state first: stat's
    third field); [] where there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return stat[stat.rindex(")") + 2:].split()


def process_ended(pid: int) -> bool:
    """Whether the process has exited: gone, or a zombie until its parent reaps it."""
    fields = process_stat(pid)
    return not fields or fields[0] in "ZX"


def process_parents() -> dict:
    """{pid: parent pid} of every process (Linux's /proc; empty elsewhere)."""
    parents = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        fields = process_stat(int(entry)) if entry.isdigit() else []
        if fields:
            parents[int(entry)] = int(fields[1])
    return parents


def descendants(root: int) -> set:
    """root and every process below it."""
    parents, found = process_parents(), {root}
    while True:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        if not more:
            return found
        found |= more


def end_process_tree(proc: subprocess.Popen) -> None:
    """Kill a script a test started, if it still runs, and every process below it (the Ray
    runtime it started: its servers, its agents, its workers), then reap it. For a test's
    `finally`: a test that fails midway leaves nothing running behind it, no training of
    thousands of iterations and no Ray agent holding its fixed port, to slow down or block the
    tests after it (CI once ran out of time so). The tree is read before the kill: once the
    script is gone, its runtime's processes belong to init."""
    if proc.poll() is None:
        for pid in sorted(descendants(proc.pid) - {os.getpid()}):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=60)


@contextlib.contextmanager
def reserved_port(host: str = "127.0.0.1"):
    """A TCP port for a server the caller starts, handed over without a gap: yields a port
    the kernel chose (bind to port 0) while a socket of this process stays bound to it, with
    SO_REUSEADDR and never listening, until the block ends. Meanwhile no other bind to port 0
    and no outgoing connection is given that port, and a plain bind to it fails; a server
    that binds it with SO_REUSEADDR (uvicorn, hence Gradio, does) binds and listens on it.
    (Closing the socket first and handing the number on, as a `free_port()` does, leaves a
    moment in which another test's server or client can take it.)"""
    holder = socket.socket()
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind((host, 0))
        yield holder.getsockname()[1]
    finally:
        holder.close()


def run_script(script: str, *args, cwd, timeout=300):
    """Run one of the top-level scripts as a user would; returns the CompletedProcess."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)


def assert_one_line_error(proc, *words):
    """Failed with a non-zero exit, no traceback, and a clear stderr line with the words."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])


def run_here(script, *args, cwd, monkeypatch):
    """Run a top-level script as __main__ in this process (no interpreter start-up cost, about
    4 s on two cores; for checks that stop before training or generating): an object with
    returncode, stdout and stderr."""
    monkeypatch.chdir(cwd)
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.setattr(sys, "argv", [script, *map(str, args)])
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(str(ROOT / script), run_name="__main__")
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
