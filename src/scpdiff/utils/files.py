"""Atomic file output: every artefact is written to a temporary name and renamed into place.

A killed job therefore never leaves a half-written output that a rerun would mistake for a
finished one (Snakemake and our own resume logic only look at final names).

Three promises beyond atomicity:

- **Permissions follow the umask**, as a plain ``open(path, "w")`` / ``mkdir`` would give
  (``0o666 & ~umask`` for files, ``0o777 & ~umask`` for folders): ``mkstemp``/``mkdtemp`` create
  0600/0700, which would keep a lab's shared weight cache, priors and results private.
- **A user's path of another kind is never moved or replaced**: an output file where a folder
  stands, or an output folder where a file stands, is refused with :class:`InputError` before the
  temporary is even created (:func:`check_output_path`; commands call it again before any work).
- **Temporaries left by a killed job are removed by the rerun.** A temporary is named
  ``.{name}.{host}-{pid}.{random}.tmp...``; before writing ``name`` again, the temporaries of
  ``name`` whose process is gone (same host, pid not alive) are deleted. Those of a live process
  or of another host (a shared file system) are left alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from ..errors import InputError
from .workflow_watch import alive  # a zombie writer is a dead one


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc/self/status``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: the classic read-by-setting, restored at once
    os.umask(mask)
    return mask


def plain_file_mode() -> int:
    return 0o666 & ~current_umask()


def plain_dir_mode() -> int:
    return 0o777 & ~current_umask()


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0]) or "host"


def _owner_tag() -> str:
    return f"{_host()}-{os.getpid()}"


def _temp_prefix(path: Path, folder: bool) -> str:
    # files keep their suffix at the end of the temporary name (writers dispatch on it)
    return f".{path.name if folder else path.stem}."


def remove_stale_temporaries(path: str | os.PathLike, folder: bool = False) -> list[Path]:
    """Delete the temporaries of ``path`` left by dead processes on this host; return them."""
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        return []
    pattern = re.compile("^" + re.escape(_temp_prefix(path, folder))
                         + r"(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[^/]*\.tmp")
    removed = []
    host = _host()
    for p in parent.iterdir():
        m = pattern.match(p.name)
        if not m or m["host"] != host or alive(int(m["pid"])):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        removed.append(p)
    return removed


def earlier_output(*markers: str) -> Callable[[Path], bool]:
    """A ``replaceable`` test for :func:`check_output_path`: an empty folder, or one holding any of
    ``markers`` (files that an earlier run of the same command writes), may be replaced; any other
    folder is the user's and is left alone."""

    def replaceable(folder: Path) -> bool:
        folder = Path(folder)
        return not any(folder.iterdir()) or any((folder / m).is_file() for m in markers)

    return replaceable


def check_output_path(path: str | os.PathLike, kind: str, what: str = "output",
                      replaceable: Callable[[Path], bool] | None = None) -> Path:
    """Refuse an output ``path`` that would move or replace something of another kind.

    ``kind``: ``"file"`` or ``"folder"``. An existing file is replaced by a new file, an existing
    folder by a new folder only if ``replaceable(folder)`` says it is an earlier output of the same
    command (default: any folder); a folder where a file is asked for, or the reverse, is an
    :class:`InputError` naming the path. The parent must not be a file either.
    """
    path = Path(path)
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise InputError(f"{path}: cannot write the {what} here: {parent} is a file, not a folder")
    if not path.exists() and not path.is_symlink():
        return path
    if kind == "file" and path.is_dir():
        raise InputError(f"{path}: {what} must be a file but a folder of that name exists "
                         "(pass a file name; nothing was written)")
    if kind == "folder":
        if not path.is_dir():
            raise InputError(f"{path}: {what} must be a folder but a file of that name exists "
                             "(it is left as it is; pass another path)")
        if replaceable is not None and not replaceable(path):
            raise InputError(f"{path}: {what} folder exists and is not an earlier output of this command "
                             "(it is left as it is; remove it or pass another path)")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps the final suffix (or ``suffix``) so writers that dispatch on the
    extension (PIL, pandas, matplotlib) still work. The file ends with the umask's mode.
    """
    path = check_output_path(path, "file")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    sfx = suffix if suffix is not None else "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f"{_temp_prefix(path, False)}{_owner_tag()}.", suffix=f".tmp{sfx}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_file():
            os.chmod(tmp_path, plain_file_mode())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.is_dir() and not tmp_path.is_symlink():
            shutil.rmtree(tmp_path, ignore_errors=True)
        elif tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, replaceable: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; rename it onto ``path`` on success.

    Used for outputs that are folders (a diffusers ``save_pretrained`` folder, a shard of images).
    An existing ``path`` folder is replaced only after the new one is complete, and only if
    ``replaceable(path)`` allows it (:func:`check_output_path`); an existing file is never touched.
    """
    path = check_output_path(path, "folder", replaceable=replaceable)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path, folder=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_temp_prefix(path, True)}{_owner_tag()}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, plain_dir_mode())
    try:
        yield tmp
        if path.exists():
            check_output_path(path, "folder", replaceable=replaceable)  # still ours after the work
            old = path.with_name(f"{_temp_prefix(path, True)}{_owner_tag()}.old.tmp")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
