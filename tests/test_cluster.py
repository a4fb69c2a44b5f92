"""A real Ray cluster of two nodes on this machine, sharing no storage with the driver.

Everything runs in a network namespace of its own that holds only the loopback interface
(so Ray's nodes are at 127.0.0.1 and nothing can listen beyond it) and in a PID namespace
whose first process the test starts: killing it (by its pid, at the end, even when a test
fails) ends every process of the cluster. The head node (1 CPU) runs beside the driver; the
second node (1 CPU) runs in a mount namespace of its own where an empty tmpfs lies over the
project folder, over the driver's working folder (its TrainedModels/ and Output/) and over
the head's Ray folder, so that a task there that touched a driver path, or imported code
that did not travel with the job, would fail. Token authentication is on.

Tested: four images train on both nodes (the `node` column) into the driver's folders,
equal to local trainings; a second run whose second node's raylet is killed (kill -9) in
the middle of a stage ends with the same models, the lost tasks continuing on the head from
the driver's copy of their running stage; a driver without the token is refused in one line.
"""
import contextlib
import csv
import importlib.util
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT, optional, smooth_image, write_image

if importlib.util.find_spec("ray") is None:
    optional("ray")   # skipped here, an error in CI

from singan import train_model                                         # noqa: E402
from singan.checkpoint import RUNNING_NAME, read_checkpoint            # noqa: E402
from singan.hparams import SinGANConfig                                # noqa: E402

pytestmark = pytest.mark.slow

STEMS = ("a", "b", "c", "d")
CONFIG = SinGANConfig(max_size=28, min_size=24, niter=40)
ARGS = ("--max_size", "28", "--min_size", "24", "--niter", "40", "--manualSeed", "1",
        "--num_samples", "2", "--cpus_per_model", "1", "--device", "cpu", "--quiet")
PORT = 6379            # the namespace's own loopback: every port is free there

# Bring the loopback interface of the new network namespace up (SIOCGIFFLAGS, SIOCSIFFLAGS
# |= IFF_UP; no `ip` command needed), say so, then wait to be killed.
HOLDER = """
import fcntl, signal, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH", b"lo", 0))[:18])[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))
print("up", flush=True)
while True:
    signal.pause()
"""


