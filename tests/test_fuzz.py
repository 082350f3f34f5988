"""Property tests (hypothesis): arbitrary Unicode text in, an answer or the documented ValueError out.

Control characters, line and paragraph separators, private-use and unassigned code points, lone
surrogates (what ``errors="surrogateescape"`` leaves in a string read from a non-UTF-8 file) and 1 MB
strings go to :meth:`Classifier.predict`, the tokenizers (encode, decode, tokenize) and ``generate``.
Each call either answers (with the promised shape and round trip) or raises ``ValueError``; any other
exception is a bug.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmguide.classify import classifier_from_pretrained, save_classifier
from llmguide.data import ANIMAL_LABELS, load_animals
from llmguide.generate import generate
from llmguide.inference import load_classifier, read_texts
from llmguide.model import GPT, GPTConfig
from llmguide.tokenizer import CharTokenizer, train_bpe

FAST = settings(max_examples=100, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
# Every code point, surrogates (category Cs) included: hypothesis's default excludes them.
ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
TEXT = st.text(ANY_CHAR, max_size=200) | st.sampled_from(["", " ", "\n", "\u2028", "\x00", "<unk>", "<eos>猫",
                                                          "\ud800", "a\udcff b", "\x0c\x1c\x1d\x1e\x85"])


def has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


@pytest.fixture(scope="module")
def tokenizers():
    text = "\n".join(load_animals().text) + "\n"
    return {"char": CharTokenizer.train([text]), "bpe": train_bpe(text.splitlines(), vocab_size=300)}


@pytest.fixture(scope="module")
def classifier(tokenizers, tmp_path_factory):
    tok = tokenizers["char"]
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16))
    folder = save_classifier(classifier_from_pretrained(gpt, len(ANIMAL_LABELS)), tok, ANIMAL_LABELS,
                             tmp_path_factory.mktemp("fuzz") / "clf", {"end_id": tok.encode("\n")[0]})
    return load_classifier(folder, device="cpu")


@pytest.fixture(scope="module")
def lm(tokenizers):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=tokenizers["bpe"].vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16))


@FAST
@given(texts=st.lists(TEXT, min_size=1, max_size=4))
def test_predict_answers_one_row_per_text_or_raises_value_error(classifier, texts):
    try:
        df = classifier.predict(texts)
    except ValueError as err:
        assert any(not t.strip() or has_surrogate(t) for t in texts), err  # documented: empty or not characters
        return
    assert df.text.tolist() == texts and set(df.label) <= set(ANIMAL_LABELS)
    assert ((df.probability > 0) & (df.probability <= 1)).all()


@FAST
@given(text=TEXT, kind=st.sampled_from(["char", "bpe"]))
def test_tokenizers_round_trip_or_raise_value_error(tokenizers, text, kind):
    tok = tokenizers[kind]
    try:
        ids = tok.encode(text)
    except ValueError:
        assert has_surrogate(text)  # the only text a tokenizer refuses
        return
    assert all(isinstance(i, int) and 0 <= i < tok.vocab_size for i in ids)
    assert len(tok.tokenize(text)) == len(ids)
    decoded = tok.decode(ids, skip_special_tokens=False)
    if kind == "bpe":
        assert decoded == text  # byte-level: every text comes back exactly
    else:
        assert len(tok.encode(decoded)) == len(ids)  # unknown characters become <unk>, one token each


@FAST
@given(ids=st.lists(st.one_of(st.integers(-5, 400), st.floats(allow_nan=True), st.text(max_size=2), st.none()),
                    max_size=6), kind=st.sampled_from(["char", "bpe"]))
def test_decode_of_arbitrary_ids_answers_or_raises_value_error(tokenizers, ids, kind):
    tok = tokenizers[kind]
    try:
        text = tok.decode(ids)
    except ValueError:
        assert any(not isinstance(i, int) or not 0 <= i < tok.vocab_size for i in ids)
        return
    assert isinstance(text, str)


@FAST
@given(text=TEXT, temperature=st.one_of(st.just(0.0), st.floats(1e-6, 3.0), st.floats(allow_nan=True)))
@pytest.mark.filterwarnings("ignore:prompt of .* tokens is longer than block_size")
def test_generate_from_any_prompt_answers_or_raises_value_error(lm, tokenizers, text, temperature):
    tok = tokenizers["bpe"]
    try:
        ids = tok.encode(text)
        out = generate(lm, ids, 3, temperature=temperature, seed=0)
    except ValueError:
        assert has_surrogate(text) or not text or not (temperature == 0 or 1e-6 <= temperature < float("inf"))
        return
    assert out.shape == (len(ids) + 3,) and out[:len(ids)].tolist() == ids
    assert isinstance(tok.decode(out.tolist()), str)


@settings(max_examples=2, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed_text=st.text(ANY_CHAR, min_size=1, max_size=20))
def test_one_megabyte_strings_are_answered_or_refused(classifier, tokenizers, lm, seed_text):
    text = (seed_text * (1_000_000 // len(seed_text) + 1))[:1_000_000]
    try:
        df = classifier.predict(text)  # one text, cut to the model's context
    except ValueError:
        assert has_surrogate(text) or not text.strip()
    else:
        assert len(df) == 1 and df.attrs["n_truncated"] in (0, 1)
    try:
        ids = tokenizers["bpe"].encode(text)
    except ValueError:
        assert has_surrogate(text)
        return
    assert tokenizers["bpe"].decode(ids, skip_special_tokens=False) == text
    with pytest.warns(UserWarning, match="longer than block_size"):
        out = generate(lm, ids[:5000], 2, temperature=0)
    assert out.shape == (min(len(ids), 5000) + 2,)


@FAST
@given(raw=st.binary(min_size=1, max_size=300))
def test_files_with_undecodable_bytes_are_refused_naming_the_file(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("raw") / "texts.txt"
    # what a program that read bytes with errors="surrogateescape" writes back: the same bytes
    path.write_text(raw.decode("utf-8", errors="surrogateescape"), encoding="utf-8", errors="surrogateescape")
    assert path.read_bytes() == raw
    try:
        texts = read_texts(path)
    except ValueError as err:
        assert str(path) in str(err)
        return
    assert texts and all(t.strip() and "\n" not in t for t in texts)
    raw.decode("utf-8")  # only valid UTF-8 is read
