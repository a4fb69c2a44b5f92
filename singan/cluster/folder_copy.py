"""A folder's files as bytes, for a run whose tasks share no disk with their driver
(singan.cluster.many on a Ray cluster of several machines).

The driver hands a task the files it needs (`read_files`); the task works in a folder of its
own node and, after every save, sends back what changed (`Mirror.changes`); the driver checks
what it receives as a careful reader checks a file from elsewhere (`checked_batch`: plain
relative names inside the folder, sizes, checkpoints that load weights-only and match their
checksums) and writes it with the same atomic saves as a local run (`write_batch`: never
through a link out of the folder). What a whole run may add per image (MAX_IMAGE_BYTES) and
whether a finished model may be touched are the driver's own records (singan.cluster.many).

    mirror = Mirror(folder, held=files_sent)       # on the node
    ...  send(mirror.changes())  ...
    write_batch(driver_folder, checked_batch(batch, where))   # on the driver
"""
import contextlib
import hashlib
import os
from pathlib import Path, PurePosixPath
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..checkpoint import CHECKPOINT_NAME, RUNNING_NAME, load_torch, read_checkpoint, read_running
from ..errors import SinGANError
from ..image_io import atomic_write_bytes

# (path relative to the folder, POSIX spelling; the file's bytes, or None: the file was removed)
Batch = List[Tuple[str, Optional[bytes]]]

MAX_FILE_BYTES = 1 << 30    # 1 GiB; a SinGAN model file is tens of MB
MAX_IMAGE_BYTES = 2 << 30   # 2 GiB: all a run's tasks may add to one image's folders
MAX_BATCH_FILES = 4096      # a model folder holds a few files per stage
MAX_DEPTH = 5               # folder/<stage>/<file> is depth 2; samples go deeper: a
                            # ConSinGAN model's are RandomSamples/<image>/<model folder>/
                            # gen_start_scale=0/<i>.png
MAX_NAME = 255


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _walk(folder: Path) -> Iterable[Tuple[str, Path]]:
    """(relative POSIX path, path) of every file under `folder`, without dot files (the
    temporaries of atomic writes) and without links."""
    for directory, subfolders, names in os.walk(folder):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(names):
            path = Path(directory) / name
            if not name.startswith(".") and path.is_file() and not path.is_symlink():
                yield path.relative_to(folder).as_posix(), path


