"""MLM data: the 15% / 80-10-10 recipe exactly on a seeded example and statistically on many tokens, whole-word
masking, the windows, the [MASK] token of the tokenizer."""

from __future__ import annotations

import math

import pytest
import torch

from llmguide.mlm import (
    MASK_CHAR,
    N_SPECIAL,
    MaskingConfig,
    MLMWindows,
    bert_tokenizer,
    encode_stream,
    mask_id_of,
    mask_tokens,
    word_ids_of,
)

CONFIG = MaskingConfig(mask_id=99)


def test_a_seeded_example_exactly_as_the_recipe_says():
    # Redo the three draws by hand from the same seed: chosen where u < 0.15 (and not special), then
    # [MASK] where a < 0.8, a random id where 0.8 <= a < 0.9, the original token where a >= 0.9.
    ids = torch.tensor([[2, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 3, 0, 0]] * 3)
    inputs, targets = mask_tokens(ids, CONFIG, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    u, a = torch.rand(ids.shape, generator=g), torch.rand(ids.shape, generator=g)
    r = torch.randint(N_SPECIAL, 99, ids.shape, generator=g)
    chosen = (u < 0.15) & (ids >= N_SPECIAL)
    expected = ids.clone()
    expected[chosen & (a < 0.8)] = 99
    expected[chosen & (a >= 0.8) & (a < 0.9)] = r[chosen & (a >= 0.8) & (a < 0.9)]
    assert torch.equal(inputs, expected)
    assert torch.equal(targets, torch.where(chosen, ids, -100))
    assert torch.equal(mask_tokens(ids, CONFIG, torch.Generator().manual_seed(7))[0], inputs)  # reproducible


def test_a_seeded_example_written_out():
    # [CLS] 10..47 [SEP] with seed 3: 12 of 38 tokens chosen; 9 became [MASK] (99), two random (23 -> 79,
    # 43 -> 68) and one kept (46).
    ids = torch.tensor([2, *range(10, 48), 3])
    inputs, targets = mask_tokens(ids, CONFIG, torch.Generator().manual_seed(3))
    chosen = [1, 3, 5, 12, 14, 23, 28, 29, 32, 33, 34, 37]
    assert (targets != -100).nonzero().flatten().tolist() == chosen
    assert targets[chosen].tolist() == [10, 12, 14, 21, 23, 32, 37, 38, 41, 42, 43, 46]
    assert inputs[chosen].tolist() == [99, 99, 99, 99, 79, 99, 99, 99, 99, 99, 68, 46]


def test_the_proportions_over_many_tokens():
    n = 200_000
    ids = torch.randint(N_SPECIAL, 99, (n,))
    inputs, targets = mask_tokens(ids, CONFIG, torch.Generator().manual_seed(0))
    chosen = targets != -100
    k = int(chosen.sum())
    # 15% chosen, within 4 standard errors of a binomial
    assert abs(k / n - 0.15) < 4 * math.sqrt(0.15 * 0.85 / n)
    masked = (inputs[chosen] == 99).float().mean().item()
    kept = (inputs[chosen] == ids[chosen]).float().mean().item()
    # kept = the 10% kept + the random draws that happen to hit the same token (1/95 of 10%)
    assert abs(masked - 0.8) < 4 * math.sqrt(0.8 * 0.2 / k)
    assert abs(kept - (0.1 + 0.1 / 95)) < 4 * math.sqrt(0.1 * 0.9 / k)
    random = chosen & (inputs != 99) & (inputs != ids)
    assert abs(random.sum().item() / k - 0.1 * 94 / 95) < 4 * math.sqrt(0.1 * 0.9 / k)
    # random replacements are ordinary tokens, spread over all of them; unchosen tokens are untouched
    assert inputs[random].min() >= N_SPECIAL and inputs[random].max() < 99
    assert len(inputs[random].unique()) == 95
    assert torch.equal(inputs[~chosen], ids[~chosen])


def test_special_tokens_and_padding_are_never_chosen():
    ids = torch.tensor([0, 1, 2, 3, 99] * 1000)
    inputs, targets = mask_tokens(ids, MaskingConfig(mask_id=99, mask_prob=0.9), torch.Generator().manual_seed(0))
    assert torch.equal(inputs, ids) and bool((targets == -100).all())


def test_whole_word_masking_masks_every_character_of_a_chosen_word():
    words = ["中华人民共和国", "今天", "成立", "了", "！"] * 2000
    wids = torch.tensor(word_ids_of(words))
    ids = torch.randint(N_SPECIAL, 99, wids.shape)
    _, targets = mask_tokens(ids, CONFIG, torch.Generator().manual_seed(1), word_ids=wids)
    chosen = targets != -100
    per_word = torch.zeros(int(wids.max()) + 1).index_add_(0, wids, chosen.float())
    sizes = torch.bincount(wids).float()
    assert bool(((per_word == 0) | (per_word == sizes)).all())  # all of a word or none of it
    n_words = len(sizes)
    share = ((per_word > 0).float().mean()).item()
    assert abs(share - 0.15) < 4 * math.sqrt(0.15 * 0.85 / n_words)  # 15% of the words
    # character masking, for comparison: a chosen character's word-mates are mostly left visible
    _, char_targets = mask_tokens(ids, CONFIG, torch.Generator().manual_seed(1))
    per_word_char = torch.zeros(n_words).index_add_(0, wids, (char_targets != -100).float())
    partial = ((per_word_char > 0) & (per_word_char < sizes)).float().mean().item()
    assert partial > 0.1


def test_word_ids_of():
    assert word_ids_of(["北京", "欢迎", "你"]) == [0, 0, 1, 1, 2]
    assert word_ids_of(["北京"], start=5) == [5, 5]


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="mask_prob"):
        MaskingConfig(mask_id=99, mask_prob=1.5)
    with pytest.raises(ValueError, match="replace_prob"):
        MaskingConfig(mask_id=99, replace_prob=0.95, random_prob=0.1)
    with pytest.raises(ValueError, match="mask_id"):
        MaskingConfig(mask_id=2)
    with pytest.raises(ValueError, match=r"ids must lie in 0..99"):
        mask_tokens(torch.tensor([100]), CONFIG)
    with pytest.raises(ValueError, match="word_ids"):
        mask_tokens(torch.tensor([5, 6]), CONFIG, word_ids=torch.tensor([0]))


