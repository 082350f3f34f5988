"""Make data/review-gpt: the review language model the project ships (see data/README.md, section 6).

Runs ``llmguide.pretrain.make_review_lm`` (the CPU-preset GPT, pre-trained on the training reviews with
``REVIEW_LM_SETTINGS``; ~15 min on two CPU cores) into runs/review-gpt, then copies the model folder
without its checkpoints into data/review-gpt and prints what the data card records:

    python tools/make_review_lm.py
"""

import hashlib
import json
import shutil
from pathlib import Path

from llmguide.folder import CONFIG, HISTORY, TOKENIZER, WEIGHTS, read_meta
from llmguide.pretrain import make_review_lm, review_lm_dir

FILES = (WEIGHTS, CONFIG, TOKENIZER, HISTORY)  # the model folder without its checkpoints


def main() -> None:
    run = make_review_lm(Path("runs/review-gpt"))
    target = review_lm_dir()
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(run / name, target / name)
    results = read_meta(target)["results"]
    digest = hashlib.sha256((target / WEIGHTS).read_bytes()).hexdigest()
    print(f"wrote {target}: {json.dumps(results)}")
    print(f"{WEIGHTS} sha256 {digest}")


if __name__ == "__main__":
    main()
