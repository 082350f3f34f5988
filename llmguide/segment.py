"""Chinese word segmentation (中文分词) as character tagging, scored the way the SIGHAN bakeoffs score it.

Chinese is written without spaces, so "他来到了网易杭研大厦" must be cut into words
("他 / 来到 / 了 / 网易 / 杭研 / 大厦") before most processing. The standard trick (Xue 2003) turns this into
tagging one label per character: **B** begins a word, **M** is inside it, **E** ends it, **S** is a
single-character word. Any model that labels tokens (a BiLSTM, a GPT, a BERT) then segments text.

Scoring (Emerson 2005, the SIGHAN bakeoff): a word is a span of character offsets ``[start, end)``; a
predicted word is correct when the gold segmentation has exactly that span. Precision = correct /
predicted words, recall = correct / gold words, F1 their harmonic mean. (The bakeoff's ``score`` script
aligns one-word-per-line files with ``diff``; for two segmentations of the same text that counts the
same spans.)

Text unlike the training text: the People's Daily corpus writes digits and Latin letters full-width
("１９９８年", "ＷＴＯ"), users write them half-width ("1998年"). :func:`to_corpus_form` maps each
character 1:1 to the corpus's form, so the model sees familiar characters, and the words are cut from the
user's original string at the same offsets: the output keeps the user's characters.

Shapes: B batch of lines, T characters per chunk, K = 4 tags.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from llmguide.data import read_text
from llmguide.runtime import check_positive_int, eval_mode

TAGS = ("B", "M", "E", "S")  # tag id -> name
TAG_ID = {tag: i for i, tag in enumerate(TAGS)}
IGNORE = -100  # the target of a padding position (cross_entropy's ignore_index)
# Characters after which a long line may be cut into chunks: a word never goes past them.
# Characters a user writes that the corpus writes another way (besides ASCII's width), one for one.
_CORPUS_FORMS = {" ": "\u3000", "〇": "○"}
_CUT_AFTER = set("，。！？；：、）」』”,.!?;:")


# ---------------------------------------------------------------- tags <-> words
def words_to_tags(words: Sequence[str]) -> list[str]:
    """BMES tags, one per character: ``["他", "来到"] -> ["S", "B", "E"]``.

    Raises:
        ValueError: a word is empty (it has no character to tag).
    """
    tags = []
    for word in words:
        if not word:
            raise ValueError(f"empty word in {list(words)[:10]}...: a segmentation holds non-empty words")
        tags += ["S"] if len(word) == 1 else ["B"] + ["M"] * (len(word) - 2) + ["E"]
    return tags


def tags_to_words(chars: str, tags: Sequence[str]) -> list[str]:
    """Cut ``chars`` into words at the boundaries ``tags`` mark (the inverse of :func:`words_to_tags`).

    A model's tags need not be a valid sequence ("B B", "S M"): a word starts at every B or S and after
    every E or S, so any tag sequence gives a segmentation of all the characters.

    Raises:
        ValueError: the lengths differ, or a tag is not one of B, M, E, S.
    """
    if len(chars) != len(tags):
        raise ValueError(f"{len(chars)} characters but {len(tags)} tags: give one tag per character")
    words: list[str] = []
    start = 0
    for i, tag in enumerate(tags):
        if tag not in TAG_ID:
            raise ValueError(f"unknown tag {tag!r} at position {i}: use one of {TAGS}")
        if tag in "BS" and i > start:  # a new word starts here: close the open one
            words.append(chars[start:i])
            start = i
        if tag in "ES":
            words.append(chars[start : i + 1])
            start = i + 1
    if start < len(chars):
        words.append(chars[start:])
    return words


# ---------------------------------------------------------------- scoring
def word_spans(words: Sequence[str]) -> set[tuple[int, int]]:
    """The words as character-offset spans ``[start, end)``: ``["他", "来到"] -> {(0, 1), (1, 3)}``."""
    spans, start = set(), 0
    for word in words:
        spans.add((start, start + len(word)))
        start += len(word)
    return spans


def score(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, float]:
    """Word-level precision, recall and F1 of a segmentation, over all lines together (SIGHAN's scoring).

    Args:
        gold: the reference segmentation, one word list per line.
        predicted: the segmentation to score, one word list per line, of the same texts.
    Returns:
        ``{"precision", "recall", "f1"}`` (fractions) and the counts ``gold_words``, ``predicted_words``,
        ``correct``.
    Raises:
        ValueError: the number of lines differs, or a line's words join to another text.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold lines but {len(predicted)} predicted: score the same lines")
    n_gold = n_pred = correct = 0
    for i, (g, p) in enumerate(zip(gold, predicted, strict=True)):
        if "".join(g) != "".join(p):
            raise ValueError(f"line {i}: the words join to different texts ({''.join(g)[:30]!r} vs "
                             f"{''.join(p)[:30]!r}): segment the gold text itself")
        g_spans, p_spans = word_spans(g), word_spans(p)
        n_gold, n_pred, correct = n_gold + len(g_spans), n_pred + len(p_spans), correct + len(g_spans & p_spans)
    precision = correct / n_pred if n_pred else 0.0
    recall = correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "gold_words": n_gold,
            "predicted_words": n_pred, "correct": correct}


