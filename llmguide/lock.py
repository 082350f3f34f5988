"""A lock on an output folder, so two runs never write the same model folder at once.

Two ``llmguide pretrain --out X`` started together used to race: one crashed halfway, or both printed
"saved" and one result was silently lost. :func:`folder_lock` takes the lock before any work: a small
file ``.X.lock`` *beside* the folder (the folder itself is replaced by a rename when saved, see
:mod:`llmguide.atomic`, so a file inside it would move with it) holding who holds it::

    {"pid": 4242, "host": "gpu-03", "command": "llmguide pretrain --out runs/lm", "started": "2026-12-02T00:30:00Z"}

The file is created complete or not at all: it is written under a temporary name and hard-linked into
place, and ``link`` fails when the name exists, so of two runs exactly one wins. The loser gets one
:class:`FolderLockedError` line that names the holder. A lock whose holder is dead (same host, no such
process: a run killed with SIGKILL or a power cut) is *stale*: it is taken over, with a warning.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class FolderLockedError(RuntimeError):
    """The output folder is locked by another running process (the message names it)."""


def lock_path(folder: str | Path) -> Path:
    """The lock file of ``folder``: ``.NAME.lock`` in the same parent folder."""
    folder = Path(folder).expanduser().absolute()
    return folder.with_name(f".{folder.name}.lock")


def _alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def read_holder(folder: str | Path) -> dict[str, Any] | None:
    """Who holds the lock of ``folder`` (the lock file's JSON), or None when it is not locked."""
    path = lock_path(folder)
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, OSError):  # unreadable: treat as held by someone unknown (never steal it silently)
        return {"pid": -1, "host": "?", "command": f"unreadable lock file {path}", "started": "?"}
    return holder if isinstance(holder, dict) else {"pid": -1, "host": "?", "command": "?", "started": "?"}


def _is_stale(holder: dict[str, Any]) -> bool:
    pid = holder.get("pid")
    return holder.get("host") == socket.gethostname() and isinstance(pid, int) and pid > 0 and not _alive(pid)


def _describe(holder: dict[str, Any]) -> str:
    return (f"pid {holder.get('pid')} on host {holder.get('host')} (`{holder.get('command')}`, "
            f"started {holder.get('started')})")


def acquire(folder: str | Path, command: str | None = None) -> Path:
    """Take the lock of ``folder``; see :func:`folder_lock`, which also releases it.

    Returns:
        The lock file.
    Raises:
        FolderLockedError: a live process holds it.
    """
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "command": command or " ".join(sys.argv),
          "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(me), encoding="utf-8")
    try:
        for _ in range(3):  # a stale lock is removed, then the link is tried again
            try:
                os.link(tmp, path)  # atomic, and fails when the lock exists: one winner
                return path
            except FileExistsError:
                holder = read_holder(folder)
                if holder is None:
                    continue  # released in between
                if holder.get("pid") == os.getpid() and holder.get("host") == me["host"]:
                    raise FolderLockedError(f"{Path(folder)} is already locked by this process: a run inside "
                                            "a run with the same output folder") from None
                if not _is_stale(holder):
                    raise FolderLockedError(
                        f"{Path(folder)} is in use by {_describe(holder)}: wait for it to finish or use "
                        f"another --out; if that process is gone, delete {path}") from None
                warnings.warn(f"taking over the stale lock of {Path(folder)}: its holder, {_describe(holder)}, "
                              "is no longer running", stacklevel=3)
                path.unlink(missing_ok=True)
        raise FolderLockedError(f"could not take the lock {path}: other runs keep taking it")
    finally:
        tmp.unlink(missing_ok=True)


def release(folder: str | Path) -> None:
    """Drop the lock of ``folder`` if this process holds it."""
    holder = read_holder(folder)
    if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        lock_path(folder).unlink(missing_ok=True)


@contextlib.contextmanager
def folder_lock(folder: str | Path, command: str | None = None, enabled: bool = True) -> Iterator[Path | None]:
    """Hold the lock of output folder ``folder`` for the block (released on exit, also on errors).

    Args:
        folder: the folder a run will write.
        command: what to record as the holder's command (default: this process's ``sys.argv``).
        enabled: False makes the block run without a lock (the non-zero ranks of a distributed run, whose
            rank 0 holds it).
    Yields:
        The lock file (None when not enabled).
    Raises:
        FolderLockedError: another live process holds the lock; the message names it and the fix.
    """
    if not enabled:
        yield None
        return
    path = acquire(folder, command)
    try:
        yield path
    finally:
        release(folder)
