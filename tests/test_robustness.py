"""Hostile but realistic input (issue 16): each case fails early with one clear error, or is impossible.

One test per item of the issue, named after the behaviour. The command-line cases run the real
``llmguide`` and check for one line on stderr, exit status 2 and no traceback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmguide.atomic import check_output_file
from llmguide.checkpoint import latest_checkpoint, list_checkpoints, save_checkpoint
from llmguide.classify import classifier_from_pretrained, save_classifier
from llmguide.data import ANIMAL_LABELS
from llmguide.folder import CARD, CONFIG, TOKENIZER, WEIGHTS, check_output, load_folder, save_folder
from llmguide.generate import Sampling, generate, sample_next
from llmguide.lock import FolderLockedError, folder_lock, lock_path, read_holder
from llmguide.model import GPT, GPTConfig
from llmguide.tokenizer import CharTokenizer
from llmguide.train import TrainConfig, train

QUIET = dict(progress=False, warmup_steps=1, eval_steps=1, log_interval=1)


@pytest.fixture
def lm(tiny, animal_tok) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(**{**tiny, "vocab_size": animal_tok.vocab_size}))


@pytest.fixture
def lm_folder(lm, animal_tok, tmp_path):
    return save_folder(tmp_path / "lm", lm, animal_tok)


def _edit_config(folder, **changes):
    config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    for key, value in changes.items():
        if key.startswith("model."):
            name = key.removeprefix("model.")
            if value is None:
                config["model"].pop(name)
            else:
                config["model"][name] = value
        else:
            config[key] = value
    (folder / CONFIG).write_text(json.dumps(config), encoding="utf-8")


# ---------------------------------------------------------------- 1. mixed folders
def test_a_new_save_replaces_every_model_file_and_leaves_no_old_card(lm, animal_tok, tmp_path):
    folder = save_folder(tmp_path / "lm", lm, animal_tok, files={CARD: lambda p: p.write_text("old card")})
    (folder / "checkpoints").mkdir()
    other = CharTokenizer.train(["abc"])
    save_folder(folder, GPT(GPTConfig(**{**lm.config_dict(), "vocab_size": other.vocab_size})), other)
    assert not (folder / CARD).exists()  # the old model's card does not describe the new weights
    assert (folder / "checkpoints").is_dir()  # the run's checkpoints stay
    model, tokenizer, _ = load_folder(folder)
    assert tokenizer.vocab_size == model.config.vocab_size == other.vocab_size


def test_a_failing_save_leaves_the_previous_folder_whole(lm_folder, animal_tok):
    before = {p.name: p.read_bytes() for p in lm_folder.iterdir()}

    def crash(path):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_folder(lm_folder, GPT(GPTConfig(**{**load_folder(lm_folder)[0].config_dict(), "n_layer": 1})),
                    CharTokenizer.train(["xyz"]), files={"history.csv": crash})
    assert {p.name: p.read_bytes() for p in lm_folder.iterdir()} == before
    assert sorted(p.name for p in lm_folder.parent.iterdir()) == ["lm"]


# ---------------------------------------------------------------- 2. stale checkpoints
def test_a_fresh_run_refuses_an_out_dir_holding_an_earlier_runs_checkpoints(tiny, tmp_path, lm_data):
    data = lm_data(16, tiny["block_size"], tiny["vocab_size"])
    cfg = TrainConfig(max_steps=2, batch_size=4, out_dir=str(tmp_path), **QUIET)
    train(GPT(GPTConfig(**tiny)), data, None, cfg)
    with pytest.raises(ValueError, match="already holds checkpoints of an earlier run.*step_000002.*resume=True"):
        train(GPT(GPTConfig(**tiny)), data, None, cfg)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000002"]  # the old run is untouched


def test_resume_refuses_other_model_sizes_and_other_training_settings(tiny, tmp_path, lm_data):
    data = lm_data(16, tiny["block_size"], tiny["vocab_size"])
    cfg = dict(max_steps=2, batch_size=4, out_dir=str(tmp_path), **QUIET)
    train(GPT(GPTConfig(**tiny)), data, None, TrainConfig(**cfg))
    with pytest.raises(ValueError, match="other sizes: dropout=0.0 there, 0.1 here"):
        train(GPT(GPTConfig(**{**tiny, "dropout": 0.1})), data, None, TrainConfig(**cfg), resume=True)
    with pytest.raises(ValueError, match="other settings: learning_rate=0.001 there, 0.01 here"):
        train(GPT(GPTConfig(**tiny)), data, None, TrainConfig(**{**cfg, "learning_rate": 1e-2}), resume=True)
    longer = train(GPT(GPTConfig(**tiny)), data, None, TrainConfig(**{**cfg, "max_steps": 3}), resume=True)
    assert longer.step.tolist() == [1, 2, 3]  # how long it runs may change


def test_resume_refuses_a_foreign_tokenizer_of_the_same_size(tiny, tmp_path, lm_data):
    data = lm_data(16, tiny["block_size"], tiny["vocab_size"])
    cfg = TrainConfig(max_steps=2, batch_size=4, out_dir=str(tmp_path), **QUIET)
    train(GPT(GPTConfig(**tiny)), data, None, cfg, run_meta={"tokenizer": {"vocab_size": 100, "fingerprint": "a"}})
    with pytest.raises(ValueError, match="another tokenizer"):
        train(GPT(GPTConfig(**tiny)), data, None, TrainConfig(**{**vars(cfg), "max_steps": 3}), resume=True,
              run_meta={"tokenizer": {"vocab_size": 100, "fingerprint": "b"}})


def test_resume_without_a_checkpoint_says_so(tiny, tmp_path, lm_data):
    data = lm_data(16, tiny["block_size"], tiny["vocab_size"])
    with pytest.warns(UserWarning, match="holds no complete checkpoint: starting from step 0"):
        train(GPT(GPTConfig(**tiny)), data, None, TrainConfig(max_steps=1, batch_size=4, out_dir=str(tmp_path),
                                                               **QUIET), resume=True)


def test_leftover_partial_saves_are_cleaned_when_a_run_starts(tiny, tmp_path, lm_data):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs: the writer of the leftovers was killed
    root = tmp_path / "checkpoints"
    (root / f".tmp-step_000009-{dead.pid}").mkdir(parents=True)
    (root / f".tmp-step_000008-{os.getpid()}").mkdir()  # a save of a live process: left alone
    train(GPT(GPTConfig(**tiny)), lm_data(8, tiny["block_size"], tiny["vocab_size"]), None,
          TrainConfig(max_steps=1, batch_size=4, out_dir=str(tmp_path), **QUIET))
    assert sorted(p.name for p in root.iterdir()) == [f".tmp-step_000008-{os.getpid()}", "step_000001"]


# ---------------------------------------------------------------- 3. one kind over another, --out = input
def test_writing_one_kind_of_model_over_another_is_refused(lm, lm_folder, animal_tok):
    clf = classifier_from_pretrained(lm, len(ANIMAL_LABELS))
    with pytest.raises(ValueError, match="holds a 'gpt-lm' model: refusing to write a 'gpt-classifier' model"):
        save_classifier(clf, animal_tok, ANIMAL_LABELS, lm_folder)
    assert load_folder(lm_folder)[2]["kind"] == "gpt-lm"  # still the language model
    with pytest.raises(ValueError, match="holds a 'gpt-lm' model: refusing to write a 'gpt-classifier'"):
        check_output(lm_folder, "gpt-classifier")


def test_an_output_folder_that_is_an_input_is_refused(lm_folder):
    with pytest.raises(ValueError, match="is also an input of this run"):
        check_output(lm_folder, "gpt-classifier", inputs=[str(lm_folder)], overwrite=True)


def test_a_non_empty_output_folder_needs_overwrite_or_resume(lm_folder):
    with pytest.raises(ValueError, match="already holds a 'gpt-lm' model: pass --overwrite to replace it, --resume"):
        check_output(lm_folder, "gpt-lm")
    assert check_output(lm_folder, "gpt-lm", overwrite=True) == lm_folder
    assert check_output(lm_folder, "gpt-lm", resume=True) == lm_folder


def test_output_locations_that_cannot_be_written_fail_before_any_work(tmp_path, monkeypatch):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_output(a_file, "gpt-lm")
    with pytest.raises(ValueError, match="is a folder: pass a file name"):
        check_output_file(tmp_path)
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_output_file(a_file / "report.json")
    locked = tmp_path / "ro"
    locked.mkdir()
    real_access = os.access  # root may write anywhere: ask the check what a normal user would be told
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == locked else real_access(path, mode))
    with pytest.raises(ValueError, match=f"no permission to write in {locked}"):
        check_output(locked / "lm", "gpt-lm")
    with pytest.raises(ValueError, match="no permission to write"):
        check_output_file(locked / "predictions.csv")


# ---------------------------------------------------------------- 4. locks
def test_a_second_run_on_the_same_output_gets_one_line_naming_the_holder(tmp_path):
    out = tmp_path / "lm"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from llmguide.lock import folder_lock\n"
        f"with folder_lock({str(out)!r}, command='llmguide pretrain --out lm'):\n"
        "    print('locked', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderLockedError) as err, folder_lock(out):
            pass
        message = str(err.value)
        assert "\n" not in message and f"pid {holder.pid} on host {socket.gethostname()}" in message
        assert "llmguide pretrain --out lm" in message and str(lock_path(out)) in message
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "lm"
    lock_path(out).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "command": "killed",
                                          "started": "then"}), encoding="utf-8")
    with pytest.warns(UserWarning, match="stale lock"), folder_lock(out):
        assert read_holder(out)["pid"] == os.getpid()
    assert not lock_path(out).exists()  # released


# ---------------------------------------------------------------- 5. tokenizer / model mismatch
def test_a_tokenizer_with_fewer_ids_than_the_model_is_refused_on_load(lm_folder):
    CharTokenizer.train(["猫狗"]).save(lm_folder)
    with pytest.raises(ValueError, match="is not the tokenizer this model was saved with"):
        load_folder(lm_folder)


def test_a_foreign_tokenizer_with_the_same_number_of_ids_is_refused(lm_folder, animal_tok):
    chars = animal_tok.itos[4:]
    CharTokenizer(chars[1:] + ["\u2603"]).save(lm_folder)  # same count, other ids
    with pytest.raises(ValueError, match="fingerprint"):
        load_folder(lm_folder)


def test_a_folder_without_a_record_still_checks_the_vocabulary_size(lm_folder):
    config = json.loads((lm_folder / CONFIG).read_text(encoding="utf-8"))
    del config["tokenizer"]
    (lm_folder / CONFIG).write_text(json.dumps(config), encoding="utf-8")
    CharTokenizer.train(["猫狗"]).save(lm_folder)
    with pytest.raises(ValueError, match="has 6 ids but the model's vocabulary .* is 195"):
        load_folder(lm_folder)


# ---------------------------------------------------------------- 7. keep
@pytest.mark.parametrize("keep", [-1, 1.5, True, "2"])
def test_save_checkpoint_refuses_a_bad_keep_before_writing(tiny, tmp_path, keep):
    with pytest.raises(ValueError, match="keep must be an int >= 0"):
        save_checkpoint(tmp_path, 1, GPT(GPTConfig(**tiny)), {}, {}, [], keep=keep)
    assert latest_checkpoint(tmp_path) is None and not (tmp_path / "checkpoints").exists()


# ---------------------------------------------------------------- 8. generate's inputs
@pytest.mark.parametrize("kwargs, match", [
    (dict(temperature=float("nan")), "temperature must be >= 0 and finite.*nan"),
    (dict(temperature=float("inf")), "temperature must be >= 0 and finite.*inf"),
    (dict(temperature=1e-45), "at least 1e-06, got 1e-45"),
    (dict(top_p=float("nan")), r"top_p must be None or in \(0, 1\], got nan"),
    (dict(eos_id=1e9), "eos_id must be None or a token id"),
    (dict(eos_id=10**9), "eos_id=1000000000 is not a token of this model"),
])
def test_generate_refuses_bad_sampling_settings_where_they_enter(lm, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate(lm, [5, 6], 3, **kwargs)


@pytest.mark.parametrize("ids, match", [
    ([5.7, 6.0], "token ids must be integers, got torch.float32"),
    ([[5, 6], [7]], "ids must be token ids"),
    ([5, 10**6], r"token ids must be in \[0, 195\)"),
    ([-1, 3], r"token ids must be in \[0, 195\)"),
])
def test_generate_refuses_float_ragged_and_out_of_range_token_ids(lm, ids, match):
    with pytest.raises(ValueError, match=match):
        generate(lm, ids, 2)


def test_sample_next_never_samples_from_an_empty_set():
    logits = torch.randn(3, 50)
    # top_p=1e-300 is 0 in float32: the top token still stays (it used to crash inside multinomial)
    assert torch.equal(sample_next(logits, 1.0, top_p=1e-300), logits.argmax(-1))
    with pytest.raises(ValueError, match="at least 1e-06"):
        sample_next(logits, 1e-300)
    with pytest.raises(ValueError, match="temperature"):
        Sampling(temperature=float("nan"))


# ---------------------------------------------------------------- config.json and weights files
@pytest.mark.parametrize("change, match", [
    ({"model.n_layer": None}, r"config.json entry 'model' is missing 'n_layer'"),
    ({"model.n_layers": 2}, r"config.json entry 'model' has unknown key\(s\) 'n_layers'"),
    ({"model.n_head": "4"}, r"config.json entry 'model' key 'n_head' is '4' \(str\), but must be int"),
    ({"model.dropout": None}, r"missing 'dropout'"),
    ({"model.bias": 1}, r"key 'bias' is 1 \(int\), but must be bool"),
    ({"model.n_embd": 30}, r"config.json does not describe a 'gpt-lm' model: GPTConfig.n_embd=30"),
    ({"end_id": 10**6}, r"config.json key 'end_id' is 1000000, outside \[0, 195\)"),
    ({"model": [1, 2]}, r"has no 'model' entry"),
])
def test_a_damaged_config_json_is_one_value_error_naming_the_file_and_key(lm_folder, change, match):
    _edit_config(lm_folder, **change)
    with pytest.raises(ValueError, match=match) as err:
        load_folder(lm_folder)
    assert str(lm_folder / CONFIG) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "zero-byte"])
def test_a_damaged_safetensors_file_is_one_value_error_naming_the_file(lm_folder, damage):
    path = lm_folder / WEIGHTS
    data = path.read_bytes()
    path.write_bytes({"truncated": data[:len(data) // 2], "garbage": os.urandom(4096), "zero-byte": b""}[damage])
    with pytest.raises(ValueError, match="is not a readable safetensors file") as err:
        load_folder(lm_folder)
    assert str(path) in str(err.value)


def test_the_tokenizer_record_is_written_beside_the_model(lm_folder, animal_tok):
    config = json.loads((lm_folder / CONFIG).read_text(encoding="utf-8"))
    assert config["tokenizer"]["vocab_size"] == animal_tok.vocab_size == config["model"]["vocab_size"]
    assert (lm_folder / TOKENIZER).is_file()


# ---------------------------------------------------------------- the command line: one line, exit 2, before any work
PRETRAIN = ["--no-progress", "--profile", "cpu", "--max_steps=2", "--n_layer=1", "--n_head=2", "--n_embd=16",
            "--block_size=16", "--batch_size=4", "--warmup_steps=1", "--eval_interval=2", "--eval_steps=1"]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("".join(f"第{i}行：the quick brown fox jumps over {i} lazy dogs.\n" for i in range(40)),
                    encoding="utf-8")
    return path


def cli(capsys, *args: str) -> tuple[int, str]:
    """Run ``llmguide ARGS`` in this process: (exit status, stderr). An uncaught exception fails the test."""
    from llmguide.cli import main

    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    return code, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if "warning" not in line]
    assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in err, err
    return lines[0]


def snapshot(folder):
    """The model files of a folder (a run's checkpoints/ aside), name -> bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "checkpoints" not in p.relative_to(folder).parts}


def test_a_failed_pretrain_run_leaves_the_existing_model_folder_as_it_was(capsys, corpus, lm_folder, monkeypatch):
    import llmguide.pretrain as recipe

    before = snapshot(lm_folder)
    code, err = cli(capsys, "pretrain", "--corpus", corpus, "--out", lm_folder, *PRETRAIN)
    assert code == 2 and "already holds a 'gpt-lm' model: pass --overwrite" in one_error_line(err)
    code, err = cli(capsys, "pretrain", "--corpus", corpus, "--out", lm_folder, "--overwrite", *PRETRAIN, "--lr=inf")
    assert code == 2 and "learning_rate=inf is invalid" in one_error_line(err)
    real_train = recipe.train

    def interrupted(*args, **kwargs):  # trains and writes its checkpoints, then is stopped before the save
        real_train(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(recipe, "train", interrupted)
    code, _ = cli(capsys, "pretrain", "--corpus", corpus, "--out", lm_folder, "--overwrite", *PRETRAIN)
    assert code == 130
    assert snapshot(lm_folder) == before  # no new tokenizer beside the old weights; nothing else either
    load_folder(lm_folder)
    monkeypatch.undo()  # the interrupted run left its checkpoints (and their tokenizer): it resumes
    code, _ = cli(capsys, "pretrain", "--corpus", corpus, "--out", lm_folder, "--resume", *PRETRAIN, "--max_steps=3")
    assert code == 0 and read_meta_steps(lm_folder) == 3


def test_resume_into_an_empty_or_missing_folder_says_so(capsys, corpus, tmp_path):
    for out in (tmp_path / "missing", tmp_path):
        code, err = cli(capsys, "pretrain", "--corpus", corpus, "--out", out, "--resume", *PRETRAIN)
        assert code == 2 and "holds no checkpoint to resume from" in one_error_line(err)


def test_resume_with_other_sizes_is_refused_and_the_same_run_resumes(capsys, corpus, tmp_path):
    out = tmp_path / "run"
    assert cli(capsys, "pretrain", "--corpus", corpus, "--out", out, *PRETRAIN)[0] == 0
    code, err = cli(capsys, "pretrain", "--corpus", corpus, "--out", out, "--resume", *PRETRAIN, "--n_embd=32")
    assert code == 2 and "--resume: the run in" in one_error_line(err) and "n_embd=16, not 32" in err
    other = tmp_path / "other.txt"
    other.write_text(corpus.read_text(encoding="utf-8").replace("fox", "cat"), encoding="utf-8")
    code, err = cli(capsys, "pretrain", "--corpus", other, "--out", out, "--resume", *PRETRAIN, "--max_steps=3")
    assert code == 2 and "was trained with another data" in one_error_line(err)
    assert cli(capsys, "pretrain", "--corpus", corpus, "--out", out, "--resume", *PRETRAIN, "--max_steps=3")[0] == 0
    assert read_meta_steps(out) == 3


def read_meta_steps(folder) -> int:
    return json.loads((folder / CONFIG).read_text(encoding="utf-8"))["results"]["steps"]


def test_finetune_into_its_own_input_or_over_a_language_model_is_refused(capsys, lm, animal_tok, lm_folder,
                                                                        tmp_path):
    before = snapshot(lm_folder)
    code, err = cli(capsys, "finetune", lm_folder, "--out", lm_folder, "--overwrite")
    assert code == 2 and "is also an input of this run" in one_error_line(err)
    other = save_folder(tmp_path / "lm2", lm, animal_tok)
    code, err = cli(capsys, "finetune", other, "--out", lm_folder)
    assert code == 2 and "refusing to write a 'gpt-classifier' model over it" in one_error_line(err)
    assert snapshot(lm_folder) == before


def test_pretrain_over_a_classifier_folder_is_refused(capsys, corpus, lm, animal_tok, tmp_path):
    clf = save_classifier(classifier_from_pretrained(lm, len(ANIMAL_LABELS)), animal_tok, ANIMAL_LABELS,
                          tmp_path / "clf")
    code, err = cli(capsys, "pretrain", "--corpus", corpus, "--out", clf, *PRETRAIN)
    assert code == 2 and "holds a 'gpt-classifier' model: refusing to write a 'gpt-lm' model" in one_error_line(err)


def test_a_typo_in_a_local_pretrained_path_says_no_such_folder(capsys, lm_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # ./lm exists here; lmm is the typo
    code, err = cli(capsys, "finetune", "lmm/", "--out", "clf")
    assert code == 2 and "no such pre-trained model folder" in one_error_line(err) and "holds: lm" in err
    (tmp_path / "runs").mkdir()
    code, err = cli(capsys, "finetune", "runs/lmm", "--out", "clf")  # looks like owner/name, but runs/ is here
    assert code == 2 and "no such pre-trained model folder" in one_error_line(err) and "hub" not in err.lower()


@pytest.fixture
def clf_folder(lm, animal_tok, tmp_path):
    clf = classifier_from_pretrained(lm, len(ANIMAL_LABELS))
    return save_classifier(clf, animal_tok, ANIMAL_LABELS, tmp_path / "clf")


def test_output_locations_are_checked_before_predict_and_evaluate_run(capsys, clf_folder, tmp_path, monkeypatch):
    import llmguide.cli as cli_module

    monkeypatch.setattr(cli_module, "load_classifier", lambda *a, **k: pytest.fail("loaded before the check"))
    code, err = cli(capsys, "predict", clf_folder, "猫", "--output", tmp_path)
    assert code == 2 and "is a folder: pass a file name" in one_error_line(err)
    code, err = cli(capsys, "evaluate", clf_folder, "--output", tmp_path)
    assert code == 2 and "is a folder: pass a file name" in one_error_line(err)
    a_file = tmp_path / "f"
    a_file.write_text("x")
    code, err = cli(capsys, "finetune", clf_folder, "--out", a_file)
    assert code == 2 and "is a file, not a folder" in one_error_line(err)


def test_cuda_asked_for_without_cuda_is_one_line(capsys, clf_folder):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, err = cli(capsys, "predict", clf_folder, "猫", "--device", "cuda")
    assert code == 2 and "CUDA is not available here" in one_error_line(err)


@pytest.mark.parametrize("content, match", [
    ("text,label\n猫很可爱,cat\n".encode("gbk"), "is not UTF-8 text"),
    (b"text,label\na,cat\nb,dog,extra\n", r"is not a well-formed CSV file \(Expected 2 fields in line 3, saw 3\)"),
    (b"", "is empty: a CSV file needs a header line"),
])
def test_bad_csv_files_are_one_line_naming_the_file(capsys, clf_folder, tmp_path, content, match):
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    for args in (("evaluate", clf_folder, "--data", path), ("predict", clf_folder, "--input", path)):
        code, err = cli(capsys, *args)
        line = one_error_line(err)
        assert code == 2 and str(path) in line and __import__("re").search(match, line), line


def test_damaged_weights_and_config_are_one_line(capsys, clf_folder):
    config = json.loads((clf_folder / CONFIG).read_text(encoding="utf-8"))
    config["end_id"] = 10**9
    (clf_folder / CONFIG).write_text(json.dumps(config), encoding="utf-8")
    code, err = cli(capsys, "predict", clf_folder, "猫")
    assert code == 2 and "key 'end_id' is 1000000000" in one_error_line(err)
    (clf_folder / WEIGHTS).write_bytes(b"")
    code, err = cli(capsys, "predict", clf_folder, "猫")
    assert code == 2 and "is not a readable safetensors file" in one_error_line(err)


def test_a_locked_output_folder_is_one_line_naming_the_holder(capsys, corpus, tmp_path):
    out = tmp_path / "lm"
    lock_path(out).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(),
                                          "command": "llmguide pretrain --out lm", "started": "now"}))
    code, err = cli(capsys, "pretrain", "--corpus", corpus, "--out", out, *PRETRAIN)
    assert code == 2 and f"is in use by pid {os.getppid()}" in one_error_line(err)
    assert not out.exists()


