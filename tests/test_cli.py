"""The `llmguide` command: help, one-line errors, and the quickstart end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from llmguide.cli import build_parser

LLMGUIDE = [shutil.which("llmguide") or "llmguide"] if shutil.which("llmguide") else [sys.executable, "-m", "llmguide.cli"]


COMMANDS = ("quickstart", "pretrain", "finetune", "evaluate", "predict")


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LLMGUIDE, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})


def test_help_lists_every_command(capsys):
    out = run("--help")
    assert out.returncode == 0
    commands = build_parser()._subparsers._group_actions[0].choices  # what the parser really has
    assert set(COMMANDS) <= set(commands)
    for name in commands:
        assert name in out.stdout, f"`llmguide --help` does not list {name}"
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args([name, "--help"])
        assert done.value.code == 0 and capsys.readouterr().out.startswith(f"usage: llmguide {name}")


def test_offline_hub_name_is_one_line_not_a_traceback(tmp_path):
    out = run("finetune", "llmguide-tests/not-cached", "--out", str(tmp_path / "clf"), HF_HUB_OFFLINE="1")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "offline mode is on" in lines[0] and "Traceback" not in out.stderr


@pytest.mark.parametrize("args", [("quickstart", "--profile", "huge"), ("no-such-command",), ()])
def test_bad_arguments_give_one_line_and_non_zero_exit(args):
    out = run(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in out.stderr


def test_quickstart_runs_the_pipeline_and_saves_it(tmp_path):
    out = run("quickstart", "--out", str(tmp_path / "qs"), "--profile", "cpu")
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "qs" / "summary.json").read_text(encoding="utf-8"))
    assert sum(summary["data"]["train"].values()) > 13_000
    assert summary["lm"]["steps"] == 150 and summary["lm"]["val_loss"] < 7.0  # learned from ln V = 7.98
    # the classifier fine-tuned from the shipped review-gpt is far above chance (0.52)
    assert summary["classifier"]["accuracy"] > 0.75
    predictions = (tmp_path / "qs" / "predictions.csv").read_text(encoding="utf-8").splitlines()
    assert predictions[0] == "text,label,probability" and len(predictions) == 4
    assert "jupyter lab notebooks/" in out.stdout
