"""Language-modelling data: windows and their shifted targets, and validation splits with no overlap."""

from __future__ import annotations

import pytest
import torch

from llmguide.data import load_reviews
from llmguide.lmdata import (
    TokenWindows,
    encode_documents,
    review_lm_data,
    review_texts,
    split_text,
    text_lm_data,
)
from llmguide.tokenizer import CharTokenizer


def test_each_target_is_the_next_token():
    stream = torch.arange(100, 120)
    windows = TokenWindows(stream, block_size=5)
    assert len(windows) == 15  # starts 0..14: the last window ends on the last token
    first, last = windows[0], windows[len(windows) - 1]
    assert first["idx"].tolist() == [100, 101, 102, 103, 104] and first["targets"].tolist() == [101, 102, 103, 104, 105]
    assert last["targets"][-1].item() == 119
    assert torch.equal(windows[-1]["idx"], last["idx"])


def test_get_batch_equals_the_stacked_windows_and_stride_skips():
    windows = TokenWindows(torch.randint(0, 50, (200,), generator=torch.Generator().manual_seed(0)), 8, stride=3)
    assert len(windows) == (200 - 9) // 3 + 1
    picks = torch.tensor([0, 5, 63, 2])
    batch = windows.get_batch(picks)
    assert batch["idx"].shape == batch["targets"].shape == (4, 8)
    for k in ("idx", "targets"):
        assert torch.equal(batch[k], torch.stack([windows[int(i)][k] for i in picks]))
    assert windows[1]["idx"][0].item() == windows.tokens[3].item()


@pytest.mark.parametrize("kwargs, message", [
    (dict(tokens=torch.zeros(2, 5), block_size=2), "1-D"),
    (dict(tokens=torch.zeros(5), block_size=5), "fewer than block_size"),
    (dict(tokens=torch.zeros(9), block_size=2, stride=0), "stride"),
])
def test_bad_windows_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TokenWindows(**kwargs)
    with pytest.raises(IndexError):
        TokenWindows(torch.zeros(10), 3)[7]


def test_documents_are_joined_and_ended_by_the_separator():
    tok = CharTokenizer.train(["ab\n", "好评"])
    stream = encode_documents(["ab", "好评"], tok)
    assert tok.decode(stream.tolist()) == "ab\n好评\n"
    with pytest.raises(ValueError, match="no documents"):
        encode_documents([], tok)
    with pytest.raises(ValueError, match="does not know the separator"):
        encode_documents(["ab"], CharTokenizer.train(["ab"]))


def test_text_is_split_by_position_like_nanogpt():
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    train_text, val_text = split_text(text)
    assert train_text + val_text == text and len(val_text) == 100
    tok = CharTokenizer.train([text])
    data = text_lm_data(text, tok, block_size=8)
    assert data.train.n_tokens == 900 and data.val.n_tokens == 100
    with pytest.raises(ValueError, match="val_fraction"):
        split_text(text, 1.0)


def test_review_splits_follow_the_documents_and_never_share_a_review():
    reviews = load_reviews()
    tok = CharTokenizer.train(reviews.text.tolist() + ["\n"])  # every character known: decoding is exact
    data = review_lm_data(tok, block_size=32)
    train_docs = tok.decode(data.train.tokens.tolist()).split("\n")[:-1]
    val_docs = tok.decode(data.val.tokens.tolist()).split("\n")[:-1]
    assert train_docs == reviews.loc[reviews.split == "train", "text"].tolist()
    assert val_docs == reviews.loc[reviews.split == "validation", "text"].tolist()
    assert not set(train_docs) & set(val_docs)
    assert data.summary()["val_tokens"] == len(data.val.tokens)
    tiny = review_lm_data(tok, block_size=32, max_docs=10)
    assert tok.decode(tiny.train.tokens.tolist()).count("\n") == 10


def test_review_texts_is_what_the_training_stream_is_made_of():
    text = review_texts("train")
    tok = CharTokenizer.train([text])
    assert tok.encode(text) == review_lm_data(tok, block_size=8).train.tokens.tolist()
