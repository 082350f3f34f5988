"""`llmguide segment MODEL_DIR [TEXT ...] [--input FILE] [--output FILE]` on the shipped segmenter: SIGHAN
format, one output line per input line, files in and out, and one-line errors with exit status 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from llmguide.data import data_dir

LLMGUIDE = [shutil.which("llmguide")] if shutil.which("llmguide") else [sys.executable, "-m", "llmguide.cli"]
FOLDER = str(data_dir() / "pd-seg-bert")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LLMGUIDE, "segment", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_segments_the_issue_example_in_sighan_format():
    out = run(FOLDER, "他来到了网易杭研大厦", "1998年10月1日")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].replace("  ", "") == "他来到了网易杭研大厦" and lines[0].startswith("他  ")
    assert lines[1].replace("  ", "") == "1998年10月1日" and "  " in lines[1]  # half-width in, half-width out
    words = lines[1].split("  ")
    assert lines == [line for line in lines if "   " not in line] and all(words)  # exactly two spaces between words


def test_files_in_and_out_keep_one_line_per_line(tmp_path):
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("今天天气很好。\n\n我们去北京。\n", encoding="utf-8")
    out = run(FOLDER, "--input", str(src), "--output", str(dst))
    assert out.returncode == 0, out.stderr
    lines = dst.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines[:-1]) == 3 and lines[1] == ""  # the empty line stays empty
    assert [ln.replace("  ", "") for ln in lines[:-1]] == ["今天天气很好。", "", "我们去北京。"]


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    cases = [
        ([FOLDER], "nothing to segment"),
        ([str(tmp_path / "missing"), "你好"], "no model folder"),
        ([FOLDER, "--input", str(tmp_path / "nope.txt")], "no such file"),
        ([str(data_dir() / "review-gpt"), "你好"], "not a word segmenter"),
    ]
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9\n".encode("latin-1"))
    cases.append(([FOLDER, "--input", str(bad)], "not UTF-8"))
    for args, message in cases:
        out = run(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
