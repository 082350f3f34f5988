"""`run_pretrain` and its command line: typed overrides, the model folder it writes, resume, torchrun entry."""

from __future__ import annotations

import argparse
import json

import pandas as pd
import pytest
import torch

from llmguide.checkpoint import latest_checkpoint, load_weights
from llmguide.cli import add_pretrain_arguments, main, pretrain_command
from llmguide.model import GPT
from llmguide.pretrain import parse_overrides, run_pretrain
from llmguide.tokenizer import load_tokenizer

# A tiny model and run: a few seconds on two CPU cores.
TINY = dict(n_layer=1, n_head=2, n_embd=32, block_size=16, batch_size=4, warmup_steps=2, eval_interval=2,
            eval_steps=2, log_interval=1)


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    lines = [f"第{i}行：the quick brown fox jumps over {i} lazy dogs." for i in range(60)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_overrides_are_converted_to_the_field_types():
    got = parse_overrides(["lr=3e-4", "--max_steps=1e3", "min_lr=none", "bias=false", "precision=bf16",
                           "n_layer=2", "bpe_vocab_size=500"])
    assert got == {"learning_rate": 3e-4, "max_steps": 1000, "min_lr": None, "bias": False, "precision": "bf16",
                   "n_layer": 2, "bpe_vocab_size": 500}
    assert parse_overrides({"dropout": "0.2", "seed": 3}) == {"dropout": 0.2, "seed": 3}


@pytest.mark.parametrize("items, message", [
    (["learning_rat=1e-3"], r"unknown setting 'learning_rat': valid keys are \[.*'learning_rate'"),
    (["max_steps=1.5"], r"--max_steps='1.5' is not a valid int"),
    (["clip_norm=big"], r"--clip_norm='big' is not a valid float"),
    (["bias=maybe"], r"--bias='maybe' is not a valid bool"),
    (["max_steps"], "is not key=value"),
    (["vocab_size=10"], "unknown setting 'vocab_size'"),  # it comes from the tokenizer
])
def test_bad_overrides_name_the_key_and_the_fix(items, message):
    with pytest.raises(ValueError, match=message):
        parse_overrides(items)


def test_run_pretrain_writes_a_model_folder_that_loads(corpus, tmp_path):
    folder = run_pretrain(str(corpus), "char", "cpu", {**TINY, "max_steps": 4}, tmp_path / "lm", progress=False)
    assert {p.name for p in folder.iterdir()} >= {"model.safetensors", "config.json", "tokenizer.json",
                                                  "history.csv", "checkpoints"}
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["model"]["n_layer"] == 1 and config["train"]["max_steps"] == 4
    assert config["data"]["tokenizer"] == "char" and config["results"]["steps"] == 4
    assert config["model"]["vocab_size"] == config["data"]["vocab_size"]
    assert len(pd.read_csv(folder / "history.csv")) == 4
    tok = load_tokenizer(folder / "tokenizer.json")
    assert tok.decode(tok.encode("第3行：the fox")) == "第3行：the fox"
    model = GPT.from_pretrained(str(folder))  # the GPT helper's loader reads our folder
    same = load_weights(GPT(model.config), latest_checkpoint(folder)).eval()
    idx = torch.tensor([tok.encode("第1行：the quick")])
    assert torch.equal(model(idx, all_logits=True)[0], same(idx, all_logits=True)[0])


def test_resume_continues_the_run_exactly(corpus, tmp_path):
    settings = {**TINY, "lr_decay_steps": 8}  # the same schedule whether the run is cut or not
    straight = run_pretrain(str(corpus), "char", "cpu", {**settings, "max_steps": 8}, tmp_path / "a", progress=False)
    run_pretrain(str(corpus), "char", "cpu", {**settings, "max_steps": 4}, tmp_path / "b", progress=False)
    resumed = run_pretrain(str(corpus), "char", "cpu", {**settings, "max_steps": 8}, tmp_path / "b", resume=True,
                           progress=False)
    a, b = GPT.from_pretrained(str(straight)), GPT.from_pretrained(str(resumed))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    history = pd.read_csv(resumed / "history.csv")
    assert history.step.tolist() == list(range(1, 9))


def test_bpe_tokenizer_and_the_command_line(corpus, tmp_path, capsys):
    parser = add_pretrain_arguments(argparse.ArgumentParser())
    assert parser.parse_args(["--preset", "gpu"]).profile == "gpu"  # the old name of --profile still works
    args = parser.parse_args(["--corpus", str(corpus), "--tokenizer", "bpe", "--profile", "cpu", "--out",
                              str(tmp_path / "cli"), "--no-progress", "--max_steps=3", "--lr=1e-3",
                              "--bpe_vocab_size=300", *[f"--{k}={v}" for k, v in TINY.items()]])
    assert pretrain_command(args) == 0
    out = capsys.readouterr().out
    assert f"saved the model to {tmp_path / 'cli'}" in out and "val loss" in out
    config = json.loads((tmp_path / "cli" / "config.json").read_text(encoding="utf-8"))
    assert config["train"]["learning_rate"] == 1e-3 and config["data"]["tokenizer"] == "bpe"
    assert config["model"]["vocab_size"] <= 300


def test_bad_arguments_fail_with_one_line(tmp_path, capsys):
    assert main(["pretrain", "--corpus", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "x")]) == 2
    assert "neither one of ('reviews', 'shakespeare') nor a text file" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown profile 'tpu'"):
        run_pretrain("reviews", "char", "tpu", None, tmp_path / "y")
    with pytest.raises(ValueError, match="unknown setting"):
        run_pretrain("reviews", "char", "cpu", ["nlayer=2"], tmp_path / "z")