def test_profile_gpu_on_a_cpu_machine_warns_and_shows_progress(recwarn, corpus, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from llmguide.pretrain import run_pretrain

    settings = {k.removeprefix("--").split("=")[0]: k.split("=")[1] for k in PRETRAIN if "=" in k}
    with pytest.warns(UserWarning, match="--profile gpu on a machine without CUDA"):
        run_pretrain(str(corpus), "char", "gpu", settings, tmp_path / "lm", progress=False)


# ---------------------------------------------------------------- 6. silent misreadings
def test_predict_takes_a_bare_string_as_one_text(clf_folder):
    from llmguide.inference import load_classifier

    classifier = load_classifier(clf_folder, device="cpu")
    one = classifier.predict("这个东西很好用")
    assert len(one) == 1 and one.text.tolist() == ["这个东西很好用"]
    assert one.equals(classifier.predict(["这个东西很好用"]))
    with pytest.raises(ValueError, match="got bytes"):
        classifier.predict(b"abc")
    with pytest.raises(ValueError, match="not a str"):
        classifier.predict([1, 2])


def test_a_txt_file_is_split_at_newlines_only(tmp_path):
    from llmguide.inference import read_texts

    path = tmp_path / "texts.txt"
    path.write_text("one\u2028still one\x0cstill one\nsecond\r\nthird\n", encoding="utf-8")
    assert read_texts(path) == ["one\u2028still one\x0cstill one", "second", "third"]


def test_label_typos_warn_with_counts_and_rare_classes_are_refused(tmp_path, animal_tok):
    import pandas as pd

    from llmguide.classify import file_datasets

    rows = [("好用", "positive")] * 8 + [("很差", "negative")] * 8 + [("不错", "Positive ")] * 2
    path = tmp_path / "train.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    with pytest.warns(UserWarning, match=r"'positive' \(8 examples\), 'Positive ' \(2 examples\) differ only"), \
            pytest.raises(ValueError, match=r"'Positive ' has 2 example\(s\), fewer than 5 per class"):
        file_datasets(path, None, None, animal_tok, 16)
    with pytest.warns(UserWarning, match="differ only in case or spaces"):
        data = file_datasets(path, None, None, animal_tok, 16, allow_rare=True)
    assert data["train"].label_names == ["Positive ", "negative", "positive"]  # asked for: three classes
