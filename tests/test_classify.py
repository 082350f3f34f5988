"""Classification data and fine-tuning: validation errors, truncation counted, padding that cannot change a
prediction, HF parity of the pooled logits, head-only vs full fine-tuning, save format."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from llmguide.classify import (
    ClassificationDataset,
    classifier_from_pretrained,
    collate,
    finetune,
    iter_batches,
    save_classifier,
    set_trainable,
)
from llmguide.data import ANIMAL_LABELS, load_animals
from llmguide.model import GPT, GPTClassifier, GPTConfig
from llmguide.tokenizer import CharTokenizer
from llmguide.train import TrainConfig

TEXTS = ["这是一只猫", "this is a dog", "鸟在唱歌", "a fish swims"]
LABELS = ["cat", "dog", "bird", "fish"]


@pytest.fixture
def tok() -> CharTokenizer:
    return CharTokenizer.train(["\n".join(load_animals().text) + "\n"])


def test_dataset_encodes_maps_names_and_ids(tok):
    ds = ClassificationDataset(TEXTS, LABELS, tok, ANIMAL_LABELS, block_size=16)
    assert len(ds) == 4 and ds.labels.tolist() == [0, 1, 2, 3]
    assert ds[0]["idx"].tolist() == tok.encode("这是一只猫") and ds[0]["labels"].item() == 0
    same = ClassificationDataset(TEXTS, [0, 1, 2, 3], tok, ANIMAL_LABELS, block_size=16)
    assert same.labels.tolist() == ds.labels.tolist()
    s = ds.summary()
    assert s["per_class"] == {"cat": 1, "dog": 1, "bird": 1, "fish": 1} and s["truncated"] == 0


@pytest.mark.parametrize("texts, labels, match", [
    ([], [], "dataset is empty"),
    (["好"], [0, 1], "1 texts but 2 labels"),
    (["好", "  "], ["cat", "dog"], r"text 1 is empty \('  '\)"),
    (["好", ""], ["cat", "dog"], "text 1 is empty"),
    (["好", "坏"], ["cat", "horse"], r"label 'horse' of example 1 is not in the label set \['cat'"),
    (["好", "坏"], [0, 4], r"label 4 of example 1 is not in the label set .*ids 0..3"),
    (["好", "坏"], [0, -1], "label -1 of example 1"),
])
def test_dataset_rejects_bad_data_with_clear_errors(tok, texts, labels, match):
    with pytest.raises(ValueError, match=match):
        ClassificationDataset(texts, labels, tok, ANIMAL_LABELS, block_size=16)


def test_long_texts_are_truncated_and_counted_not_silently(tok):
    texts = ["猫" * 40, "狗狗", "鸟" * 17]
    with pytest.warns(UserWarning, match="2 of 3 texts are longer than 16 tokens"):
        ds = ClassificationDataset(texts, [0, 1, 2], tok, ANIMAL_LABELS, block_size=16)
    assert ds.n_truncated == 2 and ds.summary()["truncated"] == 2
    assert ds.lengths.tolist() == [16, 2, 16]
    assert ds[0]["idx"].tolist() == tok.encode("猫" * 16)  # the first block_size tokens are kept
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warn=False: no warning, the count is still there
        assert ClassificationDataset(texts, [0, 1, 2], tok, ANIMAL_LABELS, 16, warn=False).n_truncated == 2


def test_end_token_is_appended_after_truncation(tok):
    from llmguide.classify import end_token_id

    end = end_token_id(tok)
    assert end == tok.encode("\n")[0] and end != tok.unk_id  # the pre-training document separator
    ds = ClassificationDataset(["猫" * 40, "狗"], [0, 1], tok, ANIMAL_LABELS, block_size=16, end_id=end, warn=False)
    assert ds[0]["idx"].tolist() == tok.encode("猫" * 15) + [end]  # 15 tokens + the end token = block_size
    assert ds[1]["idx"].tolist() == tok.encode("狗") + [end]
    assert ds.n_truncated == 1 and ds.subset([1]).n_truncated == 0
    with pytest.raises(ValueError, match="subset is empty"):
        ds.subset([])


def test_collate_pads_right_with_a_mask_and_left_on_request():
    examples = [{"idx": torch.tensor([5, 6, 7]), "labels": torch.tensor(1)}, {"idx": torch.tensor([8]),
                                                                              "labels": torch.tensor(0)}]
    b = collate(examples, pad_id=0)
    assert b["idx"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert b["labels"].tolist() == [1, 0]
    left = collate(examples, pad_id=9, padding_side="left")
    assert left["idx"].tolist() == [[5, 6, 7], [9, 9, 8]] and left["attention_mask"].tolist() == [[1, 1, 1],
                                                                                                  [0, 0, 1]]
    with pytest.raises(ValueError, match="padding_side"):
        collate(examples, padding_side="middle")
    with pytest.raises(ValueError, match="empty"):
        collate([])


def test_padding_does_not_change_the_prediction(tok, tiny):
    torch.manual_seed(0)
    clf = GPTClassifier(GPT(GPTConfig(**{**tiny, "vocab_size": tok.vocab_size})), 4).eval()
    ds = ClassificationDataset(TEXTS, LABELS, tok, ANIMAL_LABELS, block_size=16)
    batch = ds.get_batch(range(4))  # padded to the longest text
    assert batch["attention_mask"].sum(1).tolist() == ds.lengths.tolist()
    with torch.no_grad():
        together, _ = clf(batch["idx"], batch["attention_mask"])
        alone = torch.cat([clf(ds[i]["idx"][None])[0] for i in range(4)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_pooled_logits_match_hf_gpt2_for_sequence_classification(tok, tiny):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=tok.vocab_size, n_positions=16, n_embd=32, n_layer=2, n_head=4, num_labels=4,
                     pad_token_id=tok.pad_id, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    hf = GPT2ForSequenceClassification(cfg).eval()
    ours = GPTClassifier(GPT.from_hf(hf), 4).eval()
    ours.score.weight.data.copy_(hf.score.weight.data)
    batch = ClassificationDataset(TEXTS, LABELS, tok, ANIMAL_LABELS, block_size=16).get_batch(range(4))
    with torch.no_grad():
        expected = hf(input_ids=batch["idx"], attention_mask=batch["attention_mask"]).logits
        got, loss = ours(**batch)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(expected, batch["labels"]))


def test_iter_batches_covers_everything_in_order(tok):
    ds = ClassificationDataset(TEXTS, LABELS, tok, ANIMAL_LABELS, block_size=16)
    batches = list(iter_batches(ds, batch_size=3))
    assert [len(b["labels"]) for b in batches] == [3, 1]
    assert torch.cat([b["labels"] for b in batches]).tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="batch_size"):
        list(iter_batches(ds, 0))


def test_head_only_training_leaves_the_body_untouched(tok, tiny):
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(**{**tiny, "vocab_size": tok.vocab_size}))
    clf = classifier_from_pretrained(gpt, 4, trainable="head")
    assert set_trainable(clf, "head") == 32 * 4  # the score matrix only
    body = {k: v.clone() for k, v in clf.gpt.state_dict().items()}
    head = clf.score.weight.detach().clone()
    data = load_animals()
    ds = ClassificationDataset.from_frame(data, tok, ANIMAL_LABELS, block_size=16, warn=False)
    cfg = TrainConfig(max_steps=3, batch_size=8, learning_rate=1e-2, warmup_steps=0, progress=False)
    finetune(clf, ds, None, cfg, trainable="head")
    assert all(torch.equal(v, clf.gpt.state_dict()[k]) for k, v in body.items())
    assert not torch.equal(head, clf.score.weight)
    assert set_trainable(clf, "all") == sum(p.numel() for p in clf.parameters())
    with pytest.raises(ValueError, match="trainable"):
        set_trainable(clf, "body")


def test_full_finetuning_overfits_one_batch(tok, tiny):
    torch.manual_seed(0)
    clf = classifier_from_pretrained(GPT(GPTConfig(**{**tiny, "vocab_size": tok.vocab_size})), 4)
    animals = load_animals().groupby(["label", "lang"]).head(1)  # 8 sentences: one per class and language
    ds = ClassificationDataset.from_frame(animals, tok, ANIMAL_LABELS, block_size=16, warn=False)
    cfg = TrainConfig(max_steps=40, batch_size=8, learning_rate=1e-2, warmup_steps=0, progress=False,
                      eval_interval=40, eval_steps=1)
    history = finetune(clf, ds, ds, cfg)
    assert history.train_loss.iloc[0] > 0.8 * math.log(4)  # starts near chance: ln 4
    assert history.val_loss.dropna().iloc[-1] < 0.1  # and learns the 8 sentences by heart


def test_save_classifier_writes_the_folder_format(tok, tiny, tmp_path):
    clf = classifier_from_pretrained(GPT(GPTConfig(**{**tiny, "vocab_size": tok.vocab_size})), 4)
    folder = save_classifier(clf, tok, ANIMAL_LABELS, tmp_path / "clf", meta={"source": "test"})
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "labels.json", "model.safetensors",
                                                        "tokenizer.json"]
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["task"] == "classification" and config["n_classes"] == 4 and config["source"] == "test"
    assert config["model"]["vocab_size"] == tok.vocab_size
    assert json.loads((folder / "labels.json").read_text(encoding="utf-8")) == list(ANIMAL_LABELS)
    with pytest.raises(ValueError, match="2 label names for a classifier with 4 classes"):
        save_classifier(clf, tok, ["a", "b"], tmp_path / "bad")
