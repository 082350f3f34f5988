"""The model folder: one writer, one reader, a versioned format with kinds, all or nothing on disk."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from llmguide.classify import classifier_from_pretrained, save_classifier
from llmguide.data import ANIMAL_LABELS, data_dir
from llmguide.folder import (
    CONFIG,
    FORMAT_VERSION,
    KIND_MODULES,
    KINDS,
    WEIGHTS,
    load_folder,
    read_meta,
    save_folder,
)
from llmguide.model import GPT, GPTConfig
from llmguide.pretrain import load_model_folder, review_lm_dir
from llmguide.tokenizer import tokenizer_fingerprint


@pytest.fixture
def tiny_gpt(tiny, animal_tok) -> GPT:
    """The tiny GPT with the animal tokenizer's vocabulary: a folder's tokenizer and weights must agree."""
    torch.manual_seed(0)
    return GPT(GPTConfig(**{**tiny, "vocab_size": animal_tok.vocab_size}))


def test_save_then_load_gives_the_same_logits_tokenizer_and_meta(tiny_gpt, animal_tok, tmp_path):
    folder = save_folder(tmp_path / "lm", tiny_gpt, animal_tok, {"note": "猫"})
    model, tokenizer, meta = load_folder(folder)
    idx = torch.randint(0, tiny_gpt.config.vocab_size, (2, 8))
    torch.testing.assert_close(model(idx, idx)[0], tiny_gpt.eval()(idx, idx)[0],
                               atol=0, rtol=0)
    assert model.lm_head.weight is model.transformer.wte.weight  # re-tied on load
    assert tokenizer.itos == animal_tok.itos
    assert meta == {"format_version": FORMAT_VERSION, "kind": "gpt-lm", "model": tiny_gpt.config_dict(),
                    "note": "猫", "tokenizer": {"vocab_size": animal_tok.vocab_size,
                                               "fingerprint": tokenizer_fingerprint(animal_tok)}}


def test_a_folder_of_another_kind_names_what_it_found_and_expected(tiny_gpt, animal_tok, tmp_path):
    clf = classifier_from_pretrained(tiny_gpt, len(ANIMAL_LABELS))
    folder = save_classifier(clf, animal_tok, ANIMAL_LABELS, tmp_path / "clf")
    with pytest.raises(ValueError, match="holds a 'gpt-classifier' model, expected a 'gpt-lm' one"):
        load_model_folder(folder)
    with pytest.raises(ValueError, match="'gpt-classifier' model, expected a 'gpt-lm'"):
        GPT.from_pretrained(str(folder))
    model, _, meta = load_folder(folder)
    assert meta["kind"] == "gpt-classifier" and meta["labels"] == list(ANIMAL_LABELS)
    assert type(model) is type(clf)


def test_unknown_kind_and_newer_format_are_refused(tiny_gpt, tmp_path):
    folder = save_folder(tmp_path / "lm", tiny_gpt)
    config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    (folder / CONFIG).write_text(json.dumps({**config, "kind": "vit"}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"'vit' model, which this llmguide cannot load \(known kinds: "):
        load_folder(folder)
    (folder / CONFIG).write_text(json.dumps({**config, "format_version": FORMAT_VERSION + 1}), encoding="utf-8")
    with pytest.raises(ValueError, match="newer than this llmguide reads"):
        load_folder(folder)
    assert {"gpt-lm", "gpt-classifier"} <= set(KINDS)


def test_the_shipped_unversioned_folder_reads_as_version_1():
    raw = json.loads((review_lm_dir() / CONFIG).read_text(encoding="utf-8"))
    assert "format_version" not in raw and "kind" not in raw  # shipped before the format had a version
    meta = read_meta(review_lm_dir())
    assert meta["format_version"] == 1 and meta["kind"] == "gpt-lm"


def test_saving_is_all_or_nothing_and_keeps_checkpoints(tiny_gpt, animal_tok, tmp_path, monkeypatch):
    folder = save_folder(tmp_path / "lm", tiny_gpt, animal_tok)
    (folder / "checkpoints" / "step_000001").mkdir(parents=True)
    before = (folder / WEIGHTS).read_bytes()

    def crash(path):
        raise OSError("disk full")

    other = GPT(GPTConfig(**{**tiny_gpt.config_dict(), "n_layer": 1}))
    with pytest.raises(OSError, match="disk full"):
        save_folder(folder, other, animal_tok, files={"history.csv": crash})
    assert (folder / WEIGHTS).read_bytes() == before  # the old folder, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lm"]  # no temporary folder left
    save_folder(folder, other, animal_tok)
    assert load_folder(folder)[0].config.n_layer == 1
    assert (folder / "checkpoints" / "step_000001").is_dir()  # a run's checkpoints survive a new save


@pytest.mark.parametrize("name", ["vit-digits", "pd-seg-lstm", "zh-bert", "review-gpt"])
def test_a_fresh_process_loads_every_shipped_kind_without_importing_its_module(name):
    # Kinds register when their module is imported; load_folder must import it itself (KIND_MODULES).
    code = ("import sys; from llmguide.folder import KINDS, load_folder; from llmguide.data import data_dir; "
            f"model, _, meta = load_folder(data_dir() / {name!r}); print(meta['kind'], type(model).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    kind = out.stdout.split()[0]
    assert kind in KIND_MODULES and kind == read_meta(data_dir() / name)["kind"]  # review-gpt: a version-1 folder
