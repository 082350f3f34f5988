"""The review classifier the project ships in data/review-classifier (notebook 08's teacher): a safe model
folder, its recorded settings are the recipe in the code, its recorded test accuracy is what its weights give,
and the recipe re-creates the start of the shipped run."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest
import torch

from llmguide.classify import classifier_from_pretrained, end_token_id, finetune, iter_batches, review_datasets
from llmguide.data import REVIEW_LABELS, data_dir
from llmguide.evaluate import evaluate
from llmguide.folder import load_folder
from llmguide.model import GPT
from llmguide.profiles import FINETUNE_SETTINGS
from llmguide.train import TrainConfig

FOLDER = data_dir() / "review-classifier"
LM = data_dir() / "review-gpt"
RECIPE = {**FINETUNE_SETTINGS["cpu"], "max_steps": 150, "seed": 0}


@pytest.fixture(scope="module")
def shipped():
    return load_folder(FOLDER)  # (classifier, tokenizer, config)


@pytest.fixture(scope="module")
def data(shipped):
    _, tokenizer, config = shipped
    return review_datasets(tokenizer, config["block_size"], end_id=config["end_id"], warn=False)


def test_the_folder_holds_only_safe_files():
    assert sorted(p.name for p in FOLDER.iterdir()) == ["README.md", "config.json", "history.csv", "labels.json",
                                                         "model.safetensors", "report.json", "tokenizer.json"]
    digest = hashlib.sha256((FOLDER / "model.safetensors").read_bytes()).hexdigest()
    assert digest in (FOLDER / "README.md").read_text(encoding="utf-8")


def test_recorded_settings_are_the_recipe(shipped):
    model, tokenizer, config = shipped
    assert {k: config["finetune"][k] for k in RECIPE} == RECIPE
    assert config["source"] == "data/review-gpt" and config["trainable"] == "all"
    assert config["end_id"] == end_token_id(tokenizer) and config["block_size"] == model.gpt.config.block_size
    assert config["model"] == load_folder(LM)[2]["model"]  # the shipped language model's body


def test_recorded_test_accuracy_is_what_the_weights_give(shipped, data):
    model, _, config = shipped
    report = evaluate(model.eval(), iter_batches(data["test"], 256), labels=list(REVIEW_LABELS))
    assert report.accuracy == pytest.approx(config["results"]["accuracy"], abs=1e-9)
    assert report.macro_f1 == pytest.approx(config["results"]["macro_f1"], abs=1e-9)
    assert f"accuracy {report.accuracy:.4f}" in (FOLDER / "README.md").read_text(encoding="utf-8")


def test_the_recipe_recreates_the_first_steps(data, one_thread):
    body = GPT.from_pretrained(str(LM))
    classifier = classifier_from_pretrained(body, len(REVIEW_LABELS), "all", seed=0)
    config = TrainConfig(**{**RECIPE, "progress": False, "eval_interval": 0})
    history = finetune(classifier, data["train"], None, config, callback=lambda row: row["step"] >= 10)
    shipped = pd.read_csv(FOLDER / "history.csv")
    torch.testing.assert_close(torch.tensor(history.train_loss.to_numpy()),
                               torch.tensor(shipped.train_loss.to_numpy()[:10]), rtol=0, atol=2e-4)
