"""The notebooks' output checking (notebooks/conftest.py) tolerates last-bit drift and still fails on
real regressions: a learning rate 10x off, a parity that breaks, a sampled-text cell that asserts nothing."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("nbcheck", ROOT / "notebooks" / "conftest.py")
nbcheck = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nbcheck)


def test_numbers_within_tolerance_take_the_saved_spelling():
    assert nbcheck.snap_numbers("val loss 5.755 (ppl 316)", "val loss 5.790 (ppl 327)", 0.04, 0) == (
        "val loss 5.790 (ppl 327)"
    )


def test_numbers_outside_tolerance_are_left_to_fail():
    # 5.755 is within 1% of 5.790, 316 is 3.4% off 327: only the first is snapped.
    assert nbcheck.snap_numbers("loss 5.755 ppl 316", "loss 5.790 ppl 327", 0.01, 0) == "loss 5.790 ppl 316"
    assert nbcheck.snap_numbers("loss 57.9", "loss 5.790", 0.5, 0) == "loss 57.9"


def test_words_must_still_match_exactly():
    assert nbcheck.snap_numbers("train loss 5.79", "val loss 5.79", 0.1, 0) == "train loss 5.79"
    assert nbcheck.snap_numbers("a 1\nb 2", "a 1", 0.1, 0) == "a 1\nb 2"  # a missing line is not hidden


def test_absolute_tolerance_and_thousands_separators():
    assert nbcheck.snap_numbers("acc 0.831, n=1,236", "acc 0.826, n=1,240", 0.005, 0.005) == "acc 0.826, n=1,240"
    assert nbcheck.snap_numbers("acc 0.84", "acc 0.83", 0.0, 0.01) == "acc 0.83"  # the bound itself is inside


def test_tolerance_marker_is_parsed_and_checked():
    assert nbcheck.parse_tolerance("x = 1\n# NBVAL_TOLERANCE rel=0.02 abs=0.01\nprint(x)") == (0.02, 0.01)
    assert nbcheck.parse_tolerance("# NBVAL_TOLERANCE abs=0.5") == (0.0, 0.5)
    assert nbcheck.parse_tolerance("print(1)") is None
    with pytest.raises(ValueError, match="rel= and/or abs="):
        nbcheck.parse_tolerance("# NBVAL_TOLERANCE 0.02")
    with pytest.raises(ValueError, match="finite"):
        nbcheck.parse_tolerance("# NBVAL_TOLERANCE rel=-1")


def test_has_assert_ignores_magics_and_comments():
    assert nbcheck.has_assert("%time x = 1\nassert x == 1")
    assert not nbcheck.has_assert("# assert nothing\nprint('assert')")


# ---- end to end: a real notebook, executed, then checked by pytest --nbval with the plugin ------------

SETUP = """import torch
import llmguide  # noqa: F401
from llmguide.model import GPT, GPTConfig
LR = 3e-3"""
TRAIN = """# NBVAL_TOLERANCE rel=0.02 abs=0.02
torch.manual_seed(0)
model = GPT(GPTConfig(vocab_size=16, block_size=16, n_layer=2, n_head=2, n_embd=32))
opt = torch.optim.AdamW(model.parameters(), lr=LR)
data = (torch.arange(8 * 17) % 7).view(8, 17)  # a repeating pattern the model can learn
for step in range(40):
    _, loss = model(data[:, :-1], data[:, 1:])
    opt.zero_grad(); loss.backward(); opt.step()
print(f"loss after 40 steps: {loss.item():.3f}")"""
PARITY = """x = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
by_hand = x.exp() / x.exp().sum(-1, keepdim=True)
print("softmax by hand equals torch.softmax:", torch.allclose(by_hand, torch.softmax(x, -1), atol=1e-6))"""
SAMPLED = """# NBVAL_SAMPLED_TEXT
import random
sample = "".join(random.choice("abc") for _ in range(20))
print(sample)
assert len(sample) == 20 and set(sample) <= set("abc")"""


def _notebook(sources: list[str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> dict[str, set[str]]:
    """Execute the reference notebook once, write variants with edited code but the saved outputs, run
    pytest --nbval on all of them with the plugin, and return the failing cells of each variant."""
    tmp = tmp_path_factory.mktemp("nbcheck")
    reference = _notebook([SETUP, TRAIN, PARITY, SAMPLED])
    NotebookClient(reference, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp)}}).execute()
    assert "loss after 40 steps" in reference.cells[1].outputs[0]["text"]
    variants = {
        "as_saved": {},
        "lr_10x_off": {0: SETUP.replace("LR = 3e-3", "LR = 3e-2")},
        "parity_broken": {2: PARITY.replace("keepdim=True)", "keepdim=True).sqrt()")},
        "sampled_without_assert": {3: SAMPLED.split("\nassert")[0]},
        "word_changed": {1: TRAIN.replace("loss after", "loss past")},
    }
    for name, edits in variants.items():
        nb = nbformat.from_dict(reference)
        for index, source in edits.items():
            nb.cells[index].source = source
        nbformat.write(nb, tmp / f"{name}.ipynb")
    shutil.copy(ROOT / "notebooks" / "conftest.py", tmp / "conftest.py")
    (tmp / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "-p", "no:cacheprovider", "-q", "-rf",
         *[f"{name}.ipynb" for name in variants]],
        cwd=tmp, capture_output=True, text=True, timeout=600,
    )
    failed: dict[str, set[str]] = {name: set() for name in variants}
    for name, cell in re.findall(r"^FAILED (\w+)\.ipynb::Cell (\d+)", run.stdout, flags=re.MULTILINE):
        failed[name].add(cell)
    assert "passed" in run.stdout, run.stdout + run.stderr
    return failed


def test_the_saved_notebook_passes(checked):
    assert checked["as_saved"] == set()


def test_a_learning_rate_10x_off_fails_the_training_cell(checked):
    assert checked["lr_10x_off"] == {"1"}


def test_a_broken_parity_fails(checked):
    assert checked["parity_broken"] == {"2"}


def test_sampled_text_must_be_asserted(checked):
    assert checked["sampled_without_assert"] == {"3"}


def test_a_changed_word_in_a_tolerant_cell_fails(checked):
    assert checked["word_changed"] == {"1"}
