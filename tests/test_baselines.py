"""TF-IDF + logistic regression baseline: the TF-IDF formula by hand, Chinese n-grams, learning, errors."""

from __future__ import annotations

import numpy as np
import pytest

from llmguide.baselines import TfidfConfig, run_tfidf_baseline, tfidf_baseline
from llmguide.data import ANIMAL_LABELS, load_animals


def test_tfidf_weights_match_the_formula_by_hand():
    docs = ["很好很好", "不好"]
    pipe = tfidf_baseline(TfidfConfig(ngram_min=1, ngram_max=2, min_df=1))
    vec = pipe.named_steps["tfidf"].fit(docs)
    X = vec.transform(docs).toarray()
    vocab = vec.vocabulary_
    assert set(vocab) == {"很", "好", "不", "很好", "好很", "不好"}  # characters, no segmentation needed
    n = len(docs)

    def idf(df):  # smoothed idf
        return 1 + np.log((1 + n) / (1 + df))

    # document 0 "很好很好": tf 很=2, 好=2, 很好=2, 好很=1; 好 occurs in both documents
    raw = {"很": (1 + np.log(2)) * idf(1), "好": (1 + np.log(2)) * idf(2),
           "很好": (1 + np.log(2)) * idf(1), "好很": 1.0 * idf(1)}
    norm = np.sqrt(sum(v**2 for v in raw.values()))
    for gram, value in raw.items():
        assert X[0, vocab[gram]] == pytest.approx(value / norm, abs=1e-12)
    assert X[0, vocab["不"]] == 0.0
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-12)


def test_learns_held_out_bilingual_animals_and_is_deterministic():
    df = load_animals()
    train, test = df[df.pair % 2 == 0], df[df.pair % 2 == 1]  # held-out pairs, both languages
    config = TfidfConfig(min_df=1)
    pipe, report, probs = run_tfidf_baseline(train.text, train.label, test.text, test.label, ANIMAL_LABELS, config)
    assert report.n == 40 and report.labels == list(ANIMAL_LABELS)
    assert report.accuracy > 0.5  # chance is 0.25
    assert probs.shape == (40, 4)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-9)
    _, again, probs2 = run_tfidf_baseline(train.text, train.label, test.text, test.label, ANIMAL_LABELS, config)
    np.testing.assert_array_equal(probs, probs2)
    assert pipe.predict(["这是一只猫", "this is a fish"]).tolist() == [0, 3]


def test_class_missing_from_training_gets_zero_probability():
    _, report, probs = run_tfidf_baseline(["好", "好吃", "差", "太差"], [0, 0, 1, 1], ["好", "差"], [0, 2],
                                          ["pos", "neg", "other"], TfidfConfig(min_df=1))
    assert probs.shape == (2, 3) and (probs[:, 2] == 0).all()
    assert report.support == {"pos": 1, "neg": 0, "other": 1}


def test_bad_input():
    with pytest.raises(ValueError, match="ngram_min"):
        TfidfConfig(ngram_min=3, ngram_max=2)
    with pytest.raises(ValueError, match="C must be positive"):
        TfidfConfig(C=0)
    with pytest.raises(ValueError, match="training set is empty"):
        run_tfidf_baseline([], [], ["a"], [0], ["x", "y"])
    with pytest.raises(ValueError, match="2 texts but 1 labels"):
        run_tfidf_baseline(["a", "b"], [0], ["a"], [0], ["x", "y"])
    with pytest.raises(ValueError, match="single class"):
        run_tfidf_baseline(["a", "b"], [0, 0], ["a"], [0], ["x", "y"])
