"""The Ray plumbing of a run over a folder (singan.apps.many): the runtime, one task per image,
the progress bar over them, Ctrl-C. Knows nothing of models: a task is any function that takes
an image path and returns one row of the run's table.

Ray's local runtime, started here, listens on the loopback address only (its node address is
127.0.0.1, so that the GCS, the raylet, the object manager, the agents and every worker bind
there) and requires a token that is made for the run and handed to the runtime's processes by
their environment only. A cluster (Cluster.address) is the cluster's own: see the README,
"Many images (Ray)".
"""
import contextlib
import ipaddress
import logging
import math
import os
import secrets
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence

from ..errors import SinGANError
from ..guards import Terminated, sigterm_received
from .cluster import DEFAULT_GPUS_PER_MODEL, Cluster

STOP_POLL_SECONDS = 0.2    # how often a task looks for the run's stop file
TOKEN_BYTES = 32           # the local runtime's authentication token: 256 random bits


def _ray():
    try:
        import ray
    except ImportError:
        raise SinGANError("--input_dir without --input_name runs on Ray, which is not "
                          "installed: pip install -r requirements-ray.txt") from None
    return ray


# ---- the runtime --------------------------------------------------------------------------------

@contextlib.contextmanager
def _environment(values: Dict[str, str]) -> Iterator[None]:
    """os.environ with `values` set (inherited by the processes started meanwhile), restored
    afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def local_runtime_environment() -> Dict[str, str]:
    """What a local runtime's processes are started with (all of them inherit the starting
    process's environment):
    - RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: Ray's switch for a local-only runtime (its default on
      Windows and macOS). Without it, Ray on Linux replaces a node address of 127.0.0.1 by the
      machine's network address, and its servers listen on every interface;
    - RAY_AUTH_MODE=token with a new random RAY_AUTH_TOKEN (Ray >= 2.52): every request to the
      runtime must carry it. Given in the environment, Ray writes no token file
      (~/.ray/auth_token, which it would otherwise create readable by all);
    - RAY_USAGE_STATS_ENABLED=0: no usage report, no prompt."""
    return {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(TOKEN_BYTES), "RAY_USAGE_STATS_ENABLED": "0"}


def _is_loopback(host: str) -> bool:
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return host == "localhost"


@contextlib.contextmanager
def ray_runtime(cluster: Cluster):
    """Ray, connected: to cluster.address, or to a local runtime started in this process on the
    loopback address with a token of its own (no dashboard), shut down afterwards. A runtime
    the caller already started is used as it is."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        yield ray
        return
    if cluster.address:
        ray = _ray()
        with _connected(ray, cluster):
            yield ray
        return
    with _environment(local_runtime_environment()):
        ray = _ray()     # where first imported here, Ray reads the local-only switch now
        with _connected(ray, cluster):
            _check_loopback(ray)
            yield ray


def _check_loopback(ray) -> None:
    """Refuse a local runtime whose node address is not a loopback one: where Ray was imported
    before ray_runtime, it read RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER then."""
    address = ray.util.get_node_ip_address()
    if not _is_loopback(address):
        raise SinGANError(f"Ray's local runtime came up on {address}, not on the loopback "
                          "address: Ray was imported before this run; set "
                          "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before importing it")


@contextlib.contextmanager
def _connected(ray, cluster: Cluster):
    # A runtime started without RAY_AUTH_MODE turns token authentication on and warns that it
    # did: a warning about Ray's defaults, not this run; silenced.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR)
    quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
    on_sigterm = signal.getsignal(signal.SIGTERM)   # Ray's init installs its own: ours back
    try:
        if cluster.address:
            ray.init(address=cluster.address, **quiet)
        else:
            ray.init(address="local", num_cpus=cluster.num_cpus, include_dashboard=False,
                     _node_ip_address="127.0.0.1", **quiet)
    except (ConnectionError, ValueError, RuntimeError) as err:
        where = f"the Ray cluster at {cluster.address}" if cluster.address else "Ray locally"
        raise SinGANError(f"cannot start {where}: {str(err).splitlines()[0]}") from None
    if callable(on_sigterm) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)   # SIGTERM stops the tasks as Ctrl-C does
    try:
        yield
    finally:
        ray.shutdown()


def gpus_per_model(ray, cluster: Cluster, device: str) -> float:
    """cluster.gpus_per_model, or: none on a cluster without GPUs or with --device cpu."""
    if cluster.gpus_per_model is not None:
        return cluster.gpus_per_model
    if device == "cpu" or not ray.cluster_resources().get("GPU", 0):
        return 0.0
    return DEFAULT_GPUS_PER_MODEL


def threads_per_model(cluster: Cluster) -> int:
    """The torch threads of each task: its CPUs."""
    return max(1, int(cluster.cpus_per_model))


# ---- a task's side of the run -------------------------------------------------------------------

class Board:
    """A small Ray actor to which one run's tasks report, without waiting for an answer: each
    running image's stage, and their log lines; the driver takes them to show them."""

    def __init__(self):
        self._status: Dict[str, str] = {}
        self._lines: List[str] = []

    def status(self, name: str, text: Optional[str]) -> None:
        if text is None:
            self._status.pop(name, None)
        else:
            self._status[name] = text

    def log(self, name: str, line: str) -> None:
        self._lines.append(f"{name}: {line}")

    def take(self):
        """(each running image's status, the log lines since the last call)."""
        lines, self._lines = self._lines, []
        return dict(self._status), lines


