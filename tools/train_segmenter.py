"""Train one row of the segmentation table and save it as a segmenter folder (run once; ~15 min on one core).

    nice -n 10 python tools/train_segmenter.py bert data/pd-seg-bert
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from llmguide.tagger import (
    SEGMENTER_BLOCK_SIZE,
    SEGMENTER_RECIPES,
    build_segmenter,
    evaluate_segmenter,
    save_segmenter,
    segmentation_tokenizer,
    segmenter_train_config,
    train_segmenter,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("recipe", choices=sorted(SEGMENTER_RECIPES))
    parser.add_argument("out")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer = segmentation_tokenizer()
    model = build_segmenter(args.recipe, tokenizer)
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
    print(json.dumps(meta["results"]), "\n", by_length.to_string())


if __name__ == "__main__":
    main()
