"""Writes that are never half-done: one file, or one whole folder, appears complete or not at all.

Every write goes to a temporary file or folder *in the same directory* and is then renamed into place
with ``os.replace``: a rename within one file system is atomic, so a crash or Ctrl-C mid-save leaves the
previous version untouched and never a broken one. Model folders (:mod:`llmguide.folder`), training
checkpoints (:mod:`llmguide.checkpoint`), downloads (:mod:`llmguide.download`) and converted models
(:mod:`llmguide.pretrained`) all write through these two functions.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)  # read the process umask (setting it is the only way), so files get the usual 0644


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
            write (e.g. a training run's ``checkpoints/``) are moved into the new folder before it replaces
            the old one; None keeps nothing.
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
        if path.exists():  # replacing a folder takes two renames; the old one is only deleted after
            for entry in path.iterdir() if keep else ():
                if keep(entry.name) and not (tmp / entry.name).exists():
                    os.replace(entry, tmp / entry.name)  # a rename: checkpoints are not copied
            old = path.with_name(f".old-{path.name}-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
