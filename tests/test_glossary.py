"""The glossary (术语表) is one list, llmguide.glossary, and the README and notebook 00 show exactly it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from llmguide.glossary import GLOSSARY, Term, glossary_markdown

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from nbbuild import parse_cells  # noqa: E402

ASKED_FOR = ("注意力", "自注意力", "多头注意力", "预训练", "微调", "困惑度", "词元", "分词", "嵌入", "位置编码", "量化",
             "剪枝", "蒸馏", "损失", "梯度", "优化器", "学习率", "过拟合", "准确率", "精确率", "召回率", "混淆矩阵", "校准",
             "键值缓存", "推理", "部署", "可解释性")


def test_the_readme_shows_the_glossary():
    assert glossary_markdown() in (ROOT / "README.md").read_text(encoding="utf-8")


def test_notebook_00_shows_the_glossary_in_a_markdown_cell():
    cells = parse_cells((ROOT / "notebooks/src/00_start_here.py").read_text(encoding="utf-8"))
    assert any(kind == "markdown" and glossary_markdown() in source for kind, source in cells)


def test_terms_are_unique_and_cover_the_issue_list():
    zh, en = [t.zh for t in GLOSSARY], [t.en for t in GLOSSARY]
    assert len(set(zh)) == len(zh) and len(set(en)) == len(en)
    assert set(ASKED_FOR) <= set(zh), set(ASKED_FOR) - set(zh)
    assert all("|" not in f"{t.zh}{t.en}{t.meaning}" for t in GLOSSARY)  # would break the table


def test_each_term_points_at_a_notebook_that_exists_or_is_marked_coming():
    for term in GLOSSARY:
        match = re.fullmatch(r"(\d\d)( \(coming\))?", term.notebook)
        assert match, f"{term}: notebook must be 'NN' or 'NN (coming)'"
        exists = any((ROOT / "notebooks").glob(f"{match.group(1)}_*.ipynb"))
        # a coming notebook that has landed must be linked: drop "(coming)" then
        assert exists != bool(match.group(2)), f"{term.zh}: notebook {term.notebook}, exists={exists}"


def test_the_table_has_one_row_per_term():
    table = glossary_markdown((Term("词元", "token", "a unit", "01"),)).splitlines()
    assert table == ["| 中文 | English | meaning | notebook |", "|---|---|---|---|", "| 词元 | token | a unit | 01 |"]
    assert len(glossary_markdown().splitlines()) == 2 + len(GLOSSARY)
