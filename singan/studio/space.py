"""Where each signed-in user's work lives on a shared studio server, and their quota.

    <root>/studio/<user>/<image>/<model folder>/   the user's trainings
    <out>/studio/<user>/<session>/...              the user's results
    <uploads>/<user>/...                           the user's uploads and request scratch

The models of <root> itself are shared, read-only, with every signed-in user. Everything the
user owns counts against the quota (uploads, results, trainings, and what they sent to
Gradio's own upload route within the last hour). A result is written into a staging folder
first and moved into place only when it fits, so a refused one leaves nothing behind.
Without accounts (user None) the studio keeps its single-user layout.
"""
import os
import re
import shutil
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Callable, Dict, Optional

import torch

from ..errors import SinGANError

STUDIO = "studio"
UPLOAD_WINDOW = 3600.0     # s: Gradio's upload cache is emptied of files older than this


MAX_TRAININGS = 64         # trainings at once: each is a worker thread of the server


def max_trainings(asked: Optional[int] = None) -> int:
    """Trainings at once: `asked` (1-MAX_TRAININGS), or by default one per GPU, else one."""
    if asked is None:
        return max(1, torch.cuda.device_count()) if torch.cuda.is_available() else 1
    if isinstance(asked, bool) or not isinstance(asked, int) or \
            not 1 <= asked <= MAX_TRAININGS:
        raise SinGANError(f"--max_trainings must be a whole number from 1 to {MAX_TRAININGS}, "
                          f"got {asked}")
    return asked


def parse_size(text: str) -> int:
    """'2GB', '500 MB', '1.5G', '1048576' -> bytes (decimal units; KiB/MiB/GiB binary)."""
    units = {"": 1, "b": 1, "k": 10 ** 3, "kb": 10 ** 3, "m": 10 ** 6, "mb": 10 ** 6,
             "g": 10 ** 9, "gb": 10 ** 9, "t": 10 ** 12, "tb": 10 ** 12, "kib": 2 ** 10,
             "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    if not match or match.group(2).lower() not in units:
        raise SinGANError(f"a size is a number with an optional unit (500MB, 2GB), got "
                          f"{str(text)[:40]!r}")
    size = float(match.group(1)) * units[match.group(2).lower()]
    if not 0 < size < 2 ** 62:
        raise SinGANError(f"a size must be positive and below 4 EB (exabytes), got {text!r}")
    return int(size)


def folder_bytes(folder: Path) -> int:
    """The bytes of the files under `folder` (0 when absent)."""
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(parent, name)).st_size
            except OSError:
                pass
    return total