def errors_by_length(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]],
                     max_length: int = 6) -> pd.DataFrame:
    """How often each gold word is missed, by its length in characters (longer words: more to get wrong).

    Args:
        gold, predicted: as for :func:`score`.
        max_length: longer words are counted in the last row (its ``length`` is ``max_length``, meaning "or more").
    Returns:
        DataFrame with one row per length: ``length``, ``gold_words``, ``missed`` (gold spans the
        prediction does not have) and ``error_rate`` = missed / gold_words.
    """
    score(gold, predicted)  # same checks
    counts = {n: [0, 0] for n in range(1, max_length + 1)}
    for g, p in zip(gold, predicted, strict=True):
        p_spans = word_spans(p)
        for span in word_spans(g):
            row = counts[min(span[1] - span[0], max_length)]
            row[0] += 1
            row[1] += span not in p_spans
    df = pd.DataFrame([(n, a, b) for n, (a, b) in counts.items()], columns=["length", "gold_words", "missed"])
    df["error_rate"] = df["missed"] / df["gold_words"].where(df["gold_words"] > 0)
    return df


# ---------------------------------------------------------------- text unlike the corpus
def to_corpus_form(text: str) -> str:
    """Half-width ASCII -> the full-width forms the People's Daily corpus uses, one character for one.

    ``"1998年GDP"`` -> ``"１９９８年ＧＤＰ"``; a space becomes the ideographic space U+3000; the zero of
    years written in characters, "〇" (U+3007, "二〇二四年"), becomes the corpus's "○" (U+25CB, "二○○二年"),
    which is how the 1998 typesetting wrote it (the corpus has no "〇" at all). This is the
    part of Unicode NFKC's width folding that runs the other way, restricted to ASCII so the length never
    changes (NFKC itself maps "①" to "1" and "ﬁ" to "fi", which would move every later offset).
    """
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else _CORPUS_FORMS.get(c, c) for c in text)


def to_half_width(text: str) -> str:
    """Full-width ASCII forms (U+FF01..U+FF5E, U+3000) -> ASCII: undoes the width part of :func:`to_corpus_form`
    (how the held-out text is written half-width for the test of text unlike the corpus)."""
    return "".join(chr(ord(c) - 0xFEE0) if "\uff01" <= c <= "\uff5e" else " " if c == "\u3000" else c for c in text)


def chunks(text: str, max_len: int) -> list[str]:
    """Cut a long line into pieces of at most ``max_len`` characters, after punctuation where possible
    (no word crosses a comma), else hard at ``max_len``; the pieces join back to ``text``."""
    check_positive_int(max_len, "max_len")
    pieces = []
    while len(text) > max_len:
        cut = max((i + 1 for i in range(max_len) if text[i] in _CUT_AFTER), default=max_len)
        pieces.append(text[:cut])
        text = text[cut:]
    return pieces + [text] if text else pieces


# ---------------------------------------------------------------- segmenting with a tagger
Encode = Callable[[str], list[int]]


