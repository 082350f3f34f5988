"""llmguide: a hands-on, tested guide to how large language models work.

The package holds the real code that the notebooks in ``notebooks/`` teach; ``__init__`` only
re-exports the public names. Functions named like their module (``attention``, ``generate``,
``train``) are imported from the module (``from llmguide.train import train``): re-exporting them here
would shadow the module itself.
"""

# ruff: noqa: E402  (the OpenMP policy below must be set before the imports load torch)

import os
import sys

# Must happen before torch loads OpenMP. Busy-waiting OpenMP threads starve a Jupyter kernel's own
# threads on small machines, so in a kernel PASSIVE keeps notebook cells as fast as a plain script. In a
# script or the CLI nothing competes with the spinning threads and busy-waiting is faster (``llmguide
# pretrain``: 87 s vs 114 s with PASSIVE), so the OpenMP default stays. benchmarks/omp_wait.py measures
# both places. A value the user set wins.
if "ipykernel" in sys.modules or "JPY_PARENT_PID" in os.environ:  # a Jupyter kernel (jupyter_client sets the variable)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from llmguide.attention import (
    KVCache,
    MultiHeadAttention,
    causal_mask,
    combine_masks,
    padding_mask,
)
from llmguide.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from llmguide.data import load_animals, load_hub_dataset, load_reviews, load_shakespeare, read_corpus
from llmguide.download import ChecksumError, OfflineError, cache_dir, hub_online
from llmguide.embeddings import (
    LearnedPositionalEmbedding,
    SentenceEncoder,
    SinusoidalPositionalEmbedding,
    cosine_similarity,
    mean_pool,
    minilm_path,
    one_hot_embed,
    sinusoidal_positions,
)
from llmguide.folder import load_folder, load_weights, save_folder, save_weights
from llmguide.generate import sample_next
from llmguide.lmdata import TokenWindows, review_lm_data, text_lm_data
from llmguide.model import GPT, GPTClassifier, GPTConfig, positions_from_mask
from llmguide.pretrain import load_model_folder, parse_overrides, run_pretrain, save_model_folder
from llmguide.pretrained import chat_generate, load_pretrained_lm
from llmguide.runtime import Profile, Runtime, deterministic, get_device, get_profile, seed_everything, setup
from llmguide.tokenizer import (
    SPECIAL_TOKENS,
    BPETokenizer,
    CharTokenizer,
    HFTokenizer,
    Tokenizer,
    load_tokenizer,
    token_stats,
    train_bpe,
)
from llmguide.train import NonFiniteLossError, TrainConfig, evaluate_loss

__version__ = "0.1.0"

__all__ = [
    "latest_checkpoint",
    "load_checkpoint",
    "load_weights",
    "save_checkpoint",
    "save_weights",
    "load_folder",
    "save_folder",
    "sample_next",
    "TokenWindows",
    "review_lm_data",
    "text_lm_data",
    "GPT",
    "GPTClassifier",
    "GPTConfig",
    "positions_from_mask",
    "load_model_folder",
    "parse_overrides",
    "run_pretrain",
    "save_model_folder",
    "NonFiniteLossError",
    "TrainConfig",
    "evaluate_loss",
    "LearnedPositionalEmbedding",
    "SentenceEncoder",
    "SinusoidalPositionalEmbedding",
    "cosine_similarity",
    "mean_pool",
    "minilm_path",
    "one_hot_embed",
    "sinusoidal_positions",
    "SPECIAL_TOKENS",
    "BPETokenizer",
    "CharTokenizer",
    "HFTokenizer",
    "Tokenizer",
    "load_tokenizer",
    "token_stats",
    "train_bpe",
    "ChecksumError",
    "OfflineError",
    "cache_dir",
    "chat_generate",
    "hub_online",
    "load_animals",
    "load_hub_dataset",
    "load_pretrained_lm",
    "load_reviews",
    "load_shakespeare",
    "read_corpus",
    "KVCache",
    "MultiHeadAttention",
    "causal_mask",
    "combine_masks",
    "padding_mask",
    "Profile",
    "Runtime",
    "deterministic",
    "get_device",
    "get_profile",
    "seed_everything",
    "setup",
]
