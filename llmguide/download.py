"""Fetching files from the internet safely: one cache folder, sha256 checksums, mirrors, an offline check.

Every corpus and model in the guide has an offline copy (a package, or ``data/``); downloads are only the
online alternative. So a download must either give exactly the published bytes or fail with a one-line
message that says what to do, never leave a half-written file behind, and never hang a notebook when
there is no network. The pattern:

* :func:`cache_dir` is the one place downloads and converted models live (``$LLMGUIDE_CACHE``, else
  ``$XDG_CACHE_HOME/llmguide``, else ``~/.cache/llmguide``).
* :func:`download` tries each URL in turn (the first, then the mirrors) through :func:`fetch_bytes`,
  checks the sha256 of what came back, and writes the file atomically (temporary name, then rename).
  A cached file whose checksum matches is used without touching the network.
* :func:`hub_online` answers "can we reach the Hugging Face hub?" in at most a few seconds, so code can
  pick its offline copy instead of waiting through the hub client's retries.
* :func:`from_hub` is the one way the package loads anything from the Hugging Face hub (models,
  tokenizers, datasets): the local cache first, then the hub if it is reachable, else one
  :class:`OfflineError` line that says what to do offline (the CLI prints it without a traceback).
  :func:`quiet_transformers` keeps the libraries' progress bars and info logs out of notebook outputs.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import logging
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from llmguide.atomic import atomic_write

# Environment variables that put the Hugging Face libraries offline; any of them set to a true value
# means "do not try the network" for llmguide too.
OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
# Loggers that write at import, not about our work: torchao (its CUDA kernels on a CPU torch), torch pytree.
NOISY_LOGGERS = ("torchao", "torch.utils._pytree")
# transformers imports torchao wherever it is installed (any model load, not only in quiet_transformers), and
# torchao warns at import that its CUDA kernels do not load on a CPU build of torch: quiet them once, here,
# so a CLI error stays one line and notebook outputs do not depend on whether torchao is installed.
for _name in NOISY_LOGGERS:
    logging.getLogger(_name).setLevel(logging.ERROR)
T = TypeVar("T")


class OfflineError(RuntimeError):
    """A resource needs the internet and none is reachable (or offline mode is on)."""


class ChecksumError(ValueError):
    """Downloaded bytes do not have the published sha256: the file is corrupt or not the expected one."""


def cache_dir(sub: str | None = None) -> Path:
    """The llmguide cache folder (created if missing).

    Args:
        sub: optional sub-folder name, e.g. "data" or "models".
    Returns:
        ``$LLMGUIDE_CACHE``, else ``$XDG_CACHE_HOME/llmguide``, else ``~/.cache/llmguide`` (plus ``sub``).
    """
    root = os.environ.get("LLMGUIDE_CACHE")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = str(Path(xdg) / "llmguide") if xdg else str(Path.home() / ".cache" / "llmguide")
    path = Path(root).expanduser() / sub if sub else Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def offline_mode() -> bool:
    """True when an ``HF_HUB_OFFLINE``-style environment variable asks for no network access.

    Read from the environment on every call (the Hugging Face libraries read it once, at import).
    """
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on") for name in OFFLINE_ENV)


def hub_online(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub can be reached, answered within about ``timeout`` seconds.

    False in offline mode (:func:`offline_mode`); otherwise opens a TCP connection to the hub's host
    (``$HF_ENDPOINT`` or https://huggingface.co). It does not prove a download will work, only that
    trying is not hopeless; without it, the hub client retries for about 30 s before it gives up.
    """
    if offline_mode():
        return False
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # behind a proxy a direct probe says nothing: let the download itself decide
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (443 if endpoint.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def fetch_bytes(url: str, timeout: float = 30.0) -> bytes:
    """GET ``url`` with :mod:`urllib` and return the body (tests replace this function).

    Raises:
        OSError (``urllib.error.URLError``, ``TimeoutError``, ...) when the request fails.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "llmguide"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (https URLs we choose)
        return response.read()


def download(urls: str | Sequence[str], dest: str | Path, sha256: str, timeout: float = 30.0) -> Path:
    """Download a file to ``dest`` unless a verified copy is already there.

    Args:
        urls: the URL, or a list: the first URL, then mirrors tried in order when one fails (network
            error, or bytes with the wrong checksum).
        dest: where the file goes (normally under :func:`cache_dir`).
        sha256: the expected hex sha256; a cached file that does not match is downloaded again.
        timeout: seconds for each request.
    Returns:
        ``dest`` as a Path.
    Raises:
        ChecksumError: some URL answered, but no URL gave the expected bytes.
        OfflineError: no URL could be reached (offline mode counts as unreachable).
    """
    urls = [urls] if isinstance(urls, str) else list(urls)
    if not urls or not all(isinstance(u, str) and u for u in urls):
        raise ValueError(f"urls must be a URL or a non-empty list of URLs, got {urls!r}")
    sha256 = sha256.lower()
    dest = Path(dest)
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    if offline_mode():
        raise OfflineError(f"cannot download {dest.name}: offline mode is on ({'/'.join(OFFLINE_ENV)})")
    problems: list[str] = []
    bad_checksum = False
    for url in urls:
        try:
            data = fetch_bytes(url, timeout=timeout)
        except (OSError, urllib.error.URLError) as err:  # URLError, HTTPError, TimeoutError, socket errors
            problems.append(f"{url}: {err}")
            continue
        got = hashlib.sha256(data).hexdigest()
        if got != sha256:
            bad_checksum = True
            problems.append(f"{url}: sha256 {got} != expected {sha256} ({len(data)} bytes)")
            continue
        atomic_write(dest, lambda tmp, data=data: tmp.write_bytes(data))
        return dest
    summary = "; ".join(problems)
    if bad_checksum:
        raise ChecksumError(f"no URL gave the expected {dest.name}: {summary}")
    raise OfflineError(f"could not download {dest.name} (no internet?): {summary}")


def is_connection_error(err: BaseException | None) -> bool:
    """Whether an exception, or one it was raised from, means "the network could not be reached".

    Recognises the built-in ``ConnectionError``/``TimeoutError``, huggingface_hub's offline errors and
    the transport errors of ``httpx`` and ``requests`` (each only if installed); a "not found" or a bad
    argument is not a connection error.
    """
    kinds: list[type] = [ConnectionError, TimeoutError, socket.gaierror]
    for module, name in (("huggingface_hub.errors", "LocalEntryNotFoundError"), ("httpx", "TransportError"),
                         ("requests.exceptions", "ConnectionError")):
        try:
            kinds.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, tuple(kinds)) or "couldn't connect" in str(err).lower():
            return True
        err = err.__cause__ or err.__context__
    return False


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def from_hub(name: str, online: Callable[[], T], cached: Callable[[], T] | None = None, hint: str = "") -> T:
    """Load something from the Hugging Face hub, offline-aware: the one place the package does this.

    1. ``cached()``, when given: the local cache only (instant, works offline); any failure goes on.
    2. Offline mode (:func:`offline_mode`) or an unreachable hub (:func:`hub_online`): fail at once
       rather than after the hub client's half minute of retries.
    3. ``online()``; an error that means "no network" (:func:`is_connection_error`) becomes an
       ``OfflineError``; any other error (a misspelt name, a bad argument) passes through unchanged.

    Args:
        name: the hub id, for the messages.
        online: loads from the hub, e.g. ``lambda: AutoTokenizer.from_pretrained(name)``.
        cached: loads from the local cache only, e.g. ``lambda: AutoTokenizer.from_pretrained(name,
            local_files_only=True)``.
        hint: what to do instead offline, appended to the message.
    Returns:
        What ``cached`` or ``online`` returned.
    Raises:
        OfflineError: one line, without the libraries' traceback.
    """
    tail = f"; {hint}" if hint else ""
    with quiet_transformers():
        if cached is not None:
            with contextlib.suppress(Exception):
                return cached()
        if offline_mode():
            raise OfflineError(f"cannot load {name!r} from the Hugging Face hub: offline mode is on "
                               f"({'/'.join(OFFLINE_ENV)}) and it is not in the local cache{tail}") from None
        if not hub_online():
            raise OfflineError(f"cannot load {name!r}: the Hugging Face hub is not reachable from here (offline? "
                               f"with HF_HUB_OFFLINE=1 only the local cache is used){tail}") from None
        try:
            return online()
        except Exception as err:
            if not is_connection_error(err):
                raise
            raise OfflineError(f"cannot load {name!r} from the Hugging Face hub: {_first_line(err)}{tail}") from None


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No progress bars or info logs from ``transformers`` inside the block (notebook outputs stay the same).

    transformers' GGUF reader uses tqdm directly rather than its switchable wrapper, so that one is
    silenced on the module, when the module has it.
    """
    from transformers.utils import logging as hf_logging  # a slow import: only when loading a model

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        gguf_utils = None
    original = getattr(gguf_utils, "tqdm", None)
    if original is not None:
        gguf_utils.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        if original is not None:
            gguf_utils.tqdm = original
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
