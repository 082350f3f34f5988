"""The LSTM models: padding is ignored (both directions), the classifier max-pools only real tokens, the tagger
trains, and both save and load through the model folder with identical logits."""

from __future__ import annotations

import pytest
import torch

from llmguide.folder import load_folder, save_folder
from llmguide.rnn import LSTMClassifier, LSTMConfig, LSTMTagger

CONFIG = LSTMConfig(vocab_size=50, n_embd=16, n_hidden=8, dropout=0.0)


def test_padding_does_not_change_the_real_positions():
    torch.manual_seed(0)
    tagger = LSTMTagger(CONFIG, 4).eval()
    idx = torch.randint(1, 50, (1, 5))
    alone, _ = tagger(idx)
    padded = torch.cat([idx, torch.randint(1, 50, (1, 3))], 1)  # junk after the end, masked out
    mask = torch.tensor([[1] * 5 + [0] * 3])
    logits, _ = tagger(padded, attention_mask=mask)
    # the right-to-left direction starts at the last real token, not in the padding
    torch.testing.assert_close(logits[:, :5], alone, atol=1e-6, rtol=1e-5)


def test_the_bidirectional_state_is_torchs_lstm_read_both_ways():
    torch.manual_seed(0)
    tagger = LSTMTagger(CONFIG, 4).eval()
    idx = torch.randint(1, 50, (2, 6))
    h, _ = tagger.encoder(idx)
    x = tagger.encoder.wte(idx)
    lstm = tagger.encoder.lstm
    forward = torch.nn.LSTM(16, 8, batch_first=True)
    backward = torch.nn.LSTM(16, 8, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(forward, name).copy_(getattr(lstm, name))
            getattr(backward, name).copy_(getattr(lstm, name + "_reverse"))
        expected = torch.cat([forward(x)[0], backward(x.flip(1))[0].flip(1)], -1)
    torch.testing.assert_close(h, expected, atol=1e-6, rtol=1e-5)


def test_classifier_pools_only_real_tokens_and_learns():
    torch.manual_seed(0)
    clf = LSTMClassifier(CONFIG, 2)
    idx = torch.randint(1, 50, (8, 7))
    labels = (idx[:, 0] > 25).long()  # a rule the model can learn
    mask = torch.ones_like(idx)
    mask[:, 5:] = 0
    opt = torch.optim.Adam(clf.parameters(), 1e-2)
    first = None
    for _ in range(60):
        logits, loss = clf(idx, attention_mask=mask, labels=labels)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert logits.shape == (8, 2) and loss.item() < 0.2 * first
    clf.eval()
    junk = idx.clone()
    junk[:, 5:] = 1
    torch.testing.assert_close(clf(idx, mask)[0], clf(junk, mask)[0])


@pytest.mark.parametrize("cls,kind", [(LSTMTagger, "lstm-tagger"), (LSTMClassifier, "lstm-classifier")])
def test_folder_round_trip(tmp_path, cls, kind):
    torch.manual_seed(0)
    model = cls(CONFIG, 3).eval()
    save_folder(tmp_path / "m", model, labels=["a", "b", "c"])
    loaded, _, meta = load_folder(tmp_path / "m", kind=kind)
    idx = torch.randint(1, 50, (2, 5))
    assert meta["kind"] == kind and meta["labels"] == ["a", "b", "c"]
    torch.testing.assert_close(loaded(idx)[0], model(idx)[0], atol=0, rtol=0)


def test_bad_sizes_name_the_field():
    with pytest.raises(ValueError, match="LSTMConfig.n_hidden"):
        LSTMConfig(n_hidden=0)
    with pytest.raises(ValueError, match="idx must be"):
        LSTMTagger(CONFIG, 4)(torch.zeros(3, dtype=torch.long))
