"""Build the notebooks from their sources, and execute them from a fresh kernel.

Each notebook ``notebooks/NN_topic.ipynb`` is written from ``notebooks/src/NN_topic.py`` in the
"percent" format (``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell whose lines are
``# ``-commented). Sources diff and review well; the executed ``.ipynb`` is what readers and nbval see.
``tests/test_notebooks.py`` checks that every notebook's cells equal its source.

    python tools/nbbuild.py notebooks/src/01_tokens_and_embeddings.py   # build + execute one
    python tools/nbbuild.py --all                                        # build + execute all
    python tools/nbbuild.py --no-execute --all                           # only rebuild the cells
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "notebooks" / "src"
CELL = re.compile(r"^# %%(.*)$")


def parse_cells(text: str) -> list[tuple[str, str]]:
    """Split a percent-format source into (kind, source) pairs; kind is "code" or "markdown"."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        match = CELL.match(line)
        if match:
            cells.append(("markdown" if "[markdown]" in match.group(1) else "code", []))
        elif cells:
            cells[-1][1].append(line)
    out = []
    for kind, lines in cells:
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if kind == "markdown":
            lines = [re.sub(r"^# ?", "", ln) for ln in lines]
        out.append((kind, "\n".join(lines)))
    return out


def build(src: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for kind, source in parse_cells(src.read_text(encoding="utf-8")):
        cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
        cell.pop("id", None)
        nb.cells.append(cell)
    return nb


def execute(nb: nbformat.NotebookNode, cwd: Path) -> None:
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="*", type=Path)
    parser.add_argument("--all", action="store_true", help="every source in notebooks/src")
    parser.add_argument("--no-execute", action="store_true")
    args = parser.parse_args(argv)
    sources = sorted(SRC.glob("[0-9][0-9]_*.py")) if args.all else args.sources
    if not sources:
        parser.error("name a source or pass --all")
    for src in sources:
        target = ROOT / "notebooks" / (src.stem + ".ipynb")
        nb = build(src)
        if not args.no_execute:
            print(f"executing {target.name} ...", flush=True)
            execute(nb, target.parent)
        for cell in nb.cells:
            cell.pop("id", None)
            cell.metadata.pop("execution", None)  # nbclient's timestamps: noise in every diff
        nb.nbformat_minor = 4  # ids are optional in 4.4; without them diffs stay small
        nbformat.write(nb, target)
        print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
