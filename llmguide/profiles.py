"""What the profile chooses: every size and setting that differs between "cpu" and "gpu", one table per concept.

The *profile* is the one cpu/gpu switch (:func:`llmguide.runtime.get_profile`: ``profile=``, else
``$LLMGUIDE_PROFILE``, else "gpu" when CUDA is present, else "cpu"; the CLI's ``--profile``). "cpu" keeps a
notebook or a command at a minute or two on two CPU cores; "gpu" gives real results on one GPU. Any value
can be overridden: ``GPTConfig.from_preset("cpu", n_layer=2)``, ``llmguide pretrain --max_steps=200``.

* :data:`MODEL_SIZES`: the GPT's sizes (``GPTConfig.from_preset``), plus GPT-2 small's shape;
* :data:`PRETRAIN_SETTINGS`: how ``llmguide pretrain`` trains (``TrainConfig`` fields);
* :data:`FINETUNE_SETTINGS`: how ``llmguide finetune`` trains;
* :data:`REVIEW_LM_SETTINGS`: the recipe of the review language model the project ships (``data/review-gpt``).
"""

from __future__ import annotations

from typing import Any

PROFILES = ("cpu", "gpu")

# GPTConfig sizes by name. `vocab_size` normally comes from the tokenizer: GPTConfig.from_preset("cpu", vocab_size=...).
MODEL_SIZES: dict[str, dict[str, Any]] = {
    # Trains in about a minute on two CPU cores (character-level text, ~0.8M parameters + embeddings).
    "cpu": dict(block_size=128, n_layer=4, n_head=4, n_embd=128, dropout=0.0),
    # nanoGPT's shakespeare-char model: minutes on one GPU (~10.7M parameters + embeddings).
    "gpu": dict(block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2),
    # The shape of the smallest released GPT-2 ("124M"); not a profile.
    "gpt2": dict(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768, dropout=0.0),
}

# Pre-training (TrainConfig fields). "gpu" is nanoGPT's shakespeare-char recipe (batch 64 x 256 tokens).
PRETRAIN_SETTINGS: dict[str, dict[str, Any]] = {
    # Small batches, many steps: at a fixed CPU budget more updates beat bigger batches (notebook 04).
    "cpu": dict(learning_rate=3e-3, min_lr=3e-4, warmup_steps=30, batch_size=8, max_steps=1000, beta2=0.99,
                eval_interval=200, eval_steps=20, weight_decay=0.1),
    "gpu": dict(learning_rate=1e-3, min_lr=1e-4, warmup_steps=100, batch_size=64, max_steps=5000, beta2=0.99,
                eval_interval=250, eval_steps=200, weight_decay=0.1),
}

# Fine-tuning (TrainConfig fields): a smaller learning rate than pre-training (the body already knows the
# language; large steps would wash that out) and a short run.
FINETUNE_SETTINGS: dict[str, dict[str, Any]] = {
    # 100 steps of 32 (a quarter of the training reviews): ~35 s on two CPU cores. 150 steps add ~1 point to
    # both GPTs and 20 s to each run (measured with data/review-gpt: 0.782 / 0.842 vs 0.768 / 0.831).
    "cpu": dict(learning_rate=1e-3, min_lr=1e-4, warmup_steps=10, batch_size=32, max_steps=100, weight_decay=0.01,
                eval_interval=25, eval_steps=10),
    "gpu": dict(learning_rate=3e-4, min_lr=3e-5, warmup_steps=50, batch_size=64, max_steps=1000, weight_decay=0.01,
                eval_interval=100, eval_steps=28),
}

# The shipped review language model, on top of the "cpu" profile. Pre-training that transfers to a task takes
# several passes over the 1.0 M characters of training reviews: ~15 min on two CPU cores, more than a notebook
# may take. The project runs it once with these settings (``python tools/make_review_lm.py``) and ships the
# folder as ``data/review-gpt`` (card: data/README.md). Notebook 05 fine-tunes it in the CPU profile; the GPU
# profile pre-trains its own in the notebook.
REVIEW_LM_SETTINGS: dict[str, Any] = dict(
    max_steps=2400, batch_size=16, learning_rate=3e-3, min_lr=3e-4, warmup_steps=50,
    min_freq=5,  # characters seen < 5 times (0.3 % of the text) share <unk>: a 2,909-token head, not 4,423
    eval_interval=400, eval_steps=40, keep_checkpoints=1,
)

# Image classification (notebook 11, ``llmguide.images``): the ViT, the LeNet-style CNN it is measured against,
# and how each trains (TrainConfig fields). "cpu": scikit-learn's 8 x 8 digits, 2 x 2 patches (16 + 1 positions);
# "gpu": CIFAR-10 from the hub, 4 x 4 patches (64 + 1), ViT-Tiny's width and heads (Touvron et al. 2021) at
# half its depth. ``shift``: the augmentation, in pixels. The gpu row has not been measured in this repository.
VISION_SETTINGS: dict[str, dict[str, Any]] = {
    "cpu": dict(
        data="digits", shift=1,
        vit=dict(image_size=8, patch_size=2, num_channels=1, num_classes=10, n_layer=4, n_head=4, n_embd=64,
                 dropout=0.1),
        cnn=dict(image_size=8, num_channels=1, num_classes=10, channels=(16, 32), hidden=64),
        vit_train=dict(learning_rate=2e-3, min_lr=2e-4, warmup_steps=100, batch_size=128, max_steps=2000,
                       weight_decay=0.05, beta2=0.99, eval_interval=0, log_interval=100),
        cnn_train=dict(learning_rate=3e-3, min_lr=3e-4, warmup_steps=50, batch_size=64, max_steps=600,
                       weight_decay=0.05, beta2=0.99, eval_interval=0, log_interval=50),
    ),
    "gpu": dict(
        data="cifar10", shift=4,
        vit=dict(image_size=32, patch_size=4, num_channels=3, num_classes=10, n_layer=6, n_head=3, n_embd=192,
                 dropout=0.1),
        cnn=dict(image_size=32, num_channels=3, num_classes=10, channels=(64, 128), hidden=256, dropout=0.1),
        vit_train=dict(learning_rate=1e-3, min_lr=1e-5, warmup_steps=500, batch_size=256, max_steps=20000,
                       weight_decay=0.05, beta2=0.99, eval_interval=1000, eval_steps=20, log_interval=100),
        cnn_train=dict(learning_rate=2e-3, min_lr=2e-5, warmup_steps=200, batch_size=256, max_steps=10000,
                       weight_decay=0.05, beta2=0.99, eval_interval=1000, eval_steps=20, log_interval=100),
    ),
}
