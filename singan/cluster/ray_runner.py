"""The Ray plumbing of a run over a folder (singan.cluster.many): the runtime, one task per image,
the progress bar over them, Ctrl-C. Knows nothing of models: a task is any function that takes
an image path and returns one row of the run's table.

Ray's local runtime, started here, listens on the loopback address only (its node address is
127.0.0.1, so that the GCS, the raylet, the object manager, the agents and every worker bind
there), requires a token that is made for the run and handed to the runtime's processes by
their environment only, and keeps its sockets and logs in a folder of the user's own (mode
0700, removed afterwards) rather than Ray's world-writable /tmp/ray. A cluster
(Cluster.address) is the cluster's own: see the README, "Many images (Ray)".

The driver trusts its own records, not what its tasks say: each try of a task gets random
tickets, one per folder it may write (its area), and everything a task reports (its status,
its log lines, its files) is filed under the image and area the driver recorded for the
ticket; a ticket of an earlier try, or one never given, is refused. (Ray itself trusts its
nodes: whoever holds the cluster's token can run code anywhere in it, and Ray unpickles what
tasks send. The tickets guard against a buggy, confused or stale task, not a hostile node.)
"""
import concurrent.futures
import contextlib
import functools
import ipaddress
import logging
import math
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from ..errors import SinGANError
from ..guards import Terminated, sigterm_received
from .settings import DEFAULT_GPUS_PER_MODEL, Cluster

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
    - RAY_AUTH_MODE=token with a random RAY_AUTH_TOKEN (Ray >= 2.52): every request to the
      runtime must carry it. Given in the environment, Ray writes no token file
      (~/.ray/auth_token, which it would otherwise create readable by all). One token per
      process (_process_token): Ray's client reads the token once, so a second runtime started
      later in the same process with a new token could not reach its own GCS ("Failed to
      start GCS");
    - RAY_USAGE_STATS_ENABLED=0: no usage report, no prompt;
    - RAY_worker_niceness=0: the trainings run at the command's own priority, as one training
      without --input_dir does. Ray starts its workers at niceness 15, below every ordinary
      program: beside one busy loop a training task got 4% of a core (the loop 83%), so a
      folder run on a machine doing anything else crawled."""
    return {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": _process_token(), "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_worker_niceness": "0"}


@functools.lru_cache(maxsize=None)
def _process_token() -> str:
    """The local runtimes' token, made at random the first time this process starts one."""
    return secrets.token_hex(TOKEN_BYTES)


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
    with _environment(local_runtime_environment()), _private_folder() as temp:
        ray = _ray()     # where first imported here, Ray reads the local-only switch now
        with _connected(ray, cluster, temp):
            _check_loopback(ray)
            yield ray


@contextlib.contextmanager
def _private_folder() -> Iterator[str]:
    """The local runtime's temporary folder (its sockets, logs and spilled objects), inside a
    folder made for the run that only its user may enter (0700: Ray opens its own folders to
    everyone, 0777), removed afterwards. Short, as Ray's socket paths must stay under 108
    bytes."""
    private = tempfile.mkdtemp(prefix="singan-ray-")
    os.chmod(private, 0o700)
    try:
        yield os.path.join(private, "r")
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _check_loopback(ray) -> None:
    """Refuse a local runtime whose node address is not a loopback one: where Ray was imported
    before ray_runtime, it read RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER then."""
    address = ray.util.get_node_ip_address()
    if not _is_loopback(address):
        raise SinGANError(f"Ray's local runtime came up on {address}, not on the loopback "
                          "address: Ray was imported before this run; set "
                          "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before importing it")


def code_environment() -> dict:
    """Ray's runtime environment for a cluster's tasks: the singan and SIFID packages travel
    with the job (Ray uploads them once and unpacks them on every node), so that a node needs
    only Python, Ray and our dependencies; no model, image or output folder goes with it."""
    import SIFID   # stands apart from singan; the evaluate tasks unpickle its extractor
    packages = [Path(__file__).resolve().parents[1], Path(SIFID.__file__).resolve().parent]
    return {"py_modules": [str(p) for p in packages], "excludes": ["__pycache__", "*.pyc"]}


@contextlib.contextmanager
def _stderr_to_file() -> Iterator[Callable[[], str]]:
    """Whatever this process (Ray's C++ core included) writes to its standard error during
    the block, kept in a file instead: the block gets a function returning it (also after
    the block); written out afterwards, unless the block failed."""
    import tempfile
    sys.stderr.flush()
    saved, kept = os.dup(2), {"text": ""}
    with tempfile.TemporaryFile() as file:
        os.dup2(file.fileno(), 2)
        failed = True
        try:
            yield lambda: kept["text"]
            failed = False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            file.seek(0)
            kept["text"] = file.read().decode(errors="replace")
    if not failed:
        sys.stderr.write(kept["text"])


def _refusal(cluster: Cluster, err, said: str) -> str:
    """One line for a cluster that cannot be joined."""
    if "InvalidAuthToken" in said or "Unauthenticated" in said or \
            type(err).__name__ == "AuthenticationError":   # Ray >= 2.60: no token found here
        given = "RAY_AUTH_TOKEN is not its token" if os.environ.get("RAY_AUTH_TOKEN") \
            else "RAY_AUTH_TOKEN is not set"
        return (f"the Ray cluster at {cluster.address} refused this run: it requires its "
                f"token and {given}; set RAY_AUTH_TOKEN to the token its nodes were started "
                "with (and RAY_AUTH_MODE=token), see the README's 'On a cluster'")
    return (f"cannot join the Ray cluster at {cluster.address}: "
            f"{str(err).splitlines()[0]} (is `ray start --head` running there, and the port "
            "reachable from here?)")


@contextlib.contextmanager
def _connected(ray, cluster: Cluster, temp: Optional[str] = None):
    # A runtime started without RAY_AUTH_MODE turns token authentication on and warns that it
    # did: a warning about Ray's defaults, not this run; silenced.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR)
    quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
    on_sigterm = signal.getsignal(signal.SIGTERM)   # Ray's init installs its own: ours back
    if cluster.address:
        try:
            with _stderr_to_file() as said:
                ray.init(address=cluster.address, runtime_env=code_environment(), **quiet)
        except (ConnectionError, ValueError, RuntimeError,
                getattr(ray.exceptions, "AuthenticationError", RuntimeError)) as err:
            raise SinGANError(_refusal(cluster, err, said())) from None
    else:
        try:
            ray.init(address="local", num_cpus=cluster.num_cpus, include_dashboard=False,
                     _node_ip_address="127.0.0.1", _temp_dir=temp, **quiet)
        except (ConnectionError, ValueError, RuntimeError) as err:
            raise SinGANError(f"cannot start Ray locally: {str(err).splitlines()[0]}") from None
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
    """A small Ray actor, on the driver's node, to which one run's tasks report without
    waiting for an answer: each running task's stage, their log lines and the files they
    send back (singan.cluster.folder_copy batches), each under the ticket the driver gave the
    task; the driver takes them to show and write them. It also holds the run's stop flag,
    which the tasks poll."""

    def __init__(self):
        self._status: Dict[str, str] = {}
        self._lines: List[tuple] = []
        self._files: List[tuple] = []
        self._stop = False

    def status(self, ticket: str, text: Optional[str]) -> None:
        if text is None:
            self._status.pop(ticket, None)
        else:
            self._status[ticket] = text

    def log(self, ticket: str, line: str) -> None:
        self._lines.append((ticket, line))

    def files(self, ticket: str, batch: list, note: str) -> None:
        self._files.append((ticket, batch, note))

    def stop(self) -> None:
        self._stop = True

    def stopped(self) -> bool:
        return self._stop

    def take(self):
        """(each running task's status, the log lines and the files since the last call),
        by ticket."""
        lines, self._lines = self._lines, []
        files, self._files = self._files, []
        return dict(self._status), lines, files


@dataclass(frozen=True)
class Channel:
    """What the driver hands one try of a task: the run's Board, the try's own ticket (its
    status and log lines) and one ticket per area it may send files for.

    A task never calls ray.get or ray.wait: either tells Ray the task is blocked, and Ray
    gives its CPUs to the next task meanwhile, which then runs beside it (with the stop flag
    polled every 0.2 s, ray.get ran three 1-CPU trainings at once on 2 CPUs, and on Ray 2.60
    ray.wait(timeout=0) two on a 1-CPU runtime). The Board's answers are taken through
    ObjectRef.future() instead (a thread of Ray's fills the future; polling or waiting on it
    is not a Ray call), which keeps the task to its reservation."""
    board: object
    ticket: str = ""
    areas: Tuple[Tuple[str, str], ...] = ()     # (area, its ticket)


class Link:
    """One task's side of the run: should_stop (the Board's stop flag, asked at most every
    STOP_POLL_SECONDS), its status and log on the Board, and the files it sends back to the
    driver, each under its Channel's tickets."""

    def __init__(self, channel: Channel):
        self.board, self.ticket, self.areas = channel.board, channel.ticket, dict(channel.areas)
        self._stopped, self._polled = False, -math.inf
        self._asked = None     # the Board's answer to "stopped?", on its way
        self._sent = None      # the last batch of files, on its way

    @property
    def node(self) -> str:
        """The id of the Ray node this task runs on (the tables' "node" column)."""
        return _ray().get_runtime_context().get_node_id()

    def should_stop(self) -> bool:
        """train_model's should_stop: asked before every iteration."""
        now = time.monotonic()
        if not self._stopped and now - self._polled >= STOP_POLL_SECONDS:
            self._polled = now
            self._stopped = self._answer()
        return self._stopped

    def _answer(self) -> bool:
        """The Board's latest answer to "stopped?" if it has come (False until then); asks
        again once it has."""
        if self._asked is None:
            self._asked = self.board.stopped.remote().future()
        if not self._asked.done():
            return False
        answer, self._asked = self._asked.result(), None
        return bool(answer)

    def stopped_before_start(self, seconds: float = 2.0) -> bool:
        """Whether the run was stopped before this task began: the Board's answer, waited for
        (at most `seconds`) without giving the task's CPUs back."""
        if self._asked is None:
            self._asked = self.board.stopped.remote().future()
        try:
            self._stopped = bool(self._asked.result(timeout=seconds))
        except concurrent.futures.TimeoutError:
            return False
        self._asked = None
        return self._stopped

    def status(self, text: Optional[str]) -> None:
        self.board.status.remote(self.ticket, text)

    def log(self, line: str) -> None:
        self.board.log.remote(self.ticket, line)

    def send(self, area: str, batch: list, note: str = "") -> None:
        """Files for the driver to write (a folder_copy batch into its folder `area`, one the
        driver gave this task a ticket for), sent without waiting; they arrive in the order
        sent."""
        if area not in self.areas:
            raise SinGANError(f"this task has no {area!r} folder to send files to")
        if batch:
            self._sent = self.board.files.remote(self.areas[area], batch, note)

    def flush(self) -> None:
        """Wait until the Board holds every batch sent (the task's last act: its row must not
        reach the driver before its files)."""
        if self._sent is not None:
            self._sent.future().result()     # not ray.get: see Channel
            self._sent = None


# ---- the driver ---------------------------------------------------------------------------------

@dataclass
class FolderRun:
    """The rows of a run over a folder's images (in the images' order), and whether it was
    stopped (Ctrl-C)."""
    rows: List[dict]
    interrupted: bool = False
    columns: Sequence[str] = field(default_factory=tuple)
    terminated: bool = False         # stopped by SIGTERM rather than Ctrl-C


# The failures of a task's machine rather than of its work: the driver runs the task again,
# from its latest copy of the task's files.
LOST = ("WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "ObjectLostError",
        "OwnerDiedError", "ActorDiedError")


def _lost(ray, err) -> Optional[str]:
    """Why a task's worker or node was lost, in words, or None for any other failure."""
    if isinstance(err, ray.exceptions.NodeDiedError):
        return "its node was lost"
    kinds = tuple(getattr(ray.exceptions, name) for name in LOST
                  if hasattr(ray.exceptions, name))
    if isinstance(err, kinds):
        return "its worker died (killed, or out of memory)"
    return None


def _failed_row(ray, err, row: dict, tries: int) -> dict:
    """The row of a task that raised instead of returning one (a bug, a worker that died
    on every try, a task killed by a second Ctrl-C)."""
    if isinstance(err, ray.exceptions.TaskCancelledError):
        return dict(row, status="killed (stopped twice)")
    lost = _lost(ray, err)
    if lost:
        return dict(row, status=f"failed: {lost} on every try ({tries})")
    cause = getattr(err, "cause", None) or err
    text = str(cause).strip().splitlines()
    return dict(row, status=f"failed: {type(cause).__name__}: {text[-1] if text else ''}")


# receive(image, area, batch, note): write the files a task sent (SinGANError: refused); the
# image and the area are the driver's record of the ticket the files came with
Receiver = Callable[[Path, str, list, str], None]


def run_tasks(ray, task: Callable[..., dict], images: Sequence[Path],
              kwargs_for: Callable[[Path, bool], dict], receive: Receiver, cluster: Cluster,
              gpus: float, columns: Sequence[str], desc: str, show_progress: bool,
              areas: Sequence[str] = ()) -> FolderRun:
    """One task per image, `task(**kwargs_for(image, first try?), channel=...)`, each taking
    cluster.cpus_per_model CPUs and `gpus` GPUs; a progress bar over the images (done / running
    / failed) with each running image's stage. Each try of a task may send files for `areas`
    (its Channel's tickets), which go to receive() under the image and area the driver
    recorded for the ticket; a task whose worker or node is lost runs again (at most
    cluster.max_retries times) with kwargs_for(image, False) asked anew, i.e. from the driver's
    latest copy of its files (a SinGANError from it fails the image's row). Ctrl-C sets
    the run's stop flag and waits for the tasks to stop at their next iteration; a second
    Ctrl-C kills them."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    from tqdm import tqdm
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    board = ray.remote(Board).options(num_cpus=0, scheduling_strategy=here).remote()
    bar = tqdm(total=len(images), desc=desc, dynamic_ncols=True,
               disable=None if show_progress else True,
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} images [{elapsed}{postfix}]")
    return _Drive(ray, task, kwargs_for, receive, cluster, gpus, board, columns, bar,
                  areas).run(images)


class _Drive:
    """run_tasks' loop: submit, then take the Board's files and lines, collect the rows and
    run lost tasks again, until every task ended."""

    def __init__(self, ray, task, kwargs_for, receive, cluster, gpus, board, columns, bar,
                 areas=()):
        self.ray, self.kwargs_for, self.receive = ray, kwargs_for, receive
        self.cluster, self.board, self.columns, self.bar = cluster, board, columns, bar
        self.areas = tuple(areas)
        self.remote = ray.remote(task).options(num_cpus=cluster.cpus_per_model, num_gpus=gpus,
                                               max_retries=0)   # retried here, see run_tasks
        self.refs: Dict[object, Path] = {}
        self.tries: Dict[Path, int] = {}
        self.tickets: Dict[str, Tuple[Path, Optional[str]]] = {}  # ticket -> (image, area)
        self.saved: Dict[Path, str] = {}      # what each image's last batch saved, in words
        self.refused: Dict[Path, str] = {}
        self.rows: Dict[Path, dict] = {}

    def channel(self, image: Path) -> Channel:
        """A new try's tickets (those of the image's earlier tries revoked: a stale task's
        files are refused)."""
        self.revoke(image)
        ticket = secrets.token_hex(16)
        self.tickets[ticket] = (image, None)
        areas = []
        for area in self.areas:
            areas.append((area, secrets.token_hex(16)))
            self.tickets[areas[-1][1]] = (image, area)
        return Channel(self.board, ticket, tuple(areas))

    def revoke(self, image: Path) -> None:
        for ticket in [t for t, (i, _) in self.tickets.items() if i == image]:
            del self.tickets[ticket]

    def submit(self, image: Path) -> None:
        """Run the image's task (again); what cannot be sent fails its row at once."""
        first = image not in self.tries
        self.tries[image] = self.tries.get(image, 0) + 1
        try:
            kwargs = self.kwargs_for(image, first)
        except SinGANError as err:
            self.rows[image] = dict(dict.fromkeys(self.columns, ""), image=Path(image).name,
                                    status=f"failed: {err}")
            return
        self.refs[self.remote.remote(**kwargs, channel=self.channel(image))] = image

    def run(self, images: Sequence[Path]) -> FolderRun:
        for image in images:
            self.submit(image)
        rows = self.rows
        interrupted = terminated = False
        while self.refs:
            try:
                done, _ = self.ray.wait(list(self.refs), num_returns=len(self.refs),
                                        timeout=0.5)
                running = self.take()
                for ref in done:
                    self.collect(ref, rows, interrupted)
                failed = sum(row["status"].startswith(("failed", "killed"))
                             for row in rows.values())
                self.bar.update(len(rows) - self.bar.n)
                self.bar.set_postfix_str(
                    f"{len(rows) - failed} done, {len(running)} running, {failed} failed"
                    + "".join(f" | {name}: {text}" for name, text in sorted(running.items())))
            except KeyboardInterrupt as stop:   # Ctrl-C, or SIGTERM (guards.Terminated)
                if interrupted:
                    for ref in self.refs:
                        self.ray.cancel(ref, force=True)
                    continue
                interrupted, terminated = True, isinstance(stop, Terminated) or sigterm_received()
                self.board.stop.remote()
                self.bar.write("stopping: every image stops at its next iteration and keeps "
                               "its finished stages and its running one (Ctrl-C again kills "
                               "the tasks)")
        self.bar.close()
        return FolderRun([rows[image] for image in images], interrupted, self.columns,
                         terminated)

    def take(self) -> Dict[str, str]:
        """Show the Board's lines, write the files it holds, each under the image and area of
        its ticket; each running image's status."""
        status, lines, files = self.ray.get(self.board.take.remote())
        for ticket, line in lines:
            if ticket in self.tickets:
                self.bar.write(f"{Path(self.tickets[ticket][0]).stem}: {line}")
        for ticket, batch, note in files:
            image, area = self.tickets.get(ticket, (None, None))
            if image is None or area is None:
                self.bar.write("refused files sent with a ticket this run did not give (or "
                               "gave an earlier try of a task): nothing written")
                continue
            if image in self.refused:
                continue
            try:
                self.receive(image, area, batch, note)
                self.saved[image] = note or self.saved.get(image, "")
            except SinGANError as err:
                self.refused[image] = str(err)
                self.bar.write(f"{Path(image).stem}: {err}")
        return {Path(self.tickets[t][0]).stem: text for t, text in status.items()
                if t in self.tickets and self.tickets[t][1] is None}

    def collect(self, ref, rows: Dict[Path, dict], interrupted: bool) -> None:
        """The row of a finished task; a lost one runs again."""
        image = self.refs.pop(ref)
        blank = dict.fromkeys(self.columns, "")
        blank["image"] = Path(image).name
        try:
            row = self.ray.get(ref)
        except self.ray.exceptions.RayError as err:
            lost = _lost(self.ray, err)
            if lost and not interrupted and self.tries[image] <= self.cluster.max_retries:
                since = self.saved.get(image)
                self.bar.write(f"{Path(image).stem}: {lost}; running it again (try "
                               f"{self.tries[image] + 1} of {self.cluster.max_retries + 1}) "
                               + (f"from the driver's copy ({since})" if since else
                                  "from the start (nothing had been saved)"))
                self.submit(image)
                return
            row = _failed_row(self.ray, err, blank, self.tries[image])
        if not isinstance(row, dict):
            row = dict(blank, status=f"failed: the task returned {type(row).__name__}, not a row")
        row = dict({c: row.get(c, "") for c in self.columns}, image=Path(image).name)
        if image in self.refused:
            row = dict(row, status=f"failed: {self.refused[image]}")
        self.revoke(image)
        rows[image] = row
