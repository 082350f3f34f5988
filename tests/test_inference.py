"""Inference on a saved classifier folder, end to end: load, predict in batches, the predict / evaluate /
finetune commands with their outputs and their one-line errors on bad input."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from llmguide.classify import classifier_from_pretrained, save_classifier
from llmguide.cli import (
    add_evaluate_arguments,
    add_finetune_arguments,
    add_predict_arguments,
    evaluate_command,
    finetune_command,
    predict_command,
)
from llmguide.data import ANIMAL_LABELS, load_animals
from llmguide.evaluate import EvalReport
from llmguide.inference import load_classifier, read_texts
from llmguide.model import GPT, GPTConfig
from llmguide.pretrain import save_model_folder
from llmguide.tokenizer import CharTokenizer


@pytest.fixture
def tok() -> CharTokenizer:
    return CharTokenizer.train(["\n".join(load_animals().text) + "\n"])


@pytest.fixture
def folder(tmp_path, tok, tiny):
    torch.manual_seed(0)
    clf = classifier_from_pretrained(GPT(GPTConfig(**{**tiny, "vocab_size": tok.vocab_size})), 4)
    return save_classifier(clf.eval(), tok, ANIMAL_LABELS, tmp_path / "clf"), clf


def parse(add, argv):
    return add(argparse.ArgumentParser()).parse_args(argv)


def test_load_gives_the_same_model_and_predictions_in_input_order(folder, tok):
    path, clf = folder
    loaded = load_classifier(path, device="cpu")
    assert loaded.labels == list(ANIMAL_LABELS) and loaded.block_size == 16
    texts = ["这是一只猫", "a dog", "鸟", "the fish swims in the pond every day"]  # the last one is cut to 16
    probs, n_truncated = loaded.predict_proba(texts, batch_size=2)
    assert n_truncated == 1
    with torch.no_grad():
        expected = torch.cat([clf(torch.tensor([tok.encode(t)[:16]]))[0] for t in texts]).softmax(-1)
    np.testing.assert_allclose(probs, expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(loaded.predict_proba(texts, batch_size=1)[0], probs, atol=1e-5)  # batching-proof
    df = loaded.predict(texts)
    assert list(df.columns) == ["text", "label", "probability"] and df.text.tolist() == texts
    assert df.label.tolist() == [ANIMAL_LABELS[i] for i in probs.argmax(1)]
    np.testing.assert_allclose(df.probability, probs.max(1), atol=1e-6)


def test_predict_command_writes_csv_to_stdout(folder, capsys):
    path, _ = folder
    assert predict_command(parse(add_predict_arguments, [str(path), "这是一只猫", "this is a dog"])) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "text,label,probability" and len(lines) == 3
    df = pd.read_csv(pd.io.common.StringIO(out))
    assert df.text.tolist() == ["这是一只猫", "this is a dog"] and set(df.label) <= set(ANIMAL_LABELS)
    assert ((df.probability > 0.25 - 1e-4) & (df.probability <= 1)).all()  # the max of 4 probabilities


def test_predict_command_reads_txt_and_csv_and_writes_json_lines(folder, tmp_path, capsys):
    path, _ = folder
    txt = tmp_path / "in.txt"
    txt.write_text("这是一只猫\n\nthis is a bird\n", encoding="utf-8")
    csv = tmp_path / "in.csv"
    pd.DataFrame({"id": [1, 2], "text": ["鱼在游", "a cat"]}).to_csv(csv, index=False)
    out = tmp_path / "out" / "pred.jsonl"
    predict_command(parse(add_predict_arguments, [str(path), "--input", str(txt), "--format", "json",
                                                  "--output", str(out)]))
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == ["这是一只猫", "this is a bird"]  # the empty line is skipped
    assert set(rows[0]) == {"text", "label", "probability"}
    predict_command(parse(add_predict_arguments, [str(path), "--input", str(csv)]))
    assert "鱼在游," in capsys.readouterr().out


@pytest.mark.parametrize("make, error, match", [
    (lambda tmp: ["missing_dir", "猫"], FileNotFoundError, "no model folder at missing_dir"),
    (lambda tmp: ["{clf}"], ValueError, "no texts to classify"),
    (lambda tmp: ["{clf}", "--input", str(tmp / "empty.txt")], ValueError, "holds no text"),
    (lambda tmp: ["{clf}", "--input", str(tmp / "notext.csv")], ValueError, "has no 'text' column .*columns: id, review"),
    (lambda tmp: ["{clf}", "--input", str(tmp / "nope.txt")], FileNotFoundError, "no such file"),
    (lambda tmp: ["{clf}", "猫", "--input", str(tmp / "empty.txt")], ValueError, "not both"),
    (lambda tmp: ["{clf}", "  "], ValueError, "text 0 is empty"),
])
def test_predict_command_bad_input_gives_one_line_errors(folder, tmp_path, make, error, match):
    path, _ = folder
    (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")
    pd.DataFrame({"id": [1], "review": ["好"]}).to_csv(tmp_path / "notext.csv", index=False)
    argv = [a.replace("{clf}", str(path)) for a in make(tmp_path)]
    with pytest.raises(error, match=match) as info:
        predict_command(parse(add_predict_arguments, argv))
    assert "\n" not in str(info.value)


def test_incomplete_folder_names_the_missing_file(folder):
    path, _ = folder
    (path / "labels.json").unlink()
    with pytest.raises(FileNotFoundError, match="missing labels.json"):
        load_classifier(path)


def test_read_texts_strips_and_skips_empty(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("text,label\n 好 ,positive\n,negative\n坏,negative\n", encoding="utf-8")
    assert read_texts(p) == ["好", "坏"]


def test_evaluate_command_on_a_classifier_and_saves_json(folder, tmp_path, capsys):
    path, _ = folder
    animals = load_animals().iloc[::5]
    data = tmp_path / "test.csv"
    animals.assign(label=animals.label_name)[["text", "label"]].to_csv(data, index=False)
    report_path = tmp_path / "report.json"
    evaluate_command(parse(add_evaluate_arguments, [str(path), "--data", str(data), "--output", str(report_path)]))
    out = capsys.readouterr().out
    assert "precision" in out and "accuracy" in out
    report = EvalReport.load(report_path)
    assert report.n == len(animals) and report.labels == list(ANIMAL_LABELS)
    assert sum(map(sum, report.confusion)) == len(animals)
    bad = tmp_path / "nolabel.csv"
    animals[["text"]].to_csv(bad, index=False)
    with pytest.raises(ValueError, match="no 'label' column"):
        evaluate_command(parse(add_evaluate_arguments, [str(path), "--data", str(bad)]))
    with pytest.raises(ValueError, match="not the review corpus's"):
        evaluate_command(parse(add_evaluate_arguments, [str(path), "--data", "test"]))


def test_evaluate_command_on_a_language_model_reports_perplexity(tmp_path, tok, tiny, capsys):
    torch.manual_seed(0)
    lm = save_model_folder(tmp_path / "lm", GPT(GPTConfig(**{**tiny, "vocab_size": tok.vocab_size})), tok)
    text = tmp_path / "text.txt"
    text.write_text("\n".join(load_animals().text[:20]) + "\n", encoding="utf-8")
    out = tmp_path / "lm.json"
    evaluate_command(parse(add_evaluate_arguments, [str(lm), "--data", str(text), "--output", str(out)]))
    report = EvalReport.load(out)
    assert report.task == "language_model" and report.perplexity == pytest.approx(math.exp(report.loss))
    # an untrained model is close to a uniform guess over the vocabulary
    assert abs(report.loss - math.log(tok.vocab_size)) < 0.5
    assert "perplexity" in capsys.readouterr().out


def test_finetune_command_end_to_end_on_csv_files(tmp_path, tok, tiny, capsys):
    torch.manual_seed(0)
    lm = save_model_folder(tmp_path / "lm", GPT(GPTConfig(**{**tiny, "vocab_size": tok.vocab_size})), tok)
    animals = load_animals().assign(label=lambda d: d.label_name)[["text", "label"]]
    animals.to_csv(tmp_path / "train.csv", index=False)
    animals.iloc[::4].to_csv(tmp_path / "test.csv", index=False)
    out = tmp_path / "clf"
    args = parse(add_finetune_arguments, [str(lm), "--out", str(out), "--train", str(tmp_path / "train.csv"),
                                          "--test", str(tmp_path / "test.csv"), "--steps", "4", "--batch-size",
                                          "8", "--profile", "cpu", "--no-progress"])
    assert finetune_command(args) == 0
    assert "saved the classifier" in capsys.readouterr().out
    assert {"model.safetensors", "config.json", "tokenizer.json", "labels.json", "history.csv",
            "report.json"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "labels.json").read_text(encoding="utf-8")) == sorted(ANIMAL_LABELS)
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["evaluated_on"] == "test" and config["finetune"]["max_steps"] == 4
    assert EvalReport.load(out / "report.json").n == len(animals.iloc[::4])
    loaded = load_classifier(out)
    assert config["end_id"] == tok.encode("\n")[0]  # fine-tuned with the end token, so predict appends it too
    probs, _ = loaded.predict_proba(["猫咪", "a dog"])
    with torch.no_grad():
        direct = torch.cat([loaded.model(torch.tensor([tok.encode(t) + [config["end_id"]]]))[0] for t in ["猫咪", "a dog"]])
    np.testing.assert_allclose(probs, direct.softmax(-1).numpy(), atol=1e-5)
    with pytest.raises(FileNotFoundError, match="no such pre-trained model folder"):
        finetune_command(parse(add_finetune_arguments, [str(tmp_path / "nothing"), "--out", str(tmp_path / "new")]))
    with pytest.raises(ValueError, match="already holds a 'gpt-classifier' model: pass --overwrite"):
        finetune_command(parse(add_finetune_arguments, [str(lm), "--out", str(out)]))  # refused before any work
