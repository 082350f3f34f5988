"""The review classifier the project ships in data/review-classifier (notebook 08's teacher): a safe model
folder, its recorded settings are the recipe in the code, its recorded test accuracy is what its weights give,
and the recipe re-creates the start of the shipped run."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest
import torch

from llmguide.classify import (
    classifier_from_pretrained,
    end_token_id,
    finetune,
    iter_batches,
    review_datasets,
)
from llmguide.data import REVIEW_LABELS, data_dir
from llmguide.evaluate import evaluate
from llmguide.folder import load_folder
from llmguide.model import GPT
from llmguide.profiles import FINETUNE_SETTINGS
from llmguide.train import TrainConfig

FOLDER = data_dir() / "review-classifier"
LM = data_dir() / "review-gpt"
SLICE_ACCURACY = 185 / 217  # accuracy on every 8th test review (measured once with these weights)
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


def test_recorded_results_agree_and_the_weights_give_them_on_a_slice(shipped, data, one_thread):
    model, _, config = shipped
    results = config["results"]
    (tn, fp), (fn, tp) = results["confusion"]
    assert results["n"] == len(data["test"]) == tn + fp + fn + tp
    assert results["accuracy"] == pytest.approx((tn + tp) / results["n"], abs=1e-12)
    assert f"accuracy {results['accuracy']:.4f}, macro-F1 {results['macro_f1']:.4f}" in (
        FOLDER / "README.md").read_text(encoding="utf-8")
    # the full test set takes ~10 s; every 8th review keeps the test fast and still ties weights to numbers
    part = data["test"].subset(range(0, len(data["test"]), 8))
    report = evaluate(model.eval(), iter_batches(part, 256), labels=list(REVIEW_LABELS))
    assert report.accuracy == pytest.approx(SLICE_ACCURACY, abs=1e-9)


def test_the_recipe_recreates_the_first_steps(data, one_thread):
    body = GPT.from_pretrained(str(LM))
    classifier = classifier_from_pretrained(body, len(REVIEW_LABELS), "all", seed=0)
    # log_interval only decides when the callback runs, not what is trained
    config = TrainConfig(**{**RECIPE, "progress": False, "eval_interval": 0, "log_interval": 1})
    history = finetune(classifier, data["train"], None, config, callback=lambda row: row["step"] >= 4)
    shipped = pd.read_csv(FOLDER / "history.csv")
    torch.testing.assert_close(torch.tensor(history.train_loss.to_numpy()),
                               torch.tensor(shipped.train_loss.to_numpy()[:4]), rtol=0, atol=2e-4)
