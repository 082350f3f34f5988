"""The notebooks are committed built from their sources, executed in order, and open the same way."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
_spec = importlib.util.spec_from_file_location("nbbuild", ROOT / "tools" / "nbbuild.py")
nbbuild = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nbbuild)


def test_there_are_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS][:2] == ["00", "01"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_matches_its_source(path: Path):
    src = ROOT / "notebooks" / "src" / (path.stem + ".py")
    assert src.is_file(), f"{path.name} has no source {src.relative_to(ROOT)}"
    expected = [(kind, text) for kind, text in nbbuild.parse_cells(src.read_text(encoding="utf-8"))]
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    actual = [(c["cell_type"], "".join(c["source"])) for c in cells]
    assert actual == expected, f"{path.name} differs from its source: run python tools/nbbuild.py {src}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_executed_in_order_and_clean(path: Path):
    cells = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
    counts = [c["execution_count"] for c in cells]
    assert counts == list(range(1, len(cells) + 1)), f"{path.name}: re-run it from a fresh kernel"
    errors = [o for c in cells for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, f"{path.name} was saved with an error output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opens_and_ends_the_same_way(path: Path):
    code = ["".join(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
            if c["cell_type"] == "code"]
    assert "IN_COLAB" in code[0], "the first code cell installs llmguide on Colab only"
    assert "from llmguide import" in code[1] and "setup(" in code[1], "the second imports llmguide and calls setup()"
    assert code[-1].lstrip().startswith("# Checks") and "assert " in code[-1], "the last cell holds the assert checks"
