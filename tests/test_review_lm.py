"""The review language model the project ships in data/review-gpt: it is a safe model folder, its recorded
settings are the recipe in the code, its recorded numbers are what its weights give, the data card agrees,
and the recipe re-creates the start of the shipped run."""

from __future__ import annotations

import hashlib
import json
import re

import pandas as pd
import pytest
import torch

from llmguide.data import data_dir
from llmguide.lmdata import review_lm_data, review_texts
from llmguide.model import PRESETS
from llmguide.pretrain import (
    DATA_OPTIONS,
    REVIEW_LM_SETTINGS,
    TRAIN_PRESETS,
    build_tokenizer,
    load_model_folder,
    review_lm_dir,
    run_pretrain,
)
from llmguide.train import evaluate_loss

FOLDER = review_lm_dir()


@pytest.fixture(scope="module")
def shipped():
    model, tokenizer, config = load_model_folder(FOLDER)
    return model, tokenizer, config


def test_the_folder_holds_only_safe_files():
    # weights as safetensors (no pickle), the rest JSON / CSV; no training checkpoints shipped
    assert sorted(p.name for p in FOLDER.iterdir()) == ["README.md", "config.json", "history.csv",
                                                         "model.safetensors", "tokenizer.json"]


def test_recorded_settings_are_the_recipe_in_the_code(shipped):
    model, tokenizer, config = shipped
    assert config["model"] == {**PRESETS["cpu"], "vocab_size": tokenizer.vocab_size, "bias": True}
    train_settings = {k: v for k, v in REVIEW_LM_SETTINGS.items() if k not in DATA_OPTIONS}
    expected = {**TRAIN_PRESETS["cpu"], **train_settings}
    assert {k: config["train"][k] for k in expected} == expected
    assert config["data"]["tokenizer"] == "char" and config["data"]["source"] == "reviews"


def test_the_tokenizer_is_the_one_the_recipe_fits(shipped):
    _, tokenizer, _ = shipped
    refit = build_tokenizer("char", [review_texts("train")], REVIEW_LM_SETTINGS["min_freq"])
    assert refit.itos == tokenizer.itos


def test_recorded_validation_loss_is_what_the_weights_give(shipped):
    model, tokenizer, config = shipped
    val = review_lm_data(tokenizer, model.config.block_size).val
    loss = evaluate_loss(model, val, config["train"]["batch_size"], config["train"]["eval_steps"])
    assert loss == pytest.approx(config["results"]["val_loss"], abs=1e-4)


def test_the_recorded_validation_loss_is_the_per_token_cross_entropy_over_640_fixed_windows(shipped):
    # The guide's one definition, written out: 640 evenly spaced validation windows, every predicted
    # character weighted equally; evaluate_loss gives it whatever the batch size (notebook 04 uses 4).
    model, tokenizer, config = shipped
    val = review_lm_data(tokenizer, model.config.block_size).val  # the validation reviews, one window per position
    assert config["train"]["batch_size"] * config["train"]["eval_steps"] == 640
    chosen = torch.linspace(0, len(val) - 1, 640).round().long()
    total, count = 0.0, 0
    with torch.no_grad():
        for part in chosen.split(128):
            batch = val.get_batch(part)
            logits, _ = model(batch["idx"], batch["targets"])  # (B, T, V)
            total += torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten(),
                                                       reduction="sum").double().item()
            count += batch["targets"].numel()
    assert count == 640 * model.config.block_size
    assert total / count == pytest.approx(config["results"]["val_loss"], abs=1e-4)
    assert evaluate_loss(model, val, 4, 160) == pytest.approx(config["results"]["val_loss"], abs=1e-5)


def test_the_data_card_records_the_checksum_and_the_numbers(shipped):
    _, _, config = shipped
    card = (data_dir() / "README.md").read_text(encoding="utf-8")
    digest = hashlib.sha256((FOLDER / "model.safetensors").read_bytes()).hexdigest()
    assert digest in card
    assert f"{config['results']['val_loss']:.3f}" in card
    own = (FOLDER / "README.md").read_text(encoding="utf-8")
    assert digest in own and "tools/make_review_lm.py" in own


def test_the_recipe_recreates_the_first_steps_of_the_shipped_run(tmp_path):
    # The same settings, stopped after 12 steps with the 2400-step learning-rate schedule: the losses must be
    # the shipped run's. This ties the weights to the code that made them (bitwise on the machine that made
    # them; the tolerance leaves room for another CPU's summation order).
    steps = 12
    settings = {**REVIEW_LM_SETTINGS, "max_steps": steps, "lr_decay_steps": REVIEW_LM_SETTINGS["max_steps"],
                "eval_interval": 0}
    folder = run_pretrain("reviews", "char", "cpu", settings, tmp_path / "lm", progress=False)
    again = pd.read_csv(folder / "history.csv")
    shipped_history = pd.read_csv(FOLDER / "history.csv")
    torch.testing.assert_close(torch.tensor(again.train_loss.to_numpy()),
                               torch.tensor(shipped_history.train_loss.to_numpy()[:steps]), rtol=1e-4, atol=1e-4)
    assert json.loads((folder / "tokenizer.json").read_text(encoding="utf-8")) == \
        json.loads((FOLDER / "tokenizer.json").read_text(encoding="utf-8"))


def test_the_card_states_how_to_remake_it():
    card = (data_dir() / "README.md").read_text(encoding="utf-8")
    assert re.search(r"python tools/make_review_lm\.py", card)