@dataclass(frozen=True)
class Channel:
    """What the driver hands every task of a run: the Board, and the stop file that the driver
    creates on Ctrl-C, beside the model folders (storage every node sees).

    Why a file and not a flag in the Board: a task blocked in ray.get (asking the actor) gives
    its CPUs back to Ray meanwhile, which starts another task on them; polled every 0.2 s,
    that ran three 1-CPU trainings at once on 2 CPUs."""
    board: object
    stop_file: str


class Link:
    """One task's side of the run, for the image `name`: should_stop (the stop file, looked for
    at most every STOP_POLL_SECONDS), its status on the Board and its log."""

    def __init__(self, channel: Channel, name: str):
        self.board, self.stop_file, self.name = channel.board, channel.stop_file, name
        self._stopped, self._polled = False, -math.inf

    @property
    def node(self) -> str:
        """The id of the Ray node this task runs on (the tables' "node" column)."""
        return _ray().get_runtime_context().get_node_id()

    def should_stop(self) -> bool:
        """train_model's should_stop: asked before every iteration."""
        now = time.monotonic()
        if not self._stopped and now - self._polled >= STOP_POLL_SECONDS:
            self._stopped = os.path.exists(self.stop_file)
            self._polled = now
        return self._stopped

    def status(self, text: Optional[str]) -> None:
        self.board.status.remote(self.name, text)

    def log(self, line: str) -> None:
        self.board.log.remote(self.name, line)


# ---- the driver ---------------------------------------------------------------------------------

@dataclass
class FolderRun:
    """The rows of a run over a folder's images (in the images' order), and whether it was
    stopped (Ctrl-C)."""
    rows: List[dict]
    interrupted: bool = False
    columns: Sequence[str] = field(default_factory=tuple)
    terminated: bool = False         # stopped by SIGTERM rather than Ctrl-C


def _failed_row(ray, err, row: dict) -> dict:
    """The row of a task that raised instead of returning one (a bug, a worker that died
    more than max_retries times, a task killed by a second Ctrl-C)."""
    if isinstance(err, ray.exceptions.TaskCancelledError):
        return dict(row, status="killed (stopped twice)")
    if isinstance(err, ray.exceptions.WorkerCrashedError):
        return dict(row, status="failed: its worker died on every try (killed, or out of "
                                "memory)")
    cause = getattr(err, "cause", None) or err
    text = str(cause).strip().splitlines()
    return dict(row, status=f"failed: {type(cause).__name__}: {text[-1] if text else ''}")


def run_tasks(ray, task: Callable[..., dict], images: Sequence[Path], kwargs: dict,
              cluster: Cluster, gpus: float, root: Path, columns: Sequence[str], desc: str,
              show_progress: bool) -> FolderRun:
    """One task per image, `task(image, **kwargs, channel=...)`, each taking
    cluster.cpus_per_model CPUs and `gpus` GPUs; a progress bar over the images (done / running
    / failed) with each running image's stage. Ctrl-C creates the run's stop file (in `root`)
    and waits for the tasks to stop at their next iteration; a second Ctrl-C kills them."""
    from tqdm import tqdm
    stop_file = Path(root) / f".stop-{uuid.uuid4().hex}"
    channel = Channel(ray.remote(Board).options(num_cpus=0).remote(), str(stop_file))
    try:
        return _drive(ray, task, images, kwargs, cluster, gpus, channel, columns,
                      tqdm(total=len(images), desc=desc, dynamic_ncols=True,
                           disable=None if show_progress else True,
                           bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} images "
                                      "[{elapsed}{postfix}]"))
    finally:
        stop_file.unlink(missing_ok=True)


def _drive(ray, task, images, kwargs, cluster, gpus, channel: Channel, columns, bar):
    """run_tasks' loop: submit, then collect the rows and show the Board until every task
    ended."""
    remote = ray.remote(task).options(num_cpus=cluster.cpus_per_model, num_gpus=gpus,
                                      max_retries=cluster.max_retries)
    # absolute paths: a cluster's workers do not share the driver's working folder
    refs = {remote.remote(str(Path(image).resolve()), **kwargs, channel=channel): image
            for image in images}
    rows: Dict[Path, dict] = {}
    pending, interrupted, terminated = list(refs), False, False
    while pending:
        try:
            done, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
            for ref in done:
                blank = dict.fromkeys(columns, "")
                blank["image"] = refs[ref].name
                try:
                    rows[refs[ref]] = ray.get(ref)
                except ray.exceptions.RayError as err:
                    rows[refs[ref]] = _failed_row(ray, err, blank)
            running, lines = ray.get(channel.board.take.remote())
            for line in lines:
                bar.write(line)
            failed = sum(row["status"].startswith(("failed", "killed")) for row in rows.values())
            bar.update(len(rows) - bar.n)
            bar.set_postfix_str(f"{len(rows) - failed} done, {len(running)} running, "
                                f"{failed} failed" + "".join(f" | {name}: {text}" for name, text
                                                             in sorted(running.items())))
        except KeyboardInterrupt as stop:   # Ctrl-C, or SIGTERM (guards.Terminated)
            if interrupted:
                for ref in pending:
                    ray.cancel(ref, force=True)
                continue
            interrupted, terminated = True, isinstance(stop, Terminated) or sigterm_received()
            Path(channel.stop_file).parent.mkdir(parents=True, exist_ok=True)
            Path(channel.stop_file).touch()
            bar.write("stopping: every image stops at its next iteration and keeps its "
                      "finished stages and its running one (Ctrl-C again kills the tasks)")
    bar.close()
    return FolderRun([rows[image] for image in images], interrupted, columns, terminated)
