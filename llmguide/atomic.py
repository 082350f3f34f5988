"""Writes that are never half-done: one file, or one whole folder, appears complete or not at all.

Every write goes to a temporary file or folder *in the same directory* and is then renamed into place
with ``os.replace``: a rename within one file system is atomic, so a crash or Ctrl-C mid-save leaves the
previous version untouched and never a broken one. Model folders (:mod:`llmguide.folder`), training
checkpoints (:mod:`llmguide.checkpoint`), downloads (:mod:`llmguide.download`) and converted models
(:mod:`llmguide.pretrained`) all write through these two functions.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)  # read the process umask (setting it is the only way), so files get the usual 0644


# Names of what an interrupted write leaves behind: ".tmp-NAME-PID" / ".old-NAME-PID" (atomic_dir) and
# ".tmp-PID-NAME" (atomic_write). The PID says whether the writer may still be running.
_LEFTOVER = re.compile(r"^\.(?:tmp|old)-(?:(?P<pid1>\d+)-.+|.+-(?P<pid2>\d+))$")
_RENAME_EXCHANGE = 2  # renameat2 flag (Linux >= 3.15): swap two paths in one atomic step


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # an old kernel or a file system without it: fall back to two renames
    raise OSError(err, os.strerror(err), str(a))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(directory: str | Path, keep_into: Callable[[str], Path | None] | None = None) -> list[Path]:
    """Delete what interrupted atomic writes left in ``directory`` (writers no longer running only).

    Args:
        directory: the folder to look in (e.g. ``out_dir/checkpoints``, or a model folder's parent).
        keep_into: for a leftover *folder* named after ``NAME``, ``keep_into(NAME)`` may return the live
            folder ``NAME``: a ``checkpoints/`` inside the leftover that the live folder lacks is moved there
            first (a crash between the two steps of :func:`atomic_dir` can leave the run's checkpoints in
            the replaced folder).
    Returns:
        The paths removed (or restored: an ``.old-NAME-PID`` folder whose ``NAME`` is missing is renamed back).
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for entry in directory.iterdir():
        match = _LEFTOVER.match(entry.name)
        if not match:
            continue
        pid = int(match.group("pid1") or match.group("pid2"))
        if pid == os.getpid() or _pid_alive(pid):
            continue  # a save in progress (this process or another one)
        if entry.is_dir() and keep_into is not None:
            name = entry.name[5:].rsplit("-", 1)[0]
            live = keep_into(name)
            if live is not None and entry.name.startswith(".old-") and not live.exists():
                os.replace(entry, live)  # killed between the two renames: the previous version comes back
                continue
            if live is not None and live.is_dir() and (entry / "checkpoints").is_dir() \
                    and not (live / "checkpoints").exists():
                os.replace(entry / "checkpoints", live / "checkpoints")
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def check_output_file(path: str | Path, what: str = "--output") -> Path:
    """Check, before any work, that a file can be written at ``path``.

    Raises:
        ValueError: ``path`` is a folder, or its folder (or the nearest existing parent) is not writable.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder: pass a file name, e.g. {path / 'out.csv'}")
    _check_writable(path.parent, what, path)
    return path


def _check_writable(folder: Path, what: str, target: Path) -> None:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ValueError(f"{what} {target}: {existing} is a file, not a folder: choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {target}: no permission to write in {existing}: choose a folder you can write")


def check_output_dir(path: str | Path, what: str = "--out") -> Path:
    """Check, before any work, that a folder can be created or replaced at ``path``.

    Raises:
        ValueError: ``path`` is a file, or it (or its parent folder) is not writable.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} is a file, not a folder: pass a folder path (or delete the file)")
    _check_writable(path.parent, what, path)  # the folder is replaced by a rename in its parent
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: no permission to write in it: choose a folder you can write")
    return path


def _fsync(path: Path) -> None:
    # Flush the file's bytes to disk before the rename makes it visible (otherwise a power cut right
    # after the rename could still expose an empty file).
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write one file atomically: ``write(tmp)`` fills a temporary file next to ``path``, then it is renamed.

    Args:
        path: the final file.
        write: a function that writes the whole file to the path it is given.
    Returns:
        ``path``. If ``write`` raises, the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")  # same suffix: writers that look at it still work
    try:
        write(tmp)
        _fsync(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # some writers create 0600 files; a model folder is meant to be shared
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def atomic_dir(path: str | Path, keep: Callable[[str], bool] | None = None) -> Iterator[Path]:
    """Fill a folder atomically: the block writes into a temporary folder that is renamed to ``path`` at the end.

    Args:
        path: the final folder.
        keep: when ``path`` exists, its entries whose name ``keep(name)`` accepts and that the block did not
            write (e.g. a training run's ``checkpoints/``) are moved into the new folder right after it
            replaces the old one (a crash in between leaves them in the old folder, where
            :func:`clean_leftovers` finds them); None keeps nothing.
    If the block raises, the temporary folder is deleted and an existing ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        for file in tmp.rglob("*"):
            if file.is_file():
                _fsync(file)
        os.chmod(tmp, 0o777 & ~_UMASK)
        if path.exists():
            # One atomic swap where the OS has it (the old folder lands at `tmp`); else two renames, with a
            # short window in which `path` is missing and `.old-...` holds the previous version.
            old = tmp
            if not _exchange(tmp, path):
                old = path.with_name(f".old-{path.name}-{os.getpid()}")
                os.replace(path, old)
                os.replace(tmp, path)
            for entry in old.iterdir() if keep else ():
                if keep(entry.name) and not (path / entry.name).exists():
                    os.replace(entry, path / entry.name)  # a rename: checkpoints are not copied
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