def _gb(nbytes: float) -> str:
    """A size as people read it: '512 B', '32.4 KB', '1.3 MB', '2.00 GB'."""
    if nbytes >= 1e9:
        return f"{nbytes / 1e9:.2f} GB"
    for unit, size in (("MB", 1e6), ("KB", 1e3)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{int(nbytes)} B"


def relocate(value, old: Path, new: Path):
    """`value` (a path string, or lists / tuples / dicts of them) with paths under `old` moved
    to the same place under `new`."""
    if isinstance(value, (list, tuple)):
        return type(value)(relocate(v, old, new) for v in value)
    if isinstance(value, dict):
        return {k: relocate(v, old, new) for k, v in value.items()}
    if isinstance(value, (str, Path)):
        path = Path(value)
        if path.is_relative_to(old):
            moved = new / path.relative_to(old)
            return str(moved) if isinstance(value, str) else moved
    return value


class Workspace:
    """The folders and the quota of each user (None: the single-user studio)."""

    def __init__(self, root, out_root, uploads_root, quota_bytes: Optional[int] = None):
        self.root, self.out_root = Path(root), Path(out_root)
        self.uploads_root = Path(uploads_root)
        self.quota = quota_bytes
        self.sent: Dict[str, deque] = {}          # user -> (time, bytes) sent to Gradio's upload
        self.lock = threading.Lock()

    # -- folders --

    def models_root(self, user: Optional[str]) -> Path:
        return self.root if user is None else self.root / STUDIO / user

    def results(self, user: Optional[str]) -> Path:
        return self.out_root / STUDIO if user is None else self.out_root / STUDIO / user

    def uploads(self, user: Optional[str]) -> Path:
        return self.uploads_root if user is None else self.uploads_root / user

    def foreign(self, path: Path, user: str) -> bool:
        """Whether `path` (resolved) lies in another user's folders: the sign-in gate's check
        of the files a request names."""
        for area, own in ((self.out_root / STUDIO, self.results(user)),
                          (self.uploads_root, self.uploads(user)),
                          (self.root / STUDIO, self.models_root(user))):
            if path.is_relative_to(area.resolve()) and not path.is_relative_to(own.resolve()):
                return True
        return False

    # -- the quota --

    def _recently_sent(self, user: str) -> int:
        times = self.sent.setdefault(user, deque())
        while times and times[0][0] < time.monotonic() - UPLOAD_WINDOW:
            times.popleft()
        return sum(n for _, n in times)

    def holdings(self, user: str) -> Dict[str, int]:
        """The user's bytes by kind: trainings, results, uploads, and what they sent to Gradio's
        upload route within the last hour."""
        with self.lock:
            sent = self._recently_sent(user)
        return {"trainings": folder_bytes(self.models_root(user)),
                "results": folder_bytes(self.results(user)),
                "uploads": folder_bytes(self.uploads(user)), "recent uploads": sent}

    def usage(self, user: str) -> int:
        return sum(self.holdings(user).values())

    def report(self, user: str) -> str:
        """What the user's space holds, in one line."""
        parts = self.holdings(user)
        quota = f" of {_gb(self.quota)}" if self.quota is not None else ""
        return (f"{_gb(sum(parts.values()))}{quota} used: " +
                ", ".join(f"{name} {_gb(n)}" for name, n in parts.items()
                          if n or name != "recent uploads"))

    def clear_results(self, user: str) -> None:
        """Remove the user's results and request scratch (their uploads of trainings stay:
        a queued training still reads its image)."""
        shutil.rmtree(self.results(user), ignore_errors=True)
        shutil.rmtree(self.uploads(user) / "requests", ignore_errors=True)

    def refuse_if_full(self, user: Optional[str], adding: int = 0, what: str = "this") -> None:
        """A SinGANError when `adding` more bytes would take the user past the quota."""
        if user is None or self.quota is None:
            return
        used = self.usage(user)
        if used + adding > self.quota:
            raise SinGANError(f"{what} would take your space on this server past its quota "
                              f"({_gb(used)} used of {_gb(self.quota)}"
                              + (f", {_gb(adding)} more asked" if adding else "") +
                              "); free some on the My space tab, or ask the server's owner "
                              "for more")

    def upload_refusal(self, user: str, nbytes: int) -> Optional[str]:
        """For the gate: None if the user may send nbytes to Gradio's upload route (recorded),
        else the line that refuses it."""
        try:
            self.refuse_if_full(user, nbytes, "this upload")
        except SinGANError as err:
            return str(err)
        with self.lock:
            self.sent.setdefault(user, deque()).append((time.monotonic(), nbytes))
        return None

    def staged(self, user: Optional[str], final: Path, make: Callable[[Path], object]):
        """make(folder) writes a result into a fresh staging folder; when it fits the user's
        quota its files are moved to the same places under `final` and its return value
        (paths) relocated there; when it does not, nothing is kept and a SinGANError says so.
        Without a user, make(final) directly."""
        if user is None or self.quota is None:
            return make(final)
        self.refuse_if_full(user)
        staging = self.out_root / STUDIO / ".staging" / uuid.uuid4().hex
        staging.mkdir(parents=True)
        try:
            result = make(staging)
            self.refuse_if_full(user, folder_bytes(staging), "this result")
            for parent, _, files in os.walk(staging):
                for name in files:
                    source = Path(parent) / name
                    target = final / source.relative_to(staging)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(source, target)
            return relocate(result, staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