@torch.no_grad()
def predict_tags(model: nn.Module, encode: Encode, texts: Sequence[str], block_size: int,
                 batch_size: int = 64) -> list[list[str]]:
    """BMES tags for each text, from any token-tagging model.

    Args:
        model: ``logits, _ = model(idx, attention_mask=mask)`` with idx (B, T) long, mask (B, T) 1 for real
            characters (right padding), logits (B, T, K=4) over :data:`TAGS`.
        encode: text -> one id per character (e.g. a ``CharTokenizer``'s ``encode``).
        texts: the lines (already in the model's character form); long ones are cut by :func:`chunks`.
        block_size: the longest chunk the model takes.
        batch_size: chunks per forward pass.
    Returns:
        One tag list per text, as long as the text.
    """
    check_positive_int(batch_size, "batch_size")
    pieces = [(i, piece) for i, text in enumerate(texts) for piece in chunks(text, block_size)]
    order = sorted(range(len(pieces)), key=lambda j: len(pieces[j][1]))  # similar lengths: little padding
    tags: list[list[str]] = [[] for _ in pieces]
    device = next(model.parameters()).device
    with eval_mode(model):
        for b in range(0, len(order), batch_size):
            part = order[b : b + batch_size]
            ids = [encode(pieces[j][1]) for j in part]
            for j, row in zip(part, ids, strict=True):
                if len(row) != len(pieces[j][1]):
                    raise ValueError(f"encode gave {len(row)} ids for {len(pieces[j][1])} characters: the "
                                     "tokenizer must give one id per character")
            T = max(len(row) for row in ids)
            idx = torch.zeros(len(ids), T, dtype=torch.long)
            mask = torch.zeros(len(ids), T, dtype=torch.long)
            for r, row in enumerate(ids):
                idx[r, : len(row)] = torch.tensor(row, dtype=torch.long)
                mask[r, : len(row)] = 1
            logits, _ = model(idx.to(device), attention_mask=mask.to(device))  # (B, T, K)
            best = logits.argmax(-1).cpu()  # (B, T)
            for r, j in enumerate(part):
                tags[j] = [TAGS[t] for t in best[r, : len(ids[r])].tolist()]
    out: list[list[str]] = [[] for _ in texts]
    for (i, _), t in zip(pieces, tags, strict=True):
        out[i] += t
    return out


def segment_lines(model: nn.Module, encode: Encode, lines: Sequence[str], block_size: int,
                  batch_size: int = 64, normalize: bool = True) -> list[list[str]]:
    """Segment lines of text into words with a token-tagging model (see :func:`predict_tags`).

    Args:
        normalize: show the model the corpus's full-width form of each line (:func:`to_corpus_form`);
            the words are always cut from the original line, so they keep the user's characters.
    Returns:
        One word list per line (an empty line gives ``[]``); the words join back to the line.
    """
    if isinstance(lines, str):
        raise TypeError("lines must be a list of strings, got one string: wrap it in a list")
    seen = [to_corpus_form(line) if normalize else line for line in lines]
    tags = predict_tags(model, encode, seen, block_size, batch_size)
    return [tags_to_words(line, line_tags) for line, line_tags in zip(lines, tags, strict=True)]


def format_sighan(words: Iterable[str]) -> str:
    """One line in the SIGHAN bakeoff format: the words separated by two spaces."""
    return "  ".join(words)


def read_input_lines(texts: Sequence[str] = (), input_file: str | Path | None = None) -> list[str]:
    """The lines to segment: ``texts`` (each may hold newlines), then the lines of ``input_file``.

    Lines keep their content (trailing whitespace and the newline removed); empty lines stay, so the
    output has one line per input line. Raises ValueError when there is nothing to segment.
    """
    lines = [line for text in texts for line in str(text).splitlines() or [""]]
    if input_file is not None:
        lines += [line.rstrip("\r") for line in read_text(input_file).rstrip("\n").split("\n")]
    if not lines:
        raise ValueError("nothing to segment: give TEXT arguments or --input FILE")
    return [line.rstrip() for line in lines]
