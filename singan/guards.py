"""Guards around writing results: a clear error before work starts when the folder cannot be
written or the disk is too full, one writer per model folder, no stale temporaries, and Ctrl-C
held back while a finished scale is being saved.

Every file itself is written atomically (singan.image_io.atomic_write_bytes).
"""
import contextlib
import errno
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

from .errors import SinGANError
from .image_io import TEMP_SUFFIX, write_error


def nearest_existing(path) -> Path:
    """`path` itself if it exists, else its closest existing ancestor (where it would be made)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(folder, what: str = "output folder") -> None:
    """SinGANError unless files can be created in `folder`, or, when it does not exist yet,
    in the folder it would be created in. Leaves nothing behind."""
    folder = Path(folder)
    base = nearest_existing(folder)
    if not base.is_dir():
        raise SinGANError(f"cannot create the {what} {folder}: {base} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=base, prefix=".singan-write-test.", suffix=TEMP_SUFFIX)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise write_error(folder, err) from None


def check_free_space(folder, needed: int) -> None:
    """SinGANError when the disk that `folder` is (or would be) on has less than `needed` bytes
    free, so that training does not run for an hour to fail at its first save."""
    try:
        free = shutil.disk_usage(nearest_existing(folder)).free
    except OSError:   # cannot tell: the writes themselves will report a full disk clearly
        return
    if free < needed:
        raise SinGANError(f"not enough free disk space for {folder}: the model needs about "
                          f"{_megabytes(needed)}, {_megabytes(free)} free; free some space or "
                          "train somewhere else")


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


@contextlib.contextmanager
def exclusive(folder):
    """Hold an exclusive lock on `folder` (an existing directory) for the block: a second
    process training into the same folder gets a clear error instead of mixing files. The
    lock (flock) dies with its process, so a killed run never leaves a stale one. Where the
    system has no flock, or the file system refuses it, the block runs unlocked."""
    try:
        import fcntl
    except ImportError:   # Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise SinGANError(f"{folder} is being written by another run right now; wait "
                                  "for it to finish (or stop it), then run this again") from None
        yield
    finally:
        os.close(fd)


def remove_temporaries(folder) -> int:
    """Delete the temporaries (".<name>.*.tmp") that killed writes left in `folder` and its
    subfolders; they were never renamed into place, so nothing reads them. Returns how many.
    Call it only while holding the folder (`exclusive`)."""
    removed = 0
    folder = Path(folder)
    for directory in [folder] + [d for d in folder.iterdir() if d.is_dir()]:
        for path in directory.glob(f".*{TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


class Terminated(KeyboardInterrupt):
    """SIGTERM (docker stop, Slurm, Kubernetes, `timeout`), handled as Ctrl-C is: the scripts
    save what they can and exit with code 143."""


_sigterm = threading.Event()


def _raise_terminated(signum, frame):
    _sigterm.set()
    raise Terminated()


def sigterm_received() -> bool:
    """Whether raise_on_sigterm's handler has seen SIGTERM (for code whose KeyboardInterrupt
    may have come through a library that raises its own, as Ray's waits do)."""
    return _sigterm.is_set()


def raise_on_sigterm() -> None:
    """From now on SIGTERM raises Terminated in the main thread (a no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _act_on(signum: int, previous) -> None:
    """What `previous` (a signal's handler before ours) would have done with signum."""
    if previous is signal.default_int_handler:
        raise KeyboardInterrupt
    if callable(previous):
        previous(signum, None)
    elif previous == signal.SIG_DFL:
        os.kill(os.getpid(), signum)


@contextlib.contextmanager
def _stop_handlers(handler):
    """`handler` for Ctrl-C (SIGINT) and SIGTERM within the block; yields the handlers it
    replaced, put back afterwards. Only in the main thread: elsewhere signals cannot be
    handled, the block just runs and gets None."""
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield previous
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@contextlib.contextmanager
def interrupts_deferred():
    """Hold Ctrl-C (SIGINT) and SIGTERM back until the block has finished, then act on them:
    the block's files are all written before the program stops. Only in the main thread
    (elsewhere signals cannot be handled and the block just runs)."""
    received = []
    with _stop_handlers(lambda signum, frame: received.append(signum)) as previous:
        yield
    for signum in dict.fromkeys(received):
        _act_on(signum, previous[signum])


class StopRequests:
    """Within `with stop_requests() as stops:` the first Ctrl-C or SIGTERM does not interrupt:
    it is recorded in stops.signum for the caller to act on at a safe point (the driver: after
    the running iteration, saving it); a second one acts at once. Main thread only
    (elsewhere stops.signum stays None)."""

    def __init__(self):
        self.signum = None

    @property
    def terminated(self) -> bool:
        return self.signum == signal.SIGTERM

    def interrupt(self) -> KeyboardInterrupt:
        """The exception that the recorded signal stands for."""
        return Terminated() if self.terminated else KeyboardInterrupt()


@contextlib.contextmanager
def stop_requests():
    stops, previous = StopRequests(), {}

    def handler(signum, frame):
        if stops.signum is None:
            stops.signum = signum
            return
        for s, old in previous.items():     # the second request: act now, as before
            signal.signal(s, old)
        _act_on(signum, previous[signum])

    with _stop_handlers(handler) as replaced:
        previous.update(replaced or {})
        yield stops