def read_files(folder, names: Optional[Sequence[str]] = None) -> Dict[str, bytes]:
    """The files of `folder` and its subfolders by relative path (only `names`, relative
    paths, when given; those missing are left out); {} where the folder does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    if names is not None:
        return {name: (folder / name).read_bytes() for name in names
                if (folder / name).is_file()}
    return {rel: path.read_bytes() for rel, path in _walk(folder)}


class Mirror:
    """What a copy of `folder` elsewhere holds (`held`: the files it started with): changes()
    lists every file added or changed since the last call and every file removed, files
    named in `last` after the others (model.pth lists its stages' files: they arrive first),
    removals at the end."""

    def __init__(self, folder, held: Optional[Dict[str, bytes]] = None,
                 last: Sequence[str] = (CHECKPOINT_NAME,)):
        self.folder, self.last = Path(folder), tuple(last)
        self._held = {rel: (None, _digest(data)) for rel, data in (held or {}).items()}

    def changes(self) -> Batch:
        found, batch = set(), []
        for rel, path in (_walk(self.folder) if self.folder.is_dir() else ()):
            found.add(rel)
            stat = path.stat()
            mark = (stat.st_size, stat.st_mtime_ns)
            seen, digest = self._held.get(rel, (None, None))
            if seen == mark:
                continue
            data = path.read_bytes()
            if _digest(data) != digest:
                batch.append((rel, data))
            self._held[rel] = (mark, _digest(data))
        batch.sort(key=lambda item: PurePosixPath(item[0]).name in self.last)
        for rel in sorted(set(self._held) - found):
            del self._held[rel]
            batch.append((rel, None))
        return batch


def _checked_name(rel, where: str) -> PurePosixPath:
    if not isinstance(rel, str) or not rel or len(rel) > 4 * MAX_NAME or "\\" in rel \
            or "\0" in rel:
        raise SinGANError(f"refused a file for {where}: {str(rel)[:80]!r} is not a file name")
    path = PurePosixPath(rel)
    parts = path.parts
    if path.is_absolute() or len(parts) > MAX_DEPTH or any(
            part in (".", "..") or part.startswith(".") or len(part) > MAX_NAME
            for part in parts) or path.as_posix() != rel:
        raise SinGANError(f"refused a file for {where}: {rel[:80]!r} is not a plain "
                          f"relative path inside it (at most {MAX_DEPTH} levels, no '..', no "
                          "dot files)")
    return path


def _checked_contents(rel: str, data, where: str) -> None:
    if data is None:
        return
    if not isinstance(data, bytes):
        raise SinGANError(f"refused {rel} for {where}: its contents are not bytes")
    if len(data) > MAX_FILE_BYTES:
        raise SinGANError(f"refused {rel} for {where}: {len(data) / 2**20:.0f} MB, more than "
                          f"the {MAX_FILE_BYTES >> 20} MB a model file may hold")
    name = PurePosixPath(rel).name
    label = f"{where}/{rel}"
    if name == CHECKPOINT_NAME:
        read_checkpoint(label, data)          # loads, and matches its checksum
    elif name == RUNNING_NAME:
        read_running(label, data)
    elif name.endswith(".pth"):
        load_torch(label, data)               # weights only: never code


def checked_batch(batch, where: str, inside: Sequence[str] = ()) -> Batch:
    """`batch` as received from a node, checked before anything is written: a list of
    (plain relative path, bytes or None), at most MAX_BATCH_FILES, each file within
    MAX_FILE_BYTES, every checkpoint loadable (weights only) and matching its checksum, and
    (`inside`, relative folders, when given) each path within one of them. A SinGANError
    names the first thing wrong; `where` names the destination in it."""
    if not isinstance(batch, (list, tuple)) or len(batch) > MAX_BATCH_FILES or not all(
            isinstance(item, (list, tuple)) and len(item) == 2 for item in batch):
        raise SinGANError(f"refused the files for {where}: not a list of at most "
                          f"{MAX_BATCH_FILES} (name, contents) pairs")
    checked = []
    for rel, data in batch:
        path = _checked_name(rel, where)
        if inside and not any(path.is_relative_to(folder) and path != PurePosixPath(folder)
                              for folder in inside):
            raise SinGANError(f"refused a file for {where}: {rel[:80]} is outside "
                              f"{' and '.join(inside)}")
        _checked_contents(rel, data, where)
        checked.append((rel, data))
    return checked


def finished_model(source) -> bool:
    """Whether a model.pth (a path, or its bytes) holds every level its training planned; a
    missing or unreadable one does not."""
    try:
        ckpt = read_checkpoint("model.pth", source) if isinstance(source, bytes) else \
            read_checkpoint(source)
    except SinGANError:
        return False
    return len(ckpt.get("scales", ())) >= len(ckpt.get("reals", ())) > 0


def batch_growth(folder, batch: Batch) -> int:
    """The bytes writing `batch` into `folder` adds to it: the new files' sizes less those of
    the files they replace or remove (negative when it frees more than it adds)."""
    folder, growth = Path(folder), 0
    for rel, data in batch:
        path = folder.joinpath(*PurePosixPath(rel).parts)
        with contextlib.suppress(OSError):
            growth -= path.stat().st_size if path.is_file() else 0
        growth += len(data) if data is not None else 0
    return growth


def _contained(folder: Path, batch: Batch, where: str) -> None:
    """Every path of the batch lies inside `folder` once links are followed: no folder on the
    way, nor the file itself, is a link leading elsewhere."""
    inside = folder.resolve()
    for rel, _ in batch:
        path = folder.joinpath(*PurePosixPath(rel).parts)
        parent = path.parent
        while not parent.exists() and parent != folder:
            parent = parent.parent
        if path.is_symlink() or not parent.resolve().is_relative_to(inside):
            raise SinGANError(f"refused a file for {where}: {rel[:80]} leads out of it (a "
                              "link)")


def write_batch(folder, batch: Batch, where: str = "") -> None:
    """Write a checked batch into `folder`, in its order, each file atomically (checkpoints
    synced to the disk, as the driver saves them), removing those sent as None; nothing when
    a path would lead out of the folder through a link."""
    folder = Path(folder)
    _contained(folder, batch, where or str(folder))
    for rel, data in batch:
        path = folder.joinpath(*PurePosixPath(rel).parts)
        if data is None:
            if path.is_file():
                path.unlink()
        else:
            atomic_write_bytes(path, data, durable=path.suffix == ".pth")
