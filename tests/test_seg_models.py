"""The shipped word segmenters (data/pd-seg-bert, -lstm, -gpt): safe folders, their recorded settings are the
recipe in the code, the recipe re-creates the start of each run, the recorded score is what the weights
give, and the segmenter keeps working on text unlike the corpus (half-width digits, other years)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from llmguide.data import data_dir
from llmguide.segment import TAGS
from llmguide.tagger import (
    SEGMENTER_BLOCK_SIZE,
    SEGMENTER_RECIPES,
    evaluate_segmenter,
    load_segmenter,
    segment_with,
    segmenter_start,
    segmenter_train_config,
    train_segmenter,
)

# folder suffix -> the recipe that made it (llmguide.tagger.SEGMENTER_RECIPES)
RECIPES = {"bert": "bert-pretrained", "bert-scratch": "bert", "lstm": "lstm", "gpt": "gpt"}
NAMES = tuple(RECIPES)
KINDS = {"bert": "bert-tagger", "bert-scratch": "bert-tagger", "lstm": "lstm-tagger", "gpt": "gpt-tagger"}


def folder(name: str):
    return data_dir() / f"pd-seg-{name}"


class _Loaded(dict):
    """Each shipped folder, loaded once, when a test first asks for it."""

    def __missing__(self, name):
        self[name] = load_segmenter(folder(name))
        return self[name]


@pytest.fixture(scope="module")
def loaded():
    return _Loaded()


@pytest.mark.parametrize("name", NAMES)
def test_the_folder_holds_only_safe_small_files(name):
    files = sorted(p.name for p in folder(name).iterdir())
    assert files == ["README.md", "config.json", "history.csv", "labels.json", "model.safetensors", "tokenizer.json"]
    assert sum(p.stat().st_size for p in folder(name).iterdir()) < 10e6


@pytest.mark.parametrize("name", NAMES)
def test_recorded_settings_are_the_recipe_in_the_code(loaded, name):
    model, tokenizer, meta = loaded[name]
    assert meta["kind"] == KINDS[name] and meta["labels"] == list(TAGS) and meta["recipe"] == RECIPES[name]
    recipe = SEGMENTER_RECIPES[RECIPES[name]]
    assert {k: meta["model"][k] for k in recipe["model"]} == recipe["model"]
    assert meta["train"] == recipe["train"] and meta["chunk_chars"] == SEGMENTER_BLOCK_SIZE
    _, start_tokenizer = segmenter_start(RECIPES[name])
    assert tokenizer.itos == start_tokenizer.itos  # the training documents' characters, or zh-bert's


@pytest.mark.parametrize("name", NAMES)
def test_the_recipe_recreates_the_start_of_the_run(name):
    torch.set_num_threads(1)
    recipe = RECIPES[name]
    model, tokenizer = segmenter_start(recipe)
    config = segmenter_train_config(recipe, max_steps=2, lr_decay_steps=SEGMENTER_RECIPES[recipe]["train"]["max_steps"],
                                    eval_interval=0, eval_steps=1)
    _, info = train_segmenter(model, tokenizer, SEGMENTER_BLOCK_SIZE, config)
    shipped = pd.read_csv(folder(name) / "history.csv")
    assert info["history"]["train_loss"].tolist() == pytest.approx(shipped["train_loss"][:2].tolist(), abs=1e-4)


def test_the_recorded_score_is_what_the_weights_give(loaded):
    # the shipped BERT on all 1,798 held-out lines
    result = evaluate_segmenter(loaded["bert"], "test")
    recorded = loaded["bert"][2]["results"]
    assert result["f1"] == pytest.approx(recorded["f1"], abs=1e-4)
    assert result["precision"] == pytest.approx(recorded["precision"], abs=1e-4)


def test_half_width_text_does_not_fall_apart(loaded):
    # 300 held-out lines written half-width ("1998年" for "１９９８年"): with the 1:1 normalisation the score
    # stays that of the corpus form; without it, the unseen half-width characters cost points
    full = evaluate_segmenter(loaded["bert"], max_lines=300)
    half = evaluate_segmenter(loaded["bert"], max_lines=300, half_width=True)
    raw = evaluate_segmenter(loaded["bert"], max_lines=300, half_width=True, normalize=False)
    assert abs(half["f1"] - full["f1"]) < 0.002
    assert raw["f1"] < half["f1"] - 0.005


def test_years_and_dates_from_other_periods(loaded):
    # the corpus's standard: a number with its unit is one word ("１９９８年", "１２月", "３１日"). Half-width
    # dates come out as their full-width twins do, in the user's characters; a year the corpus never saw
    # ("2024", in digits or written out) is cut right by the pre-trained BERT and the BiLSTM. (The GPT, which
    # sees only the left, cuts "202 | 4 | 年": it must decide where "2024年" ends before it has read "年".)
    for name in ("bert", "lstm"):
        half, full = segment_with(loaded[name], ["1998年10月1日，他来到北京", "１９９８年１０月１日，他来到北京"])
        assert half[:3] == ["1998年", "10月", "1日"] and full[:3] == ["１９９８年", "１０月", "１日"]
        words, written = segment_with(loaded[name], ["2024年10月1日，他来到了网易杭研大厦", "二〇二四年十月一日"])
        assert words[:3] == ["2024年", "10月", "1日"] and written == ["二〇二四年", "十月", "一日"]
        assert "".join(words) == "2024年10月1日，他来到了网易杭研大厦"  # the user's own characters back
