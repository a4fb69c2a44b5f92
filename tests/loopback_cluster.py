"""A real Ray cluster of two nodes on this machine (tests/test_cluster.py, and
benchmarks/bench_cluster.py), sharing no storage with its driver.

Everything runs in a network namespace of its own that holds only the loopback interface (so
Ray's nodes are at 127.0.0.1 and nothing listens beyond it) and in a PID namespace whose first
process is started here: killing it, by its pid, ends every process of the cluster. The head
node runs beside the driver; the second node runs in a mount namespace of its own where an
empty tmpfs lies over the folders it must not see. Token authentication is on. Needs root
and util-linux's unshare and nsenter.
"""
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

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


def why_no_namespaces() -> str:
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
                        OMP_NUM_THREADS="1", RAY_NUM_REDIS_GET_RETRIES="5",
                        # tasks at full priority, as the local runtime's (README): at Ray's
                        # niceness 15 the other test worker's trainings would starve them
                        RAY_worker_niceness="0")
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

    def start(self, hidden, second: bool = True) -> None:
        """The head (1 CPU), then (`second`) the second node (1 CPU) with tmpfs over
        `hidden`."""
        self.start_head()
        if second:
            self.start_second(hidden)

    def start_head(self) -> None:
        head = self.run("ray", "start", "--head", f"--port={PORT}", "--num-cpus=1",
                        "--include-dashboard=false", "--disable-usage-stats",
                        f"--temp-dir={self.ray_dir}", timeout=120)
        assert head.returncode == 0, head.stdout + head.stderr

    def start_second(self, hidden) -> None:
        """The second node (1 CPU), tmpfs over `hidden`, the head's Ray folder and /tmp/ray."""
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
        """kill -9 the second node's raylet: the raylet in the cluster's PID namespace that
        is in a mount namespace of its own. Never a raylet outside the cluster: the other test
        worker's local runtime (test_many's) is in another mount namespace too, and killing
        its raylet left that worker's folder run waiting for ever."""
        ours = os.readlink(f"/proc/{self.pid}/ns/mnt")
        cluster = os.readlink(f"/proc/{self.pid}/ns/pid")
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                command = (entry / "cmdline").read_bytes().split(b"\0")[0]
                if entry.name.isdigit() and command.endswith(b"raylet/raylet") \
                        and os.readlink(entry / "ns" / "pid") == cluster \
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


# ---- a driver whose tasks misbehave (test_cluster.py) ------------------------------------------
#
# `python tests/loopback_cluster.py hostile OUT IMAGES ADDRESS`, run inside the cluster's
# namespaces: one folder run whose tasks send the driver what a buggy, confused or stale task
# might (each image its own kind), through the run's real Board and tickets; prints its rows
# as JSON on its last line. Its functions are this script's own (__main__), so Ray sends them
# by value: the second node has no copy of tests/.

HOSTILE_KINDS = {
    "foreign": "files for another image: a ticket it was not given (the old name of one)",
    "outside": "a path outside the image's model folder",
    "drop": "None for the finished model.pth (remove it)",
    "replace": "a valid but shorter model.pth over the finished one",
    "bytes": "more than the run's byte cap per image, in 200 small files",
    "area": "model files sent with its output folder's ticket",
}
HOSTILE_CAP = 64 * 1024      # the driver's byte cap per image in this run


def hostile_task(kind: str, files: dict, channel) -> dict:
    """One misbehaving try: sends its kind's batch straight to the Board (as a task that
    bypassed Link would), waits until the Board holds it, returns a row."""
    import io
    import tempfile
    import ray
    import torch
    from singan.checkpoint import save_checkpoint
    areas = dict(channel.areas)
    board = channel.board
    if kind == "foreign":
        sent = board.files.remote("b", [("model.pth", b"x")], "")
    elif kind == "outside":
        sent = board.files.remote(areas["model"], [("../../b/x/model.pth", b"x")], "")
    elif kind == "drop":
        sent = board.files.remote(areas["model"], [("model.pth", None)], "")
    elif kind == "replace":
        ckpt = torch.load(io.BytesIO(files["model.pth"]), weights_only=True)
        ckpt["scales"] = ckpt["scales"][:-1]
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(f"{folder}/model.pth", ckpt)       # its checksum right
            data = Path(folder, "model.pth").read_bytes()
        sent = board.files.remote(areas["model"], [("model.pth", data)], "")
    elif kind == "bytes":
        sent = board.files.remote(areas["model"], [(f"0/extra{n}.txt", bytes(1024))
                                                   for n in range(200)], "")
    else:   # "area"
        sent = board.files.remote(areas["output"], [("model.pth", b"x")], "")
    ray.get(sent)
    return {"status": "sent", "node": ray.get_runtime_context().get_node_id()}


def hostile_run(out: str, images_dir: str, address: str) -> None:
    import json
    import ray
    from singan import SinGANConfig, train_model
    from singan.cluster import folder_copy, many
    from singan.cluster.settings import Cluster
    from singan.cluster.ray_runner import ray_runtime, run_tasks
    config = SinGANConfig(max_size=24, min_size=20, niter=2)
    images = sorted(Path(images_dir).glob("*.png"))
    for image in images:              # every image with a finished model of the driver's own
        train_model(image, config, device="cpu", root=Path(out) / "TrainedModels",
                    show_progress=False, log=lambda line: None)
    folder_copy.MAX_IMAGE_BYTES = HOSTILE_CAP
    folders = many._Folders(config, Path(out) / "TrainedModels", Path(out) / "Output")

    def kwargs_for(image: Path, first: bool) -> dict:
        return {"kind": image.stem, "files": folders.files(image, many.MODEL_FILES)}

    before = digests(Path(out))
    with ray_runtime(Cluster(address=address)):
        run = run_tasks(ray, hostile_task, images, kwargs_for, folders.receive,
                        Cluster(address=address), 0, many.TRAIN_COLUMNS, "hostile", False,
                        areas=(many.MODEL, many.OUTPUT))
    print(json.dumps({"rows": run.rows, "before": before, "after": digests(Path(out))}))


def digests(folder: Path) -> dict:
    """sha256 of every file under `folder`, by relative path."""
    import hashlib
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


if __name__ == "__main__" and sys.argv[1:2] == ["hostile"]:
    sys.path.insert(0, str(ROOT))
    hostile_run(*sys.argv[2:5])