def test_the_tokenizer_has_mask_as_its_last_id():
    tok = bert_tokenizer(["北京欢迎你\n"])
    assert mask_id_of(tok) == tok.vocab_size - 1 and tok.itos[-1] == MASK_CHAR
    assert tok.encode("北京") == [tok.stoi["北"], tok.stoi["京"]]
    from llmguide.tokenizer import CharTokenizer
    with pytest.raises(ValueError, match="bert_tokenizer"):
        mask_id_of(CharTokenizer.train(["abc"]))


def test_windows_and_stream():
    tok = bert_tokenizer(["北京欢迎你今天天气好\n"])
    ids, wids = encode_stream(["北京欢迎你", "今天天气好"], [["北京", "欢迎", "你"], None], tok)
    assert tok.decode(ids.tolist()) == "北京欢迎你\n今天天气好\n"
    assert wids.tolist() == [0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9]  # news by word, reviews by character
    config = MaskingConfig(mask_id=mask_id_of(tok))
    fixed = MLMWindows(ids, 6, config, seed=0, word_ids=wids, dynamic=False)
    assert len(fixed) == 3  # 12 tokens, 4 per window
    w = fixed.windows(torch.arange(3))
    assert w[:, 0].eq(2).all() and w[:, -1].eq(3).all() and w.shape == (3, 6)  # [CLS] ... [SEP]
    a, b = fixed.get_batch([0, 2]), fixed.get_batch([2, 0])
    assert torch.equal(a["targets"][0], b["targets"][1])  # a fixed mask per window, whatever the batch
    dyn = MLMWindows(ids, 6, config, seed=0, dynamic=True)
    draws = [dyn.get_batch(torch.arange(3))["targets"] for _ in range(20)]
    assert any(not torch.equal(draws[0], d) for d in draws[1:])  # dynamic: a new mask each time
    with pytest.raises(ValueError, match="block_size"):
        MLMWindows(ids, 2, config)