def _why_no_namespaces() -> str:
    if not shutil.which("unshare") or not shutil.which("nsenter"):
        return "unshare and nsenter (util-linux) are not installed"
    if os.geteuid() != 0:
        return "making namespaces and mounts needs root"
    if Path(sys.prefix).resolve().is_relative_to(ROOT):
        return "Python lives inside the project folder, which the second node must not see"
    probe = subprocess.run(["unshare", "--net", "--pid", "--fork", "--mount-proc", "unshare",
                            "--mount", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs tmpfs /mnt"], capture_output=True, text=True)
    if probe.returncode:
        return f"namespaces cannot be made here: {probe.stderr.strip()[:200]}"
    return ""


class LoopbackCluster:
    """The namespaces, the two nodes and the commands run in them."""

    def __init__(self, work: Path):
        self.work, self.token = work, secrets.token_hex(32)
        self.ray_dir = Path(os.path.realpath(os.environ.get("TMPDIR", "/tmp"))) / \
            f"sgc-{secrets.token_hex(3)}"   # short: Ray's socket paths must stay < 108 bytes
        self.env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token,
                        RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(ROOT),
                        OMP_NUM_THREADS="1", RAY_NUM_REDIS_GET_RETRIES="5")
        self.env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        self.holder = subprocess.Popen(
            ["unshare", "--net", "--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL",
             sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True)
        assert self.holder.stdout.readline().strip() == "up"
        self.pid = self._child(self.holder.pid)      # the namespace's first process
        self.node2 = None

    @staticmethod
    def _child(pid: int) -> int:
        for _ in range(100):
            for entry in Path("/proc").iterdir():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    if entry.name.isdigit() and int(
                            (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                        return int(entry.name)
            time.sleep(0.05)
        raise AssertionError(f"no child of {pid}")

    def inside(self, *command, cwd=None) -> list:
        """A command run in the cluster's network, PID and mount namespaces, in `cwd`
        (entered there: a working folder opened before, as nsenter --wd does, stays one of
        the other mount namespace, and a rename beside a relative path fails with EXDEV)."""
        enter = ["nsenter", "-t", str(self.pid), "--net", "--pid", "--mount"]
        if cwd is None:
            return [*enter, *command]
        return [*enter, "sh", "-c", 'cd "$0" && exec "$@"', str(cwd), *command]

    def run(self, *command, cwd=None, env=None, timeout=300) -> subprocess.CompletedProcess:
        return subprocess.run(self.inside(*command), cwd=cwd, env=env or self.env,
                              capture_output=True, text=True, timeout=timeout)

    def start(self, hidden) -> None:
        """The head (1 CPU), then the second node (1 CPU) with tmpfs over `hidden`."""
        head = self.run("ray", "start", "--head", f"--port={PORT}", "--num-cpus=1",
                        "--include-dashboard=false", "--disable-usage-stats",
                        f"--temp-dir={self.ray_dir}", timeout=120)
        assert head.returncode == 0, head.stdout + head.stderr
        mounts = "; ".join(f"mount -t tmpfs tmpfs '{path}'"
                           for path in [*hidden, self.ray_dir, "/tmp/ray"]
                           if Path(path).is_dir() or path == "/tmp/ray")
        self.log2 = open(self.work / "node2.log", "w")
        Path("/tmp/ray").mkdir(exist_ok=True)
        self.node2 = subprocess.Popen(
            self.inside("unshare", "--mount", "--propagation", "private", "sh", "-c",
                        f"{mounts} && exec ray start --address=127.0.0.1:{PORT} "
                        "--num-cpus=1 --block --disable-usage-stats"),
            env=self.env, stdout=self.log2, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = self.run("ray", "status", f"--address=127.0.0.1:{PORT}", timeout=60)
            if status.stdout.count(" node_") >= 2 and "2.0 CPU" in status.stdout:
                return
            assert self.node2.poll() is None, (self.work / "node2.log").read_text()[-3000:]
            time.sleep(1)
        raise AssertionError("the second node never joined: "
                             + (self.work / "node2.log").read_text()[-3000:])

    def kill_node2_raylet(self) -> int:
        """kill -9 the second node's raylet (the raylet in a mount namespace of its own)."""
        ours = os.readlink(f"/proc/{self.pid}/ns/mnt")
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                command = (entry / "cmdline").read_bytes().split(b"\0")[0]
                if entry.name.isdigit() and command.endswith(b"raylet/raylet") \
                        and os.readlink(entry / "ns" / "mnt") != ours:
                    os.kill(int(entry.name), signal.SIGKILL)
                    return int(entry.name)
        raise AssertionError("no raylet of the second node")

    def stop(self) -> None:
        """Kill the namespace's first process by its pid: the kernel ends every process of
        the PID namespace with it (the nodes, their workers, the drivers)."""
        for proc in (self.holder, self.node2):
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.kill()
                proc.wait(timeout=30)
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        shutil.rmtree(self.ray_dir, ignore_errors=True)
        if getattr(self, "log2", None):
            self.log2.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = _why_no_namespaces()
    if why:
        pytest.skip(why)
    work = tmp_path_factory.mktemp("cluster")
    driver_dir = work / "driver"
    (driver_dir / "imgs").mkdir(parents=True)
    for i, stem in enumerate(STEMS):
        write_image(driver_dir / "imgs" / f"{stem}.png", smooth_image(28, 28, seed=i))
    cluster = LoopbackCluster(work)
    try:
        cluster.start(hidden=[ROOT, driver_dir])
        yield cluster, driver_dir
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def local_models(cluster, tmp_path_factory):
    """The four models trained here, one by one, without Ray (one thread, as a task)."""
    _, driver_dir = cluster
    started = time.perf_counter()
    root = tmp_path_factory.mktemp("local")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {stem: read_checkpoint(train_model(
                    (driver_dir / "imgs" / f"{stem}.png").resolve(), CONFIG, device="cpu",
                    seed=1, root=root, show_progress=False, log=lambda line: None).folder
                    / "model.pth") for stem in STEMS}
    finally:
        torch.set_num_threads(threads)
        print(f"local trainings: {time.perf_counter() - started:.1f} s")


def train_on_cluster(cluster, out: Path, *extra, env=None, popen=False):
    command = cluster.inside(sys.executable, str(ROOT / "main_train.py"), "--input_dir",
                             "../imgs", *ARGS, "--ray_address", f"127.0.0.1:{PORT}", *extra,
                             cwd=out)
    out.mkdir(exist_ok=True)
    if popen:
        return subprocess.Popen(command, env=env or cluster.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, env=env or cluster.env, capture_output=True,
                          text=True, timeout=600)


def rows_of(out: Path) -> dict:
    with open(out / "Output" / "imgs_summary.csv", newline="") as f:
        return {row["image"]: row for row in csv.DictReader(f)}


def assert_equal_models(out: Path, local: dict) -> None:
    """Every model complete in the driver's folder, its weights, noise maps and pyramid equal
    to the local training's, bit for bit; its samples in the driver's Output/."""
    for stem in STEMS:
        folder = out / "TrainedModels" / stem / CONFIG.folder_name()
        ours, theirs = read_checkpoint(folder / "model.pth"), local[stem]
        assert not (folder / RUNNING_NAME).exists()
        assert len(ours["scales"]) == len(theirs["scales"]) == 3
        assert ours["image"]["path"] == theirs["image"]["path"]   # the driver's image
        for k, (mine, other) in enumerate(zip(ours["scales"], theirs["scales"])):
            assert mine.keys() == other.keys()
            for key in mine:
                if isinstance(mine[key], torch.Tensor):
                    assert torch.equal(mine[key], other[key]), (stem, k, key)
                elif isinstance(mine[key], dict):
                    for name, value in mine[key].items():
                        if isinstance(value, torch.Tensor):
                            assert torch.equal(value, other[key][name]), (stem, k, key, name)
        for k in range(3):
            assert (folder / str(k) / "netG.pth").is_file()
        samples = out / "Output" / "RandomSamples" / stem / "gen_start_scale=0"
        assert sorted(p.name for p in samples.iterdir()) == ["0.png", "1.png"]


def test_four_images_train_on_both_nodes_into_the_drivers_folders(cluster, local_models):
    lc, driver_dir = cluster
    out = driver_dir / "run1"
    proc = train_on_cluster(lc, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = rows_of(out)
    assert sorted(rows) == [f"{stem}.png" for stem in STEMS]
    assert {row["status"] for row in rows.values()} == {"trained"}, rows
    nodes = {row["node"] for row in rows.values()}
    assert len(nodes) == 2 and all(re.fullmatch(r"[0-9a-f]{56}", node) for node in nodes)
    assert_equal_models(out, local_models)
    # nothing the tasks made is left in the node's temporary folders, and nothing else was
    # written beside the driver's folders
    assert sorted(p.name for p in out.iterdir()) == ["Output", "TrainedModels"]


def test_a_lost_node_costs_at_most_the_checkpoint_interval(cluster, local_models):
    lc, driver_dir = cluster
    out = driver_dir / "run2"
    proc = train_on_cluster(lc, out, "--checkpoint_minutes", "0.005", popen=True)
    try:
        # both nodes are mid-stage once two images have a running stage saved at the driver
        deadline, killed = time.monotonic() + 300, None
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((out / "TrainedModels").glob(f"*/*/{RUNNING_NAME}"))) >= 2:
                killed = lc.kill_node2_raylet()
                break
            time.sleep(0.05)
        assert killed, "the tasks never were mid-stage on both nodes at once"
        output, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    again = re.findall(r"^(\w): its node was lost; running it again \(try 2 of 4\) from the "
                       r"driver's copy \(stage (\d) at iteration (\d+) of 40\)", output, re.M)
    assert again, output
    stem, stage, iteration = again[0]
    assert int(iteration) > 0
    assert f"{stem}: resuming scale {stage} at iteration {iteration} of 40" in output, output
    rows = rows_of(out)
    assert {row["status"] for row in rows.values()} == {"trained"}, rows
    head = rows[f"{stem}.png"]["node"]                 # the retried image ended on the head
    assert sum(row["node"] == head for row in rows.values()) >= 3
    assert_equal_models(out, local_models)


def test_a_driver_without_the_clusters_token_is_refused_in_one_line(cluster):
    lc, driver_dir = cluster
    env = dict(lc.env)
    env.pop("RAY_AUTH_TOKEN")
    proc = train_on_cluster(lc, driver_dir / "run3", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: the Ray cluster at 127.0.0.1:6379 refused this run"), \
        proc.stderr
    assert "RAY_AUTH_TOKEN is not set" in lines[-1] and "Traceback" not in proc.stderr
    assert not (driver_dir / "run3" / "TrainedModels").exists()
