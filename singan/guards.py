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


@contextlib.contextmanager
def interrupts_deferred():
    """Hold Ctrl-C (SIGINT) back until the block has finished, then act on it: the block's
    files are all written before the program stops. Only in the main thread (elsewhere
    signals cannot be handled and the block just runs)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        if previous is signal.default_int_handler:
            raise KeyboardInterrupt
        if callable(previous):
            previous(signal.SIGINT, None)
        elif previous == signal.SIG_DFL:
            os.kill(os.getpid(), signal.SIGINT)
