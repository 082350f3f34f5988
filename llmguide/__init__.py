"""llmguide: a hands-on, tested guide to how large language models work.

The package holds the real code that the notebooks in ``notebooks/`` teach; ``__init__`` only
re-exports the public names.
"""

import os

# Must happen before torch loads OpenMP. Busy-waiting OpenMP threads starve a Jupyter kernel's own
# threads on small machines; PASSIVE keeps notebook cells as fast as a plain script
# (benchmarks/omp_wait.py measures it). A value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from llmguide.attention import (
    KVCache,
    MultiHeadAttention,
    attention,
    causal_mask,
    combine_masks,
    padding_mask,
)
from llmguide.runtime import Profile, Runtime, deterministic, get_device, get_profile, seed_everything, setup

__version__ = "0.1.0"

__all__ = [
    "KVCache",
    "MultiHeadAttention",
    "attention",
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
